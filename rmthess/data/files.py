"""Data sets read from disk: scikit-learn's bundled digits, IDX (MNIST) and ``.npz`` files.

Nothing is downloaded: ``digits`` ships inside the scikit-learn wheel, the other loaders
read files the user already has.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from rmthess._checks import check_int
from rmthess.data.dataset import Dataset, _check_bool

__all__ = ["IDX_IMAGES", "IDX_LABELS", "NPZ_X_KEYS", "NPZ_Y_KEYS", "digits", "load_idx", "load_npz"]

IDX_IMAGES = 0x00000803
"""Magic number of an IDX image file: unsigned bytes (0x08), 3 dimensions (N, rows, cols)."""
IDX_LABELS = 0x00000801
"""Magic number of an IDX label file: unsigned bytes (0x08), 1 dimension (N,)."""
NPZ_X_KEYS = ("X", "x", "x_train", "images", "data")
"""Keys tried in order for the inputs of an ``.npz`` file when ``x_key`` is not given."""
NPZ_Y_KEYS = ("y", "Y", "y_train", "labels", "targets")
"""Keys tried in order for the labels of an ``.npz`` file when ``y_key`` is not given."""


def digits(*, scale: bool = True) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (``sklearn.datasets.load_digits``; UCI optdigits
    test set), bundled in the scikit-learn wheel: no download.

    N = 1797 images, d = 64 pixels (8x8 flattened row-major), C = 10 classes (digits 0..9,
    174 to 183 images each). Pixels are integers 0..16; ``scale=True`` divides them by 16 so
    ``X`` lies in [0, 1] (max exactly 1.0). Imports scikit-learn on call.
    """
    _check_bool("scale", scale)
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


# ----------------------------------------------------------------------------- IDX
def load_idx(images, labels, *, scale: bool = True, limit: int | None = None) -> Dataset:
    """MNIST-format (IDX) image and label files, plain or gzip-compressed (detected from the
    gzip magic bytes, whatever the file name).

    Format (big-endian): magic ``0x00000803``, then N, rows, cols as uint32, then
    ``N * rows * cols`` uint8 pixels row-major (images); magic ``0x00000801``, then N as
    uint32, then N uint8 labels (labels). This is the layout of MNIST and Fashion-MNIST.

    Returns ``X`` of shape (N, rows * cols) (images flattened row-major), pixels 0..255,
    divided by 255 (``X`` in [0, 1]) when ``scale=True``; ``n_classes`` is 1 + the largest
    label of the whole label file (10 for MNIST), even with ``limit``. ``limit``: keep the
    first ``limit`` samples (all when ``limit >= N``; None keeps all).

    Errors: ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file for a
    wrong magic number (e.g. images and labels swapped), a file shorter than its header
    promises ("truncated"), bytes after the data, a corrupt gzip stream, or image and label
    files with different N.
    """
    images = _check_path("images", images)
    labels = _check_path("labels", labels)
    _check_bool("scale", scale)
    if limit is not None:
        limit = check_int("limit", limit, 1)
    y = _read_idx(labels, IDX_LABELS)
    X = _read_idx(images, IDX_IMAGES)
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"images and labels differ in N: {images} holds {X.shape[0]} images, "
            f"{labels} holds {y.shape[0]} labels"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{images} holds no images (N = 0)")
    n_classes = int(y.max()) + 1
    n = X.shape[0] if limit is None else min(limit, X.shape[0])
    rows, cols = X.shape[1:]
    X = X[:n].reshape(n, rows * cols).astype(np.float64)
    if scale:
        X /= 255.0
    name = os.path.basename(images)
    meta = {
        "source": "idx",
        "images": images,
        "labels": labels,
        "image_shape": (rows, cols),
        "scale": scale,
        "limit": limit,
    }
    return Dataset(X, y[:n], n_classes, name.removesuffix(".gz"), meta)


