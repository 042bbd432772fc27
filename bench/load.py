"""Package load time: verified and lazy `lb_model_load` of a ~100 MB package, and SHA-256 alone.

    .venv/bin/python bench/load.py [--package PKG ...] [--chunks 0,1024] [--threads 1,2] [--rounds 15] [--out load.json]

Without --package it writes (once each) build/bench-load/synthetic-100mb-c<KiB>.lbpk: a graph
package with MiniLM's layout of data sections (one 50 MB embedding table alone in its section,
eight 6.3 MB MatMul weights packed into 16 MiB sections), 100.7 MB in all, for every chunk size of
--chunks: 0 is format 1.0 (a SHA-256 per section, as written before session 8), N > 0 format 1.1
with a SHA-256 per N KiB chunk (docs/package-format.md, "Chunk table"). Each measurement runs in a fresh
child process that calls the C API (`lb_model_load` through ctypes, no Python runtime in the
timed part) on the page-cached file, `rounds` times, interleaving verified and lazy loads and the
hashing-thread counts round by round (LOWBIT_NUM_THREADS, which `lb_model_load` honours for its
hashing threads), and "lazy+session": a lazy load plus `lb_session_create` on that many threads
(which hashes the sections the graph uses, the same multi-buffer way); reports medians and minimums of wall time, CPU time (user + sys of the process
during the call), MB/s (package bytes / median wall) and the load average. "busiest thread" is
the CPU time of the calling thread or, if more, of each other thread (their share split evenly):
the wall time the load would take with a free core per hashing thread, which a busy machine does
not show. The machine is shared and noisy: read the medians as a
range, and the load average next to them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import ctypes, json, os, resource, sys, time
lib = ctypes.CDLL(sys.argv[1])
path, mode, rounds = sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4])
flags = 1 if mode else 0  # mode 2: lazy load + lb_session_create (which hashes the sections the graph uses)
lib.lb_model_load.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p)]
lib.lb_model_free.argtypes = [ctypes.c_void_p]
lib.lb_session_create.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_void_p)]
lib.lb_session_free.argtypes = [ctypes.c_void_p]
threads = ctypes.c_int(int(os.environ.get("LOWBIT_NUM_THREADS", "0")))
lib.lb_last_error.restype = ctypes.c_char_p
out = []
for _ in range(rounds):
    m = ctypes.c_void_p()
    r0 = resource.getrusage(resource.RUSAGE_SELF); q0 = resource.getrusage(resource.RUSAGE_THREAD); t0 = time.perf_counter()
    st = lib.lb_model_load(path, flags, ctypes.byref(m))
    sess = ctypes.c_void_p()
    if st == 0 and mode == 2:
        st = lib.lb_session_create(m, ctypes.byref(threads), ctypes.byref(sess))
    t1 = time.perf_counter(); q1 = resource.getrusage(resource.RUSAGE_THREAD); r1 = resource.getrusage(resource.RUSAGE_SELF)
    if st != 0:
        sys.exit("load failed: %s" % lib.lb_last_error().decode())
    lib.lb_session_free(sess)
    lib.lb_model_free(m)
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1e3
    main = (q1.ru_utime - q0.ru_utime + q1.ru_stime - q0.ru_stime) * 1e3  # the calling thread's share
    others = (cpu - main) / max(threads.value - 1, 1)  # each other hashing thread's share, if even
    out.append([(t1 - t0) * 1e3, (r1.ru_utime - r0.ru_utime) * 1e3, (r1.ru_stime - r0.ru_stime) * 1e3,
                max(main, others)])
print(json.dumps(out))
"""

def _lib() -> Path:
    import lowbit._native as nat

    p = Path(nat.__file__).parent / "lib" / "liblowbit.so"
    if not p.exists():
        sys.exit(f"{p} not found: build with `make dev`")
    return p


def synthetic_package(path: Path, chunk_kib: int) -> Path:
    """A ~100 MB graph package laid out like MiniLM fp32's: ids -> Gather(emb) -> 8 MatMuls;
    chunk_kib 0: format 1.0, else a SHA-256 per chunk of that many KiB (format 1.1)."""
    if path.exists():
        return path
    from lowbit.exporters.lbpk_container import PackageWriter  # noqa: PLC0415

    rng = np.random.default_rng(0)
    vocab, e, f = 32768, 384, 4096
    with PackageWriter(path, chunk_bytes=chunk_kib << 10) as w:
        w.add_tensor("emb", rng.standard_normal((vocab, e), dtype=np.float32))
        ops, cur = [{"name": "embed", "op": "Gather", "kernel": "gather", "inputs": ["emb", "ids"], "outputs": ["h0"],
                     "attrs": {"axis": 0}}], "h0"
        values = {"h0": {"dtype": "f32", "shape": [1, 16, e]}}
        for i in range(8):
            k, n = (e, f) if i % 2 == 0 else (f, e)
            w.add_tensor(f"w{i}", (rng.standard_normal((k, n), dtype=np.float32) * 0.02).astype(np.float32))
            ops.append({"name": f"mm{i}", "op": "MatMul", "kernel": "matmul_f32", "inputs": [cur, f"w{i}"],
                        "outputs": [f"h{i + 1}"], "attrs": {}})
            cur = f"h{i + 1}"
            values[cur] = {"dtype": "f32", "shape": [1, 16, n]}
        ops.append({"name": "out", "op": "Identity", "kernel": "identity", "inputs": [cur], "outputs": ["y"], "attrs": {}})
        man = w.manifest
        man.update({"kind": "graph", "model": "synthetic-100mb", "target": "host", "scheme": "fp32",
                    "producer": {"lowbit": "bench/load.py"},
                    "inputs": [{"name": "ids", "dtype": "i64", "shape": [1, 16]}],
                    "outputs": [{"name": "y", "dtype": "f32", "shape": [1, 16, e]}],
                    "values": values, "ops": ops, "kernels": sorted({o["kernel"] for o in ops})})
    return path


