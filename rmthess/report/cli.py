"""``rmthess report [--out DIR] [--quick | --full] [--device auto] [--force]``.

Runs the theory and the simulations for the paper's claims and writes a self-contained
report (``index.html`` with embedded figures, ``figures/*.png``, ``tables/*.csv``,
``run.json``) into ``--out``, then prints the pass/fail table.

Rerunning into the same --out replaces the earlier report (recognised by its marker
file); any other non-empty directory needs --force.

Exit status: 0 all checks passed, 1 a check failed, 2 bad usage (a non-empty --out that
is not an earlier report without --force, a non-writable --out, --device cuda without
CUDA), 130 interrupted (nothing claiming success is left behind).
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_OUT = "rmthess-report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rmthess._checks import number_arg

    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"output directory (default: {DEFAULT_OUT}/): new, empty, or an earlier "
        "report's (replaced)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="small sizes for a first look (measured 94 s on 2 idle CPU cores; longer on a "
        "loaded machine)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="large sizes: for a GPU or patience",
    )
    # hidden: the test suite's few-second mode
    mode.add_argument(
        "--mode", dest="mode", choices=("tiny", "quick", "default", "full"), help=argparse.SUPPRESS
    )
    parser.set_defaults(mode="default")
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA if available, else CPU), cpu or cuda (default: auto)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --out that is not an earlier report (files of the "
        "same names are replaced, others kept)",
    )
    parser.add_argument(
        "--seed",
        type=number_arg("int", name="seed", minimum=0),
        default=0,
        help="base random seed (default 0)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=None,
        help="no progress output (default: a bar on a terminal, one line per section in a log)",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="a 'rmthess sweep' store of theory records: the theory section reuses the "
        "limits it holds instead of recomputing them",
    )
    parser.add_argument(
        "--sections",
        default=None,
        help="comma-separated subset of: theory, frobenius, decay, spectra, layer, "
        "heatmaps, dynamics, real-data, clusters, theory-on-data, landscape (default: all; "
        "the sections a chosen one needs run too)",
    )


def run(args) -> int:
    from rmthess.report.config import get_config
    from rmthess.report.runner import plan_sections, run_report, stop_on_signals

    cfg = get_config(args.mode, seed=args.seed, store=args.store)
    sections = None
    if args.sections:
        sections = [s.strip() for s in args.sections.split(",") if s.strip()]
        _, added = plan_sections(sections)
        if added:
            print(f"rmthess report: also running {', '.join(added)} (needed as input)")
    with stop_on_signals():
        result = run_report(
            cfg,
            args.out,
            device=args.device,
            force=args.force,
            progress=args.progress,
            sections=sections,
        )
    print(result.summary())
    sys.stdout.flush()
    return 0 if result.passed else 1
