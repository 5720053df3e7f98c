"""``rmthess theory``: exact limiting Frobenius norms of the Hessian blocks (no torch).

Prints, for each C, ``F_diag``, ``F_off`` and ``ratio = sqrt(F_off / F_diag)`` with their
standard errors (non-zero only for the Monte-Carlo cases hidden-ce and output-ce); with
``--asymptotic`` also the large-C constants ``F ~ A C^-p``. Arguments that do not apply to
the case (``--m`` for linear-*, ``--samples``/``--inner`` for the exact cases) are refused
(by :func:`rmthess.theory.frobenius_limits`, before any work).

examples:
  rmthess theory --case linear-ce --C 10,100,1000 --gamma 0.5
  rmthess theory --case hidden-ce --C 10,100 --gamma 0.5 --m 8 --samples 400 --json
  rmthess theory --case output-ce --C 10 --gamma 0.5 --m 8 --asymptotic
"""

from __future__ import annotations

import math


def init_arg(text):
    """``argparse`` type of ``--init``: ``lecun``, ``torch-default`` or a float sigma > 0,
    resolved by :func:`rmthess.inits.resolve_init` (its one-line error on bad input)."""
    import argparse

    from rmthess.inits import resolve_init

    try:
        return resolve_init(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


init_arg.__name__ = "init"

INIT_HELP = (
    "weight initialisation: lecun (default; normal, variance 1/fan_in), torch-default "
    "(nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in))) or a float SIGMA (normal, variance "
    "SIGMA^2/fan_in)"
)


def add_arguments(parser) -> None:
    from rmthess._checks import int_list_arg, number_arg
    from rmthess.cases import CASES, REGISTRY

    mc = [n for n, c in REGISTRY.items() if c.monte_carlo_theory]
    parser.add_argument(
        "--case", required=True, choices=CASES, metavar="CASE", help=f"one of: {', '.join(CASES)}"
    )
    parser.add_argument(
        "--C",
        required=True,
        type=int_list_arg(name="C", minimum=2),
        help="comma-separated class counts >= 2, e.g. 10,100,1e3",
    )
    parser.add_argument(
        "--gamma",
        required=True,
        type=number_arg("float", name="gamma"),
        help="d/N, a finite number > 0",
    )
    parser.add_argument(
        "--m",
        default=None,
        type=number_arg("int", name="m", minimum=1),
        help="hidden width: required for hidden-* and output-*, refused for "
        "linear-* (minimum per case: see rmthess.cases)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of records")
    parser.add_argument(
        "--seed",
        default=0,
        type=number_arg("int", name="seed", minimum=0),
        help="seed of the Monte-Carlo cases (int >= 0, default 0)",
    )
    parser.add_argument(
        "--samples",
        default=None,
        type=number_arg("int", name="samples", minimum=2),
        help=f"{', '.join(mc)} only: independent V draws (default: 200-10000 by cost)",
    )
    parser.add_argument(
        "--inner",
        default=None,
        type=number_arg("int", name="inner", minimum=2),
        help=f"{', '.join(mc)} only: g draws per V draw (default 64)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bar (default: one on stderr when a Monte-Carlo run is predicted "
        "to take over 5 s)",
    )
    parser.add_argument("--init", default="lecun", type=init_arg, help=INIT_HELP)
    parser.add_argument(
        "--asymptotic",
        action="store_true",
        help="also print the large-C constants A_diag, p_diag, A_off, p_off",
    )


def format_power_law(name: str, A: float, p: float) -> str:
    """Human form of ``name ~ A C^-p``: a constant, a growth, a decay or an exact zero.

    >>> format_power_law("F_off", 0.0, math.inf)
    'F_off = 0 exactly'
    >>> format_power_law("F_diag", 2.5, 0.0)
    'F_diag -> 2.5 (constant in C)'
    >>> format_power_law("F_diag", 0.25, -2.0)
    'F_diag ~ 0.25 * C^2 (grows)'
    >>> format_power_law("F_off", 4.7, 4.0)
    'F_off ~ 4.7 * C^-4'
    """
    if A == 0.0:
        return f"{name} = 0 exactly"
    if p == 0:
        return f"{name} -> {A:.10g} (constant in C)"
    if p < 0:
        return f"{name} ~ {A:.10g} * C^{-p:g} (grows)"
    return f"{name} ~ {A:.10g} * C^-{p:g}"


def run(args) -> int:
    import json

    from rmthess.cases import get_case
    from rmthess.theory.asymptotics import asymptotic_constants
    from rmthess.theory.frobenius import frobenius_limits

    case = get_case(args.case)
    m = case.check_m(args.m)
    if args.asymptotic:  # refuse an m without finite large-C constants before any work
        case.check_m(args.m, asymptotic=True)
    mc_kw = {"samples": args.samples, "inner": args.inner}
    if case.monte_carlo_theory:
        mc_kw.update(seed=args.seed, progress=args.progress)
    init = args.init
    asym = None
    if args.asymptotic:  # refuse an init without large-C constants before any work
        asym = asymptotic_constants(case.name, args.gamma, m, init=init)
    rows = [frobenius_limits(case.name, C, args.gamma, m, init=init, **mc_kw) for C in args.C]
    if args.json:
        records = []
        for r in rows:
            rec = r.to_dict()
            if asym is not None:
                rec.update({k: v for k, v in asym.to_dict().items() if k.startswith(("A_", "p_"))})
            records.append(rec)
        print(json.dumps(records, indent=2))
        return 0
    print(
        f"rmthess theory: case={case.name} gamma={args.gamma:g}"
        + ("" if m is None else f" m={m}")
        + f" init={init}"
    )
    cols = ["C", "F_diag", "F_off", "ratio", "ratio_se", "method"]
    mc = case.monte_carlo_theory
    if mc:
        cols[4:4] = ["F_diag_se", "F_off_se"]
        cols[-1:-1] = ["n_samples"]
    table = [cols] + [[_fmt(r.to_dict()[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(s.rjust(w) for s, w in zip(row, widths, strict=True)))
    if mc:
        r0 = rows[0]
        print(
            f"(Monte Carlo: n_samples V draws x {r0.n_inner} g draws each, seed {r0.seed}; "
            "*_se = standard errors)"
        )
    if asym is not None:
        print(
            "large C: "
            + format_power_law("F_diag", asym.A_diag, asym.p_diag)
            + "; "
            + format_power_law("F_off", asym.A_off, asym.p_off)
        )
    return 0


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    return f"{v:.10g}" if math.isfinite(v) else str(v)
