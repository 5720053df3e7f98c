"""One coercion of user data at the public edge: :func:`as_xy` and :func:`as_dataset`.

Every public function of :mod:`rmthess.landscape` that takes ``data`` calls one of these
once and works on the result; nothing converts it again on the way down. Accepted:

- an :class:`~rmthess.data.Dataset` (its read-only arrays, no copy);
- an ``(X, y)`` pair (tuple or list) of numpy arrays, torch tensors or array-likes;
- a ``torch.utils.data.Dataset`` of ``(x_i, y_i)`` samples (``TensorDataset``...): the
  samples are stacked;
- a ``DataLoader`` or any other iterable of ``(X, y)`` batches: the batches are
  concatenated in order.

torch is never imported here; tensors are recognised by their type's module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeGuard, cast

import numpy as np
import numpy.typing as npt

from rmthess.data.dataset import Dataset


class SampleDataset(Protocol):
    """A map-style ``torch.utils.data.Dataset``: ``ds[i]`` is the sample ``(x_i, y_i)``, and
    ``len(ds)`` the number of samples (one without ``__len__`` is refused)."""

    def __getitem__(self, index: int, /) -> Any: ...

    def __len__(self) -> int: ...


DataLike = (
    Dataset | tuple[npt.ArrayLike, npt.ArrayLike] | Sequence[Any] | Iterable[Any] | SampleDataset
)
"""What :func:`as_xy` and :func:`as_dataset` accept: a :class:`Dataset`, an ``(X, y)`` pair of
arrays, tensors or array-likes, a ``torch.utils.data.Dataset`` of ``(x_i, y_i)`` samples or
an iterable of ``(X, y)`` batches."""

__all__ = ["as_dataset", "as_xy", "is_sample_dataset"]


def _is_tensor(a) -> bool:
    return type(a).__module__.startswith("torch") and hasattr(a, "detach")


def _array(a, what: str) -> np.ndarray:
    if _is_tensor(a):
        a = a.detach()
        if a.dtype.is_floating_point and a.element_size() < 4:  # bfloat16/float16: no numpy
            a = a.float()
        return a.cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be an array or tensor, got {type(a).__name__}") from exc


def _is_batch(item) -> bool:
    """An ``(X, y)`` batch of arrays/tensors (not a row of a nested-list ``X``)."""
    return (
        isinstance(item, tuple | list) and len(item) == 2 and all(hasattr(a, "shape") for a in item)
    )


def _pair(item, what: str):
    if not (isinstance(item, tuple | list) and len(item) == 2):
        raise TypeError(f"{what} must be an (X, y) pair, got {type(item).__name__}")
    return item


def is_sample_dataset(data: object) -> TypeGuard[SampleDataset]:
    """True for a map-style ``torch.utils.data.Dataset`` (indexable samples, not batches)."""
    return type(data).__module__.startswith("torch.utils.data") and hasattr(data, "__getitem__")


def as_xy(data: DataLike, name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` numpy arrays of ``data`` (see the module docstring for what is accepted).

    ``X`` has at least one dimension and ``N >= 1`` rows, real numbers (bools and integers
    are fine; the caller converts); ``y`` has the same number of rows. No copy for a
    ``Dataset`` or numpy arrays; tensors are moved to the CPU. Errors name ``name``:
    ``TypeError`` for something that is not data, ``ValueError`` for an empty data set or
    ``X`` and ``y`` of different lengths.
    """
    if isinstance(data, Dataset):
        return data.X, data.y
    if isinstance(data, tuple | list) and len(data) == 2 and not all(map(_is_batch, data)):
        X, y = (_array(a, f"{name}: {w}") for a, w in zip(data, "Xy", strict=True))
    elif is_sample_dataset(data):
        if not hasattr(data, "__len__") or len(data) == 0:
            raise ValueError(f"{name} is empty: the torch Dataset has no samples; need N >= 1")
        items = [_pair(data[i], f"{name}[{i}]") for i in range(len(data))]
        X = np.stack([_array(x, f"{name}: X") for x, _ in items])
        y = np.stack([_array(t, f"{name}: y") for _, t in items])
    elif hasattr(data, "__iter__") and not isinstance(data, str | bytes | dict | np.ndarray):
        batches = [
            _pair(b, f"{name}: batch {i}") for i, b in enumerate(cast("Iterable[Any]", data))
        ]
        if not batches:
            raise ValueError(f"{name} is empty: no (X, y) batch; need N >= 1")
        X = np.concatenate([_array(b[0], f"{name}: X") for b in batches])
        y = np.concatenate([_array(b[1], f"{name}: y") for b in batches])
    else:
        raise TypeError(
            f"{name} must be an rmthess.data.Dataset, an (X, y) pair of arrays or tensors, a "
            f"torch Dataset or an iterable of (X, y) batches (a DataLoader), got "
            f"{type(data).__name__}"
        )
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"{name} is empty: X has shape {X.shape}; need N >= 1 samples")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name}: X must hold real numbers, got dtype {X.dtype}")
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name}: X has shape {X.shape} and y has shape {y.shape}: "
            "y must have one entry per row of X"
        )
    return X, y


def as_dataset(data: DataLike, n_classes: int | None = None, name: str = "data") -> Dataset:
    """``data`` as a :class:`Dataset` (class labels ``y``, inputs flattened to (N, d)).

    A ``Dataset`` is returned as it is (``n_classes``, if given, must equal its own);
    anything :func:`as_xy` accepts is checked by ``Dataset`` (finite ``X``, integer labels in
    ``[0, n_classes)``, ``n_classes`` by default ``max(y) + 1``), with errors prefixed by
    ``name``.
    """
    if isinstance(data, Dataset):
        if n_classes is not None and n_classes != data.n_classes:
            raise ValueError(
                f"n_classes = {n_classes} disagrees with the data set's {data.n_classes}"
            )
        return data
    X, y = as_xy(data, name)
    try:
        return Dataset(X.reshape(X.shape[0], -1), y, n_classes, name)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
