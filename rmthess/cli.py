"""Command-line entry point ``rmthess``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports (torch, numba) happen inside ``run``, and only the
module of the sub-command named on the command line is imported, so that ``rmthess
--help`` and ``rmthess report --help`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rmthess._cli import OneLineErrors, first_paragraph, plain_text  # noqa: F401 (re-exported)

DESCRIPTION = """\
rmthess: random-matrix theory of neural-network Hessians.

Exact large-dimension limits of the Hessian blocks of linear models and one-hidden-layer
ReLU nets at random initialization (Dong, Zhang, Yao, Sun), fast Monte-Carlo Hessians that
check them (CPU or GPU), curvature operators, spectra and block maps of any PyTorch model on
real data, and a report with the paper's figures."""

EPILOG = """\
examples:
  rmthess theory   --case linear-ce --C 10,100,1000 --gamma 0.5
  rmthess theory   --case hidden-ce --C 10,100 --gamma 0.5 --m 8 --asymptotic --json
  rmthess simulate --case hidden-ce --C 8,16,32 --d 256 --N 512 --m 8 --trials 16
  rmthess curvature --data digits --hidden 16 --train-steps 300 --out curv
  rmthess landscape --data digits --hidden 4,8,16,32,64 --layers 1,3,5 --out land
  rmthess sweep run examples/sweep_theory.toml --store runs/theory --engine dask
  rmthess report   --quick --out my-report
  rmthess bench    solver

'rmthess COMMAND --help' describes each command; the math is in docs/theory.md."""

SUBCOMMANDS = {
    "theory": ("rmthess.theory.cli", "exact limiting Frobenius constants (no torch)"),
    "simulate": ("rmthess.simulate.cli", "Monte-Carlo Hessian block norms (torch, CPU/GPU)"),
    "curvature": (
        "rmthess.curvature.cli",
        "Hessian/GGN spectra and block maps of an MLP on real data (torch)",
    ),
    "landscape": (
        "rmthess.landscape.cli",
        "Delta_k = |L_{k+1} - L_k| vs sample size and the Hessian-bound audit (seed 000)",
    ),
    "sweep": (
        "rmthess.sweep.cli",
        "grids on serial/processes/Dask with a resumable result store",
    ),
    "bench": (
        "rmthess.bench.cli",
        "benchmarks: solver, simulate, hvp, curvature, landscape, sweep",
    ),
    "report": ("rmthess.report.cli", "theory + simulation side by side: HTML, PNG, CSV"),
}


def _chosen(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first non-option word), if any."""
    for tok in argv:
        if not tok.startswith("-"):
            return tok if tok in SUBCOMMANDS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``rmthess`` parser. Only the sub-command named in ``argv`` gets its module
    imported and its arguments added (the others are listed by name and help line);
    ``argv=None`` builds every sub-command (slow: imports them all)."""
    from rmthess import __version__

    parser = OneLineErrors(
        prog="rmthess",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rmthess {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrors)
    chosen = _chosen(argv) if argv is not None else None
    for name, (modname, helptext) in SUBCOMMANDS.items():
        if argv is not None and name != chosen:
            sub.add_parser(name, help=helptext)
            continue
        mod = importlib.import_module(modname)
        p = sub.add_parser(
            name,
            help=helptext,
            description=plain_text((mod.__doc__ or helptext).strip()),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    if len(argv) > 1 and argv[0] == "sweep" and argv[1].endswith(".toml"):
        argv.insert(1, "run")  # `rmthess sweep GRID.toml ...` is `rmthess sweep run GRID.toml ...`
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error
        return int(exc.code or 0)
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


def entry() -> None:
    """The ``rmthess`` executable (and ``python -m rmthess``): :func:`main`, then exit with its
    status. An interrupted run (130) leaves by ``os._exit(130)`` once the streams are flushed
    (``main`` has already removed what the run staged): a run stopped by SIGINT otherwise
    exited now and then with -2 instead of 130 in CI, the interpreter re-raising SIGINT on
    its way out after ``main`` had handled the interrupt."""
    import os
    import signal

    try:
        code = main()
    except KeyboardInterrupt:  # pragma: no cover - a signal after main's own handler
        code = 130
    if code == 130:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
