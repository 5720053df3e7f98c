"""Which blocks of a ``K x K`` block map a Monte-Carlo route evaluates, and the linear-ce
block weights: helpers shared by the conditional routes of the linear model
(:mod:`rmthess.theory.aniso_linear`, :mod:`rmthess.theory.mixture_linear`) and of the hidden
layer (:mod:`rmthess.theory.aniso_hidden`)."""

from __future__ import annotations

import numpy as np

__all__ = ["SAMPLED_BLOCKS", "blocks_from_pairs", "sampled_pairs", "softmax_weights"]

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


def softmax_weights(z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """linear-ce block weights ``a^{kl} = p_k (delta_kl - p_l)``, ``p = softmax(z)``, of the
    draws ``z`` (draws, C) at the blocks ``(rows, cols)``: shape (draws, blocks)."""
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
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
