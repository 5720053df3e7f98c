"""Extreme eigenvalues and the condition number of a symmetric curvature operator.

Every function takes ANY symmetric ``P x P`` operator ``A``: a
:class:`scipy.sparse.linalg.LinearOperator` (e.g. a ``CurvatureOperator``), a scipy sparse
matrix, a dense numpy array or a torch tensor (copied to a float64 numpy array). Only
products ``A X`` with float64 blocks ``X`` of shape ``(P, k)`` are used (each column is one
matrix-vector product, counted in ``n_matvecs``), except where a dense eigensolver is
explicitly chosen, which first materialises ``A`` from ``P`` unit vectors (free for an
array input). A dense input must be symmetric to ``1e-6`` (float64) or ``1e-3``
(lower precision) relative to its largest entry; its symmetric part is used. A
LinearOperator is assumed symmetric (not checked: that would cost matrix-vector products).

- :func:`top_eigenvalues`: ``k`` extreme eigenvalues by Lanczos stopped at a residual
  tolerance (:mod:`rmthess.curvature.lanczos`) or implicitly restarted Lanczos (ARPACK,
  :func:`scipy.sparse.linalg.eigsh`) at machine precision, with their residuals.
- :func:`condition_number`: ``lambda_max / lambda_min`` of a PSD operator restricted to
  its numerical range (dense).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_memory,
    check_progress,
    physical_memory,
    progress_bar,
)
from rmthess._random import check_seed, rng
from rmthess._stats import json_safe
from rmthess.curvature._operand import _as_operator, _record

if TYPE_CHECKING:
    import pandas as pd

    from rmthess.curvature._types import Operator

__all__ = ["Condition", "TopEigen", "condition_number", "top_eigenvalues"]

WHICH = ("LA", "SA", "LM")
"""Allowed ``which``: largest algebraic, smallest algebraic, largest magnitude."""
DENSE_BELOW = 32
"""Operators with ``P <= DENSE_BELOW`` use the dense eigensolver (ARPACK needs ``k < P``
and gains nothing on tiny problems)."""
RTOL_FLOOR = 10
""":func:`condition_number` needs ``rtol >= RTOL_FLOOR * P * eps``: :func:`numpy.linalg.eigvalsh`
places each eigenvalue within about ``P eps lambda_max`` (backward stable), so a smaller
threshold cannot tell a null-space eigenvalue from a small range one."""
DEFAULT_TOL = 1e-8
"""Default relative residual of :func:`top_eigenvalues` (``tol=0``: machine precision)."""


# ----------------------------------------------------------------------------- top eigenvalues
@dataclass
class TopEigen:
    """Result of :func:`top_eigenvalues`.

    Attributes
    ----------
    eigenvalues : (k,) descending for ``which="LA"``, ascending for ``"SA"``, by decreasing
        ``|lambda|`` for ``"LM"``.
    residuals : (k,) ``||A v - lambda v|| / max(|lambda|, P eps max|lambda|)`` of the
        returned unit vectors: read from the Lanczos recurrence (``method="lanczos"``, no
        products) or measured with one extra product ``A V`` (``k`` matvecs; ARPACK, dense).
        Near 1e-16 means converged to round-off; the floor keeps a zero eigenvalue's
        residual from dividing by zero.
    n_matvecs : products with ``A`` (materialisation, Lanczos, residual check).
    which, method : ``"lanczos"`` (stopped at ``tol``), ``"arpack"`` (implicitly restarted
        Lanczos) or ``"dense"`` (:func:`numpy.linalg.eigh`).
    vectors : (P, k) unit eigenvectors (``return_vectors=True``) or None.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    n_matvecs: int
    which: str
    method: str
    P: int
    seed: int
    vectors: np.ndarray | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        return len(self.eigenvalues)

    @property
    def max_residual(self) -> float:
        return float(self.residuals.max())

    def to_dict(self) -> dict:
        """JSON-safe scalars: ``k``, ``max_residual``, ``n_matvecs``, ``which``, ``method``,
        ``P``, ``seed`` (the eigenvalues and residuals are :meth:`to_frame`'s rows)."""
        return {**_record(self), **json_safe({"k": self.k, "max_residual": self.max_residual})}

    def to_frame(self) -> pd.DataFrame:
        """One row per eigenvalue: ``rank`` (1 = first returned), eigenvalue, residual."""
        import pandas as pd

        return pd.DataFrame(
            dict(
                rank=np.arange(1, self.k + 1),
                eigenvalue=self.eigenvalues,
                residual=self.residuals,
                which=self.which,
                method=self.method,
            )
        )


