"""lowbit fp32 runtime vs ONNX Runtime float on the three real models, interleaved (one lowbit
run, one ORT run, repeated), medians and the ratio ORT/lowbit; optional per-op-type profile.

    .venv/bin/python bench/fp32_runtime.py [--models effnet,minilm,det] [--threads 1,2] [--runs 15] [--profile]
    .venv/bin/python bench/fp32_runtime.py --op-best [--runs 20]
    .venv/bin/python bench/fp32_runtime.py --cpu-time [--models ...] [--runs 15]
    .venv/bin/python bench/fp32_runtime.py --op-table [--models effnet,det] [--runs 20] [--threads 2]

--cpu-time: 1 thread only; times each run by the calling thread's CPU time (time.thread_time)
instead of wall time, so time spent descheduled by other processes does not count (cache and
memory-bandwidth contention still do). Both engines run their 1-thread work on the calling thread.

--op-best: on a shared, loaded machine end-to-end times are dominated by preemption; this sums,
over the ops, each op's best time in interleaved runs (lowbit's profile events against ONNX
Runtime's per-node profile, 1 thread) — a disturbance-free comparison of the kernels.
--op-table: the same per-op best times, grouped by (op type, input shape, weight shape) on both
sides (ORT's NCHWc nodes carry the original shapes; its Reorder nodes get their own rows), one line
per group: count, lowbit ms, ORT ms, ORT/lowbit. Lists where the time goes and which shapes lose.
Both run 1 thread unless --threads N is given (then the first value: per-op times with N threads).
Packages and ONNX files are cached under build/bench-rt; a package older than the exporter / importer
sources is rebuilt.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def prepare(names, work: Path):
    from models import models  # bench/models.py: the same models and inputs
    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    import lowbit.exporters.lbpk as lbpk_mod
    import lowbit.importers.onnx_import as imp_mod

    # a cached package older than the exporter or importer sources is rebuilt (session 7 found a
    # MiniLM package of 2026-11-25 20:57 here, from before the attention fusion)
    srcs = list(Path(lbpk_mod.__file__).parent.glob("*.py")) + list(Path(imp_mod.__file__).parent.glob("*.py"))
    newest = max(f.stat().st_mtime for f in srcs)
    out = {}
    for name, (onnx_path, feeds, *_rest) in models(names, work).items():
        pkg = work / (Path(onnx_path).stem + ".fp32.lbpk")
        if not pkg.exists() or pkg.stat().st_mtime < newest:
            g = import_onnx(str(onnx_path), {k: v.shape for k, v in feeds.items()})
            write_package(g, pkg, target="auto", scheme="fp32")
        out[name] = (onnx_path, pkg, feeds)
    return out


def _shape_key(op_type, shapes):
    return op_type + " " + " x ".join(str(list(v)) for v in shapes[:2])


def op_table(names, runs, table: bool = True, threads: int = 1) -> int:
    """Per-op best times (`threads` threads, default 1) of lowbit's profile events and ORT's node
    profile, summed by op type and shapes; table=False prints only the two sums (--op-best)."""
    import json
    import re

    import onnxruntime as ort

    import lowbit

    work = ROOT / "build" / "bench-rt"
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()}")
    for name, (onnx_path, pkg, feeds) in prepare(names, work).items():
        s = lowbit.load(pkg, threads=threads)
        s.run(feeds)
        s.enable_profiling(True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(work / "ort-profile")
        o = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        o.run(None, feeds)
        lb, lkey = defaultdict(list), {}
        for _ in range(runs):
            s.run(feeds)
            o.run(None, feeds)
            for i, e in enumerate(s.profile_events()):
                lb[i].append((e["end_ns"] - e["start_ns"]) / 1e6)
                ins, outs = (re.findall(r"\[[0-9, ]*\]", v) for v in e["shapes"].split("->"))
                shapes = [json.loads(v) for v in ins]
                if e["kernel"] == "conv2d_pw_f32":  # weight blocked [O/8, K, 8]: keyed as ORT's [O, K, 1, 1]
                    shapes[1] = [json.loads(outs[0])[1], shapes[1][1], 1, 1]
                lkey[i] = _shape_key(e["op_type"], shapes)
        prof = Path(o.end_profiling())
        od, okey = defaultdict(list), {}
        for e in json.loads(prof.read_text()):
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                od[e["name"]].append(e["dur"] / 1e3)
                a = e["args"]
                okey[e["name"]] = _shape_key(a.get("op_name", "?"), [list(d.values())[0] for d in a.get("input_type_shape", [])])
        prof.unlink()
        rows = defaultdict(lambda: [0, 0.0, 0, 0.0])
        for i, v in lb.items():
            r = rows[lkey[i]]
            r[0] += 1
            r[1] += min(v)
        for k, v in od.items():
            r = rows[okey[k]]
            r[2] += 1
            r[3] += min(v)
        lsum = sum(r[1] for r in rows.values())
        osum = sum(r[3] for r in rows.values())
        print(f"== {name} ({threads} thread{'s' if threads > 1 else ''}): sum of per-op best lowbit {lsum:.2f} ms, ORT {osum:.2f} ms, ORT/lowbit {osum / lsum:.2f}x",
              flush=True)
        if not table:
            continue
        print(f"{'op, input x weight shape':70s} {'n lb':>4s} {'lowbit':>8s} {'n ort':>5s} {'ORT':>8s} {'ORT/lb':>7s}")
        for k, r in sorted(rows.items(), key=lambda kv: -max(kv[1][1], kv[1][3])):
            ratio = f"{r[3] / r[1]:7.2f}" if r[1] > 0 and r[3] > 0 else "      -"
            print(f"{k[:70]:70s} {r[0]:4d} {r[1]:8.3f} {r[2]:5d} {r[3]:8.3f} {ratio}")
    print(f"load average {os.getloadavg()}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="effnet,minilm,det")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--profile", action="store_true", help="per-op-type time of lowbit (1 thread)")
    ap.add_argument("--op-best", action="store_true", help="sum of per-op best times, lowbit vs ORT (1 thread)")
    ap.add_argument("--cpu-time", action="store_true", help="1 thread, timed by thread CPU time (loaded machines)")
    ap.add_argument("--op-table", action="store_true",
                    help="per-op best times by op and shape, lowbit vs ORT (1 thread, or the first --threads value if given)")
    args = ap.parse_args(argv)
    if args.op_table or args.op_best:  # one thread count: the first of --threads, 1 unless given
        t = int(args.threads.split(",")[0]) if "--threads" in " ".join(argv or sys.argv) else 1
        return op_table(args.models.split(","), args.runs, table=args.op_table, threads=t)
    clock = time.perf_counter
    if args.cpu_time:
        args.threads, clock = "1", time.thread_time
    import onnxruntime as ort

    import lowbit

    work = ROOT / "build" / "bench-rt"
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()}")
    for name, (onnx_path, pkg, feeds) in prepare(args.models.split(","), work).items():
        for t in [int(x) for x in args.threads.split(",")]:
            s = lowbit.load(pkg, threads=t)
            so = ort.SessionOptions()
            so.intra_op_num_threads = t
            so.inter_op_num_threads = 1
            o = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
            a = s.run(feeds)
            b = o.run(None, feeds)
            ka = list(a)[0]
            err = float(np.max(np.abs(a[ka] - b[0])) / (np.max(np.abs(b[0])) + 1e-30))
            lt, ot = [], []
            for _ in range(args.runs):
                t0 = clock(); s.run(feeds); t1 = clock()
                o.run(None, feeds); t2 = clock()
                lt.append((t1 - t0) * 1e3); ot.append((t2 - t1) * 1e3)
            lm, om = float(np.median(lt)), float(np.median(ot))
            print(f"{name:32s} {t} thr{' cpu' if args.cpu_time else ''}  lowbit {lm:8.2f} ms  ort {om:8.2f} ms  ort/lowbit {om / lm:5.2f}x  "
                  f"maxrel {err:.1e}", flush=True)
            if args.profile and t == int(args.threads.split(",")[0]):
                s.enable_profiling(True)
                acc = defaultdict(list)
                for _ in range(5):
                    s.run(feeds)
                    per = defaultdict(float)
                    for e in s.profile_events():
                        per[(e["op_type"], e["kernel"], e["isa"])] += (e["end_ns"] - e["start_ns"]) / 1e6
                    for k, v in per.items():
                        acc[k].append(v)
                s.enable_profiling(False)
                rows = sorted(((float(np.median(v)), k) for k, v in acc.items()), reverse=True)
                for ms, k in rows[:12]:
                    print(f"    {ms:7.2f} ms  {k[0]:18s} {k[1]:22s} {k[2]}")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
