"""Which blocks of a ``K x K`` block map a Monte-Carlo route evaluates, and the linear-ce
block weights: helpers shared by the conditional routes of the linear model
(:mod:`rmthess.theory.aniso_linear`, :mod:`rmthess.theory.mixture_linear`) and of the hidden
layer (:mod:`rmthess.theory.aniso_hidden`)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "ALL_BLOCKS_MAX",
    "SAMPLED_BLOCKS",
    "blocks_from_pairs",
    "choose_pairs",
    "diag_off_means",
    "probability_weights",
    "sampled_pairs",
    "softmax_weights",
]

SAMPLED_BLOCKS = 32
"""Blocks of each kind (diagonal, off-diagonal) per network where a map is sampled."""


def sampled_pairs(C: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``SAMPLED_BLOCKS`` diagonal blocks (distinct if C allows) then as many off-diagonal
    pairs ``k < l``, uniform."""
    diag = gen.choice(C, SAMPLED_BLOCKS, replace=C < SAMPLED_BLOCKS)
    k = gen.integers(0, C, SAMPLED_BLOCKS)
    k2 = (k + gen.integers(1, C, SAMPLED_BLOCKS)) % C
    rows = np.r_[diag, np.minimum(k, k2)]
    cols = np.r_[diag, np.maximum(k, k2)]
    return rows, cols


ALL_BLOCKS_MAX = 32
"""Every block of a map up to this size; above it :func:`sampled_pairs`."""


def choose_pairs(size: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The blocks ``(rows, cols)`` a Monte-Carlo route evaluates for a ``size x size`` map: all
    ``k <= l`` up to :data:`ALL_BLOCKS_MAX`, else :func:`sampled_pairs` (drawn from ``gen``)."""
    if size > ALL_BLOCKS_MAX:
        return sampled_pairs(size, gen)
    rows, cols = np.triu_indices(size)
    return rows, cols


def diag_off_means(F: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[float, float]:
    """``(mean of F over the diagonal blocks, mean over the off-diagonal ones)`` of the values
    ``F`` at the blocks ``(rows, cols)`` (``0.0`` for a map without off-diagonal blocks)."""
    diag = rows == cols
    return float(F[diag].mean()), (float(F[~diag].mean()) if np.any(~diag) else 0.0)


def softmax_weights(z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """linear-ce block weights ``a^{kl} = p_k (delta_kl - p_l)``, ``p = softmax(z)``, of the
    draws ``z`` (draws, C) at the blocks ``(rows, cols)``: shape (draws, blocks)."""
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return probability_weights(p, rows, cols)


def probability_weights(p: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``p_k (delta_kl - p_l)`` (the softmax Hessian ``diag(p) - p p^T``) of probabilities ``p``
    (draws, C) at the blocks ``(rows, cols)``: shape (draws, blocks)."""
    return (rows == cols)[None, :] * p[:, rows] - p[:, rows] * p[:, cols]


def blocks_from_pairs(vals: np.ndarray, C: int, pairs) -> np.ndarray:
    """``vals`` as computed for the block pairs: returned as they are when ``pairs`` was
    given, else (the pairs ``np.triu_indices(C)``) as the symmetric ``(C, C)`` block map."""
    if pairs is not None:
        return vals
    iu, ju = np.triu_indices(C)
    F = np.empty((C, C))
    F[iu, ju] = vals
    F[ju, iu] = vals
    return F