def _order(ev: np.ndarray, which: str) -> np.ndarray:
    if which == "LA":
        return np.argsort(-ev, kind="stable")
    if which == "SA":
        return np.argsort(ev, kind="stable")
    return np.argsort(-np.abs(ev), kind="stable")


def top_eigenvalues(
    A: Operator,
    k: int = 10,
    *,
    which: str = "LA",
    tol: float = DEFAULT_TOL,
    maxiter: int | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    progress: bool | None = None,
    method: str = "auto",
) -> TopEigen:
    """The ``k`` extreme eigenvalues of a symmetric operator ``A`` (P x P).

    ``method="lanczos"`` (the default for ``tol > 0``): Lanczos with full
    reorthogonalisation that stops as soon as every wanted Ritz pair has a relative residual
    ``<= tol``, the residuals read from the recurrence (no extra products;
    :mod:`rmthess.curvature.lanczos`); where ``max_steps`` (``min(P, max(20 k, 100))``) is
    reached first it falls back to ARPACK. ``method="arpack"`` (the default for ``tol = 0``,
    machine precision): implicitly restarted Lanczos (:func:`scipy.sparse.linalg.eigsh`),
    its residuals measured with ``k`` more products. Both start from ``v0 ~ N(0, I_P)`` of
    ``numpy.random.default_rng(seed)``, so results are reproducible by seed. For ``k >= P -
    1`` or ``P <= DENSE_BELOW`` the operator is materialised and :func:`numpy.linalg.eigh`
    is used (``method="dense"``).

    Parameters
    ----------
    A : symmetric operator (LinearOperator, numpy array, torch tensor; module docstring).
    k : number of eigenvalues, ``1 <= k <= P``.
    which : ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic, ``"LM"`` largest
        magnitude (Hessians are indefinite: ``"SA"`` finds the negative curvature).
    tol : relative residual at which to stop, >= 0 (default ``DEFAULT_TOL`` = 1e-8: the
        eigenvalues are then accurate to about ``tol^2 ||A|| / gap``; ``0``: machine
        precision, by ARPACK).
    maxiter : ARPACK restarts (None: ARPACK's default ``10 P``).
    method : ``"auto"`` (above), ``"lanczos"``, ``"arpack"`` or ``"dense"``.
    seed : start vector seed, an integer in ``[0, 2**128)`` (``rmthess._random.rng(seed)``:
        for an int the stream of ``numpy.random.default_rng(seed)``).
    return_vectors : also return the (P, k) eigenvectors.
    progress : a tqdm bar counting the products with an operator (None: when stderr is a
        terminal).

    Accuracy: with ``tol=0`` the eigenvalues agree with a dense solver to about
    ``1e-12 ||A||`` for separated extreme eigenvalues; clustered eigenvalues converge slowly
    (raise ``maxiter``). ``residuals`` measure it. ARPACK non-convergence raises
    ``RuntimeError`` (no partial result). The zero operator (ARPACK's start vector is then
    mapped to 0) has every eigenvalue 0: returned with orthonormal vectors, residuals 0.
    """
    which = check_choice("which", which, WHICH)
    tol = check_float("tol", tol, 0, None)
    method = check_choice("method", method, ("auto", "lanczos", "arpack", "dense"))
    if maxiter is not None:
        maxiter = check_int("maxiter", maxiter, 1)
    seed = check_seed(seed)
    return_vectors = check_bool("return_vectors", return_vectors)
    progress = check_progress(progress)
    op = _as_operator(A)
    k = check_int("k", k, 1, op.P)
    dense = method == "dense" or k >= op.P - 1 or op.P <= DENSE_BELOW
    if method == "auto":
        method = "lanczos" if tol > 0 else "arpack"
    steps = min(op.P, max(20 * k, 100))
    ncv = op.P if dense else min(op.P, max(2 * k + 1, 20))  # eigsh's default ncv
    if method == "lanczos":
        ncv = max(ncv, steps + 1)
    check_memory(
        8.0 * op.P * (ncv + 2 * k + (op.P if dense else 0)),
        f"top_eigenvalues(k={k}) of a {op.P} x {op.P} operator",
        "lower k",
    )
    op.bar = progress_bar(progress, desc="top eigenvalues", unit="HVP")
    try:
        res = None
        if dense:
            method = "dense"
            ev, V = np.linalg.eigh(op.dense())
            idx = _order(ev, which)[:k]
        else:
            if method == "lanczos":
                from rmthess.curvature.lanczos import lanczos_extreme

                ev, V, res, ok = lanczos_extreme(op.matmat, op.P, k, which, tol, steps, seed)
                if not ok:  # not converged within max_steps: ARPACK restarts
                    method, res = "arpack", None
            if method == "arpack":
                ev, V = _arpack(op, k, which, tol, maxiter, seed)
            idx = _order(ev, which)
        ev, V = ev[idx], V[:, idx]
        if res is None:
            R = op.matmat(V) - V * ev
        else:
            res = res[idx]
    finally:
        op.bar.close()
        op.bar = None
    if res is None:
        floor = op.P * np.finfo(float).eps * float(np.abs(ev).max())
        res = np.linalg.norm(R, axis=0) / np.maximum(np.abs(ev), max(floor, np.finfo(float).tiny))
    return TopEigen(
        eigenvalues=ev,
        residuals=res,
        n_matvecs=op.n_matvecs,
        which=which,
        method=method,
        P=op.P,
        seed=seed,
        vectors=V if return_vectors else None,
    )


