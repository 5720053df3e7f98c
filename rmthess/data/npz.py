"""Inputs and labels from a NumPy ``.npz`` archive, checked before anything is read.

The zip directory is read first: each member's declared (uncompressed) size, then its
``.npy`` header (dtype and shape), are checked against the memory before any array data is
read; a truncated archive, a bad CRC, a member whose header disagrees with its declared
size, N = 0 or labels out of range give one ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from rmthess._checks import check_int, check_memory
from rmthess.data.dataset import MAX_CLASSES, Dataset, check_path

__all__ = ["NPZ_X_KEYS", "NPZ_Y_KEYS", "load_npz"]

NPZ_X_KEYS = ("X", "x", "x_train", "images", "data")
"""Keys tried in order for the inputs of an ``.npz`` file when ``x_key`` is not given."""
NPZ_Y_KEYS = ("y", "Y", "y_train", "labels", "targets")
"""Keys tried in order for the labels of an ``.npz`` file when ``y_key`` is not given."""


def load_npz(
    path: str | os.PathLike[str],
    *,
    x_key: str | None = None,
    y_key: str | None = None,
    n_classes: int | None = None,
) -> Dataset:
    """Inputs and labels from a NumPy ``.npz`` archive (read with ``allow_pickle=False``).

    ``x_key``/``y_key`` name the arrays; when not given, the first key present among
    :data:`NPZ_X_KEYS` = ("X", "x", "x_train", "images", "data") and :data:`NPZ_Y_KEYS` =
    ("y", "Y", "y_train", "labels", "targets"). The inputs, of shape (N, ...) with at least
    2 dimensions and N >= 1, are flattened row-major to (N, d) float64 (images (N, h, w[,
    c]) give d = h w [c]); no scaling (``meta["x_min"]``, ``meta["x_max"]`` record their
    range). The labels are integers (or integral floats) of shape (N,) or (N, 1); one-hot
    (N, C) labels are refused (pass ``y.argmax(1)``). ``n_classes`` defaults to
    ``max(y) + 1``, at most :data:`rmthess.data.MAX_CLASSES`.

    Errors: ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file for a
    directory, a file that is not an ``.npz`` archive (or is truncated), a bad CRC, a key
    not found (the message lists the keys of the file), arrays of the wrong shape, an
    array larger than half the RAM (from the zip directory and ``.npy`` header, before
    reading), or a label outside ``[0, MAX_CLASSES)``; ``TypeError`` for a wrong argument
    type.
    """
    path = check_path("path", path)
    for name, key in (("x_key", x_key), ("y_key", y_key)):
        if key is not None and not isinstance(key, str):
            raise TypeError(f"{name} must be a str or None, got {type(key).__name__}")
    if n_classes is not None:
        n_classes = check_int("n_classes", n_classes, 1, MAX_CLASSES)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not an .npz file")
    with open(path, "rb") as f:  # FileNotFoundError for a missing file
        if f.read(6) == b"\x93NUMPY":
            raise ValueError(f"{path}: a single .npy array, not an .npz archive of X and y")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n.removesuffix(".npy"): n for n in zf.namelist() if n.endswith(".npy")}
            keys = list(members)
            x_key = _pick_key(path, "x_key", x_key, NPZ_X_KEYS, keys)
            y_key = _pick_key(path, "y_key", y_key, NPZ_Y_KEYS, keys)
            heads = {k: _header(path, zf, members[k], k) for k in (x_key, y_key)}
            need = sum(nbytes for _, _, nbytes in heads.values())
            xs = heads[x_key][0]
            check_memory(
                need + 8 * int(np.prod(xs, dtype=object)),  # the arrays, then float64 X
                f"{path}: arrays {x_key!r} {xs} and {y_key!r} {heads[y_key][0]}",
                "use a smaller file",
            )
            X = _read(path, zf, members[x_key], x_key)
            y = _read(path, zf, members[y_key], y_key)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from None
    if X.ndim < 2:
        raise ValueError(
            f"{path}: {x_key!r} must have shape (N, ...) with >= 2 dims, got {X.shape}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{path}: {x_key!r} holds no samples (shape {X.shape}); need N >= 1")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim != 1:
        raise ValueError(
            f"{path}: {y_key!r} must be 1-D integer labels, got shape {y.shape}"
            + (" (one-hot? pass y.argmax(1))" if y.ndim == 2 else "")
        )
    x_min, x_max = (float(X.min()), float(X.max())) if X.size else (0.0, 0.0)
    meta = {
        "source": "npz", "path": path, "x_key": x_key, "y_key": y_key, "x_shape": X.shape,
        "x_min": x_min, "x_max": x_max,
    }  # fmt: skip
    name = os.path.basename(path).removesuffix(".npz")
    try:
        return Dataset(X.reshape(X.shape[0], -1), y, n_classes, name, meta)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _header(path: str, zf: zipfile.ZipFile, member: str, key: str):
    """``(shape, dtype, nbytes)`` of a member from its zip entry and ``.npy`` header only."""
    info = zf.getinfo(member)
    check_memory(info.file_size, f"{path}: member {key!r} (declared {info.file_size} bytes)")
    with zf.open(member) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as exc:
            raise ValueError(f"{path}: member {key!r} is not a .npy array ({exc})") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ValueError(f"{path}: member {key!r} cannot be read ({exc})") from None
    if dtype.hasobject:
        raise ValueError(f"{path}: member {key!r} holds Python objects (dtype {dtype})")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > info.file_size:
        raise ValueError(
            f"{path}: member {key!r} is truncated or corrupt: its header promises shape "
            f"{shape} {dtype} ({nbytes} bytes), the archive declares {info.file_size} bytes"
        )
    return shape, dtype, nbytes


def _read(path: str, zf: zipfile.ZipFile, member: str, key: str) -> np.ndarray:
    try:
        with zf.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: member {key!r} cannot be read ({exc})") from None


def _pick_key(path: str, name: str, key, candidates, keys: list[str]) -> str:
    flag = "--" + name.replace("_", "-")
    if key is not None:
        if key not in keys:
            raise ValueError(f"{path}: no array {key!r} ({name}); the file holds {keys}")
        return key
    for cand in candidates:
        if cand in keys:
            return cand
    raise ValueError(
        f"{path}: none of {list(candidates)} found for {name}; the file holds {keys}: "
        f"pass {name}= (command line: {flag}) one of them"
    )
