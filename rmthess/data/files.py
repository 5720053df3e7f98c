"""Data sets read from disk: scikit-learn's bundled digits, IDX (MNIST) and ``.npz`` files
(the last two live in :mod:`rmthess.data.idx` and :mod:`rmthess.data.npz`).

Nothing is downloaded: ``digits`` ships inside the scikit-learn wheel, the other loaders
read files the user already has.
"""

from __future__ import annotations

import numpy as np

from rmthess._checks import check_bool
from rmthess.data.dataset import Dataset
from rmthess.data.idx import IDX_IMAGES, IDX_LABELS, load_idx
from rmthess.data.npz import NPZ_X_KEYS, NPZ_Y_KEYS, load_npz

__all__ = ["IDX_IMAGES", "IDX_LABELS", "NPZ_X_KEYS", "NPZ_Y_KEYS", "digits", "load_idx", "load_npz"]


def digits(*, scale: bool = True) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (``sklearn.datasets.load_digits``; UCI optdigits
    test set), bundled in the scikit-learn wheel: no download.

    N = 1797 images, d = 64 pixels (8x8 flattened row-major), C = 10 classes (digits 0..9,
    174 to 183 images each). Pixels are integers 0..16; ``scale=True`` divides them by 16 so
    ``X`` lies in [0, 1] (max exactly 1.0). Imports scikit-learn on call.
    """
    check_bool("scale", scale)
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError(
            "rmthess.data.digits needs scikit-learn (pip install scikit-learn)"
        ) from exc
    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    if scale:
        X = X / 16.0
    meta = {"source": "sklearn.datasets.load_digits", "scale": scale, "image_shape": (8, 8)}
    return Dataset(X, bunch.target, 10, "digits", meta)
