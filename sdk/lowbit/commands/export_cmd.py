"""`lowbit export MODEL -o OUT`: quantize an ONNX model (or a Hugging Face LLM folder) and write a
device package, an ONNX file or a TVM artifact, printing the accuracy report."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("export", help="quantize a model and write a .lbpk / .onnx / TVM artifact")
    p.add_argument("model", help="an .onnx file (or a Hugging Face model folder for LLMs)")
    p.add_argument("-o", "--out", required=True, help="output path")
    p.add_argument("--target", default="auto", help="target profile name, a profile .toml, or auto (this host)")
    p.add_argument("--scheme", default=None,
                   help="fp32, w8a8, w8a8d, w4a8-g32|g64|g128, w4a16-g128, nf4a8-g64, fp4a8-g32, cb4a8-g64, "
                        "t2a8; add -gptq for GPTQ (default: w8a8; w4a8-g32 for a Hugging Face model folder)")
    p.add_argument("--calib", help="calibration data: an .npz or a folder of .npy files keyed by input name; "
                   "for a Hugging Face LLM folder a .txt (one text per line) or .npy / .npz of token ids")
    p.add_argument("--format", default="lbpk", choices=["lbpk", "onnx", "tvm"], help="output format (default lbpk)")
    p.add_argument("--smooth", action="store_true", default=None,
                   help="migrate per-channel activation scales into the weights of every layer (OutlierTune/"
                        "SmoothQuant); the default smooths the MatMul inputs of static int8 schemes (w8a8)")
    p.add_argument("--no-smooth", dest="smooth", action="store_false", help="no smoothing at all")
    p.add_argument("--sparse-outliers", metavar="PCT", default=None,
                   help="keep the largest PCT%% of each weight in fp16 in a sparse side table (e.g. 0.5%%)")
    p.add_argument("--keep-float", metavar="PATTERN", action="append",
                   help="node name / op type / weight name glob to leave in float (repeatable, comma-separated)")
    p.add_argument("--budget-bits", metavar="B", type=float, help="mixed precision: average weight bits budget")
    p.add_argument("--calib-method", default="minmax", choices=["minmax", "percentile", "mse"],
                   help="activation range estimator for static schemes (default minmax)")
    p.add_argument("--error-comp", dest="error_comp", action="store_true", default=None,
                   help="fit each layer's int8 weights to the float layer's output given the quantized model's "
                        "input (sequential error compensation; default for w8a8)")
    p.add_argument("--no-error-comp", dest="error_comp", action="store_false",
                   help="plain per-layer rounding (faster export, less accurate)")
    p.add_argument("--int8-weight-bits", default="auto", choices=["auto", "7", "8"],
                   help="bits of int8 weights: auto (default) = 7 on x86 targets without VNNI, where the AVX2 "
                        "u8 x s8 GEMM is then exact and fast, 8 elsewhere")
    p.add_argument("--input-shape", metavar="NAME=D,D,...", action="append",
                   help="fix a dynamic input shape when there is no calibration data, e.g. x=1,3,224,224")
    p.add_argument("--report-json", metavar="PATH", help="also write the accuracy report as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or table")
    p.set_defaults(func=run)


def _shapes(items):
    from lowbit import LowbitError

    out = {}
    for it in items or []:
        name, _, dims = it.partition("=")
        try:
            out[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise LowbitError(f"--input-shape {it!r}: expected NAME=D,D,... with integer sizes") from None
    return out


def run(args) -> int:
    from lowbit.accuracy import format_table
    keep = []
    for k in args.keep_float or []:
        keep += [p for p in k.split(",") if p]
    options = dict(smooth=args.smooth, keep_float=keep, budget_bits=args.budget_bits,
                   calib_method=args.calib_method, progress=not args.quiet and sys.stderr.isatty())
    if args.sparse_outliers is not None:
        options["sparse_outliers"] = args.sparse_outliers
    if args.error_comp is not None:
        options["error_comp"] = args.error_comp
    if args.int8_weight_bits != "auto":  # the API's default is "auto"
        options["weight_bits7"] = args.int8_weight_bits == "7"
    if args.input_shape:
        options["input_shapes"] = _shapes(args.input_shape)
    import lowbit.export_api as api

    out, report = api.export_with_report(args.model, args.out, target=args.target, scheme=args.scheme,
                                         calib=args.calib, format=args.format, **options)
    if report is not None and not args.quiet:
        print(format_table(report))
    if report is not None and args.report_json:
        with open(args.report_json, "w") as f:
            json.dump(report, f, indent=1, default=api._json)
    print(f"wrote {out}")
    return 0
