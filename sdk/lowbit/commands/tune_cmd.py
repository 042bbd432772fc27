"""`lowbit tune PKG`: search threads x kernel ISA path on this device, write a tuned profile."""
from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("tune", help="measure a few dozen runtime settings on this device and write a tuned profile")
    p.add_argument("package", type=Path, help="a .lbpk device package")
    p.add_argument("--target", default=None, help="profile to extend (default: the package's target, else this host's)")
    p.add_argument("--runs", type=int, default=9, help="timed runs per candidate (default 9)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="where to write the tuned profile (default: ~/.config/lowbit/targets/<target>-tuned.toml)")
    p.add_argument("--name", default=None, help="name of the tuned profile (default <target>-tuned)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from lowbit import LowbitError  # noqa: PLC0415
    from lowbit.targets import tune  # noqa: PLC0415

    if not args.package.is_file():
        raise LowbitError(f"{args.package}: no such package")
    res = tune.tune(args.package, target=args.target, runs=args.runs)
    path = tune.write_tuned(res, args.output, args.name)
    res["profile"] = str(path)
    res["env"] = tune.apply_env(str(path))
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{'threads':>7}  {'isa':<10}  {'median ms':>10}")
    for c in res["candidates"]:
        tag = "  (default)" if c.get("default") else ("  <- best" if c is res["best"] else "")
        print(f"{c['threads'] or 'all':>7}  {c['isa']:<10}  {c['median_ms']:>10.3f}{tag}")
    n = len(res["candidates"]) - 1
    if res["kept_default"]:
        print(f"\n{n} candidates; none beats the default by more than 3% "
              f"(best measured {res['measured_best_speedup']:.2f}x): the tuned profile keeps the default settings")
    else:
        print(f"\n{n} candidates; best: {res['best']['threads']} threads, {res['best']['isa']} "
              f"kernels, {res['speedup']:.2f}x the default")
    print(f"tuned profile: {path}")
    print("run with it: " + " ".join(f"{k}={v}" for k, v in res["env"].items()) + " lowbit run ...")
    print("note: kernel tile shapes are fixed in this runtime build and were not searched")
    return 0
