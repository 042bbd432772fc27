"""Many-core determinism check: qlinear outputs bitwise identical for every thread count up to this
machine's core count (the tests check 1-4 threads), on every usable ISA path and every packed format.

    .venv/bin/python bench/thread_determinism.py [--threads 1,2,3,4,5,8,11,16] [--n 1000] [--k 2048]

Prints one line per format and a verdict; exits 1 on any difference. Used on a 16-core machine
(docs/kernels.md, "Many-core check"), where the 2-core VM cannot show a split that only goes wrong
with more workers than rows per task.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "kernels"))

import lowbit  # noqa: E402
from kernel_util import FORMATS, make_qw  # noqa: E402
from lowbit import packing  # noqa: E402


def main() -> int:
    cores = os.cpu_count() or 2
    default = sorted({1, 2, 3, 4, 5, 8, 11, 16, cores})  # more threads than cores still checks the split
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default=",".join(map(str, default)))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--k", type=int, default=2048, help="a multiple of 128 (every format's group)")
    ap.add_argument("--m", default="1,7,64,200")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    if 1 not in threads:
        threads = [1] + threads
    if args.k % 128:
        ap.error("--k must be a multiple of 128")
    nat = lowbit.native()
    print(f"cores {cores}, ISA paths {nat.isa_usable()}, threads {threads}", flush=True)
    pools = {t: (None if t == 1 else nat.ThreadPool(t)) for t in threads}
    bad = 0
    for fmt, group in FORMATS:
        rng = np.random.default_rng(7)
        blob, meta = packing.pack(make_qw(fmt, args.n, args.k, group, rng))
        lin = nat.QLinear(blob, meta["format"], meta["n"], meta["k"], meta["group"])
        for m in (int(v) for v in args.m.split(",")):
            x = rng.standard_normal((m, args.k)).astype(np.float32)
            for isa in nat.isa_usable():
                ys = {t: lin(x, pool=pools[t], isa=isa)[0].tobytes() for t in threads}
                diff = [t for t in threads if ys[t] != ys[1]]
                if diff:
                    bad += 1
                    print(f"DIFF {fmt} g{group} m={m} {isa}: threads {diff} differ from 1 thread", flush=True)
        print(f"{fmt} g{group}: checked", flush=True)
    print("bitwise identical for every thread count" if not bad else f"{bad} mismatching cases", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
