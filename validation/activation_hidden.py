"""Any activation in the hidden layer: the limit vs simulation of the Hessian blocks.

Claim (issue 20, docs/theory.md section 9.5): for ``f(x) = V phi(W x)`` at LeCun init on
Gaussian inputs with random labels, the first layer's block norms ``F_diag``, ``F_off`` and
``r`` tend to the Monte-Carlo limit of :func:`rmthess.theory.activation_frobenius` (the
Gauss-Newton weight ``phi'(g_j) phi'(g_l) v_j^T A v_l`` plus the residual ``delta_jl
phi''(g_j) v_j^T (p - e_y)`` on the diagonal blocks).

Simulation: ``--networks`` independent (W, V, X, y) at d = 500, N = 1000 (gamma = 0.5),
m = 16, the blocks by the Gram route ``a^T (X X^T)^2 a / (d N^2)``; its weights are checked
once against torch's exact Hessian (``rmthess.curvature.block_norms``) of the same network
(relative 1e-9), so the simulation is autograd's Hessian, computed fast.

Two hidden layers (``V phi(W2 phi(W1 x))``, widths 16, 16): the first layer's blocks
against :func:`rmthess.theory.deep_frobenius` the same way (its weights, with the second
layer's curvature term, checked against autograd too).

Checks: autograd = Gram route (one and two hidden layers); for tanh and GELU (and ReLU, the
paper's, as a control) at C = 10 and 100, and the two-layer ReLU and tanh nets at C = 10
and 100: simulation vs limit within 3 SE + 5 % (the issue's target) for F_diag, F_off, r.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from _common import entry, finish, gram_means, parser

from rmthess.report.checks import check_close, check_upper

SECTION = "activation-hidden"
M = 16


def _blocks(X, y, W, V, act, W2=None):
    from rmthess.activations import get_activation
    from rmthess.theory.activation_hidden import activation_weights
    from rmthess.theory.deep_hidden import deep_weights

    rows, cols = np.triu_indices(W.shape[0])
    phi = get_activation(act)
    if W2 is None:
        a = activation_weights(X @ W.T, y, V, "ce", phi, rows, cols)
    else:
        a = deep_weights(X @ W.T, y, W2, V, "ce", phi, rows, cols)
    return gram_means(X, a, rows == cols)


def _autograd_check(seed):
    import torch

    from rmthess.curvature import block_norms, mlp

    C, d, N = 10, 40, 120
    gen = np.random.default_rng(seed)
    X, y = gen.standard_normal((N, d)), gen.integers(0, C, N)
    worst = 0.0
    for act, hidden in (("tanh", (M,)), ("gelu", (M,)), ("tanh", (M, M)), ("relu", (M, M))):
        net = mlp(d, C, hidden=hidden, activation=act, bias=False, seed=seed)
        W, V = (p.detach().double().numpy() for p in (net.hidden1.weight, net.output.weight))
        W2 = net.hidden2.weight.detach().double().numpy() if len(hidden) == 2 else None
        data = (torch.tensor(X), torch.tensor(y))
        bm = block_norms(net, "ce", data, blocks="hidden-rows", exact=True, progress=False)
        F = bm.sq_norm / d
        got = np.array([np.mean(np.diag(F)), np.mean(F[~np.eye(M, dtype=bool)])])
        want = np.array(_blocks(X, y, W, V, act, W2))
        worst = max(worst, float(np.max(np.abs(got / want - 1))))
    return worst


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--networks", type=int, default=None, help="networks (default 300)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    from rmthess._stats import summarize_pairs
    from rmthess.theory import activation_frobenius, deep_frobenius

    nets = args.networks or (20 if args.quick else 300)
    d, N = (200, 400) if args.quick else (500, 1000)
    settings = (
        [("tanh", 10, 1), ("relu", 10, 2)]
        if args.quick
        else [(act, C, 1) for act in ("tanh", "gelu", "relu") for C in (10, 100)]
        + [(act, C, 2) for act in ("relu", "tanh") for C in (10, 100)]
    )
    checks = [
        check_upper(
            SECTION,
            "Gram-route blocks = torch's exact Hessian (max rel. diff; 1 and 2 layers)",
            _autograd_check(args.seed),
            1e-9,
        )
    ]
    gen = np.random.default_rng(args.seed)
    print(f"{'act':6s}{'C':>5s}{'':>3s}{'simulation':>34s}{'limit':>34s}")
    for act, C, depth in settings:
        per = np.empty((nets, 2))
        for t in range(nets):
            X = gen.standard_normal((N, d))
            y = gen.integers(0, C, N)
            W = gen.standard_normal((M, d)) / math.sqrt(d)
            W2 = gen.standard_normal((M, M)) / math.sqrt(M) if depth == 2 else None
            V = gen.standard_normal((C, M)) / math.sqrt(M)
            per[t] = _blocks(X, y, W, V, act, W2)
        sim = summarize_pairs(per)
        samples = 400 if args.quick else 4000
        if depth == 1:
            lim = activation_frobenius(
                "hidden-ce", C, d / N, M, act, samples=samples, seed=args.seed
            )
        else:
            lim = deep_frobenius(
                "hidden-ce", C, d / N, (M, M), act, samples=samples, seed=args.seed
            )
        act = act if depth == 1 else f"{act} x2"
        for q in ("F_diag", "F_off", "ratio"):
            print(
                f"{act:6s}{C:5d} {q:>7s} {sim[q]:.5g} +- {sim[q + '_se']:.2g}"
                f"{getattr(lim, q):>22.5g} +- {getattr(lim, q + '_se'):.2g}"
            )
            checks.append(
                check_close(
                    SECTION,
                    f"{act} hidden-ce C={C}: {q} simulation vs limit"
                    + (" (first layer)" if depth == 2 else ""),
                    sim[q],
                    getattr(lim, q),
                    sim[q + "_se"],
                    getattr(lim, q + "_se"),
                    k=3.0,
                    rel_allowance=0.05,
                    detail=f"d={d}, N={N}, m={M}, {nets} networks; issue 20 target 3 SE + 5 %",
                )
            )
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
