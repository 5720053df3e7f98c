"""The operand of the curvature estimators: any symmetric ``P x P`` operator (a scipy
``LinearOperator`` such as a ``CurvatureOperator``, a sparse matrix, a dense numpy array or a
torch tensor) seen through float64 block products that count matrix-vector products
(:mod:`rmthess.curvature.eigen` states the conventions), and the record helper of the result
classes."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from rmthess._stats import json_safe

_CHUNK = 256  # columns per product when a LinearOperator is materialised


class _Op:
    """``A`` seen through ``matmat``; ``n_matvecs`` counts columns (matrix-vector products)."""

    def __init__(self, A, dense: np.ndarray | None, itemsize: int = 8):
        self._A, self._dense, self._itemsize = A, dense, itemsize
        self.shape = A.shape
        self.n_matvecs = 0
        self.bar: Any = None  # a tqdm bar counting products, while a caller sets one

    @property
    def P(self) -> int:
        return self.shape[0]

    def matmat(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        self.n_matvecs += X.shape[1]
        if self._dense is not None:
            return self._dense @ X
        Y = np.asarray(self._A.matmat(X), dtype=np.float64).reshape(self.P, X.shape[1])
        if not np.isfinite(Y).all():
            raise ValueError("A: the operator returned NaN or inf")
        if self.bar is not None:
            self.bar.update(X.shape[1])
        return Y

    def linear_operator(self):
        """A float64 scipy LinearOperator that counts through :meth:`matmat`."""
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(
            self.shape,
            matvec=lambda x: self.matmat(x)[:, 0],
            matmat=self.matmat,
            rmatvec=lambda x: self.matmat(x)[:, 0],
            dtype=np.float64,
        )

    def dense(self, name: str = "A") -> np.ndarray:
        """``A`` as a symmetric float64 array (``P`` products for an operator, none for an
        array); an operator whose materialisation is not symmetric is refused (tolerance by
        the operator's ``dtype``: a float32 operator is allowed float32 round-off)."""
        if self._dense is not None:
            return self._dense
        M = np.empty(self.shape)
        for j in range(0, self.P, _CHUNK):
            E = np.zeros((self.P, min(_CHUNK, self.P - j)))
            E[np.arange(j, j + E.shape[1]), np.arange(E.shape[1])] = 1.0
            M[:, j : j + E.shape[1]] = self.matmat(E)
        return _symmetric(M, name, self._itemsize)


def _itemsize(dtype) -> int:
    """Bytes per number of a numpy or torch dtype (8 when unknown)."""
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return int(getattr(dtype, "itemsize", 8))


def _is_complex(dtype) -> bool:
    try:
        return bool(np.issubdtype(np.dtype(dtype), np.complexfloating))
    except TypeError:
        return bool(getattr(dtype, "is_complex", False))


def _symmetric(M: np.ndarray, name: str, itemsize: int) -> np.ndarray:
    """Symmetric part of ``M``; refused when ``max|M - M^T| > tol max|M|`` with tol 1e-6
    for float64 sources and 1e-3 for lower precision (round-off of e.g. float32 products)."""
    tol = 1e-6 if itemsize >= 8 else 1e-3
    scale = float(np.abs(M).max()) if M.size else 0.0
    asym = float(np.abs(M - M.T).max()) if M.size else 0.0
    if asym > tol * scale:
        raise ValueError(
            f"{name} must be symmetric: max |{name} - {name}^T| = {asym:.3g} exceeds "
            f"{tol:g} x max |{name}| = {tol * scale:.3g}"
        )
    return 0.5 * (M + M.T)


def _as_operator(A, name: str = "A") -> _Op:
    """Check that ``A`` is a square real operator and wrap it (see the module docstring)."""
    if isinstance(A, _Op):
        return A
    torch = sys.modules.get("torch")
    src_dtype = None
    if torch is not None and isinstance(A, torch.Tensor):
        if A.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        src_dtype = A.dtype
        A = A.detach().cpu().double().numpy()
    from scipy import sparse
    from scipy.sparse.linalg import LinearOperator, aslinearoperator

    if sparse.issparse(A):
        A = aslinearoperator(A)
    if isinstance(A, LinearOperator):
        if len(A.shape) != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
            raise ValueError(f"{name} must be a square operator, got shape {A.shape}")
        dt = np.float64 if A.dtype is None else A.dtype
        if _is_complex(dt):
            raise TypeError(f"{name} must be real, got dtype {A.dtype}")
        return _Op(A, None, _itemsize(dt))
    if not isinstance(A, np.ndarray):
        raise TypeError(
            f"{name} must be a scipy LinearOperator, a numpy array or a torch tensor, "
            f"got {type(A).__name__}"
        )
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"{name} must be a square matrix, got shape {A.shape}")
    if not (np.issubdtype(A.dtype, np.floating) or np.issubdtype(A.dtype, np.integer)):
        raise TypeError(f"{name} must be a real matrix, got dtype {A.dtype}")
    M = np.asarray(A, dtype=np.float64)
    if not np.isfinite(M).all():
        raise ValueError(f"{name} contains NaN or inf")
    return _Op(M, _symmetric(M, name, _itemsize(A.dtype if src_dtype is None else src_dtype)))


def _record(obj, skip=()) -> dict:
    """The scalar fields of a result as a JSON-safe record (numpy scalars -> Python numbers,
    non-finite floats -> None). Array fields stay attributes (and go to ``to_frame()``);
    they, and the fields named in ``skip``, are left out."""
    rec = {
        k: v
        for k, v in obj.__dict__.items()
        if k not in skip and (v is None or isinstance(v, (str, bool, int, float, np.generic)))
    }
    return json_safe(rec)
