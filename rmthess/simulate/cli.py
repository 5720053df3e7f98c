"""``rmthess simulate``: Monte-Carlo block Frobenius norms over a sweep of C.

Example::

    rmthess simulate --case linear-ce --C 8,16,32 --d 256 --N 512 --trials 8 --json

With ``--json`` prints a JSON list, one record per C: the fields of
:meth:`rmthess.simulate.BlockFrobenius.to_dict` (case, C, d, N, m, gamma, trials, seed,
F_diag, F_diag_se, F_off, F_off_se, ratio, ratio_se, ...; means over trials, standard
errors of the mean, null when not finite, e.g. for trials == 1). Without it prints a
readable table, with a progress bar on stderr for sweeps of more than one C. ``--csv
PATH`` also writes the same records as a CSV table. Row C is
``block_frobenius(case, C, d, N, m, seed=seed, ...)``: its random stream is derived from
``(seed, C)``.

``--widths m1,m2,...`` (hidden-ce / hidden-mse: the loss) simulates every layer of a deeper
MLP instead (:func:`rmthess.simulate.deep.depth_block_frobenius`), one table per C; theory:
``rmthess theory --widths``.

Every argument, the memory each C needs and the ``--csv`` path (its directory must exist
and be writable) are checked before anything is simulated; the CSV is written to a
temporary file in the same directory and renamed, so no half-written file is left behind.
"""

from __future__ import annotations

import json
import os

from rmthess import CASES


def add_arguments(parser) -> None:
    from rmthess._checks import int_arg, int_list_arg
    from rmthess._cli import add_activation, add_init, add_json, add_progress

    parser.add_argument("--case", required=True, help=f"one of: {', '.join(CASES)}")
    parser.add_argument(
        "--C",
        default=[8, 16, 32],
        type=int_list_arg(name="C", minimum=2),
        help="comma-separated class counts (>= 2)",
    )
    parser.add_argument("--d", default=256, type=int_arg("d", 1), help="input dimension (>= 1)")
    parser.add_argument("--N", default=512, type=int_arg("N", 1), help="number of samples (>= 1)")
    parser.add_argument(
        "--m", default=None, type=int_arg("m", 1), help="hidden width (hidden-*, output-* cases)"
    )
    parser.add_argument(
        "--trials", default=8, type=int_arg("trials", 1), help="independent draws per C (>= 1)"
    )
    parser.add_argument(
        "--seed", default=0, type=int_arg("seed", 0), help="non-negative integer seed"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="float64", help="float64 | float32")
    parser.add_argument(
        "--max-pairs",
        default=256,
        type=int_arg("max-pairs", 1),
        help="off-diagonal pairs averaged per trial (uniform sample)",
    )
    parser.add_argument(
        "--unbiased",
        action="store_true",
        help="output-* only: drop the i = j terms (no O(1/N) bias vs the N -> inf limit)",
    )
    add_init(parser)
    add_activation(parser, "hidden-* and output-* (labels uniform where phi'' != 0)")
    parser.add_argument(
        "--widths",
        default=None,
        type=int_list_arg(name="widths", minimum=2),
        help="hidden-* only: the hidden widths m1,m2,... of a deeper MLP; simulates the block "
        "map of every layer (rmthess.simulate.depth_block_frobenius)",
    )
    add_json(parser, "a list of records")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    add_progress(parser, "when it is a terminal and several C are simulated")


