"""``rmthess theory --widths m1,m2,...``: the block map of every layer of a deeper MLP at init
(:func:`rmthess.theory.depth_frobenius`), one table per C."""

from __future__ import annotations

import argparse


def run_depth(args: argparse.Namespace, case: str) -> int:
    """Per C and layer: ``F_diag``, ``F_off``, ``ratio`` with their SEs; ``--json`` a list of
    per-layer records. The loss is the case's (``hidden-ce`` or ``hidden-mse``)."""
    import json

    from rmthess._cli import print_layer_maps
    from rmthess.theory.depth import depth_frobenius

    if case not in ("hidden-mse", "hidden-ce"):
        raise ValueError(f"--widths is for hidden-mse and hidden-ce (the loss), not {case}")
    for flag, val in (
        ("--m", args.m),
        ("--asymptotic", args.asymptotic or None),
        ("--method", getattr(args, "method", None)),
        ("--tol", getattr(args, "tol", None)),
    ):
        if val is not None:
            raise ValueError(f"{flag} does not apply with --widths (the widths give m)")
    loss = case.split("-")[1]
    kw: dict = dict(init=args.init, seed=args.seed, N=getattr(args, "N", None))
    if args.samples is not None:
        kw["samples"] = args.samples
    if args.inner is not None:
        kw["inner"] = args.inner
    act = getattr(args, "activation", "relu")
    results = [depth_frobenius(loss, C, args.gamma, tuple(args.widths), act, **kw) for C in args.C]
    if args.json:
        recs = [rec for r in results for rec in r.to_frame().to_dict(orient="records")]
        print(json.dumps(recs, indent=2))
        return 0
    w = "x".join(str(m) for m in args.widths)
    print(f"rmthess theory: loss={loss} gamma={args.gamma:g} widths={w} init={args.init} "
          f"activation={act}")  # fmt: skip
    r0 = results[0]
    print_layer_maps(
        results,
        f"(Monte Carlo: {r0.samples} networks x {r0.inner} draws each, seed {r0.seed}; first "
        "layer (1/d)||H_jl||^2 in the d, N -> inf limit, later layers and the output ||H_jl||^2 "
        f"{'at N -> inf' if r0.N is None else f'at N = {r0.N}'}; x +- se)",
    )
    return 0
