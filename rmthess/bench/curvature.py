"""Block map of a network's Hessian: dense autograd vs one Hutchinson per block pair vs masked
probes.

``rmthess bench curvature [--json] [--quick] [--C C] [--d d] [--N N] [--hidden m] [--probes k]
[--threads t]``

For one model (``mlp(d, C, (m,))``, LeCun init, cross-entropy on Gaussian inputs with random
labels) and its L = m hidden-neuron blocks (``blocks="hidden-rows"``: row j of the first
weight plus bias j, size d + 1), the L x L map of squared Frobenius norms
``||H_rc||_F^2`` by three routes:

(a) ``dense``: the whole Hessian by ``torch.func`` (:func:`rmthess.curvature.dense_hessian`)
    then its blocks; exact; cost counted as P Hessian-vector-product equivalents.
(b) ``curvlinops-pairs``: what a curvlinops user writes today, one
    ``curvlinops.SubmatrixLinearOperator(H, I_r, I_c)`` per block pair and
    ``curvlinops.hutchinson_squared_fro(A, probes)`` on it: ``L^2 * probes`` products.
(c) ``rmthess-columns``: :func:`rmthess.curvature.blocks.block_norms` (masked probes, every
    row block from one product): ``L * probes`` products.

(b) and (c) use the same number of probes per block pair, hence the same estimator variance
per pair (hutchinson_squared_fro probes the smaller side; the blocks here are square), and
the same Hessian-vector product (curvlinops ``HessianLinearOperator`` behind a
:class:`~rmthess.curvature.operators.CurvatureOperator`, whose ``n_matvecs`` counts every
product). Reported per route: wall time, products, the largest relative error of a map entry
against (a), the expected relative standard deviation of an entry (mean over pairs of
``sqrt(Var/probes) / ||H_rc||_F^2`` with the exact variance of the probe estimator,
docs in :mod:`rmthess.curvature.blocks`), ours also with its estimated standard error, and
the product and time ratios against (c). Timings are one run each after a warm-up product.
"""

from __future__ import annotations

import json
import time

import numpy as np

from rmthess._cli import add_json, add_progress

ROUTES = ("dense", "curvlinops-pairs", "rmthess-columns")


def _counting(op):
    """``op`` as a curvlinops ``PyTorchLinearOperator`` (products go through
    ``op.matmat_torch``, so ``op.n_matvecs`` counts them)."""
    from curvlinops._torch_base import PyTorchLinearOperator  # not re-exported by curvlinops

    P = op.shape[0]

    class _Op(PyTorchLinearOperator):
        SELF_ADJOINT = True

        def __init__(self):
            super().__init__([(P,)], [(P,)])

        @property
        def dtype(self):
            return op.torch_dtype

        @property
        def device(self):
            return op.device

        def _matmat(self, X):
            return [op.matmat_torch(X[0])]

        def _adjoint(self):
            return self

    return _Op()


def _exact_map(H, blocks):
    return np.array([[np.sum(H[np.ix_(a, b)] ** 2) for _, b in blocks] for _, a in blocks])


def _expected_sd(H, blocks, probes, transpose_wide: bool) -> np.ndarray:
    from rmthess.curvature.blocks import probe_variance

    """(L, L) sd of the probe estimate of each block norm with ``probes`` probes;
    ``transpose_wide``: probes on the smaller side, as hutchinson_squared_fro does."""
    out = np.empty((len(blocks), len(blocks)))
    for i, (_, a) in enumerate(blocks):
        for j, (_, b) in enumerate(blocks):
            M = H[np.ix_(a, b)]
            if transpose_wide and M.shape[1] > M.shape[0]:
                M = M.T
            out[i, j] = np.sqrt(probe_variance(M) / probes)
    return out


def _problem(C, d, N, hidden, seed, dtype):
    import torch

    from rmthess.curvature.models import mlp

    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(N, d, generator=gen, dtype=dtype)
    y = torch.randint(0, C, (N,), generator=gen)
    return mlp(d, C, hidden, seed=seed, dtype=dtype), torch.nn.CrossEntropyLoss(), (X, y)


