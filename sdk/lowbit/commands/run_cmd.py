"""`lowbit run | inspect | verify PKG`: run a device package, show what is inside, check it on this device."""
from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import numpy as np

from lowbit import LowbitError


def register(sub) -> None:
    p = sub.add_parser("run", help="run a .lbpk on inputs from .npy files")
    p.add_argument("package", help="path to a .lbpk")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input (repeat for each); without any, the package's golden inputs are used")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.add_argument("--output", "-o", default=None, metavar="OUT.npz", help="save the outputs")
    p.add_argument("--repeat", type=int, default=1, help="run N times and report the median latency")
    p.add_argument("--lazy", action="store_true", help="check section hashes on first use instead of at load")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("inspect", help="show a .lbpk: header, sections, inputs/outputs, ops and kernels")
    p.add_argument("package", help="path to a .lbpk")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="check a .lbpk's hashes and run its golden vectors on this device")
    p.add_argument("package", help="path to a .lbpk")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.set_defaults(func=cmd_verify)


def _load(path: str, threads=None, lazy=False):
    from lowbit.runtime import load  # noqa: PLC0415

    if not Path(path).is_file():
        raise LowbitError(f"package {path!r} does not exist")
    return load(path, threads=threads, lazy=lazy)


def _feeds(sess, specs):
    if not specs:
        g = sess.golden()
        if g is None:
            raise LowbitError("give inputs with --input NAME=FILE.npy (this package has no golden inputs); "
                              f"inputs: {', '.join(i['name'] for i in sess.inputs)}")
        return g["inputs"]
    feeds = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep:
            raise LowbitError(f"--input {spec!r}: expected NAME=FILE.npy")
        try:
            feeds[name] = np.load(file)
        except (OSError, ValueError) as exc:
            raise LowbitError(f"--input {name}: cannot read {file!r}: {exc}") from None
    return feeds


def cmd_run(args) -> int:
    sess = _load(args.package, args.threads, args.lazy)
    feeds = _feeds(sess, args.input)
    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        out = sess.run(feeds)
        times.append(time.perf_counter() - t0)
    for name, arr in out.items():
        flat = arr.reshape(-1)
        head = ", ".join(f"{v:.5g}" for v in flat[:6].tolist())
        extra = f"  argmax {int(np.argmax(flat))}" if arr.dtype.kind == "f" and flat.size > 1 else ""
        print(f"{name}: {arr.dtype} {list(arr.shape)}  [{head}{', ...' if flat.size > 6 else ''}]{extra}")
    print(f"latency: {np.median(times) * 1e3:.2f} ms (median of {len(times)}), arena {sess.arena_bytes / 2**20:.2f} MiB")
    if args.output:
        np.savez(args.output, **out)
        print(f"saved {args.output}")
    return 0


def describe(path: str) -> dict:
    """Header, sections and manifest summary (pure Python, hashes not checked)."""
    from lowbit.exporters.lbpk_container import PackageError, PackageReader  # noqa: PLC0415

    try:
        r = PackageReader(path, verify=False)
    except (PackageError, OSError) as exc:
        raise LowbitError(str(exc)) from None
    m = r.manifest
    try:
        return _summary(path, r, m)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # damaged behind a valid hash
        raise LowbitError(f"{path}: malformed manifest ({type(exc).__name__}: {exc}); re-export the model") from None


def _summary(path, r, m) -> dict:
    kinds = {1: "manifest", 2: "tensors", 3: "blob", 4: "chunks"}
    ops = m.get("ops", [])
    return {
        "path": str(path), "format": f"{r.version[0]}.{r.version[1]}", "size": Path(path).stat().st_size,
        "kind": m.get("kind"), "model": m.get("model"), "target": m.get("target"), "scheme": m.get("scheme"),
        "producer": m.get("producer"),
        "sections": [{"name": s.name, "kind": kinds.get(s.kind, str(s.kind)), "offset": s.offset, "size": s.size,
                      "sha256": s.sha256.hex()} for s in r.sections.values()],
        "inputs": m.get("inputs", []), "outputs": m.get("outputs", []),
        "ops": dict(collections.Counter(o["op"] for o in ops)),
        "kernels": dict(collections.Counter(o["kernel"] for o in ops)),
        "tensors": len(m.get("tensors", {})),
        "weight_bytes": sum(t["nbytes"] for k, t in m.get("tensors", {}).items() if not k.startswith("golden.")),
        "golden": bool(m.get("golden")), "report": m.get("report"),
    }


def cmd_inspect(args) -> int:
    d = describe(args.package)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(f"{d['path']}: lbpk {d['format']}, {d['size'] / 2**20:.2f} MiB, kind {d['kind']}")
    print(f"model {d['model']}  target {d['target']}  scheme {d['scheme']}")
    for t in d["inputs"]:
        print(f"  input  {t['name']}: {t['dtype']} {t['shape']}")
    for t in d["outputs"]:
        print(f"  output {t['name']}: {t['dtype']} {t['shape']}")
    print(f"sections ({len(d['sections'])}):")
    for s in d["sections"]:
        print(f"  {s['name']:<12} {s['kind']:<9} {s['size']:>12,d} B  sha256 {s['sha256'][:16]}...")
    print(f"ops ({sum(d['ops'].values())}): " + ", ".join(f"{k} x{v}" for k, v in sorted(d["ops"].items())))
    print("kernels: " + ", ".join(f"{k} x{v}" for k, v in sorted(d["kernels"].items())))
    print(f"weights: {d['tensors']} tensors, {d['weight_bytes'] / 2**20:.2f} MiB; golden vectors: "
          f"{'yes' if d['golden'] else 'no'}  (hashes not checked here: `lowbit verify`)")
    return 0


def cmd_verify(args) -> int:
    from lowbit.runtime import check_golden  # noqa: PLC0415

    t0 = time.perf_counter()
    sess = _load(args.package, args.threads)  # full mode: every section's SHA-256 is checked here
    print(f"hashes: ok ({len(describe(args.package)['sections'])} sections, loaded in "
          f"{(time.perf_counter() - t0) * 1e3:.1f} ms)")
    if not sess.manifest.get("golden"):
        print("golden vectors: none in this package")
        return 0
    res = check_golden(sess)
    for name, r in res["outputs"].items():
        print(f"  {name}: max abs err {r['max_abs']:.3g}, max rel err {r['max_rel']:.3g}  "
              f"{'ok' if r['ok'] else 'FAIL'} (rtol {res['rtol']:g}, atol {res['atol']:g})")
    print("verify: " + ("passed" if res["ok"] else "FAILED"))
    return 0 if res["ok"] else 1
