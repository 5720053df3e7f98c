"""Small statistics helpers shared by theory and simulate (ground floor, math only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import numpy as np
    from numpy.typing import ArrayLike

__all__ = [
    "SlopeBootstrap",
    "bootstrap_slope",
    "format_estimate",
    "json_safe",
    "ols_slope",
    "ratio_stderr",
    "summarize_pairs",
]


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


def summarize_pairs(per: ArrayLike) -> dict:
    """Means, standard errors and block ratio of independent draws of ``(F_diag, F_off)``.

    ``per`` has shape ``(n, 2)`` (n >= 2 draws, e.g. one per network). Returns ``F_diag``,
    ``F_off``, their standard errors ``F_diag_se``, ``F_off_se`` (``std / sqrt(n)``), the
    ratio of the means ``ratio = sqrt(F_off / F_diag)`` and its delta-method error
    ``ratio_se`` (:func:`ratio_stderr`, with the covariance of the two means). An exactly
    block-diagonal estimate (``F_off = 0``, e.g. MSE) has ``ratio = ratio_se = 0``;
    ``F_diag <= 0`` or ``F_off < 0`` gives ``nan``.

    >>> r = summarize_pairs([[4.0, 1.0], [4.0, 1.0]])
    >>> r["ratio"], r["ratio_se"], r["F_off_se"]
    (0.5, 0.0, 0.0)
    """
    import numpy as np

    arr = np.asarray(per, dtype=float)
    n = arr.shape[0]
    mean = arr.mean(axis=0)
    cov = np.cov(arr.T, ddof=1) / n
    Fd, Fo = float(mean[0]), float(mean[1])
    ok = Fd > 0 and Fo >= 0
    return {
        "F_diag": Fd,
        "F_off": Fo,
        "ratio": math.sqrt(Fo / Fd) if ok else math.nan,
        "F_diag_se": float(math.sqrt(cov[0, 0])),
        "F_off_se": float(math.sqrt(cov[1, 1])),
        "ratio_se": (0.0 if Fo == 0 else ratio_stderr(Fd, Fo, cov[0, 0], cov[1, 1], cov[0, 1]))
        if ok
        else math.nan,
    }


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


@dataclass(frozen=True)
class SlopeBootstrap:
    """Result of :func:`bootstrap_slope`: the OLS ``slope`` and ``intercept`` of the data,
    the bootstrap standard error ``se`` (``std(boot, ddof=1)``), the percentile interval
    ``ci = (lo, hi)`` at the requested level and the replicate slopes ``boot`` (non-finite
    where a replicate's ``y`` is not finite: the caller decides)."""

    slope: float
    intercept: float
    se: float
    ci: tuple
    boot: object


def bootstrap_slope(
    x: ArrayLike, groups: Iterable[ArrayLike],
    y_of_means: Callable[[np.ndarray], np.ndarray] | None = None, *, n_boot: int,
    level: float = 0.95, rng: np.random.Generator | int | None = None,
    chunk_elems: int = 2**23,
) -> SlopeBootstrap:  # fmt: skip
    """Least-squares slope of ``y`` on ``x``, ``y`` a function of means over independent
    units, with a percentile bootstrap that resamples the units (the one bootstrap slope
    fit of rmthess: :func:`rmthess.simulate.fits.fit_decay` and
    :func:`rmthess.landscape.delta.fit_rate`).

    Parameters
    ----------
    x : (n,) abscissae (e.g. ``log C``, ``log k``).
    groups : sequence of 2-D arrays ``(R_g, k_g)``: group ``g`` holds ``R_g`` independent
        units (rows) of ``k_g`` values each. A replicate resamples the rows of every group
        with replacement (independently per group, as multinomial counts ``W_g`` drawn by
        ``rng.multinomial(R_g, [1/R_g] * R_g)``; ``rng`` itself for one group, its
        ``rng.spawn`` children for several), and averages them: ``W_g @ group / R_g``.
    y_of_means : maps the concatenated group means, shape ``(..., sum k_g)``, to ``y`` of
        shape ``(..., n)``; default ``numpy.log`` (one group of ``n`` columns).
    n_boot : replicates. level : confidence level of the percentile interval.
    rng : a ``numpy.random.Generator`` or a seed (:func:`rmthess._random.rng`).
    chunk_elems : replicates are formed ``chunk_elems // (sum R_g + sum k_g)`` at a time
        (bounded memory; the resampling does not depend on it, the numbers only to
        round-off).

    >>> import numpy as np
    >>> T = np.exp(-np.log([1.0, 2, 4, 8])) * np.random.default_rng(0).uniform(0.5, 1.5, (30, 1))
    >>> b = bootstrap_slope(np.log([1.0, 2, 4, 8]), [T], n_boot=200, rng=0)
    >>> round(b.slope, 12), round(b.se, 12) == 0   # every unit has slope -1 exactly
    (-1.0, True)
    """
    import numpy as np

    from rmthess._random import rng as _rng

    x = np.asarray(x, dtype=float)
    units = [np.asarray(g, dtype=float) for g in groups]
    if y_of_means is None:
        y_of_means = np.log
    gen = _rng(rng)
    slope, icpt = ols_slope(x, y_of_means(np.concatenate([g.mean(axis=0) for g in units])))
    sizes = [g.shape[0] for g in units]
    gens = [gen] if len(units) == 1 else gen.spawn(len(units))  # one stream per group
    boot = np.empty(n_boot)
    step = max(1, chunk_elems // (sum(sizes) + sum(g.shape[1] for g in units)))
    for i in range(0, n_boot, step):
        b = min(step, n_boot - i)
        M = [
            gg.multinomial(R, np.full(R, 1.0 / R), size=b) @ g / R
            for gg, R, g in zip(gens, sizes, units, strict=True)
        ]
        with np.errstate(divide="ignore", invalid="ignore"):
            boot[i : i + b] = ols_slope(x, y_of_means(np.concatenate(M, axis=-1)))[0]
    alpha = (1 - level) / 2
    if np.all(np.isfinite(boot)):
        lo, hi = np.quantile(boot, [alpha, 1 - alpha])
        se = float(boot.std(ddof=1))
    else:
        lo = hi = se = math.nan
    return SlopeBootstrap(float(slope), float(icpt), se, (float(lo), float(hi)), boot)


def format_estimate(x: float | None, se: float | None = None, digits: int = 10) -> str:
    """``x`` to the precision its standard error ``se`` supports: ``x`` rounded at the
    second significant digit of ``se``, followed by ``+- se`` (2 digits; scientific form
    ``(m +- s)e<exp>`` outside ``1e-3 .. 1e6``). ``se`` None, 0 or
    non-finite (an exact value): ``x`` to ``digits`` significant digits. Non-finite ``x`` as
    ``nan``/``inf``; None as ``-``.

    >>> format_estimate(0.123456789, 0.0012)
    '0.1235 +- 0.0012'
    >>> format_estimate(1234.5678, 23.0)
    '1235 +- 23'
    >>> format_estimate(2.3e-7, 1.1e-9)
    '(2.300 +- 0.011)e-07'
    >>> format_estimate(1.5, 0.0)
    '1.5'
    """
    if x is None:
        return "-"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if se is None or not math.isfinite(float(se)) or float(se) <= 0.0:
        return f"{x:.{digits}g}"
    se = float(se)
    e = int(math.floor(math.log10(max(abs(x), se))))
    if not -3 <= e < 6:  # scientific: (mantissa +- se)e<exponent>
        xs, ss = x / 10.0**e, se / 10.0**e
        dec = max(0, 1 - int(math.floor(math.log10(ss))))
        return f"({xs:.{dec}f} +- {ss:.{dec}f})e{e:+03d}"
    dec = 1 - int(math.floor(math.log10(se)))  # decimals that keep 2 digits of se
    if dec > 0:
        return f"{x:.{dec}f} +- {se:.{dec}f}"
    q = 10.0 ** (-dec)
    return f"{round(x / q) * q:.0f} +- {round(se / q) * q:.0f}"
