"""The exact expectation of ``Delta_k`` over random orders, and the sample size for a target.

See :mod:`rmthess.landscape.delta` for the curve and docs/theory.md section 9.3 for the
derivations: ``E[Delta_k^2] = S^2 / (k (k+1))`` exactly, ``E|Delta_k|`` between two exact
bounds. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmthess._checks import check_choice, check_positive_float
from rmthess._stats import json_safe
from rmthess.landscape.delta import _CHUNK_ELEMENTS, DeltaCurve, _arr, _check_losses, _frame

__all__ = ["DeltaExpected", "delta_expected", "sample_size_for"]


# ----------------------------------------------------------------------------- exact expectation
@dataclass
class DeltaExpected:
    """Result of :func:`delta_expected`: the exact expectation over random orders.

    Attributes
    ----------
    k : (K,) int in ``1..n-1``.
    mean_sq : ``E[Delta_k^2] = S^2 / (k (k+1))``, exact for every ``k``.
    rms : ``sqrt(mean_sq)``; an upper bound on ``E|Delta_k|`` (Jensen).
    mean_abs : the large-``k`` form ``(n/(n-1)) MAD / (k+1)``: an exact LOWER bound on
        ``E|Delta_k|``, equal to it at ``k = n-1`` and for two-valued loss sets; relative
        error ``O(log(k)/k)`` in general and ``p(mu) v_k / MAD`` to leading order for losses
        with a density ``p`` at their mean (docs/theory.md section 9.3).
    mean_abs_upper : the exact upper bound ``E_l sqrt(a_l^2 + v_k(l)) / (k+1)``.
    n, variance (``S^2``, ddof=1), mad (``mean |l - mean(l)|``) of the losses.
    """

    k: np.ndarray
    mean_sq: np.ndarray
    rms: np.ndarray
    mean_abs: np.ndarray
    mean_abs_upper: np.ndarray
    n: int
    variance: float
    mad: float

    def to_frame(self):
        """Tidy: one row per ``k``."""
        return _frame(
            k=self.k, mean_sq=self.mean_sq, rms=self.rms, mean_abs=self.mean_abs,
            mean_abs_upper=self.mean_abs_upper,
        )  # fmt: skip

    def to_dict(self) -> dict:
        out = json_safe(dict(n=self.n, variance=self.variance, mad=self.mad))
        out["k"] = [int(v) for v in self.k]
        for name in ("mean_sq", "rms", "mean_abs", "mean_abs_upper"):
            out[name] = _arr(getattr(self, name))
        return out


def _check_ks(k, n: int) -> np.ndarray:
    if k is None:
        return np.arange(1, n)
    ks = np.atleast_1d(np.asarray(k))
    if ks.ndim != 1 or ks.size == 0 or ks.dtype.kind not in "iuf":
        raise TypeError(f"k must be an integer or a 1-D array of integers, got {k!r}")
    if ks.dtype.kind == "f" and not np.all(np.isfinite(ks) & (ks == np.round(ks))):
        raise ValueError(f"k must hold integers, got {k!r}")
    ks = np.unique(ks.astype(np.int64))
    if ks.min() < 1 or ks.max() > n - 1:
        raise ValueError(f"k must lie in [1, n-1] = [1, {n - 1}] for n = {n} losses, got {k!r}")
    return ks


def delta_expected(losses, k=None) -> DeltaExpected:
    """Exact expectation of ``Delta_k`` over uniformly random orders of the fixed losses.

    With ``mu``, ``sigma^2`` the mean and population variance of the ``n`` losses and
    ``S^2 = n sigma^2/(n-1)``: ``Var(l_{k+1}) = sigma^2``, ``Var(L_k) = (sigma^2/k)(n-k)/(n-1)``
    (finite-population factor), ``Cov(l_{k+1}, L_k) = -sigma^2/(n-1)``, hence
    ``E(l_{k+1} - L_k)^2 = S^2 (k+1)/k`` and ``E[Delta_k^2] = S^2/(k(k+1))`` exactly.

    ``E|Delta_k|``: given ``l_{k+1} = l``, ``l - L_k = a_l - eps`` with
    ``a_l = (n/(n-1))(l - mu)`` and ``eps`` of mean 0 and variance
    ``v_k(l) = sigma_-^2(l) (n-1-k) / (k (n-2))``, ``sigma_-^2(l)`` the population variance
    of the other ``n-1`` losses. Jensen both ways: ``|a_l| <= E|a_l - eps| <= sqrt(a_l^2 +
    v_k(l))``; averaging over ``l`` gives ``mean_abs`` and ``mean_abs_upper``.

    ``k``: an int or array of ints in ``[1, n-1]`` (default all; sorted, duplicates
    dropped). Cost ``O(n K)`` (the upper bound), in chunks.
    """
    x = _check_losses(losses)
    n = x.size
    ks = _check_ks(k, n)
    dev = x - x.mean()
    var_pop = float(np.mean(dev**2))
    S2 = var_pop * n / (n - 1)
    mad = float(np.mean(np.abs(dev)))
    kf = ks.astype(float)
    mean_sq = S2 / (kf * (kf + 1))
    a = n / (n - 1) * dev
    upper = np.empty(ks.size)
    if n == 2:  # k = 1 = n - 1 only: eps = 0
        upper[:] = np.mean(np.abs(a)) / (kf + 1)
    else:
        var_rest = np.maximum((n * var_pop - dev**2 * n / (n - 1)) / (n - 1), 0.0)
        step = max(1, _CHUNK_ELEMENTS // n)
        for i in range(0, ks.size, step):
            kk = kf[i : i + step]
            v = var_rest[:, None] * ((n - 1 - kk) / (kk * (n - 2)))[None, :]
            upper[i : i + step] = np.sqrt(a[:, None] ** 2 + v).mean(axis=0) / (kk + 1)
    return DeltaExpected(
        k=ks, mean_sq=mean_sq, rms=np.sqrt(mean_sq), mean_abs=n / (n - 1) * mad / (kf + 1),
        mean_abs_upper=upper, n=n, variance=S2, mad=mad,
    )  # fmt: skip


# ----------------------------------------------------------------------------- sample size
_SIZE_ON = {
    DeltaCurve: ("mean", "rms", "q95", "ema"),
    DeltaExpected: ("rms", "mean_abs", "mean_abs_upper"),
}


def sample_size_for(curve_or_expected, eps, *, on=None) -> int:
    """Smallest ``k`` from which the curve stays below ``eps`` (over the computed ``k``).

    For a :class:`DeltaExpected` the default ``on="rms"`` (``sqrt E Delta_k^2 =
    S/sqrt(k(k+1))``, an upper bound on ``E|Delta_k|``, so the answer is conservative);
    ``"mean_abs"`` (large-k form) or ``"mean_abs_upper"`` may be asked for. For a
    :class:`DeltaCurve` the default is its ``"mean"`` (a noisy estimate: the answer is
    where its last crossing of ``eps`` lies); ``"rms"``, ``"q95"``, ``"ema"`` also work.
    ``ValueError`` if the curve is still >= eps at its last ``k``.
    """
    kind = type(curve_or_expected)
    if kind not in _SIZE_ON:
        raise TypeError(
            f"curve_or_expected must be a DeltaCurve or a DeltaExpected, got {kind.__name__}"
        )
    eps = check_positive_float("eps", eps)
    on = check_choice("on", _SIZE_ON[kind][0] if on is None else on, _SIZE_ON[kind])
    y = getattr(curve_or_expected, on)
    if y is None:
        raise ValueError('on="ema" needs a smoothed curve: delta_curve(..., ema=0.99)')
    k = np.asarray(curve_or_expected.k)
    above = np.flatnonzero(np.asarray(y) >= eps)
    if above.size and above[-1] == k.size - 1:
        raise ValueError(
            f"eps = {eps:g} is never reached: {on} is {y[-1]:.4g} at the last k = {k[-1]} "
            f"(min {np.min(y):.4g}); more samples are needed"
        )
    return int(k[0] if not above.size else k[above[-1] + 1])
