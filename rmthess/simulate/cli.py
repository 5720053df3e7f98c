"""``rmthess simulate``: Monte-Carlo block Frobenius norms over a sweep of C.

Example::

    rmthess simulate --case linear-ce --C 8,16,32 --d 256 --N 512 --trials 8 --json

With ``--json`` prints a JSON list, one record per C with keys ``case, C, d, N, m,
trials, F_diag, F_off, F_diag_se, F_off_se, ratio`` (means over trials; standard errors
of the mean, null when trials == 1). Without it prints a readable table, with a progress
bar on stderr for sweeps of more than one C. ``--csv PATH`` also writes the tidy table.
"""

from __future__ import annotations

import json
import sys

from rmthess import CASES


def add_arguments(parser) -> None:
    parser.add_argument("--case", required=True, help=f"one of: {', '.join(CASES)}")
    parser.add_argument("--C", default="8,16,32", help="comma-separated class counts (>= 2)")
    parser.add_argument("--d", default="256", help="input dimension (>= 1)")
    parser.add_argument("--N", default="512", help="number of samples (>= 1)")
    parser.add_argument("--m", default=None, help="hidden width (hidden-*, output-* cases)")
    parser.add_argument("--trials", default="8", help="independent draws per C (>= 1)")
    parser.add_argument("--seed", default="0", help="non-negative integer seed")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="float64", help="float64 | float32")
    parser.add_argument(
        "--max-pairs", default="256", help="off-diagonal pairs averaged per trial (uniform sample)"
    )
    parser.add_argument(
        "--unbiased",
        action="store_true",
        help="output-* only: drop the i = j terms (no O(1/N) bias vs the N -> inf limit)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of records")
    parser.add_argument("--csv", default=None, help="also write the tidy table to this CSV file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _int(name: str, text, minimum: int) -> int:
    from rmthess._checks import check_int

    try:
        val = int(text)
    except (TypeError, ValueError):
        try:
            val = float(text)  # accepts "1e3"; check_int rejects non-integral values
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {text!r}") from None
    return check_int(name, val, minimum)


def run(args) -> int:
    from rmthess._checks import check_case, parse_int_list

    case = check_case(args.case)
    Cs = parse_int_list("C", args.C, minimum=2)
    d = _int("d", args.d, 1)
    N = _int("N", args.N, 1)
    trials = _int("trials", args.trials, 1)
    seed = _int("seed", args.seed, 0)
    max_pairs = _int("max-pairs", args.max_pairs, 1)
    m = None if args.m is None else _int("m", args.m, 1)
    # validate device / dtype before any heavy work
    from rmthess.simulate.device import resolve_device, resolve_dtype

    resolve_device(args.device)
    resolve_dtype(args.dtype)
    from rmthess.simulate.frobenius import _check_m, block_frobenius

    m = _check_m(case, m)
    if args.unbiased and not case.startswith("output"):
        raise ValueError(f"--unbiased applies to the output-* cases only, got case {case!r}")

    progress = (not args.json) and (not args.no_progress) and len(Cs) > 1
    it = Cs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(Cs, desc=f"simulate {case}", unit="C", file=sys.stderr)
    results = []
    for i, C in enumerate(it):
        results.append(
            block_frobenius(
                case,
                C,
                d,
                N,
                m,
                trials,
                seed + i,
                args.device,
                args.dtype,
                max_pairs=max_pairs,
                unbiased=args.unbiased,
            )
        )
    records = [r.to_dict() for r in results]
    if args.csv:
        import pandas as pd

        pd.DataFrame.from_records([r.summary_record() for r in results]).to_csv(
            args.csv, index=False
        )
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    r0 = results[0]
    print(
        f"case {case}  d={d} N={N} gamma={d / N:.4g}  m={m}  trials={trials}  seed={seed}  "
        f"device={r0.device}  dtype={r0.dtype}  route={r0.method}"
    )
    norm = "||H||_F^2" if case.startswith("output") else "(1/d)||H||_F^2"
    if args.unbiased:
        norm += " (i = j terms dropped: unbiased for the N -> inf limit)"
    print(f"F = mean over blocks of {norm}; +- = standard error over trials")
    hdr = f"{'C':>6} {'F_diag':>12} {'+-':>10} {'F_off':>12} {'+-':>10} {'ratio':>10} {'sec':>7}"
    print(hdr)
    for r in results:
        rec = r.to_dict()
        se_d = rec["F_diag_se"] if rec["F_diag_se"] is not None else float("nan")
        se_o = rec["F_off_se"] if rec["F_off_se"] is not None else float("nan")
        print(
            f"{r.C:>6d} {rec['F_diag']:>12.5g} {se_d:>10.2g} {rec['F_off']:>12.5g} "
            f"{se_o:>10.2g} {rec['ratio']:>10.4g} {r.seconds:>7.2f}"
        )
    return 0
