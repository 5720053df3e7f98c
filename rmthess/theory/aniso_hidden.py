"""Hidden-layer blocks (hidden-mse, hidden-ce) of ``f(x) = V relu(W x)`` on Gaussian or
Gaussian-mixture inputs, exact at finite ``d`` (issue 19; docs/theory.md section 9.4).

The blocks of the first layer are ``H_kl = (1/N) sum_i a_i^{kl} x_i x_i^T`` (one per pair of
hidden units, ``d x d``) with

    hidden-mse:  a^{kl} = (v_k . v_l) M_k M_l,
    hidden-ce:   a^{kl} = v_k^T (diag p - p p^T) v_l M_k M_l,   p = softmax(V relu(g)),

``g = W x`` the ``m`` pre-activations, ``M_k = 1[g_k > 0]``, ``v_k`` the k-th column of ``V``.
The weight depends on ``x`` only through ``g``, an ``m``-dimensional projection, exactly as the
linear model's weight depends on ``x`` through its ``C`` logits. So the conditional route of
:func:`rmthess.theory.aniso_linear.conditional_frobenius` carries over unchanged with the
projection ``W`` (``m x d``) in place of the logit map: given ``W``, ``x | g`` is Gaussian in
the ``m + 1`` dimensions spanned by the mean and the rows of ``W Sigma`` (per class for a
mixture), the ``m``-dimensional Gaussian averages over ``g`` are Monte Carlo (two independent
halves: unbiased), and the result is averaged over independent networks ``(W, V)`` drawn
from the init (entries ``N(0, sigma^2/d)`` and ``N(0, sigma^2/m)``). Exact for Gaussian or
Gaussian-mixture inputs at every ``d``, ``N`` and ``m``; the single Gaussian needs
``rank(Sigma) >= m`` (``W Sigma W^T`` invertible), a mixture's classes may have any rank.
Normalisation as everywhere: ``F = (1/d) ||H_kl||_F^2``, diagonal and off-diagonal means over
the ``m x m`` block map.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rmthess._random import rng
from rmthess.theory.block_pairs import ALL_BLOCKS_MAX

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rmthess.inits import Init
    from rmthess.theory.frobenius import FrobeniusLimits
    from rmthess.theory.inputs import InputStats

__all__ = [
    "HIDDEN_CASES",
    "conditional_hidden",
    "hidden_per_network",
    "hidden_weights",
    "pooled_component",
]

HIDDEN_CASES = ("hidden-mse", "hidden-ce")
ALL_BLOCKS_MAX_M = ALL_BLOCKS_MAX
"""Every block of the ``m x m`` map up to this width; above it, per network, 32 random
diagonal and 32 random off-diagonal blocks (as the linear route above ``C = 11``)."""


def hidden_weights(
    V: np.ndarray, loss: str
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """The block weights of the ReLU hidden layer (module docstring) for output weights
    ``V`` (``C x m``): a function of the pre-activation draws ``g`` (draws, m) and the blocks
    ``(rows, cols)`` returning ``a`` (draws, blocks);
    :func:`rmthess.theory.activation_hidden.activation_weights` at ``phi = relu``."""
    from rmthess.activations import get_activation
    from rmthess.theory.activation_hidden import activation_weights

    relu = get_activation("relu")

    def weights(g: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return activation_weights(g, None, V, loss, relu, rows, cols)

    return weights


def _pairs(m: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    if m <= ALL_BLOCKS_MAX_M:
        return None
    from rmthess.theory.block_pairs import sampled_pairs

    return sampled_pairs(m, gen)


def pooled_component(stats: InputStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one Gaussian with the pooled mean and covariance of a class mixture, as a
    one-component mixture in the input coordinates (``weights, means, covs``):
    ``mu = sum_k pi_k mu_k``, ``Sigma = sum_k pi_k (Sigma_k + mu_k mu_k^T) - mu mu^T``."""
    from rmthess.theory.mixture_linear import components

    w, means, covs = components(stats)
    mu = w @ means
    second = np.einsum("k,kij->ij", w, covs) + np.einsum("k,ki,kj->ij", w, means, means)
    cov = second - np.outer(mu, mu)
    return np.ones(1), mu[None, :], (0.5 * (cov + cov.T))[None]


