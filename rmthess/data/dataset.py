"""The ``Dataset`` container: a checked ``(X, y)`` pair with its number of classes."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_bool, check_data_matrix, check_float, check_int
from rmthess._random import check_seed
from rmthess._random import rng as _rng

if TYPE_CHECKING:  # pandas and torch are imported by the methods that need them
    import numpy.typing as npt
    import pandas as pd
    import torch

__all__ = ["MAX_CLASSES", "PER_SAMPLE_META", "Dataset", "check_path"]

MAX_CLASSES = 100_000
"""Most classes a :class:`Dataset` may have (labels ``< MAX_CLASSES``): ``n_classes`` sizes
one-hot targets and the model's output layer, so a stray label (``10**9`` in a file) would
otherwise ask for gigabytes only later. Relabel sparse labels with
``np.unique(y, return_inverse=True)``."""

PER_SAMPLE_META = ("index", "cluster_ids")
"""Keys of ``Dataset.meta`` holding one entry per sample (arrays of length N); ``subset`` and
``split`` index them along with ``X`` and ``y``. ``meta["index"]``, set by ``subset`` and
``split``, is the row of each sample in the dataset first loaded."""


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A labelled data set: ``N`` samples ``x_i in R^d`` with labels ``y_i in {0..C-1}``.

    Attributes
    ----------
    X : float64 ndarray of shape (N, d), C-contiguous, finite (images flattened row-major).
    y : int64 ndarray of shape (N,), every label in ``[0, n_classes)``.
    n_classes : int >= 1, the number of classes ``C`` (a class may have no sample);
        ``None`` (the default) means ``max(y) + 1``.
    name : short name (``"digits"``, ``"gaussian"``, a file name...).
    meta : dict of provenance (source, seed, generator parameters...). The arrays listed in
        :data:`PER_SAMPLE_META` have one entry per sample and follow ``subset``/``split``.

    ``X`` and ``y`` are converted to float64 / int64 C-contiguous arrays, copying only when
    the input has another dtype or layout, and stored as read-only views: the data set never
    changes through its attributes (an input array it shares memory with stays writable by
    its owner). ``N >= 1`` and ``d >= 1``. Equality is identity (arrays do not compare).

    Bad input raises before anything is stored: ``TypeError`` for a non-numeric ``X`` or
    non-integer labels (integral floats such as ``3.0`` are accepted), ``ValueError`` for a
    non-2-D or non-finite ``X`` (naming the first bad row), a non-1-D ``y``, a length
    mismatch (naming both shapes) or a label outside ``[0, n_classes)``.
    """

    X: np.ndarray
    y: np.ndarray
    n_classes: int | None = None
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        X = check_data_matrix("X", self.X)
        y = _as_labels(self.y)
        if y.shape != (X.shape[0],):
            raise ValueError(
                f"X has shape {X.shape} and y has shape {y.shape}: "
                "y must be 1-D with one label per row of X"
            )
        if self.n_classes is None:
            n_classes = max(int(y.max()) + 1, 1)  # all-negative y: the label error below
            if n_classes > MAX_CLASSES:
                distinct = np.unique(y).size
                raise ValueError(
                    f"y must hold labels in [0, MAX_CLASSES) = [0, {MAX_CLASSES}): its largest "
                    f"label {int(y.max())} would make n_classes = {n_classes} for "
                    f"{distinct} distinct labels; relabel them 0..{distinct - 1} "
                    "(np.unique(y, return_inverse=True))"
                )
        else:
            n_classes = check_int("n_classes", self.n_classes, 1, MAX_CLASSES)
        bad = np.flatnonzero((y < 0) | (y >= n_classes))
        if bad.size:
            raise ValueError(
                f"y must hold labels in [0, n_classes) = [0, {n_classes}); "
                f"y[{bad[0]}] = {y[bad[0]]}"
            )
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if not isinstance(self.meta, dict):
            raise TypeError(f"meta must be a dict, got {type(self.meta).__name__}")
        meta = dict(self.meta)
        for key in PER_SAMPLE_META:
            if key in meta:
                arr = np.asarray(meta[key])
                if arr.shape[:1] != (X.shape[0],):
                    raise ValueError(
                        f"meta[{key!r}] must have one entry per sample ({X.shape[0]}), "
                        f"got shape {arr.shape}"
                    )
                meta[key] = _read_only(arr)
        object.__setattr__(self, "X", _read_only(X))
        object.__setattr__(self, "y", _read_only(y))
        object.__setattr__(self, "n_classes", n_classes)
        object.__setattr__(self, "meta", meta)

    # ------------------------------------------------------------------ basic facts
    @property
    def n(self) -> int:
        """Number of samples ``N``."""
        return self.X.shape[0]

    @property
    def d(self) -> int:
        """Input dimension ``d`` (features per sample)."""
        return self.X.shape[1]

    def __len__(self) -> int:
        return self.X.shape[0]

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, N={self.n}, d={self.d}, n_classes={self.n_classes})"

    def class_counts(self) -> np.ndarray:
        """Samples per class, an int64 array of shape ``(n_classes,)`` (zeros included)."""
        return np.bincount(self.y, minlength=self.n_classes).astype(np.int64)

    # ------------------------------------------------------------------ torch views
    def tensors(
        self,
        dtype: torch.dtype | None = None,
        device: str | torch.device = "cpu",
        *,
        one_hot: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` as new torch tensors (copies; the data set is not shared).

        ``X``: shape (N, d) of floating ``dtype`` (default ``torch.float64``) on ``device``.
        ``y``: int64 class indices of shape (N,) (for cross-entropy), or with
        ``one_hot=True`` a (N, n_classes) tensor of ``dtype`` with ``Y[i, y_i] = 1`` and
        zeros elsewhere (targets of the MSE loss). Imports torch on first use.
        """
        torch, dtype, device = _torch_args(dtype, device, one_hot)
        X = torch.tensor(self.X, dtype=dtype, device=device)
        y = torch.tensor(self.y, dtype=torch.int64, device=device)
        if one_hot:
            y = torch.nn.functional.one_hot(y, self.n_classes).to(dtype)
        return X, y

    def batches(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype | None = None,
        device: str | torch.device = "cpu",
        one_hot: bool = False,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """List of ``(X, y)`` tensor pairs of ``batch_size`` consecutive samples, in order.

        The last batch holds the ``N mod batch_size`` remaining samples when that is not 0.
        ``batch_size >= 1`` (a size above N gives one batch). Tensors as :meth:`tensors`.
        """
        batch_size = check_int("batch_size", batch_size, 1)
        X, y = self.tensors(dtype, device, one_hot=one_hot)
        return [
            (X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, self.n, batch_size)
        ]

    # ------------------------------------------------------------------ new data sets
    def subset(self, n: int, *, seed: int = 0, stratified: bool = True) -> Dataset:
        """``n`` samples drawn without replacement, kept in their original order.

        ``stratified=True``: class ``c`` with ``N_c`` samples gets ``n_c`` of them, the
        largest-remainder rounding of ``n N_c / N`` (so ``|n_c - n N_c / N| < 1`` and
        ``sum n_c = n``; ties of the remainders are broken at random), then ``n_c`` samples
        uniformly without replacement inside the class. ``stratified=False``: a uniform
        draw of ``n`` of the ``N`` rows. Randomness: ``rmthess._random.rng(seed)`` (the
        stream of ``numpy.random.default_rng(seed)``).
        ``1 <= n <= N``; ``meta["index"]`` records the rows taken.
        """
        n = check_int("n", n, 1, self.n)
        seed = check_seed(seed)
        check_bool("stratified", stratified)
        rng = _rng(seed)
        if stratified:
            idx = _stratified_take(self.y, self.n_classes, n, rng)
        else:
            idx = np.sort(rng.choice(self.n, size=n, replace=False))
        return self._take(
            idx, f"{self.name}[subset]", subset={"n": n, "seed": seed, "stratified": stratified}
        )

    def split(
        self, test_fraction: float = 0.2, *, seed: int = 0, stratified: bool = True
    ) -> tuple[Dataset, Dataset]:
        """``(train, test)``: a partition of the samples, ``round(test_fraction N)`` in test.

        The test rows are drawn as :meth:`subset` draws them (stratified by default: both
        parts then keep every class within one sample of its proportional share); train
        holds all other rows. Both keep the original order. ``0 < test_fraction < 1`` and
        both parts must be non-empty.
        """
        test_fraction = check_float("test_fraction", test_fraction, 0, 1, closed="neither")
        n_test = int(round(float(test_fraction) * self.n))
        if not 1 <= n_test <= self.n - 1:
            raise ValueError(
                f"test_fraction={test_fraction} of N={self.n} samples leaves an empty part; "
                f"need 1 <= round(test_fraction * N) <= N - 1"
            )
        seed = check_seed(seed)
        check_bool("stratified", stratified)
        rng = _rng(seed)
        if stratified:
            test_idx = _stratified_take(self.y, self.n_classes, n_test, rng)
        else:
            test_idx = np.sort(rng.choice(self.n, size=n_test, replace=False))
        in_test = np.zeros(self.n, dtype=bool)
        in_test[test_idx] = True
        how = {"test_fraction": float(test_fraction), "seed": seed, "stratified": stratified}
        train = self._take(np.flatnonzero(~in_test), f"{self.name}[train]", split=how)
        test = self._take(test_idx, f"{self.name}[test]", split=how)
        return train, test

    def standardize(
        self, *, mean: npt.ArrayLike | None = None, std: npt.ArrayLike | None = None
    ) -> Dataset:
        """New data set with ``X' = (X - mean) / std`` feature by feature.

        By default ``mean`` and ``std`` are this data set's per-feature mean and standard
        deviation (``ddof=0``); a constant feature (std <= 1e-12 (1 + |mean|)) gets std 1,
        so it maps to 0 rather than to NaN. Pass the ``mean``/``std`` of another set (shape
        ``(d,)``, finite, std > 0) to apply its scaling, e.g. a training set's to its test
        set: ``test.standardize(**train_std.meta["standardize"])``. The statistics used are
        stored in ``meta["standardize"] = {"mean": ..., "std": ...}``.
        """
        if mean is None:
            mean = self.X.mean(axis=0)
        else:
            mean = self._feature_vector("mean", mean)
        if std is None:
            std = self.X.std(axis=0)
            std = np.where(std <= 1e-12 * (1 + np.abs(mean)), 1.0, std)
        else:
            std = self._feature_vector("std", std)
            if not (std > 0).all():
                raise ValueError(f"std must be > 0 for every feature, got min {std.min()}")
        meta = dict(self.meta)
        meta["standardize"] = {"mean": _read_only(mean), "std": _read_only(std)}
        X = (self.X - mean) / std
        return Dataset(X, self.y, self.n_classes, self.name, meta)

    # ------------------------------------------------------------------ summaries
    def to_dict(self) -> dict:
        """Flat JSON-safe summary, no arrays: name, N, d, n_classes, class_count_min,
        class_count_max, then every ``meta`` entry as ``meta_<key>`` (nested dicts as
        ``meta_<key>_<subkey>``; arrays as a ``"ndarray <dtype> <shape>"`` string; other
        non-scalars as their ``str``; non-finite floats as None)."""
        counts = self.class_counts()
        rec = {
            "name": self.name,
            "N": self.n,
            "d": self.d,
            "n_classes": self.n_classes,
            "class_count_min": int(counts.min()),
            "class_count_max": int(counts.max()),
        }
        for key, value in self.meta.items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    rec[f"meta_{key}_{sub}"] = _summary(v)
            else:
                rec[f"meta_{key}"] = _summary(value)
        return rec

    def to_frame(self) -> pd.DataFrame:
        """One-row tidy ``pandas.DataFrame`` of :meth:`to_dict`."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])

    # ------------------------------------------------------------------ private
    def _take(self, idx: np.ndarray, name: str, **how) -> Dataset:
        meta = dict(self.meta)  # "standardize" stats stay valid for a subset of the rows
        for key in PER_SAMPLE_META:
            if key in meta:
                meta[key] = np.asarray(meta[key])[idx]
        if "index" not in self.meta:
            meta["index"] = idx
        meta.update(how)
        return Dataset(self.X[idx], self.y[idx], self.n_classes, name, meta)

    def _feature_vector(self, name: str, value) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (self.d,):
            raise ValueError(f"{name} must have shape (d,) = ({self.d},), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} must be finite")
        return arr


# ---------------------------------------------------------------------------- helpers
def _read_only(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


def _as_labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        if y.dtype.kind == "u" and y.size and int(y.max()) > np.iinfo(np.int64).max:
            i = int(np.argmax(y))  # would wrap to a negative int64
            raise ValueError(
                f"y must hold labels in [0, n_classes); y[{i}] = {int(y[i])} ({y.dtype})"
            )
        return np.ascontiguousarray(y, dtype=np.int64)
    if y.dtype.kind == "f" and y.size and np.isfinite(y).all() and (y == np.round(y)).all():
        if np.abs(y).max() >= 2**62:  # would not fit int64; no label is that large
            raise ValueError(f"y holds a label of magnitude {np.abs(y).max():g}, too large")
        return np.ascontiguousarray(y, dtype=np.int64)
    raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")


def check_path(name: str, value) -> str:
    """``value`` as a ``str`` path (``str`` or ``os.PathLike``); ``TypeError`` otherwise."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return os.fspath(value)


def _torch_args(dtype, device, one_hot):
    import torch

    if dtype is None:
        dtype = torch.float64
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (torch.float64...), got {dtype!r}")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must name a torch device ('cpu', 'cuda:0'...), got {device!r}"
        ) from None
    check_bool("one_hot", one_hot)
    return torch, dtype, device


def _stratified_take(y: np.ndarray, n_classes: int, n: int, rng) -> np.ndarray:
    """Sorted indices of ``n`` rows, class ``c`` getting the largest-remainder share of
    ``n N_c / N`` (integer arithmetic, exact), uniformly inside each class."""
    counts = np.bincount(y, minlength=n_classes)
    N = len(y)
    share = counts * n // N
    remainder = counts * n % N  # n N_c / N = share + remainder / N
    order = np.lexsort((rng.random(n_classes), -remainder))
    share[order[: n - share.sum()]] += 1
    by_class = np.lexsort((rng.random(N), y))  # rows grouped by class, random inside each
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(N) - start[y[by_class]]
    return np.sort(by_class[rank < share[y[by_class]]])


def _summary(value):
    """A JSON-safe scalar standing for ``value`` (see ``Dataset.to_dict``)."""
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {value.shape}"
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
