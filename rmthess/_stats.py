"""Small statistics helpers shared by theory and simulate (ground floor, math only)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["json_safe", "ols_slope", "ratio_stderr"]


def ratio_stderr(F_diag: float, F_off: float, var_diag: float, var_off: float, cov: float) -> float:
    """Delta-method standard error of ``r = sqrt(F_off / F_diag)`` from two correlated means.

    With ``var_diag``, ``var_off`` the variances of the estimates of ``F_diag``, ``F_off``
    (squared standard errors) and ``cov`` their covariance,

    ``var(log r) = (1/4) [var_off / F_off^2 + var_diag / F_diag^2 - 2 cov / (F_off F_diag)]``

    and ``se(r) = r sqrt(var(log r))`` (first order in the relative errors; a negative
    round-off value of ``var(log r)`` is clipped at 0). Returns ``nan`` unless both means
    are > 0.

    >>> round(ratio_stderr(4.0, 1.0, 0.0, 0.01, 0.0), 6)   # r = 1/2, se(F_off)/F_off = 0.1
    0.025
    """
    if not (F_diag > 0 and F_off > 0):
        return math.nan
    var_log = 0.25 * (var_off / F_off**2 + var_diag / F_diag**2 - 2 * cov / (F_off * F_diag))
    return math.sqrt(F_off / F_diag) * math.sqrt(max(var_log, 0.0))


def json_safe(record: dict) -> dict:
    """A copy of a flat record with non-finite floats replaced by None (valid JSON).

    Numbers of numpy types become Python numbers.

    >>> json_safe({"a": float("nan"), "b": 1.5, "c": "x"})
    {'a': None, 'b': 1.5, 'c': 'x'}
    """
    out = {}
    for k, v in record.items():
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            try:
                v = v.item()
            except (TypeError, ValueError):
                pass
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def ols_slope(logC: ArrayLike, logr: ArrayLike) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares line ``logr = intercept + slope logC``.

    Works on the last axis, so ``logr`` may be (B, n) for B replicates (then arrays).

    >>> import numpy as np
    >>> [round(float(v), 12) for v in ols_slope(np.log([1, 10, 100]), np.log([1, 0.1, 0.01]))]
    [-1.0, 0.0]
    """
    import numpy as np  # lazily: the ground floor imports nothing heavy

    x = np.asarray(logC, dtype=float)
    y = np.asarray(logr, dtype=float)
    xc = x - x.mean()
    slope = (y * xc).sum(axis=-1) / (xc**2).sum()
    intercept = y.mean(axis=-1) - slope * x.mean()
    return slope, intercept
