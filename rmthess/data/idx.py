"""MNIST-format (IDX) files, plain or gzip-compressed, read as a stream.

The header is read first; it fixes the number of bytes to expect, which is checked against
the memory before anything else is read, then exactly that many bytes are read (and
decompressed), and one more byte is asked for to check that the stream ends there. A
gzip "bomb" (a small file that decompresses to gigabytes) is thus refused after reading
one byte past the promised data, never decompressed in full.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib

import numpy as np

from rmthess._checks import check_bool, check_int, check_memory
from rmthess.data.dataset import Dataset, check_path

__all__ = ["IDX_IMAGES", "IDX_LABELS", "load_idx"]

IDX_IMAGES = 0x00000803
"""Magic number of an IDX image file: unsigned bytes (0x08), 3 dimensions (N, rows, cols)."""
IDX_LABELS = 0x00000801
"""Magic number of an IDX label file: unsigned bytes (0x08), 1 dimension (N,)."""
_BLOCK = 2**24  # bytes read per call
_PROBE = 2**16  # bytes asked for after the data (any is an error)


def load_idx(
    images: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    *,
    scale: bool = True,
    limit: int | None = None,
) -> Dataset:
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
    directory, a wrong magic number (e.g. images and labels swapped), a stream shorter than
    its header promises ("truncated"), bytes after the data (read no further than one byte
    past it), a corrupt gzip stream, a header promising more than half the RAM, or image
    and label files with different N.
    """
    images = check_path("images", images)
    labels = check_path("labels", labels)
    check_bool("scale", scale)
    if limit is not None:
        limit = check_int("limit", limit, 1)
    y = _read_idx(labels, IDX_LABELS)
    X = _read_idx(images, IDX_IMAGES, n_expected=y.shape[0], other=labels)
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


def _read_idx(path: str, magic: int, n_expected: int | None = None, other=None) -> np.ndarray:
    """The uint8 array of an IDX file whose magic number must be ``magic``."""
    what = "image" if magic == IDX_IMAGES else "label"
    ndim = magic & 0xFF
    with _open(path) as f:
        head = _read(f, path, 4)
        if len(head) < 4:
            raise ValueError(f"{path}: truncated IDX {what} file: {len(head)} bytes, no header")
        (found,) = struct.unpack(">I", head)
        if found != magic:
            hint = ""
            if found in (IDX_IMAGES, IDX_LABELS):
                kind = "image" if found == IDX_IMAGES else "label"
                hint = f" (it is an IDX {kind} file: are images and labels swapped?)"
            raise ValueError(
                f"{path}: wrong magic number 0x{found:08x} for an IDX {what} file, "
                f"expected 0x{magic:08x} (uint8, {ndim} dimension{'s' * (ndim > 1)}){hint}"
            )
        raw = _read(f, path, 4 * ndim)
        if len(raw) < 4 * ndim:
            raise ValueError(
                f"{path}: truncated IDX {what} file: {4 + len(raw)} bytes, header needs "
                f"{4 + 4 * ndim}"
            )
        dims = struct.unpack(f">{ndim}I", raw)
        if n_expected is not None and dims[0] != n_expected:
            raise ValueError(
                f"images and labels differ in N: {path} holds {dims[0]} images, "
                f"{other} holds {n_expected} labels"
            )
        size = int(np.prod(dims, dtype=object))
        check_memory(
            9 * size,  # the bytes, then float64 pixels
            f"{path}: IDX {what} file of shape {dims}",
            "the header promises more data than fits (a corrupt or foreign file?)",
        )
        buf = bytearray(size)
        got = _read_into(f, path, memoryview(buf))
        if got < size:
            raise ValueError(
                f"{path}: truncated IDX {what} file: header promises shape {dims} "
                f"({size} bytes of data), found {got}"
            )
        extra = _read_into(f, path, memoryview(bytearray(_PROBE)))
        if extra:
            count = f"{extra}" if extra < _PROBE else f"at least {extra} (read no further)"
            raise ValueError(
                f"{path}: {count} unexpected bytes after the data of shape {dims} "
                f"(not an IDX {what} file?)"
            )
    return np.frombuffer(buf, dtype=np.uint8).reshape(dims)


@contextlib.contextmanager
def _open(path: str):
    """A binary stream of ``path``, gunzipped when it starts with the gzip magic ``1f 8b``."""
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not an IDX file")
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            f.seek(0)
            yield f
            return
        f.seek(0)
        with gzip.GzipFile(fileobj=f, mode="rb") as g:
            yield g


def _read(f, path: str, n: int) -> bytes:
    """Up to ``n`` bytes of ``f`` (fewer only at the end of the stream)."""
    buf = bytearray(n)
    return bytes(buf[: _read_into(f, path, memoryview(buf))])


def _read_into(f, path: str, view: memoryview) -> int:
    """Fill ``view`` from ``f`` (block by block); the number of bytes read (short at the end)."""
    got = 0
    try:
        while got < len(view):
            k = f.readinto(view[got : got + _BLOCK])
            if not k:
                break
            got += k
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    return got
