"""``rmthess sweep``: run a grid of configurations into a resumable store.

Examples::

    rmthess sweep run examples/sweep_theory.toml --store runs/theory
    rmthess sweep run examples/sweep_simulate.toml --store runs/sim --engine dask --workers 4
    rmthess sweep status runs/theory
    rmthess sweep plot runs/theory --x C --y ratio --hue case --out ratio.png

``run`` validates the whole grid first, skips configurations with a valid result in the
store, recomputes corrupt ones, retries failures (``--retries``) and prints a summary line
(``--json``: the :class:`rmthess.sweep.SweepResult` as JSON); rerun the same command after
an interruption to finish the sweep. One driver per store: a second ``run`` on a store in
use exits with status 3 and one line naming the owner (``--wait`` waits for it instead).
``status`` prints counts done / failed / pending / corrupt (invalid files still to be
recomputed) / quarantined (moved aside by earlier runs). ``plot`` writes a PNG of one
column against another. Reading (``status``, ``plot``) never writes to the store. Also
runnable as ``python -m rmthess.sweep.cli``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, cast

from rmthess._cli import add_json, add_progress

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def add_arguments(parser) -> None:
    from rmthess._checks import int_arg

    sub = parser.add_subparsers(dest="sweep_command", metavar="{run,status,plot}")
    sub.required = True
    r = sub.add_parser("run", help="run a grid (TOML) into a store")
    r.add_argument("grid", help="grid spec, a TOML file")
    r.add_argument("--store", required=True, help="store directory (created if missing)")
    r.add_argument("--engine", default="serial", choices=("serial", "processes", "dask"))
    r.add_argument("--workers", default=2, type=int_arg("workers", 1), help="workers (>= 1)")
    r.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    r.add_argument("--retries", default=2, type=int_arg("retries", 0), help="extra attempts")
    r.add_argument("--chunk", default=1, type=int_arg("chunk", 1), help="configs per task")
    r.add_argument("--force", action="store_true", help="replace a store's different grid")
    r.add_argument("--extend", action="store_true", help="add this grid to a store's grids")
    r.add_argument(
        "--wait", action="store_true",
        help="if another driver holds the store, wait for it to finish instead of exiting "
        "with status 3",
    )  # fmt: skip
    add_progress(r, "when it is a terminal")
    add_json(r, "the summary")
    s = sub.add_parser("status", help="counts done / failed / pending / corrupt")
    s.add_argument("store", help="store directory")
    add_json(s, "the counts")
    p = sub.add_parser("plot", help="plot one column against another")
    p.add_argument("store", help="store directory")
    p.add_argument("--x", default="C")
    p.add_argument("--y", default="ratio")
    p.add_argument("--hue", default="case", help="column for one line per value ('' = none)")
    p.add_argument("--out", required=True, help="output image file (.png)")


def run(args) -> int:
    if args.sweep_command == "status":
        from rmthess.sweep.store import status

        st = status(args.store)
        if args.json:
            print(json.dumps(st.to_dict()))
        else:
            print(
                f"{st.store}: task {st.task}  total {st.total}  done {st.done}  failed "
                f"{st.failed}  pending {st.pending}  corrupt {st.corrupt}  quarantined "
                f"{st.quarantined}"
            )
        return 0
    if args.sweep_command == "plot":
        from rmthess.simulate.cli import check_writable

        out = check_writable("--out", args.out)
        import matplotlib

        matplotlib.use("Agg")
        import warnings

        from rmthess.sweep.plots import plot

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            ax = plot(args.store, x=args.x, y=args.y, hue=args.hue or None)
        for w in caught:
            print(f"rmthess sweep: warning: {w.message}", file=sys.stderr)
        fig = cast("Figure", ax.figure)  # plot() draws on a top-level figure
        fig.tight_layout()
        from rmthess._outputs import write_file_atomic

        write_file_atomic(out, lambda tmp: fig.savefig(tmp, dpi=120))
        print(out)
        return 0
    from rmthess.sweep.engines import run_sweep
    from rmthess.sweep.store import StoreBusyError

    try:
        res = run_sweep(
            args.grid, args.store, engine=args.engine, workers=args.workers,
            scheduler=args.scheduler, retries=args.retries, chunk=args.chunk,
            progress=args.progress, force=args.force,
            extend=args.extend, wait=args.wait,
        )  # fmt: skip
    except StoreBusyError as exc:
        print(f"rmthess sweep: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # run_sweep printed what the store holds
        return 130
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        print(
            f"{res.store}: task {res.task}  total {res.total}  skipped {res.skipped}  done "
            f"{res.done}  failed {res.failed}  corrupt {res.corrupt}  {res.seconds:.1f}s"
        )
    return 1 if res.failed else 0


def main(argv=None) -> int:
    """Stand-alone entry point (``python -m rmthess.sweep.cli``), same errors as rmthess."""
    import argparse

    class OneLineErrors(argparse.ArgumentParser):  # as rmthess.cli (a layer above: no import)
        def error(self, message):
            self.exit(2, f"{self.prog}: error: {message}\n")

    parser = OneLineErrors(prog="rmthess sweep", description=__doc__)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return run(args)
    except (ValueError, TypeError) as exc:
        print(f"rmthess sweep: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
