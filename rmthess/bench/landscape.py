"""Delta_k curves against the authors' loop, closed form vs Monte Carlo, per-sample Hessians.

``rmthess bench landscape [--json] [--quick] [--hessian-samples N] [--no-progress]``

1. ``delta_curve`` (100 orders over 10^4 losses, vectorised; with SEs, RMS and quantiles)
   against the authors' route (a Python loop over orders: ``random.sample`` of the loss
   list, cumulative means, ``abs(diff)``), in one run: seconds (best of 3) of each, and the
   largest difference of the mean curves on the same orders.
2. The exact ``E Delta_k^2 = S^2/(k(k+1))`` (``delta_expected``) against the Monte-Carlo mean
   over the same 100 orders: seconds of each and the pooled z over odd k
   (:func:`rmthess.landscape.experiment._mc_vs_exact`).
3. Per-sample norms for 10^4 samples of the bias-free ReLU MLP ``784 -> 16 x 6 -> 10``
   (P = 13,984; Gaussian inputs, no downloads): ``||G_i||_2`` by the ``K x K`` kernel route
   for all samples, and exact ``||H_i||_2`` (batched Lanczos) for ``--hessian-samples`` of
   them (default all).

Losses for 1-2: the per-sample losses of that MLP trained for one epoch on the same data.
A progress bar over the stages goes to stderr when it is a terminal (``--no-progress``: none).
"""

from __future__ import annotations

import json
import time

from rmthess._cli import add_json, add_progress


def add_arguments(parser) -> None:
    from rmthess._checks import number_arg

    add_json(parser)
    parser.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    parser.add_argument(
        "--hessian-samples",
        default=None,
        type=number_arg("int", name="hessian-samples", minimum=1),
        help="samples whose exact ||H_i|| is timed (default: all; 50 with --quick)",
    )
    add_progress(parser, "when it is a terminal")


STAGES = ("data + training", "delta_curve", "authors' loop", "exact", "GGN norms", "Hessian norms")


def _stages(progress):
    """A tqdm bar over :data:`STAGES` on stderr (``progress=None``: when it is a terminal)."""
    import sys

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=len(STAGES), desc="bench landscape", unit="stage", disable=not show)


def _best(fn, reps=3):
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _authors_route(losses, orders: int, perms=None):
    """As the authors' code: per order ``random.sample`` of the loss list, cumulative means,
    ``abs(diff)``; mean over orders. ``perms`` replaces ``random.sample`` by given orders
    (for the agreement check)."""
    import random

    import numpy as np

    n = len(losses)
    as_list = losses.tolist()
    rows = []
    for i in range(orders):
        v = np.asarray(random.sample(as_list, n)) if perms is None else losses[perms[i]]
        m = np.cumsum(v) / np.arange(1, n + 1)
        rows.append(np.abs(np.diff(m)))
    return np.mean(rows, axis=0)


def run(args) -> int:
    import numpy as np
    import torch

    from rmthess.data import gaussian
    from rmthess.landscape import delta_curve, delta_expected, per_sample_losses, train_mlp
    from rmthess.landscape.delta import _orders
    from rmthess.landscape.experiment import _mc_vs_exact
    from rmthess.landscape.per_sample import per_sample_curvature

    N = 2000 if args.quick else 10000
    bar = _stages(getattr(args, "progress", None))

    def stage(i):
        bar.set_postfix_str(STAGES[i])
        if i:
            bar.update(1)

    stage(0)
    data = gaussian(10, 784, N, seed=0)
    model = train_mlp(data, 16, 7, epochs=1, seed=0, dtype=torch.float64, progress=False)
    losses = per_sample_losses(model, "ce", data)
    orders = 100
    stage(1)
    t_vec, curve = _best(lambda: delta_curve(losses, orders, seed=0))
    stage(2)
    t_loop, _ = _best(lambda: _authors_route(losses, orders))
    gen = _orders(N, orders, 0)
    mean_loop = _authors_route(losses, orders, [next(gen) for _ in range(orders)])
    stage(3)
    t_exact, exact = _best(lambda: delta_expected(losses))
    res = dict(
        n_losses=N,
        orders=orders,
        delta_curve_s=t_vec,
        authors_loop_s=t_loop,
        speedup=t_loop / t_vec,
        max_abs_diff=float(np.abs(curve.mean - mean_loop).max()),
        exact_s=t_exact,
        mc_vs_exact_z=_mc_vs_exact(curve, exact),
    )
    stage(4)
    g = per_sample_curvature(model, data, kind="ggn", progress=False)
    n_h = min(N, args.hessian_samples or (50 if args.quick else N))
    stage(5)
    inner = None if not bar.disable else False  # the long stage: its own bar under the stages
    h = per_sample_curvature(model, (data.X[:n_h], data.y[:n_h]), method="lanczos", progress=inner)
    bar.update(1)
    bar.close()
    res.update(
        P=int(g.n_params),
        ggn_samples=N,
        ggn_s=g.seconds,
        hessian_samples=n_h,
        hessian_s=h.seconds,
        hessian_max_steps=int(h.steps.max()),
        hessian_max_residual=float(h.residual.max()),
    )
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(
        f"delta_curve, {orders} orders x {N} losses: {t_vec:.3f} s; authors' loop {t_loop:.3f} s "
        f"({res['speedup']:.1f}x); max |difference| {res['max_abs_diff']:.1e}\n"
        f"exact E Delta^2: {t_exact * 1e3:.2f} ms; Monte Carlo vs exact pooled z "
        f"{res['mc_vs_exact_z']:.2f}\n"
        f"784 -> 16 x 6 -> 10 (P = {res['P']}): ||G_i|| of {N} samples {g.seconds:.2f} s; "
        f"exact ||H_i|| of {n_h} samples {h.seconds:.1f} s (<= {res['hessian_max_steps']} "
        f"Lanczos steps, residual <= {res['hessian_max_residual']:.1e})"
    )
    return 0