def sha_mbps(size_mb: int = 32, repeats: int = 7) -> dict:
    """SHA-256 alone in this thread (the package reader's code, lowbit._native.sha256_many): one
    message, then two of the same size (interleaved on SHA-NI). Median MB/s of CPU time."""
    import time  # noqa: PLC0415

    import lowbit._native as nat  # noqa: PLC0415

    if not hasattr(nat, "sha256_many"):
        return {"impl": "?", "single_mbps": float("nan"), "multi_mbps": float("nan"), "lanes": 2}
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, size=(2, size_mb << 20), dtype=np.uint8)
    one, two = [], []
    for _ in range(repeats):
        t0 = time.thread_time()
        nat.sha256_many([a])
        t1 = time.thread_time()
        nat.sha256_many([a, b])
        t2 = time.thread_time()
        one.append(a.nbytes / (t1 - t0) / 1e6)
        two.append(2 * a.nbytes / (t2 - t1) / 1e6)
    return {"impl": nat.sha256_impl(), "single_mbps": float(np.median(one)), "multi_mbps": float(np.median(two)), "lanes": 2}


def measure(pkgs, threads, rounds: int, lib: Path) -> dict:
    for pkg in pkgs:
        with open(pkg, "rb") as f:  # page-cache it
            while f.read(16 << 20):
                pass
    rows = {str(p): {} for p in pkgs}
    for _ in range(rounds):  # round by round: every package and variant sees the same load changes
        for pkg in pkgs:
            for t in threads:
                for lazy in (0, 1, 2):
                    key = f"{('verified', 'lazy', 'lazy+session')[lazy]} t{t}"
                    env = dict(os.environ, LOWBIT_NUM_THREADS=str(t))
                    r = subprocess.run([sys.executable, "-c", _CHILD, str(lib), str(pkg), str(lazy), "3"],
                                       capture_output=True, text=True, env=env, timeout=300)
                    if r.returncode:
                        sys.exit(r.stderr)
                    rows[str(pkg)].setdefault(key, []).extend(json.loads(r.stdout)[1:])  # the first of 3: cold process
    res = {}
    for pkg in pkgs:
        size = pkg.stat().st_size
        out = {"package_mb": size / 1e6, "load_avg": os.getloadavg()}
        for key, v in rows[str(pkg)].items():
            a = np.array(v)
            out[key] = {"wall_ms_median": float(np.median(a[:, 0])), "wall_ms_min": float(a[:, 0].min()),
                        "mb_per_s": size / 1e3 / float(np.median(a[:, 0])),
                        "user_ms_median": float(np.median(a[:, 1])), "sys_ms_median": float(np.median(a[:, 2])),
                        "critical_cpu_ms_median": float(np.median(a[:, 3])), "n": len(v)}
        res[str(pkg)] = out
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", action="append", type=Path, help="package(s) to load (default: the synthetic one)")
    ap.add_argument("--chunks", default="0,1024",
                    help="synthetic packages' chunk sizes in KiB (0: format 1.0, no chunk table)")
    ap.add_argument("--threads", default="1,2", help="hashing threads (LOWBIT_NUM_THREADS)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    pkgs = a.package or [synthetic_package(ROOT / "build" / "bench-load" / f"synthetic-100mb-c{int(c)}.lbpk", int(c))
                         for c in a.chunks.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    la0 = os.getloadavg()
    sha = sha_mbps()
    res = measure(pkgs, threads, a.rounds, _lib())
    print(f"SHA-256 alone (one thread, {sha['impl']}): single stream {sha['single_mbps']:.0f} MB/s, "
          f"{sha['lanes']} streams interleaved {sha['multi_mbps']:.0f} MB/s")
    for pkg, r in res.items():
        print(f"{pkg}: {r['package_mb']:.1f} MB, load average {la0[0]:.1f} -> {r['load_avg'][0]:.1f}")
        for key, v in r.items():
            if isinstance(v, dict):
                print(f"  {key:16s} wall median {v['wall_ms_median']:7.2f} ms (min {v['wall_ms_min']:6.2f}), "
                      f"{v['mb_per_s']:6.0f} MB/s, CPU user {v['user_ms_median']:6.1f} + sys {v['sys_ms_median']:5.1f} ms, "
                      f"busiest thread {v['critical_cpu_ms_median']:5.1f} ms  (n={v['n']})")
    if a.out:
        a.out.write_text(json.dumps({"sha256": sha, "load_avg_start": la0, "results": res}, indent=1))


if __name__ == "__main__":
    main()