def bench_block_map(
    *,
    C: int = 10,
    d: int = 48,
    N: int = 512,
    hidden=(32,),
    probes: int = 16,
    kind: str = "hessian",
    seed: int = 0,
    progress: bool | None = None,
):
    """Run the three routes once on the same model and data; tidy ``pandas.DataFrame``.

    One row per route (``ROUTES``) with columns ``route, C, d, N, hidden, L, P, probes,
    hvps, seconds, max_rel_err, mean_rel_se, mean_rel_sd, hvp_ratio, time_ratio``
    (``hvp_ratio``/``time_ratio``: the route's products/seconds over those of
    ``rmthess-columns``; ``mean_rel_se``: our estimated standard error, NaN where the route
    reports none; ``mean_rel_sd``: the exact expected one, 0 for the dense route).
    ``probes`` must be < d + 1 (hutchinson_squared_fro refuses probes >= the block size).
    Defaults: L = 32 blocks of size 49, P = 1898, about 22 s on one CPU core (most of it
    route (b): 16384 products against 512). ``progress``: a tqdm bar of the steps (the dense
    route, each block pair of route (b), route (c)); None: when stderr is a terminal.
    """
    import pandas as pd
    import torch
    from curvlinops import SubmatrixLinearOperator, hutchinson_squared_fro

    from rmthess._checks import check_choice, check_int, check_progress, progress_bar
    from rmthess.curvature.block_specs import resolve_blocks
    from rmthess.curvature.blocks import block_norms
    from rmthess.curvature.operators import KINDS, curvature_operator, dense_hessian

    C = check_int("C", C, 2)
    d = check_int("d", d, 1)
    N = check_int("N", N, 1)
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if len(hidden) != 1:
        raise ValueError(f"hidden must be one width (m,), got {hidden!r}")
    m = check_int("hidden", hidden[0], 2)
    probes = check_int("probes", probes, 2, d)
    kind = check_choice("kind", kind, KINDS)
    seed = check_int("seed", seed, 0)
    progress = check_progress(progress)
    model, loss, data = _problem(C, d, N, (m,), seed, torch.float64)
    op = curvature_operator(model, loss, data, kind)
    blocks = resolve_blocks(op, "hidden-rows")
    L, P = len(blocks), op.shape[0]
    op.matmat_torch(torch.zeros(P, 1, dtype=op.torch_dtype))  # warm-up (vmap set-up)

    bar = progress_bar(progress, total=L * L + 2, desc="bench curvature", unit="step")
    t0 = time.perf_counter()
    H = dense_hessian(model, loss, data, kind)
    D = _exact_map(H, blocks)
    t_dense = time.perf_counter() - t0
    bar.update()

    def pair(a, b):
        est = float(hutchinson_squared_fro(SubmatrixLinearOperator(counted, a, b), probes))
        bar.update()
        return est

    counted = _counting(op)
    lists = [idx.tolist() for _, idx in blocks]  # SubmatrixLinearOperator takes int lists
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        n0, t0 = op.n_matvecs, time.perf_counter()
        est_b = np.array([[pair(a, b) for b in lists] for a in lists])
        t_b, hv_b = time.perf_counter() - t0, op.n_matvecs - n0

    n0, t0 = op.n_matvecs, time.perf_counter()
    bm = block_norms(
        op=op, blocks="hidden-rows", probes=probes, exact=False, seed=seed, progress=False
    )
    t_c, hv_c = time.perf_counter() - t0, op.n_matvecs - n0
    bar.update()
    bar.close()

    sd_b = _expected_sd(H, blocks, probes, transpose_wide=True) / D
    sd_c = _expected_sd(H, blocks, probes, transpose_wide=False) / D
    rows = [
        ("dense", P, t_dense, 0.0, 0.0, 0.0),
        ("curvlinops-pairs", hv_b, t_b, _max_rel(est_b, D), np.nan, float(sd_b.mean())),
        (
            "rmthess-columns",
            hv_c,
            t_c,
            _max_rel(bm.sq_norm, D),
            float((bm.sq_norm_se / D).mean()),
            float(sd_c.mean()),
        ),
    ]
    df = pd.DataFrame(
        rows, columns=["route", "hvps", "seconds", "max_rel_err", "mean_rel_se", "mean_rel_sd"]
    )
    df.insert(1, "C", C)
    df.insert(2, "d", d)
    df.insert(3, "N", N)
    df.insert(4, "hidden", m)
    df.insert(5, "L", L)
    df.insert(6, "P", P)
    df.insert(7, "probes", probes)
    df["hvp_ratio"] = df["hvps"] / hv_c
    df["time_ratio"] = df["seconds"] / t_c
    return df


def _max_rel(est, exact) -> float:
    return float(np.max(np.abs(est - exact) / np.abs(exact)))


def format_table(df) -> str:
    r = df.iloc[0]
    lines = [
        f"rmthess bench curvature  mlp(d={r['d']}, C={r['C']}, hidden=({r['hidden']},)), "
        f"N={r['N']}, blocks=hidden-rows: L={r['L']} blocks, P={r['P']}, "
        f"probes={r['probes']} per block pair",
        "",
        f"{'route':>18} {'HVPs':>7} {'seconds':>9} {'max rel err':>12} {'mean rel se':>12} "
        f"{'exp. rel sd':>12} {'HVP ratio':>10} {'time ratio':>11}",
    ]
    for _, r in df.iterrows():
        se = "-" if not np.isfinite(r["mean_rel_se"]) else f"{r['mean_rel_se']:.3f}"
        lines.append(
            f"{r['route']:>18} {r['hvps']:>7d} {r['seconds']:>9.3f} {r['max_rel_err']:>12.3g} "
            f"{se:>12} {r['mean_rel_sd']:>12.3f} {r['hvp_ratio']:>10.2f} "
            f"{r['time_ratio']:>11.2f}"
        )
    return "\n".join(lines)


def add_arguments(parser) -> None:
    from rmthess._checks import number_arg

    add_json(parser)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, ~1 s (for tests)")
    for name, default, lo in (
        ("C", 10, 2),
        ("d", 48, 1),
        ("N", 512, 1),
        ("hidden", 32, 2),
        ("probes", 16, 2),
        ("seed", 0, 0),
    ):
        parser.add_argument(
            f"--{name}",
            default=default,
            type=number_arg("int", name=name, minimum=lo),
            help=f"{name} (default {default})",
        )
    parser.add_argument(
        "--threads",
        default=None,
        type=number_arg("int", name="threads", minimum=1),
        help="torch CPU threads (default: torch's own choice)",
    )
    add_progress(parser, "when it is a terminal")


def run(args) -> int:
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kw = dict(
        C=args.C, d=args.d, N=args.N, hidden=(args.hidden,), probes=args.probes, seed=args.seed
    )
    if args.quick:
        kw.update(C=3, d=6, N=32, hidden=(4,), probes=3)
    df = bench_block_map(**kw, progress=args.progress)
    if args.json:
        from rmthess._stats import json_safe

        print(json.dumps([json_safe(r) for r in df.to_dict("records")], indent=1))
    else:
        print(format_table(df))
    return 0