def hidden_per_network(
    case: str,
    C: int,
    m: int,
    stats: InputStats,
    N: int,
    ini: Init,
    networks: int,
    draws: int,
    gen: np.random.Generator,
    nets: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    pooled: bool = False,
) -> np.ndarray:
    """Per network ``(F_diag, F_off)`` (array ``(networks, 2)``) of the conditional route,
    each exact in expectation over the inputs given that network's ``(W, V)``.

    ``nets``: the networks' own ``(W (m x d), V (C x m))`` in the input coordinates (the
    measured networks of :func:`rmthess.curvature.theory_on_data`, so that theory and
    measurement are paired); then ``stats`` must be a class mixture, and ``pooled=True``
    takes its one pooled Gaussian (:func:`pooled_component`) in the input coordinates.
    Without ``nets``, ``networks`` are drawn from ``ini`` (``W`` in the eigenbasis of
    ``Sigma`` for one Gaussian: rotation invariance)."""
    from rmthess.theory.aniso_linear import block_expectations
    from rmthess.theory.block_pairs import SAMPLED_BLOCKS
    from rmthess.theory.mixture_linear import components, mixture_block_expectations

    mixture = stats.level == "mixture"
    if nets is not None and not mixture:
        raise ValueError("nets needs the statistics of a class mixture (pooled=True for one)")
    if not mixture and stats.rank < m:
        raise ValueError(
            f"inputs has rank(Sigma) = {stats.rank} < m = {m}: the pre-activations W x have "
            "a singular covariance (give more input directions than hidden units, or the "
            "class mixture)"
        )
    comps: tuple = ()
    if mixture:
        comps = pooled_component(stats) if pooled else components(stats)
    loss = case.split("-")[1]
    d = stats.d
    n = networks if nets is None else len(nets)
    per = np.empty((n, 2))
    off = ~np.eye(m, dtype=bool)
    for t in range(n):
        if nets is None:
            W = gen.standard_normal((m, d)) * (ini.sigma / math.sqrt(d))
            V = gen.standard_normal((C, m)) * (ini.sigma / math.sqrt(m))
        else:
            W, V = nets[t]
        fn = hidden_weights(V, loss)
        pairs = _pairs(m, gen)
        if comps:
            w, means, covs = comps
            F = mixture_block_expectations(W, w, means, covs, N, draws, gen, pairs, True, fn)
        else:
            F = block_expectations(
                W, stats.eigenvalues, stats.mean_coords, N, draws, gen, pairs, weight_fn=fn
            )
        if pairs is not None:
            per[t] = F[:SAMPLED_BLOCKS].mean(), F[SAMPLED_BLOCKS:].mean()
        else:
            per[t] = np.mean(np.diag(F)), np.mean(F[off])
    return per


def conditional_hidden(
    case: str,
    C: int,
    m: int,
    stats: InputStats,
    N: int,
    ini: Init,
    networks: int,
    draws: int,
    seed: int,
) -> FrobeniusLimits:
    """:func:`rmthess.theory.conditional_frobenius` for hidden-mse and hidden-ce (module
    docstring); arguments checked by the caller."""
    from rmthess._checks import check_memory
    from rmthess.theory.aniso_linear import conditional_result

    nb = m * (m + 1) // 2 if m <= ALL_BLOCKS_MAX_M else 64
    check_memory(
        8.0 * draws * (4 * nb + 4 * m + (m + 1) ** 2 + C) + 8.0 * 2 * nb * (m + 1) ** 2,
        f"conditional_frobenius(m={m}, draws={draws})",
        "lower draws",
    )
    gen = rng(seed, "conditional-hidden")
    per = hidden_per_network(case, C, m, stats, N, ini, networks, draws, gen)
    return conditional_result(case, C, stats.d / N, m, per, draws, seed, ini.name, stats.level)
