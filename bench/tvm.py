"""lowbit native runtime against the TVM-compiled model on x86, for the real models, same run.

For each model (EfficientNet-Lite0 at 224x224, all-MiniLM-L6-v2 at sequence 128) and scheme, the
graph is quantized once; then
* lowbit: the .lbpk run by the native runtime (``lowbit.load``), 1 and 2 threads;
* TVM:    ``--format tvm`` for the host profile, run through the TVM runtime (Relax VM),
          ``TVM_NUM_THREADS`` = 1 and 2 (set before TVM starts its pool: each runs in a subprocess);
engines interleaved round by round. It reports medians, lowbit's speed-up over TVM, TVM's compile
time, and the outputs' max difference (TVM vs the numpy reference). A combination one engine
cannot run (e.g. a scheme the native runtime has no kernels for yet) is reported with the reason.

    .venv/bin/python bench/tvm.py                 # both models, fp32 / w4a16-g128 / w4a8-g32 / w8a8d
    .venv/bin/python bench/tvm.py --quick         # EfficientNet only, fp32 + w4a8-g32, fewer runs
    .venv/bin/python bench/tvm.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/tvm.py: keep its folder off sys.path so `import tvm` finds Apache TVM.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def _inputs(model: str):
    import torch

    from lowbit import zoo

    if model == "efficientnet-lite0":
        m = zoo.efficientnet_lite0()
        img = zoo.preprocess_lite(zoo.natural_images(1))
        return m, (torch.from_numpy(img),)
    m = zoo.MiniLMEncoder()
    tok = zoo.minilm_tokenizer()
    enc = tok(zoo.SENTENCES[:1], padding="max_length", max_length=128, truncation=True, return_tensors="pt")
    return m, (enc["input_ids"], enc["attention_mask"])


_TVM_WORKER = r"""
import json, sys, time, numpy as np
from lowbit.exporters.tvm import load_tvm
art, feeds_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
with np.load(feeds_path) as z:
    feeds = {k: z[k] for k in z.files}
m = load_tvm(art)
m.run(feeds)
ts = []
for _ in range(runs):
    t = time.perf_counter(); m.run(feeds); ts.append(time.perf_counter() - t)
print(json.dumps(ts))
"""


def _time_tvm(art: Path, feeds_path: Path, runs: int, threads: int):
    env = dict(os.environ, TVM_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, "-c", _TVM_WORKER, str(art), str(feeds_path), str(runs)],
                       capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-500:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_model(model: str, schemes, runs: int, threads_list, work: Path):
    import lowbit
    from lowbit.export_api import prepare
    from lowbit.exporters.tvm import load_tvm, write_tvm
    from lowbit.refexec import RefExecutor

    module, example = _inputs(model)
    rows = []
    for scheme in schemes:
        row = {"model": model, "scheme": scheme}
        _, qg, _, _ = prepare(module, example_inputs=example, scheme=scheme)
        feeds = {t.name: e.numpy() for t, e in zip(qg.inputs, example)}
        feeds_path = work / f"{model}-{scheme}-feeds.npz"
        np.savez(feeds_path, **feeds)
        # TVM
        try:
            t0 = time.perf_counter()
            art = write_tvm(qg, work / f"{model}-{scheme}.tvm", None)
            row["tvm_compile_s"] = round(time.perf_counter() - t0, 1)
            out = load_tvm(art).run(feeds)
            ref = RefExecutor(qg).run(feeds)
            row["tvm_max_rel_err_vs_reference"] = float(max(
                np.max(np.abs(out[k] - ref[k])) / max(np.max(np.abs(ref[k])), 1e-12) for k in ref))
        except Exception as exc:  # noqa: BLE001 - report and go on
            art = None
            row["tvm_error"] = str(exc)[:300]
        # lowbit native
        pkg = work / f"{model}-{scheme}.lbpk"
        try:
            # target=None: the package records no profile (the runtime picks its ISA path itself).
            lowbit.export(module, pkg, example_inputs=example, scheme=scheme, target=None)
        except Exception as exc:  # noqa: BLE001
            pkg = None
            row["lowbit_error"] = str(exc).splitlines()[0][:300]
        for th in threads_list:
            lb_t, tvm_t = [], []
            sess = lowbit.load(pkg, threads=th) if pkg else None
            if sess is not None:
                sess.run(feeds)
            for _ in range(max(1, runs // 5)):  # interleave rounds of both engines
                if sess is not None:
                    for _ in range(5):
                        t = time.perf_counter()
                        sess.run(feeds)
                        lb_t.append(time.perf_counter() - t)
                if art is not None:
                    tvm_t += _time_tvm(art, feeds_path, 5, th)
            if lb_t:
                row[f"lowbit_ms_t{th}"] = round(statistics.median(lb_t) * 1e3, 2)
            if tvm_t:
                row[f"tvm_ms_t{th}"] = round(statistics.median(tvm_t) * 1e3, 2)
            if lb_t and tvm_t:
                row[f"lowbit_speedup_over_tvm_t{th}"] = round(statistics.median(tvm_t) / statistics.median(lb_t), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--models", default=None, help="comma-separated: efficientnet-lite0,all-minilm-l6-v2")
    ap.add_argument("--schemes", default=None, help="comma-separated schemes")
    args = ap.parse_args(argv)
    models = ["efficientnet-lite0"] if args.quick else ["efficientnet-lite0", "all-minilm-l6-v2"]
    schemes = ["fp32", "w4a8-g32"] if args.quick else ["fp32", "w4a16-g128", "w4a8-g32", "w8a8d"]
    models = args.models.split(",") if args.models else models
    schemes = args.schemes.split(",") if args.schemes else schemes
    runs = 5 if args.quick else args.runs
    from lowbit import targets

    result = {"host": platform.processor() or platform.machine(), "profile": targets.detect().name,
              "rows": []}
    with tempfile.TemporaryDirectory(prefix="lowbit-bench-tvm-") as tmp:
        for model in models:
            result["rows"] += bench_model(model, schemes, runs, [1, 2], Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    cols = ["model", "scheme", "lowbit_ms_t1", "tvm_ms_t1", "lowbit_ms_t2", "tvm_ms_t2", "tvm_compile_s"]
    print("\n" + "  ".join(f"{c:>18}" for c in cols))
    for r in result["rows"]:
        print("  ".join(f"{str(r.get(c, '-')):>18}" for c in cols))
    for r in result["rows"]:
        for k in ("lowbit_error", "tvm_error"):
            if k in r:
                print(f"{r['model']} {r['scheme']}: {k}: {r[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
