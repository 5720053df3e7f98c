"""``rmthess theory``: exact limiting Frobenius norms of the Hessian blocks (no torch).

Prints, for each C, ``F_diag``, ``F_off`` and ``ratio = sqrt(F_off / F_diag)`` with their
standard errors (non-zero only for the Monte-Carlo cases hidden-ce and output-ce); with
``--asymptotic`` also the large-C constants ``F ~ A C^-p``. Arguments that do not apply to
the case (``--m`` for linear-*, ``--samples``/``--inner`` for the exact cases) are refused
(by :func:`rmthess.theory.frobenius_limits`, before any work).

With ``--layer-spectrum`` (cases linear-mse, linear-ce, hidden-mse, hidden-ce) it prints
instead, per C, the limiting spectral law of the whole first-layer Hessian
(:func:`rmthess.theory.layer_gap.layer_spectrum`): zero mass, total mass found, support
intervals, top edge, moments M1, M2 (for linear-* also ``F_diag + (C-1) F_off``, which M2
equals in the limit; the printed difference is the QMC error of the weight draws, shown
with its standard error) and the distances to the law of its block-diagonal part
(:func:`rmthess.theory.block_diagonal_gap`: W1, W1_rel, KS, edge gap). ``--out FILE.png``
draws both densities, one panel per C.

Numbers with a standard error (Monte-Carlo cases) are printed to the precision it supports
(``x +- se``, :func:`rmthess._stats.format_estimate`); progress bars (``--no-progress``
turns them off) are decided for the whole run, not per C.

examples:
  rmthess theory --case linear-ce --C 10,100,1000 --gamma 0.5
  rmthess theory --case linear-ce --layer-spectrum --C 2,5,20 --gamma 0.5 --out layer.png
  rmthess theory --case hidden-ce --layer-spectrum --C 5 --gamma 0.5 --m 4 --n-atoms 256
  rmthess theory --case hidden-ce --C 10,100 --gamma 0.5 --m 8 --samples 400 --json
  rmthess theory --case output-ce --C 10 --gamma 0.5 --m 8 --asymptotic
  rmthess theory --case hidden-ce --C 10 --gamma 0.5 --widths 32,32,32 --activation tanh
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from rmthess._cli import add_activation, add_init, add_json, add_progress, print_table

if TYPE_CHECKING:
    from rmthess.theory.asymptotics import AsymptoticConstants
    from rmthess.theory.layer_gap import LayerSpectrum
    from rmthess.theory.layer_laws import _Spec


def _layer_cases() -> tuple[str, ...]:
    """Cases with a whole-layer law (``--layer-spectrum``): a registry query."""
    from rmthess.cases import cases_where

    return cases_where(has_gmp_limit=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rmthess._checks import int_arg, int_list_arg, number_arg
    from rmthess.cases import CASES, REGISTRY

    mc = [n for n, c in REGISTRY.items() if c.mc_route]
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
    add_json(parser, "a list of records")
    parser.add_argument(
        "--seed",
        default=0,
        type=number_arg("int", name="seed", minimum=0),
        help="seed of the Monte-Carlo route (int >= 0, default 0)",
    )
    parser.add_argument(
        "--method",
        default=None,
        choices=("quadrature", "mc"),
        help=f"{', '.join(mc)} only: 'quadrature' (deterministic, normal inits; the default "
        "of output-ce) or 'mc' (Monte Carlo; the default of hidden-ce, of non-normal inits "
        "and whenever --samples or --inner is given)",
    )
    parser.add_argument(
        "--tol",
        default=None,
        type=number_arg("float", name="tol"),
        help="--method quadrature only: relative tolerance in [1e-7, 1e-2] (default 1e-6)",
    )
    parser.add_argument(
        "--samples",
        default=None,
        type=number_arg("int", name="samples", minimum=2),
        help=f"{', '.join(mc)}, Monte Carlo only: independent V draws (default: 200-10000 by cost)",
    )
    parser.add_argument(
        "--inner",
        default=None,
        type=number_arg("int", name="inner", minimum=2),
        help=f"{', '.join(mc)}, Monte Carlo only: g draws per V draw (default 64)",
    )
    add_progress(parser, "when it is a terminal and the whole run is predicted to take over 5 s")
    add_init(parser)
    add_activation(
        parser,
        "hidden-* and output-* (another than relu: rmthess.theory.activation_frobenius, Monte "
        "Carlo with the phi'' term and random labels; output-mse exact)",
    )
    parser.add_argument(
        "--widths",
        default=None,
        type=int_list_arg(name="widths", minimum=2),
        help="hidden-* only: the hidden widths m1,m2,... of a deeper MLP; prints the block map "
        "of every layer (rmthess.theory.depth_frobenius; replaces --m)",
    )
    parser.add_argument(
        "--N",
        default=None,
        type=int_arg("N", 2),
        help="with --widths: add the later layers' finite-N term, to compare with a "
        "measurement on N samples (rmthess simulate --widths)",
    )
    parser.add_argument(
        "--asymptotic",
        action="store_true",
        help="also print the large-C constants A_diag, p_diag, A_off, p_off",
    )
    parser.add_argument(
        "--layer-spectrum",
        action="store_true",
        help="print the whole-layer spectral law and its distance to the block-diagonal "
        "part instead (cases with d x d blocks: " + ", ".join(_layer_cases()) + ")",
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


def _print_asymptote(asym: AsymptoticConstants | None) -> None:
    """The ``--asymptotic`` line (nothing when ``asym`` is None)."""
    if asym is not None:
        print(
            "large C: "
            + format_power_law("F_diag", asym.A_diag, asym.p_diag)
            + "; "
            + format_power_law("F_off", asym.A_off, asym.p_off)
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


def run(args: argparse.Namespace) -> int:
    import json

    from rmthess._stats import format_estimate
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
    if getattr(args, "widths", None) is not None:
        from rmthess.theory.cli_depth import run_depth

        return run_depth(args, case.name)
    if getattr(args, "N", None) is not None:
        raise ValueError("--N applies only with --widths (the later layers' finite-N term)")
    m = case.check_m(args.m)
    activation = getattr(args, "activation", "relu")
    if activation != "relu":
        return _run_activation(args, case.name, m, activation)
    if args.asymptotic:  # refuse an m without finite large-C constants before any work
        case.check_m(args.m, asymptotic=True)
    from rmthess.inits import resolve_init
    from rmthess.theory.frobenius import _resolve_method

    method = getattr(args, "method", None)
    tol = getattr(args, "tol", None)
    ini = resolve_init(args.init)
    used, _ = _resolve_method(case, method, args.samples, args.inner, ini, tol, m)
    mc_kw: dict = {"samples": args.samples, "inner": args.inner}
    if case.mc_route:
        mc_kw.update(method=method, tol=tol)
    if used == "mc":
        mc_kw.update(seed=args.seed, progress=_mc_progress(case.name, args, m))
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
    mc = used == "mc"
    if mc:  # each estimate to the precision of its standard error
        cols = ["C", "F_diag", "F_off", "ratio", "n_samples", "method"]
        cells = [
            [str(r.C)]
            + [format_estimate(getattr(r, k), getattr(r, k + "_se")) for k in cols[1:4]]
            + [str(r.n_samples), r.method]
            for r in rows
        ]
    elif used == "quadrature" and case.mc_route:
        cols = ["C", "F_diag", "F_off", "ratio", "F_diag_se", "F_off_se", "method"]
        cells = [[_fmt(r.to_dict()[c]) for c in cols] for r in rows]
    else:
        cols = ["C", "F_diag", "F_off", "ratio", "ratio_se", "method"]
        cells = [[_fmt(r.to_dict()[c]) for c in cols] for r in rows]
    print_table(cols, cells)
    if used == "quadrature" and case.mc_route:
        print(
            f"(Gram quadrature to relative tol {rows[0].tol:g}; *_se: error estimates, the "
            "change between the last two resolutions)"
        )
    if mc:
        r0 = rows[0]
        print(
            f"(Monte Carlo: n_samples V draws x {r0.n_inner} g draws each, seed {r0.seed}; "
            "x +- se: estimate and standard error)"
        )
    _print_asymptote(asym)
    return 0


def _run_activation(args: argparse.Namespace, case: str, m: int | None, activation: str) -> int:
    """``--activation`` other than relu: :func:`rmthess.theory.activation_frobenius`."""
    import json

    from rmthess._checks import check_choice
    from rmthess._stats import format_estimate
    from rmthess.activations import ACTIVATIONS
    from rmthess.cases import get_case
    from rmthess.theory.activation_hidden import DEFAULT_INNER, DEFAULT_SAMPLES
    from rmthess.theory.frobenius import frobenius_limits

    check_choice("--activation", activation, tuple(ACTIVATIONS))
    if not get_case(case).has_activation:
        raise ValueError(
            f"--activation {activation} is for the hidden-* and output-* cases, not {case}"
        )
    for flag, val in (
        ("--method", getattr(args, "method", None)),
        ("--tol", getattr(args, "tol", None)),
    ):
        if val is not None:
            raise ValueError(f"{flag} does not apply with --activation {activation}")
    assert m is not None
    kw = dict(
        init=args.init,
        samples=args.samples or DEFAULT_SAMPLES,
        inner=args.inner or DEFAULT_INNER,
        seed=args.seed,
    )
    asym = None
    if args.asymptotic:  # refuse an m without large-C constants before any work
        from rmthess.theory.asymptotics import asymptotic_constants

        asym = asymptotic_constants(case, args.gamma, m, init=args.init, activation=activation)
    rows = [frobenius_limits(case, C, args.gamma, m, activation=activation, **kw) for C in args.C]
    if args.json:
        records = [r.to_dict() for r in rows]
        if asym is not None:
            extra = {k: v for k, v in asym.to_dict().items() if k.startswith(("A_", "p_"))}
            records = [{**rec, **extra} for rec in records]
        print(json.dumps(records, indent=2))
        return 0
    print(
        f"rmthess theory: case={case} gamma={args.gamma:g} m={m} init={args.init} "
        f"activation={activation}"
    )
    cols = ["C", "F_diag", "F_off", "ratio", "n_samples", "method"]
    cells = [
        [str(r.C)]
        + [format_estimate(getattr(r, k), getattr(r, k + "_se")) for k in cols[1:4]]
        + [str(r.n_samples or ""), r.method]
        for r in rows
    ]
    print_table(cols, cells)
    _print_asymptote(asym)
    if rows[0].method == "closed-form":
        print("(exact: F_diag = m M_2^2 + m (m - 1) M_1^4, M_k = E[phi(sigma g)^k])")
        return 0
    print(
        f"(Monte Carlo: n_samples V draws x {rows[0].n_inner} (g, y) draws each, labels "
        f"uniform and independent of x, seed {rows[0].seed}; x +- se: estimate and standard "
        "error)"
    )
    return 0


def _mc_progress(case: str, args: argparse.Namespace, m: int | None) -> bool:
    """One bar decision for the whole run: the predicted time summed over every C."""
    from rmthess._checks import want_progress
    from rmthess.theory import hidden_integrals as hi

    assert m is not None  # the Monte-Carlo cases need m (Case.check_m refuses None)
    secs = 0.0
    for C in args.C:
        n_V, n_g = hi.default_sizes(case, C, m, args.samples, args.inner)
        secs += hi.estimated_cost(case, C, m, n_V, n_g)[0]
    return want_progress(args.progress, secs)


def _fmt(v: str | float | None, digits: int = 10) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}" if math.isfinite(v) else str(v)


def _check_layer_args(args: argparse.Namespace) -> list[_Spec]:
    """Everything ``--layer-spectrum`` refuses, before any work: flags that do not apply,
    cases without a whole-layer law, ``--out`` not a PNG in a writable directory, and the
    arguments :func:`rmthess.theory.layer_law` refuses (every C, cost bounds included).
    Returns the validated specs, one per C."""
    from rmthess.theory.layer_laws import _spec

    for flag, val in (
        ("--asymptotic", args.asymptotic or None),
        ("--samples", args.samples),
        ("--inner", args.inner),
    ):
        if val is not None:
            raise ValueError(f"{flag} does not apply with --layer-spectrum")
    if args.case not in _layer_cases():
        raise ValueError(
            f"--layer-spectrum: case {args.case!r} has no whole-layer law (its blocks are "
            f"m x m); allowed: {', '.join(_layer_cases())}"
        )
    if args.out is not None:
        from rmthess._outputs import check_out_file

        check_out_file(args.out, "--out", suffix=".png")  # a PNG in a writable directory
    return [
        _spec(args.case, C, args.gamma, args.m, None, args.init, args.n_atoms, args.seed)
        for C in args.C
    ]


def run_layer_spectrum(args: argparse.Namespace) -> int:
    """``rmthess theory --layer-spectrum``: one :class:`~rmthess.theory.layer_gap.
    LayerSpectrum` per C, printed (or ``--json``); ``--out`` draws them."""
    import json
    import sys

    from tqdm.auto import tqdm

    from rmthess._checks import want_progress
    from rmthess._stats import format_estimate
    from rmthess.theory.layer_gap import layer_spectrum, predicted_seconds

    specs = _check_layer_args(args)
    show = want_progress(args.progress, sum(predicted_seconds(s) for s in specs))
    kw = dict(init=args.init, n_atoms=args.n_atoms, seed=args.seed)
    spectra = []
    for s in tqdm(specs, desc="layer spectrum", unit="C", file=sys.stderr, disable=not show):
        spectra.append(layer_spectrum(args.case, s.C, args.gamma, args.m, **kw))
    if args.out is not None:
        _layer_figure(args.out, spectra)
    if args.json:
        print(json.dumps([{**sp.to_dict(), "support": sp.support} for sp in spectra], indent=2))
        return 0
    recs = [sp.to_dict() for sp in spectra]
    print(
        f"rmthess theory --layer-spectrum: case={args.case} gamma={args.gamma:g}"
        + ("" if args.m is None else f" m={args.m}")
        + f" init={args.init} n_atoms={recs[0]['n_atoms']}"
    )
    cols = ["C", "zero_mass", "mass", "top_edge", "M1", "M2"]
    linear = "M2_frobenius" in recs[0]
    if linear:
        cols += ["M2_frobenius", "M2_rel_diff"]
    cols += ["W1", "W1_rel", "KS", "top_edge_bd", "edge_gap_rel"]
    cells = [
        [
            format_estimate(r[c], r["M2_rel_se"]) if c == "M2_rel_diff" else _fmt(r[c], 6)
            for c in cols
        ]
        for r in recs
    ]
    print_table(cols, cells)
    for sp in spectra:
        sup = ", ".join(f"[{a:.6g}, {b:.6g}]" for a, b in sp.support)
        print(f"support C={sp.gap.C}: {sup}")
    if linear and args.case == "linear-mse":
        print("(M2 = F_diag + (C-1) F_off exactly: A = I is one exact atom)")
    elif linear:
        print(
            "(M2 = F_diag + (C-1) F_off holds exactly for the limit law; M2 here comes from "
            "n_atoms QMC draws of A, so M2_rel_diff = M2/M2_frobenius - 1 is their QMC error "
            "+- its SE over 8 independent scrambles)"
        )
    print(
        "(*_bd, W1, KS, edge_gap_rel: vs the block-diagonal part; zero_mass = atom at 0; "
        "mass = atom + continuous part found, checked against 1 and M1, M2 to 1e-4 for the "
        "hidden layers; 6 significant digits)"
    )
    if args.out is not None:
        print(f"figure: {args.out}")
    return 0


def _layer_figure(path: str, spectra: list[LayerSpectrum]) -> None:
    """One panel per C (:meth:`~rmthess.theory.layer_gap.LayerSpectrum.plot`), to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(spectra)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)
    for ax, sp in zip(axes[0], spectra, strict=True):
        sp.plot(ax)
    fig.tight_layout()
    from rmthess._outputs import write_file_atomic

    write_file_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
