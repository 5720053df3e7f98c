"""Binary classification with ONE sigmoid output (Collobert 2004; the paper's Appendix B.1)
against the two-class softmax theory (docs/theory.md section 9.6).

A sigmoid output ``s = sigmoid(v . relu(W x))`` with BCE has hidden-layer block weights
``a_jl = s (1 - s) v_j v_l 1[g_j > 0] 1[g_l > 0]``; two-class softmax has the same with
``u = V_1 - V_2`` for ``v`` and ``p_1 p_2`` for ``s (1 - s)`` (``p_1 = sigmoid(z_1 - z_2)``). At
LeCun init ``v_j`` has variance ``1/m`` and ``u_j`` ``2 sigma'^2 / m``; ReLU is homogeneous, so
matching the logit scales (``sigma' = 2^(-1/4)``) gives ``F_sigmoid = F_hidden-ce(C = 2,
init = 2^(-1/4)) / 2`` and the same ratio ``r``. Checked against a numpy simulation of
sigmoid-output networks (the Gram route, independent of the theory's quadrature)."""

from __future__ import annotations

import math

import numpy as np

from rmthess.theory import frobenius_limits


def _simulate(d, N, m, nets, gen):
    out = []
    iu, ju = np.triu_indices(m)
    for _ in range(nets):
        W = gen.standard_normal((m, d)) / math.sqrt(d)
        v = gen.standard_normal(m) / math.sqrt(m)
        X = gen.standard_normal((N, d))
        g = X @ W.T
        s = 1.0 / (1.0 + np.exp(-(np.maximum(g, 0) @ v)))
        on = (g > 0) * 1.0
        a = (s * (1 - s))[:, None] * (v[iu] * v[ju])[None] * on[:, iu] * on[:, ju]
        F = np.einsum("ib,ij,jb->b", a, (X @ X.T) ** 2, a) / (d * N * N)
        out.append((F[iu == ju].mean(), F[iu != ju].mean()))
    out = np.array(out)
    return out.mean(0), out.std(0, ddof=1) / math.sqrt(nets)


def test_one_sigmoid_output_is_two_class_softmax_at_a_smaller_init():
    gen = np.random.default_rng(11)
    d, N, m = 300, 600, 6
    mean, se = _simulate(d, N, m, 150, gen)
    # Monte Carlo (the Gram quadrature at a non-unit init takes ~20 s cold)
    th = frobenius_limits("hidden-ce", 2, d / N, m, init=2**-0.25, method="mc", samples=4000)
    for i, q in enumerate(("F_diag", "F_off")):
        want, want_se = getattr(th, q) / 2, getattr(th, f"{q}_se") / 2
        assert abs(mean[i] - want) <= 4 * math.hypot(se[i], want_se) + 0.03 * want, (q, mean, se)
    # the plain two-class softmax at init 1 has 1.6x larger blocks: the scaling is tested
    plain = frobenius_limits("hidden-ce", 2, d / N, m, method="mc", samples=4000)
    assert abs(mean[0] - plain.F_diag / 2) > 4 * se[0] + 0.03 * plain.F_diag / 2
    # no block-diagonal structure at init: r(2) ~ 0.35, ten times the large-C r
    r = math.sqrt(mean[1] / mean[0])
    assert abs(r - th.ratio) < 0.05 and th.ratio > 0.3
