"""Command-line entry point ``rmthess``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports (torch, numba) happen inside ``run`` so that
``rmthess --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "theory": ("rmthess.theory.cli", "exact limiting Frobenius constants (no torch)"),
    "simulate": ("rmthess.simulate.cli", "Monte-Carlo Hessian block norms (torch, CPU/GPU)"),
    "bench": ("rmthess.bench.cli", "benchmarks: solver, simulate"),
    "report": ("rmthess.report.cli", "theory + simulation side by side: HTML, PNG, CSV"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmthess", description=__doc__.splitlines()[0])
    from rmthess import __version__

    parser.add_argument("--version", action="version", version=f"rmthess {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (modname, helptext) in SUBCOMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=helptext, description=helptext)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError) as exc:
        print(f"rmthess {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rmthess {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
