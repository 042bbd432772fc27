"""`lowbit profile PKG`: per-op time, kernel and ISA, roofline, memory and numeric gap of a
package on this device, as a table, JSON, Chrome trace or HTML. PKG may also be a JSON profile
(from `--json` or the native `lowbit-profile`) to render it again."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("profile", help="profile a package on this device: per-op time, kernel/ISA, roofline, memory, gap to float")
    p.add_argument("package", help=".lbpk package (or a profile .json to render)")
    p.add_argument("--runs", type=int, default=20, help="measured runs (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up runs (default 3)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: lowbit's default)")
    p.add_argument("--json", metavar="OUT", help="write the profile as JSON")
    p.add_argument("--trace", metavar="OUT", help="write a Chrome trace (opens in Perfetto)")
    p.add_argument("--html", metavar="OUT", help="write one self-contained HTML report with plots")
    p.add_argument("--compare", default="", metavar="ort,tvm", help="also time these engines side by side (ort[=model.onnx], tvm[=artifact dir])")
    p.add_argument("--measure", action="store_true", help="measure the device roofline now if it is not cached")
    p.add_argument("--reference", metavar="FLOAT", help="float model for the per-layer numeric gap (.onnx or float .lbpk)")
    p.add_argument("--quiet", action="store_true", help="no terminal table")
    p.set_defaults(func=run)


def run(args) -> int:
    from lowbit import LowbitError
    from lowbit.profiler import Report, profile

    src = Path(args.package)
    if not src.exists():
        raise LowbitError(f"{src}: no such file")
    if src.suffix == ".json":
        try:
            report = Report.from_json(src)
        except ValueError as exc:
            raise LowbitError(f"{src}: {exc}") from exc
    else:
        report = profile(src, runs=args.runs, warmup=args.warmup, threads=args.threads,
                         compare=[e for e in args.compare.split(",") if e], measure=args.measure,
                         reference=args.reference)
    if args.json:
        report.to_json(args.json)
    if args.trace:
        report.to_trace(args.trace)
    if args.html:
        report.to_html(args.html)
    if not args.quiet:
        print(report.to_table())
    for what, out in (("json", args.json), ("trace", args.trace), ("html", args.html)):
        if out:
            print(f"wrote {what}: {out}", file=sys.stderr)
    return 0
