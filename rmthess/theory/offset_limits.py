"""Limits of the hidden-* and output-* blocks for inputs with a mean or class structure: the
pre-activation offsets ``W mu_k`` of each network averaged over (issue 19; docs/theory.md
section 9.4).

Inputs ``x | k ~ N(mu_k, Sigma_k)`` with weights ``pi_k`` (one component with the pooled mean
for ``input_stats(X)``, one per class for ``input_stats(X, y)``), ``f(x) = V phi(W x)`` at a
normal init (``W`` entries ``N(0, sigma^2/d)``, ``V`` entries ``N(0, sigma^2/m)``). Given
``W`` the pre-activations of a sample of component ``k`` are

    g = b_k + W n,   b_k = W mu_k,   W n ~ N(0, W Sigma_k W^T) -> N(0, sigma^2 tau_1k I_m),

``tau_1k = tr Sigma_k / d``. The offsets ``b_k`` are the same for every sample of the data set
and do not average out: over networks the ``m`` columns of ``B = (b_1 .. b_K)`` are
independent ``N(0, sigma^2 G)``, ``G_kl = mu_k . mu_l / d``, independent of ``W n`` in the
limit (``W Sigma_k W^T`` concentrates). The isotropic and centred limits are ``B = 0``.

**Hidden layer** (``d, N -> inf``, ``gamma = d/N``; block weights ``a`` of
:func:`rmthess.theory.activation_hidden.activation_weights`). As for the linear model with a
mean (the decoupling of ``a`` from ``(x . x')^2``, section 9.4),

    F = gamma sum_k pi_k v_k^2 E_k[a^2] + sum_{k,l} pi_k pi_l R_kl E_net[e_k e_l],

``v_k = tau_1k + |mu_k|^2/d`` (``|x|^2/d -> v_k``), ``R_kl = tr((Sigma_k + mu_k mu_k^T)(Sigma_l +
mu_l mu_l^T)) / d`` (``E (x . x')^2 / d``) and ``e_k = E[a | network, k]`` the mean weight of
component ``k`` given the network ``(V, B)``: samples of one data set share ``B``, so the pair
term is the network average of a product, not a product of averages. Labels: tied to the
components for a class mixture (``y = k``), uniform for one component; they matter only
through the ``phi''`` term of smooth activations.

**Output layer** (``N -> inf`` at fixed ``m``; no gamma): the ``(c, c')`` block tends to
``M_cc' = sum_k pi_k E_k[a_cc'(V h) h h^T | network]``, ``h = phi(g)``, and
``F = E_net ||M_cc'||_F^2`` (output-ce: ``a_cc' = delta p_c - p_c p_c'``; output-mse:
``a = delta``, ``F_off = 0``).

Estimated by Monte Carlo: ``samples`` independent networks ``(V, B)``, ``inner`` draws of
``W n`` per component and network; the products ``e_k e_l`` and ``||M||_F^2`` from two
independent halves of the draws (unbiased); SEs over networks. Neglected: terms of relative
order ``m / d_eff`` (the smallest component's ``d_eff``). ``mu = 0`` gives the centred limits
of :mod:`rmthess.theory.aniso_scaled` (tests/theory/test_offset_limits.py, where this route is
also held against the exact conditional route at ``d = 600`` and against simulated output
blocks).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_int, check_positive_float
from rmthess._random import check_seed, rng
from rmthess.activations import get_activation
from rmthess.theory.activation_hidden import check_draws, check_normal_init
from rmthess.theory.block_pairs import ALL_BLOCKS_MAX, SAMPLED_BLOCKS

if TYPE_CHECKING:
    from rmthess.activations import Activation
    from rmthess.inits import InitLike
    from rmthess.theory.frobenius import FrobeniusLimits
    from rmthess.theory.inputs import InputStats

__all__ = ["OFFSET_CASES", "OFFSET_LEVELS", "offset_frobenius"]

OFFSET_CASES = ("hidden-mse", "hidden-ce", "output-mse", "output-ce")
OFFSET_LEVELS = ("mean-aware", "mixture")
"""Input levels whose hidden/output limits need the offsets (centred ones are rescaled
isotropic limits, :mod:`rmthess.theory.aniso_scaled`)."""
DEFAULT_SAMPLES = 1000
DEFAULT_INNER = 256


def offset_frobenius(
    case: str,
    C: int,
    gamma: float,
    m: int,
    inputs: InputStats,
    *,
    activation: str | Activation = "relu",
    init: InitLike = "lecun",
    samples: int = DEFAULT_SAMPLES,
    inner: int = DEFAULT_INNER,
    seed: int = 0,
) -> FrobeniusLimits:
    """Fixed-C limits ``F_diag``, ``F_off``, ``ratio`` of the hidden or output layer's
    blocks for Gaussian inputs with a mean, or a Gaussian mixture of classes (module
    docstring), by Monte Carlo over networks with standard errors.

    Parameters
    ----------
    case : ``"hidden-mse"``, ``"hidden-ce"``, ``"output-mse"`` or ``"output-ce"``.
    C : int in [2, 10**5], classes.
    gamma : float > 0, ``d / N`` (hidden cases; the output limits do not depend on it).
    m : int in [1, 4096], hidden width (>= 2 for the hidden cases).
    inputs : InputStats of level ``"mean-aware"`` (``input_stats(X)``), ``"mixture"``
        (``input_stats(X, y)``), or centred (then ``B = 0``: the centred limit, a check).
    activation : a name of :data:`rmthess.activations.ACTIVATIONS` or an ``Activation``.
    init : a normal init (``"lecun"`` or a float sigma).
    samples : int in [20, 10**7], independent networks ``(V, B)`` (the SE is over them).
    inner : even int in [4, 10**7], draws per component and network.
    seed : seeds the draws.

    Cost: ``samples * K * inner`` weight evaluations over ``m(m+1)/2`` blocks (hidden) or
    ``C(C+1)/2`` blocks of ``m x m`` products (output); K = 10, m = 16, defaults: a few
    seconds.

    Returns
    -------
    FrobeniusLimits with ``method="monte-carlo"``, ``inputs`` the level, ``activation``.

    >>> from rmthess.theory import InputStats
    >>> stats = InputStats.from_spectrum([1.0] * 400, mean=[0.5] * 400)
    >>> r = offset_frobenius("output-mse", 5, 0.5, 4, stats, samples=40, seed=1)
    >>> r.inputs, r.F_off
    ('mean-aware', 0.0)
    """
    from rmthess.theory.aniso_linear import check_inputs
    from rmthess.theory.aniso_scaled import check_scaled_inputs

    stats = check_inputs(inputs, case, OFFSET_CASES)
    C = check_int("C", C, 2, 10**5)
    gamma = check_positive_float("gamma", gamma)
    m = check_int("m", m, 2 if case.startswith("hidden") else 1, 4096)
    act = get_activation(activation)
    ini = check_normal_init(init)
    samples, inner = check_draws(samples, inner)
    seed = check_seed(seed)
    check_scaled_inputs(stats, case, m, ini, offsets=True)
    comp = _components(stats)
    K = stats.n_classes
    if not act.homogeneous and case.startswith("hidden") and stats.level == "mixture" and K > C:
        raise ValueError(
            f"inputs has {K} classes > C = {C}: the phi'' term of {act.name!r} needs the labels "
            "tied to the classes (y = k)"
        )
    from rmthess._checks import check_memory

    nb = 2 * SAMPLED_BLOCKS if max(m, C) > ALL_BLOCKS_MAX else max(m, C) * (max(m, C) + 1) // 2
    check_memory(
        8.0 * inner * (4 * nb + 6 * m + 3 * C) + 8.0 * K * nb * m * m,
        f"offset_frobenius(inner={inner})",
        "lower inner",
    )
    per = _per_network(case, C, gamma, m, comp, act, ini.sigma, samples, inner, seed)
    from dataclasses import replace

    from rmthess.theory.aniso_linear import conditional_result

    res = conditional_result(case, C, gamma, m, per, inner, seed, ini.name, stats.level)
    return replace(res, method="monte-carlo", activation=act.name)


def _components(stats: InputStats) -> tuple:
    """``(pi, tau_1k, G, R, label)`` of the components: ``G_kl = mu_k . mu_l / d``, ``R_kl =
    E (x . x')^2 / d`` (module docstring) and each component's class (None: one component,
    labels uniform)."""
    if stats.level == "mixture":
        from rmthess.theory.mixture_linear import _pair_stats, components

        w, v, G, R = _pair_stats(stats)
        _, _, covs = components(stats)
        tau1 = np.einsum("kii->k", covs) / stats.d
        assert stats.class_weights is not None
        owner = stats.component_class
        label = np.arange(stats.n_components) if owner is None else owner
        return w, tau1, G, R, label[stats.class_weights > 0]
    one = np.ones((1, 1))
    return one[0], one[0] * stats.tau1, one * stats.mean_sq, one * stats.pair_moment, None


def _offset_factor(G: np.ndarray) -> np.ndarray:
    """``L`` with ``L L^T = G`` (``G`` PSD up to rounding; negative eigenvalues clipped)."""
    lam, U = np.linalg.eigh(0.5 * (G + G.T))
    return U * np.sqrt(np.maximum(lam, 0.0))


def _per_network(case, C, gamma, m, comp, act, sigma, samples, inner, seed) -> np.ndarray:
    """Per network ``(F_diag, F_off)`` rows (``samples x 2``)."""
    from rmthess.theory.block_pairs import choose_pairs, diag_off_means

    w, tau1, G, R, label = comp
    K = w.size
    v = tau1 + np.diag(G)
    L = _offset_factor(G) * sigma
    pair = (w[:, None] * w[None, :]) * R
    layer, loss = case.split("-")
    size = m if layer == "hidden" else C
    gen = rng(seed, "offset-frobenius", case, act.name)
    h = inner // 2
    per = np.empty((samples, 2))
    for s in range(samples):
        V = gen.standard_normal((C, m)) * (sigma / math.sqrt(m))
        B = L @ gen.standard_normal((K, m))  # (K, m): the offsets b_k
        rows, cols = choose_pairs(size, gen)
        if layer == "hidden":
            halves = np.empty((2, K, rows.size))  # e_k from each half of the draws
            self_term = np.zeros(rows.size)
        else:
            blocks = np.zeros((2, rows.size, m, m))  # sum_k pi_k E_k[a h h^T], each half
        for k in range(K):
            g = B[k] + gen.standard_normal((inner, m)) * (sigma * math.sqrt(tau1[k]))
            y = gen.integers(0, C, inner) if label is None else np.full(inner, label[k])
            if layer == "hidden":
                a = _hidden_weights(g, y, V, loss, act, rows, cols)
                self_term += gamma * w[k] * v[k] ** 2 * np.mean(a * a, axis=0)
                halves[:, k] = a[:h].mean(axis=0), a[h:].mean(axis=0)
            else:
                blocks += w[k] * _output_moments(act.phi(g), V, loss, rows, cols, h)
        if layer == "hidden":
            F = self_term + np.einsum("kb,kl,lb->b", halves[0], pair, halves[1])
        else:
            F = np.einsum("bij,bij->b", blocks[0], blocks[1])
        per[s] = diag_off_means(F, rows, cols)
    return per


def _hidden_weights(g, y, V, loss, act, rows, cols) -> np.ndarray:
    from rmthess.theory.activation_hidden import activation_weights

    return activation_weights(g, y, V, loss, act, rows, cols)


def _output_moments(hh, V, loss, rows, cols, h) -> np.ndarray:
    """``E[a_cc' h h^T]`` of the two halves of the draws: shape ``(2, blocks, m, m)``."""
    if loss == "ce":
        from rmthess.theory.block_pairs import softmax_weights

        a = softmax_weights(hh @ V.T, rows, cols)
    else:
        a = np.broadcast_to((rows == cols).astype(float), (hh.shape[0], rows.size))
    out = np.empty((2, rows.size, hh.shape[1], hh.shape[1]))
    for half, sl in enumerate((slice(0, h), slice(h, None))):
        x, ah = hh[sl], a[sl]
        out[half] = np.einsum("nb,ni,nj->bij", ah, x, x, optimize=True) / x.shape[0]
    return out
