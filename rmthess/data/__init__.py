"""Data sets without downloads: Gaussian and clustered synthetic data, scikit-learn's
bundled digits, and MNIST-style IDX or ``.npz`` files the user already has.

Every loader returns a :class:`Dataset` (``X`` float64 (N, d), ``y`` int64 (N,)).
This layer sits beside ``rmthess.theory``: it imports numpy and the ground floor only;
scikit-learn, pandas and torch are imported lazily by the functions that need them.
"""

from __future__ import annotations

import os

from rmthess.data.dataset import PER_SAMPLE_META, Dataset
from rmthess.data.files import NPZ_X_KEYS, NPZ_Y_KEYS, digits, load_idx, load_npz
from rmthess.data.synthetic import clustered, gaussian

__all__ = [
    "DATASETS",
    "NPZ_X_KEYS",
    "NPZ_Y_KEYS",
    "PER_SAMPLE_META",
    "Dataset",
    "clustered",
    "digits",
    "gaussian",
    "load",
    "load_idx",
    "load_npz",
]

_LOADERS = {"digits": digits, "gaussian": gaussian, "clustered": clustered, "idx": load_idx}
DATASETS = tuple(_LOADERS)
"""Names :func:`load` accepts besides a path ending in ``.npz``."""


def load(name, **kw) -> Dataset:
    """Load a data set by name, for the command line: ``name`` in :data:`DATASETS` or a path
    ending in ``.npz``; the keywords go to that loader unchanged.

    >>> load("gaussian", C=3, d=4, N=6, seed=1)
    Dataset('gaussian', N=6, d=4, n_classes=3)

    ``load("digits", scale=False)``, ``load("idx", images=path1, labels=path2, limit=1000)``,
    ``load("data/train.npz", x_key="images")``. An unknown name raises ``ValueError``
    listing the allowed ones; a keyword the loader lacks raises ``TypeError``.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (data set name or .npz path), got {name!r}")
    if name in _LOADERS:
        return _LOADERS[name](**kw)
    if name.lower().endswith(".npz"):
        return load_npz(name, **kw)
    raise ValueError(
        f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}, or a path ending in .npz"
    )
