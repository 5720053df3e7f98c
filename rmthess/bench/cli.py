"""``rmthess bench {solver,simulate,hvp,curvature,landscape,layer,sweep} [--json]``."""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "solver": "rmthess.bench.solver",
    "simulate": "rmthess.bench.simulate",
    "hvp": "rmthess.bench.hvp",
    "curvature": "rmthess.bench.curvature",
    "landscape": "rmthess.bench.landscape",
    "layer": "rmthess.bench.layer",
    "sweep": "rmthess.bench.sweep",
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, modname in BENCHES.items():
        mod = importlib.import_module(modname)
        from rmthess._cli import first_paragraph, plain_text

        p = sub.add_parser(
            name,
            help=first_paragraph(mod.__doc__, name),
            description=plain_text((mod.__doc__ or name).strip()),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_bench_run=mod.run)


def run(args) -> int:
    return args._bench_run(args)
