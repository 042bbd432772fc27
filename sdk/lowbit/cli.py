"""The `lowbit` command line. Each subcommand lives in its own module and registers here."""
from __future__ import annotations

import argparse
import sys

import lowbit


def _cmd_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="show the build, the CPU features and the kernel path that will run")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--selfcheck", action="store_true", help="also check every SIMD kernel against its reference")
    p.add_argument("--measure", action="store_true", help="measure read bandwidth and int8 peak and cache them")
    p.set_defaults(func=lambda a: __import__("lowbit.doctor", fromlist=["run"]).run(a))


# Subcommands: (module, function that adds the parser). Modules are imported lazily so that
# `lowbit --help` stays fast and works with only numpy installed.
_OPTIONAL = [
    ("lowbit.commands.export_cmd", "register"),
    ("lowbit.commands.run_cmd", "register"),
    ("lowbit.commands.profile_cmd", "register"),
    ("lowbit.commands.targets_cmd", "register"),
    ("lowbit.commands.llm_cmd", "register"),
    ("lowbit.commands.tune_cmd", "register"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowbit", description="lowbit: quantize, package and run models on small devices")
    parser.add_argument("--version", action="version", version=f"lowbit {lowbit.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _cmd_doctor(sub)
    import importlib

    for mod_name, fn in _OPTIONAL:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                continue  # that feature is not part of this build yet
            raise
        getattr(mod, fn)(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except lowbit.LowbitError as exc:
        print(f"lowbit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
