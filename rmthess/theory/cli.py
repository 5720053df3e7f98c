"""``rmthess theory``: exact limiting Frobenius norms of the Hessian blocks (no torch).

Prints, for each C, ``F_diag``, ``F_off`` and ``ratio = sqrt(F_off / F_diag)`` with their
standard errors (non-zero only for the Monte-Carlo cases hidden-ce and output-ce); with
``--asymptotic`` also the large-C constants ``F ~ A C^-p``. Arguments that do not apply to
the case (``--m`` for linear-*, ``--samples``/``--inner`` for the exact cases) are refused
(by :func:`rmthess.theory.frobenius_limits`, before any work).

With ``--layer-spectrum`` (cases linear-mse, linear-ce, hidden-mse, hidden-ce) it prints
instead, per C, the limiting spectral law of the whole first-layer Hessian
(:func:`rmthess.theory.layer_law`): zero mass, support intervals, top edge, moments M1, M2
(for linear-* also ``F_diag + (C-1) F_off``, equal to M2 exactly) and the distances to the
law of its block-diagonal part (:func:`rmthess.theory.block_diagonal_gap`: W1, W1_rel, KS,
edge gap). ``--out FILE.png`` draws both densities, one panel per C.

examples:
  rmthess theory --case linear-ce --C 10,100,1000 --gamma 0.5
  rmthess theory --case linear-ce --layer-spectrum --C 2,5,20 --gamma 0.5 --out layer.png
  rmthess theory --case hidden-ce --layer-spectrum --C 5 --gamma 0.5 --m 4 --n-atoms 256
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


LAYER_CASES = ("linear-mse", "linear-ce", "hidden-mse", "hidden-ce")
"""Cases with a whole-layer law (``--layer-spectrum``; rmthess.theory.layer_laws)."""


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
    parser.add_argument(
        "--layer-spectrum",
        action="store_true",
        help="print the whole-layer spectral law and its distance to the block-diagonal "
        "part instead (cases with d x d blocks: " + ", ".join(LAYER_CASES) + ")",
    )
    parser.add_argument(
        "--n-atoms",
        default=None,
        type=number_arg("int", name="n-atoms", minimum=1),
        help="--layer-spectrum only: QMC draws of the weight matrix A (default 4096 for "
        "linear-*, 1024 for hidden-*; the hidden laws cost ~5-10 s each at 256-1024)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="FILE.png",
        help="--layer-spectrum only: draw the densities (whole layer and block-diagonal "
        "part, one panel per C) into this PNG",
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
    if getattr(args, "layer_spectrum", False):
        return run_layer_spectrum(args)
    for flag, val in (
        ("--n-atoms", getattr(args, "n_atoms", None)),
        ("--out", getattr(args, "out", None)),
    ):
        if val is not None:
            raise ValueError(f"{flag} applies only with --layer-spectrum")
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


def _check_layer_args(args):
    """Everything ``--layer-spectrum`` refuses, before any work: flags that do not apply,
    cases without a whole-layer law, ``--out`` not a PNG in a writable directory, and the
    arguments :func:`rmthess.theory.layer_law` refuses (every C)."""
    from rmthess.theory.layer_laws import _check

    for flag, val in (
        ("--asymptotic", args.asymptotic or None),
        ("--samples", args.samples),
        ("--inner", args.inner),
    ):
        if val is not None:
            raise ValueError(f"{flag} does not apply with --layer-spectrum")
    if args.case not in LAYER_CASES:
        raise ValueError(
            f"--layer-spectrum: case {args.case!r} has no whole-layer law (its blocks are "
            f"m x m); allowed: {', '.join(LAYER_CASES)}"
        )
    if args.out is not None:
        from rmthess._outputs import check_out_file

        check_out_file(args.out, "--out", suffix=".png")  # a PNG in a writable directory
    for C in args.C:
        _check(args.case, C, args.gamma, args.m, None, args.init, args.n_atoms, args.seed)


def layer_spectrum_records(args) -> list[tuple]:
    """Per C: ``(record, law, block-diagonal law, gap)``; the record is flat (module
    docstring): law facts, moments, the Frobenius identity (linear-*), the block-diagonal
    gap; ``support`` is a list of ``[lo, hi]`` intervals."""
    from rmthess._stats import json_safe
    from rmthess.cases import get_case
    from rmthess.theory.frobenius import frobenius_limits
    from rmthess.theory.layer_gap import block_diagonal_gap
    from rmthess.theory.layer_laws import block_diagonal_law, layer_law

    case = get_case(args.case)
    kw = dict(init=args.init, n_atoms=args.n_atoms, seed=args.seed)
    recs = []
    for C in args.C:
        law = layer_law(case.name, C, args.gamma, args.m, **kw)
        V = getattr(law, "V", None)  # the block-diagonal law conditional on the same V
        bd = block_diagonal_law(case.name, C, args.gamma, args.m, V=V, **kw)
        gap = block_diagonal_gap(case.name, C, args.gamma, args.m, V=V, laws=(law, bd), **kw)
        rec = dict(
            case=case.name,
            C=C,
            gamma=args.gamma,
            m=args.m,
            init=str(args.init),
            n_atoms=gap.n_atoms,
            zero_mass=float(law.zero_mass),
            top_edge=float(law.edges()[1]),
            M1=float(law.moment(1)),
            M2=float(law.moment(2)),
        )
        if case.model == "linear":  # the hidden laws are conditional on V: no identity
            fro = frobenius_limits(case.name, C, args.gamma, init=args.init)
            ref = fro.F_diag + (C - 1) * fro.F_off
            rec.update(F_diag=fro.F_diag, F_off=fro.F_off, M2_frobenius=ref)
            rec.update(M2_rel_diff=rec["M2"] / ref - 1.0 if ref else float("nan"))
        g = gap.to_dict()
        for k in ("W1", "W1_rel", "KS", "top_edge_bd", "edge_gap_rel", "zero_mass_bd"):
            rec[k] = g[k]
        rec = json_safe(rec)
        rec["support"] = [[float(a), float(b)] for a, b in law.support()]
        recs.append((rec, law, bd, gap))
    return recs


def run_layer_spectrum(args) -> int:
    """``rmthess theory --layer-spectrum``: print (or ``--json``) the records of
    :func:`layer_spectrum_records`; draw ``--out``."""
    import json

    _check_layer_args(args)
    rows = layer_spectrum_records(args)
    if args.out is not None:
        _layer_figure(args, rows)
    if args.json:
        print(json.dumps([r for r, *_ in rows], indent=2))
        return 0
    print(
        f"rmthess theory --layer-spectrum: case={args.case} gamma={args.gamma:g}"
        + ("" if args.m is None else f" m={args.m}")
        + f" init={args.init} n_atoms={rows[0][0]['n_atoms']}"
    )
    cols = ["C", "zero_mass", "top_edge", "M1", "M2"]
    if "M2_frobenius" in rows[0][0]:
        cols += ["M2_frobenius", "M2_rel_diff"]
    cols += ["W1", "W1_rel", "KS", "top_edge_bd", "edge_gap_rel"]
    table = [cols] + [[_fmt(r[c]) for c in cols] for r, *_ in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(s.rjust(w) for s, w in zip(row, widths, strict=True)))
    for r, *_ in rows:
        sup = ", ".join(f"[{a:.6g}, {b:.6g}]" for a, b in r["support"])
        print(f"support C={r['C']}: {sup}")
    print(
        "(M2 = F_diag + (C-1) F_off exactly for linear-*; *_bd, W1, KS, edge_gap_rel: vs the "
        "block-diagonal part; zero_mass = atom at 0)"
    )
    if args.out is not None:
        print(f"figure: {args.out}")
    return 0


def _layer_figure(args, rows) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(rows)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)
    for ax, (rec, law, bd, gap) in zip(axes[0], rows, strict=True):
        x = np.linspace(0.0, 1.05 * max(gap.top_edge, gap.top_edge_bd), 1000)[1:]
        y, y_bd = np.asarray(law.pdf(x)), np.asarray(bd.pdf(x))
        ax.plot(x, y, "-", lw=1.6, label="whole layer")
        ax.plot(x, y_bd, "--", lw=1.4, label="block-diagonal part")
        top = 1.1 * max(y.max(), y_bd.max())
        if law.zero_mass > 0:
            ax.vlines(0.0, 0.0, 0.9 * top, lw=2.2, color="tab:blue")
            ax.annotate(
                f"atom {law.zero_mass:.4g} at 0",
                (0.0, 0.9 * top),
                xytext=(6, -4),
                textcoords="offset points",
                fontsize=8,
                va="top",
            )
        ax.set_ylim(0.0, top)
        ax.set_title(f"{args.case}, C={rec['C']}, gamma={args.gamma:g}", fontsize=10)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    from rmthess._outputs import write_file_atomic

    write_file_atomic(args.out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