def _arpack(op, k, which, tol, maxiter, seed):
    """``eigsh`` on ``op`` from ``v0 ~ N(0, I)`` of stream ``seed``; the zero operator (ARPACK
    error -9: ``A v0 = 0``) gives zeros."""
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

    v0 = rng(seed).standard_normal(op.P)
    try:
        return eigsh(op.linear_operator(), k=k, which=which, tol=tol, maxiter=maxiter, v0=v0)
    except ArpackNoConvergence as exc:
        raise RuntimeError(
            f"top_eigenvalues: ARPACK found only {len(exc.eigenvalues)} of k={k} "
            f"eigenvalues ({which}) after maxiter={maxiter} restarts; raise maxiter or tol"
        ) from None
    except ArpackError as exc:
        if not str(exc).startswith("ARPACK error -9:"):
            raise
    # A v0 = 0 for a random v0: A is 0 with probability 1; confirm on k fresh vectors
    V, _ = np.linalg.qr(rng(seed, "zero-operator").standard_normal((op.P, k)))
    if np.abs(op.matmat(V)).max() > 0:
        raise RuntimeError(
            "top_eigenvalues: ARPACK's start vector lies in the null space of A (error -9); "
            "use another seed"
        )
    return np.zeros(k), V


# ----------------------------------------------------------------------------- condition number
@dataclass
class Condition:
    """Result of :func:`condition_number`.

    ``condition = lambda_max / lambda_min_range`` where ``lambda_min_range`` is the smallest
    eigenvalue above ``threshold = rtol * lambda_max``; ``rank_estimate`` counts the
    eigenvalues above ``threshold``; ``lambda_min`` is the smallest eigenvalue overall
    (round-off negative values included). ``condition`` is nan for the zero operator.
    """

    condition: float
    lambda_max: float
    lambda_min_range: float
    lambda_min: float
    threshold: float
    rank_estimate: int
    rtol: float
    P: int
    n_matvecs: int
    method: str = "dense"

    def to_dict(self) -> dict:
        return _record(self)

    def to_frame(self) -> pd.DataFrame:
        """One row (all fields)."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


_INDEFINITE = (
    "the condition number of an indefinite operator (a Hessian away from a minimum) is not "
    "meaningful: lambda_max / lambda_min mixes the signs and |lambda| near 0 dominates. "
    "Report the extreme eigenvalues instead: top_eigenvalues(A, which='LA') and "
    "top_eigenvalues(A, which='SA'), e.g. the ratio lambda_max / |lambda_min|"
)


def condition_number(
    A: Operator, *, psd: bool = True, rtol: float = 1e-6, max_dense: int = 4000
) -> Condition:
    """Condition number of a symmetric PSD operator (a GGN) restricted to its range.

    A GGN ``G = J^T H_out J`` is PSD with a large null space (rank at most ``N C`` and at
    most the number of parameters), so ``lambda_max / lambda_min`` is infinite or round-off
    noise. On its numerical range ``{v : v in span of eigenvectors with lambda > rtol
    lambda_max}`` the operator is invertible and its condition number is::

        kappa = lambda_max / min{lambda_i : lambda_i > rtol * lambda_max}

    the quantity that governs e.g. conjugate gradients started in the range. The smallest
    eigenvalue above a threshold cannot be found reliably by Lanczos without factorising
    the operator (it sits next to the huge null-space cluster at 0), so it is computed
    DENSELY: ``A`` is materialised from ``P`` unit vectors and :func:`numpy.linalg.eigvalsh`
    gives every eigenvalue (accurate to about ``1e-15 lambda_max`` each; eigenvalues below
    ``rtol lambda_max`` are treated as the null space, hence ``rtol`` must exceed that).

    Parameters
    ----------
    A : symmetric operator (module docstring), ``P <= max_dense``.
    psd : must be True; ``False`` raises ``ValueError`` (indefinite: not meaningful, use
        :func:`top_eigenvalues` with ``which="SA"``). A supposedly PSD operator with an
        eigenvalue below ``-rtol * lambda_max`` raises the same error.
    rtol : relative threshold in ``[RTOL_FLOOR P eps, 1)`` separating the range from the
        null space (a smaller one would count round-off of the null space as range).
    max_dense : largest ``P`` materialised (default 4000: 128 MB, a few seconds); larger
        operators are refused before any product.
    """
    psd = check_bool("psd", psd)
    if not psd:
        raise ValueError(f"condition_number(psd=False): {_INDEFINITE}")
    rtol = check_float("rtol", rtol, 0, 1, closed="neither")
    max_dense = check_int("max_dense", max_dense, 1)
    op = _as_operator(A)
    rtol_min = RTOL_FLOOR * op.P * np.finfo(float).eps
    if rtol < rtol_min:
        raise ValueError(
            f"rtol must be >= {RTOL_FLOOR} P eps = {rtol_min:.3g} for P={op.P} (below it the "
            f"threshold is within the dense eigensolver's round-off of 0), got {rtol!r}"
        )
    if op.P > max_dense:
        raise ValueError(
            f"condition_number needs every eigenvalue (the smallest nonzero one is not "
            f"reachable by Lanczos), so it materialises A: P={op.P} exceeds max_dense="
            f"{max_dense}. Raise max_dense if {op.P}^2 float64 fit in memory, or report "
            f"top_eigenvalues(A) instead"
        )
    mem = physical_memory()
    if mem is not None and 3 * 8 * op.P**2 > mem:
        raise ValueError(f"condition_number: P={op.P} needs {24 * op.P**2 / 1e9:.3g} GB")
    ev = np.linalg.eigvalsh(op.dense())
    lmax, lmin = float(ev[-1]), float(ev[0])
    threshold = rtol * max(lmax, 0.0)
    if lmin < -threshold:
        raise ValueError(
            f"condition_number: A is indefinite (lambda_min = {lmin:.6g} < -rtol * "
            f"lambda_max = {-threshold:.6g}); {_INDEFINITE}"
        )
    rng_ev = ev[ev > threshold]
    lrange = float(rng_ev[0]) if len(rng_ev) and lmax > 0 else math.nan
    return Condition(
        condition=lmax / lrange if lmax > 0 else math.nan,
        lambda_max=lmax,
        lambda_min_range=lrange,
        lambda_min=lmin,
        threshold=threshold,
        rank_estimate=int(len(rng_ev)) if lmax > 0 else 0,
        rtol=rtol,
        P=op.P,
        n_matvecs=op.n_matvecs,
    )
