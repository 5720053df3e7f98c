"""Small numerical helpers shared inside ``rmthess.theory`` (numpy only)."""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax along the last axis, ``p_k = e^{z_k - max z} / sum_c e^{z_c - max z}``.

    Shifting by the row maximum makes it overflow-free for any finite ``z``; returns a new
    array (``z`` is not modified).
    """
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e
