"""`lowbit targets list|show NAME|detect|check FILE`: the device profiles export, runtime and profiler read."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("targets", help="list, show, check and detect target device profiles")
    tsub = p.add_subparsers(dest="targets_cmd", metavar="ACTION")
    pl = tsub.add_parser("list", help="every profile (built-in and user) with its arch, device and ISA")
    pl.add_argument("--json", action="store_true", help="print JSON")
    ps = tsub.add_parser("show", help="one profile in full")
    ps.add_argument("name", help="profile name or path to a .toml file")
    fmt = ps.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--toml", action="store_true", help="print TOML (a starting point for your own profile)")
    pd = tsub.add_parser("detect", help="the profile that fits this machine")
    pd.add_argument("--json", action="store_true", help="print JSON")
    pc = tsub.add_parser("check", help="validate profile files; errors name the file and key")
    pc.add_argument("paths", nargs="+", help="profile names or .toml paths")
    p.set_defaults(func=run)


def run(args) -> int:
    from lowbit import targets  # noqa: PLC0415

    action = getattr(args, "targets_cmd", None) or "list"
    if action == "list":
        rows = []
        for name in targets.list_profiles():
            try:
                prof = targets.load(name)
                rows.append({"name": name, "arch": prof.arch, "device": prof.device, "isa": prof.isa,
                             "scheme": prof.default_scheme, "source": _source(prof, targets),
                             "description": prof.description})
            except targets.ProfileError as exc:
                rows.append({"name": name, "error": str(exc)})
        if getattr(args, "json", False):
            print(json.dumps(rows, indent=2))
            return 0
        _table(rows)
        return 1 if any("error" in r for r in rows) else 0
    if action == "show":
        prof = targets.load(args.name)
        if args.json:
            print(json.dumps({"name": prof.name, "path": str(prof.path), **prof.to_dict()}, indent=2))
        elif args.toml:
            print(prof.to_toml(), end="")
        else:
            print(f"# {prof.path}")
            print(prof.to_toml(), end="")
        return 0
    if action == "detect":
        prof = targets.detect()
        host = targets.host_info()
        if args.json:
            print(json.dumps({"name": prof.name, "path": str(prof.path), "host": host,
                              "perf_source": prof.perf["source"]}, indent=2))
        else:
            print(f"{prof.name}  ({prof.description})")
            print(f"host: {host['arch']}, features: {' '.join(host['features']) or 'none'}"
                  + (f", cpu parts: {' '.join(host['cpu_parts'])}" if host["cpu_parts"] else ""))
            print(f"perf figures: {prof.perf['source']}")
        return 0
    if action == "check":
        bad = 0
        for p in args.paths:
            try:
                prof = targets.load(p)
                print(f"ok    {p} ({prof.name})")
            except targets.ProfileError as exc:
                bad += 1
                print(f"FAIL  {exc}")
        return 1 if bad else 0
    return 2


def _source(prof, targets) -> str:
    return "built-in" if prof.path is not None and prof.path.parent == targets.BUILTIN_DIR else str(prof.path)


def _table(rows) -> None:
    cols = ["name", "arch", "device", "isa", "scheme", "source"]
    width = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in cols}
    print("  ".join(f"{c:<{width[c]}}" for c in cols))
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<{width['name']}}  ERROR: {r['error']}")
        else:
            print("  ".join(f"{str(r[c]):<{width[c]}}" for c in cols))