def check_writable(option: str, path: str) -> str:
    """Refuse an output ``path`` that cannot be written (missing or read-only directory,
    a directory, a read-only file) before any work; the absolute path
    (:func:`rmthess._outputs.check_out_file`)."""
    from rmthess._outputs import check_out_file

    return os.path.abspath(check_out_file(path, option))


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it onto ``path``
    (:func:`rmthess._outputs.write_file_atomic`)."""
    from rmthess._outputs import write_file_atomic

    write_file_atomic(path, text)


def run(args) -> int:
    from rmthess.cases import get_case

    c = get_case(args.case)
    case = c.name
    if args.widths is not None:
        return _run_depth(args, case)
    Cs, d, N, trials, seed = args.C, args.d, args.N, args.trials, args.seed
    max_pairs = args.max_pairs
    m = c.check_m(args.m)
    if args.unbiased and c.block_dim != "m":
        raise ValueError(f"--unbiased applies to the output-* cases only, got case {case!r}")
    csv_path = None if args.csv is None else check_writable("--csv", args.csv)
    from rmthess.simulate.frobenius import sweep_results

    progress = (not args.json) and args.progress is not False and len(Cs) > 1
    results = sweep_results(
        case, Cs, d, N, m, trials=trials, seed=seed, device=args.device, dtype=args.dtype,
        max_pairs=max_pairs, unbiased=args.unbiased, progress=progress, init=args.init,
        activation=args.activation,
    )  # fmt: skip
    records = [r.to_dict() for r in results]
    if csv_path is not None:
        import pandas as pd

        write_atomic(csv_path, pd.DataFrame.from_records(records).to_csv(index=False))
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    r0 = results[0]
    print(
        f"case {case}  d={d} N={N} gamma={d / N:.4g}  m={m}  trials={trials}  seed={seed}  "
        f"device={r0.device}  dtype={r0.dtype}  route={r0.method}  init={r0.init}"
        + ("" if r0.activation == "relu" else f"  activation={r0.activation}")
    )
    norm = "(1/d)||H||_F^2" if c.normalization == "1/d" else "||H||_F^2"
    if args.unbiased:
        norm += " (i = j terms dropped: unbiased for the N -> inf limit)"
    print(f"F = mean over blocks of {norm}; +- = standard error over trials")
    hdr = f"{'C':>6} {'F_diag':>12} {'+-':>10} {'F_off':>12} {'+-':>10} {'ratio':>10} {'sec':>7}"
    print(hdr)
    for r in results:
        print(
            f"{r.C:>6d} {r.F_diag:>12.5g} {r.F_diag_se:>10.2g} {r.F_off:>12.5g} "
            f"{r.F_off_se:>10.2g} {r.ratio:>10.4g} {r.seconds:>7.2f}"
        )
    return 0


def _run_depth(args, case: str) -> int:
    """``--widths``: :func:`rmthess.simulate.deep.depth_block_frobenius` for every C."""
    from rmthess._cli import print_layer_maps
    from rmthess.simulate.deep import depth_block_frobenius

    if case not in ("hidden-mse", "hidden-ce"):
        raise ValueError(f"--widths is for hidden-mse and hidden-ce (the loss), not {case}")
    for flag, val in (("--m", args.m), ("--unbiased", args.unbiased or None)):
        if val is not None:
            raise ValueError(f"{flag} does not apply with --widths")
    csv_path = None if args.csv is None else check_writable("--csv", args.csv)
    loss = case.split("-")[1]
    results = [
        depth_block_frobenius(
            loss,
            C,
            args.d,
            args.N,
            tuple(args.widths),
            args.activation,
            trials=args.trials,
            seed=args.seed,
            device=args.device,
            dtype=args.dtype,
            init=args.init,
        )  # fmt: skip
        for C in args.C
    ]
    if csv_path is not None:
        import pandas as pd

        frame = pd.concat([r.to_frame() for r in results], ignore_index=True)
        write_atomic(csv_path, frame.to_csv(index=False))
    if args.json:
        recs = [rec for r in results for rec in r.to_frame().to_dict(orient="records")]
        print(json.dumps(recs, indent=1))
        return 0
    r0 = results[0]
    w = "x".join(str(m) for m in args.widths)
    print(f"rmthess simulate: loss={loss} d={args.d} N={args.N} widths={w} init={r0.init} "
          f"activation={r0.activation} trials={r0.trials} device={r0.device}")  # fmt: skip
    print_layer_maps(
        results,
        "(first layer (1/d)||H_jl||^2, later layers and the output ||H_jl||^2, i = j terms "
        "included; x +- se over trials; theory: rmthess theory --widths ... with N)",
    )
    return 0
