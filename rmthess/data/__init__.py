"""Data sets without downloads: Gaussian and clustered synthetic data, scikit-learn's
bundled digits, and MNIST-style IDX or ``.npz`` files the user already has.

Every loader returns a :class:`Dataset` (``X`` float64 (N, d), ``y`` int64 (N,)).
:data:`LOADERS` is the one table of named data sets (:func:`load` by name; the CLIs through
:func:`add_data_arguments` and :func:`load_from_args`); :func:`as_xy` / :func:`as_dataset`
coerce user data (arrays, tensors, torch datasets, DataLoaders) once at the public edge.
This layer sits beside ``rmthess.theory``: it imports numpy and the ground floor only;
scikit-learn, pandas and torch are imported lazily by the functions that need them.
"""

from __future__ import annotations

from rmthess.data.coerce import as_dataset, as_xy
from rmthess.data.dataset import MAX_CLASSES, PER_SAMPLE_META, Dataset
from rmthess.data.files import NPZ_X_KEYS, NPZ_Y_KEYS, digits, load_idx, load_npz
from rmthess.data.loaders import DATASETS, LOADERS, add_data_arguments, load, load_from_args
from rmthess.data.synthetic import clustered, gaussian

__all__ = [
    "DATASETS",
    "LOADERS",
    "MAX_CLASSES",
    "NPZ_X_KEYS",
    "NPZ_Y_KEYS",
    "PER_SAMPLE_META",
    "Dataset",
    "add_data_arguments",
    "as_dataset",
    "as_xy",
    "clustered",
    "digits",
    "gaussian",
    "load",
    "load_from_args",
    "load_idx",
    "load_npz",
]