def _read_idx(path: str, magic: int) -> np.ndarray:
    """The uint8 array of an IDX file whose magic number must be ``magic``."""
    what = "image" if magic == IDX_IMAGES else "label"
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise ValueError(f"{path}: truncated IDX {what} file: {len(data)} bytes, no header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        hint = ""
        if found in (IDX_IMAGES, IDX_LABELS):
            other = "image" if found == IDX_IMAGES else "label"
            hint = f" (it is an IDX {other} file: are images and labels swapped?)"
        raise ValueError(
            f"{path}: wrong magic number 0x{found:08x} for an IDX {what} file, "
            f"expected 0x{magic:08x} (uint8, {ndim} dimension{'s' * (ndim > 1)}){hint}"
        )
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX {what} file: {len(data)} bytes, header needs {header}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    body = len(data) - header
    if body < size:
        raise ValueError(
            f"{path}: truncated IDX {what} file: header promises shape {dims} "
            f"({size} bytes of data), found {body}"
        )
    if body > size:
        raise ValueError(
            f"{path}: {body - size} unexpected bytes after the data of shape {dims} "
            f"(not an IDX {what} file?)"
        )
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)


def _read_bytes(path: str) -> bytes:
    """All bytes of ``path``, gunzipped when it starts with the gzip magic ``1f 8b``."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({exc})") from None


def _check_path(name: str, value) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return os.fspath(value)


# ----------------------------------------------------------------------------- npz
def load_npz(path, *, x_key: str | None = None, y_key: str | None = None, n_classes=None):
    """Inputs and labels from a NumPy ``.npz`` archive (read with ``allow_pickle=False``).

    ``x_key``/``y_key`` name the arrays; when not given, the first key present among
    :data:`NPZ_X_KEYS` = ("X", "x", "x_train", "images", "data") and :data:`NPZ_Y_KEYS` =
    ("y", "Y", "y_train", "labels", "targets"). The inputs, of shape (N, ...) with at least
    2 dimensions, are flattened row-major to (N, d) float64 (images (N, h, w[, c]) give
    d = h w [c]); no scaling. The labels are integers (or integral floats) of shape (N,) or
    (N, 1); one-hot (N, C) labels are refused (pass ``y.argmax(1)``). ``n_classes``
    defaults to ``max(y) + 1``.

    Errors: ``FileNotFoundError`` for a missing file; ``ValueError`` for a file that is
    not an ``.npz`` archive, a key not found (the message lists the keys of the file), or
    arrays of the wrong shape; ``TypeError`` for a wrong argument type.
    """
    path = _check_path("path", path)
    for name, key in (("x_key", x_key), ("y_key", y_key)):
        if key is not None and not isinstance(key, str):
            raise TypeError(f"{name} must be a str or None, got {type(key).__name__}")
    if n_classes is not None:
        n_classes = check_int("n_classes", n_classes, 1)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, not an .npz archive of X and y")
    with archive:
        keys = list(archive.files)
        x_key = _pick_key(path, "x_key", x_key, NPZ_X_KEYS, keys)
        y_key = _pick_key(path, "y_key", y_key, NPZ_Y_KEYS, keys)
        X = archive[x_key]
        y = archive[y_key]
    if X.ndim < 2:
        raise ValueError(
            f"{path}: {x_key!r} must have shape (N, ...) with >= 2 dims, got {X.shape}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim != 1:
        raise ValueError(
            f"{path}: {y_key!r} must be 1-D integer labels, got shape {y.shape}"
            + (" (one-hot? pass y.argmax(1))" if y.ndim == 2 else "")
        )
    meta = {"source": "npz", "path": path, "x_key": x_key, "y_key": y_key, "x_shape": X.shape}
    name = os.path.basename(path).removesuffix(".npz")
    return Dataset(X.reshape(X.shape[0], -1), y, n_classes, name, meta)


def _pick_key(path: str, name: str, key, candidates, keys: list[str]) -> str:
    if key is not None:
        if key not in keys:
            raise ValueError(f"{path}: no array {key!r} ({name}); the file holds {keys}")
        return key
    for cand in candidates:
        if cand in keys:
            return cand
    raise ValueError(
        f"{path}: none of {list(candidates)} found for {name}; the file holds {keys}: "
        f"pass {name}= one of them"
    )
