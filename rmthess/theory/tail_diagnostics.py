"""Tail diagnostic of i.i.d. Monte-Carlo draws: can the CLT standard error of their mean
be trusted?

A mean's standard error ``sd / sqrt(n)`` needs a finite variance, i.e. an upper tail
``P(X > t) ~ t^-alpha`` with ``alpha > 2``. :func:`tail_index` estimates ``alpha`` from
the largest draws (Hill 1975); :func:`rmthess.theory.hidden_integrals.warn_heavy_tails`
warns below ``alpha = 2``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["tail_index", "tail_length"]


def tail_length(n: int) -> int:
    """Draws in the upper tail: ``ceil(3 sqrt(n))`` for ``n > 225``, else ``n // 5`` (the
    convention of Pareto-smoothed importance sampling, Vehtari et al. 2024, JMLR 25(72))."""
    return math.ceil(3.0 * math.sqrt(n)) if n > 225 else max(2, n // 5)


def tail_index(x: np.ndarray) -> float:
    """Hill estimate of the upper tail index ``alpha`` of the draws ``x``
    (``P(X > t) ~ t^-alpha``; the variance is infinite for ``alpha < 2``).

    ``alpha = 1 / mean(log(x_(i) / x_(k+1)), i = 1..k)`` over the ``k`` largest finite
    draws ``x_(1) >= ... >= x_(k)``, ``k`` = :func:`tail_length` (``n``). Sampling error
    about ``alpha / sqrt(k)`` on a power-law tail (measured on Pareto draws of index 1.5:
    1.48 [1.22, 1.75] at n = 200, 1.51 [1.42, 1.64] at n = 10^4, median [10%, 90%]).
    Scale- but not shift-invariant: on light tails whose body reaches down to 0 it reads
    low over small samples (median 2.2 for exponential and 1.7 for chi-square(1) draws at
    n = 200; 3.1 and 2.4 at n = 1000). ``inf`` where the ``k + 1`` largest draws are
    equal; ``nan`` for fewer than 10 finite draws or where the ``(k+1)``-th largest is
    not positive (no positive upper tail to measure).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 10:
        return math.nan
    k = tail_length(x.size)
    top = -np.sort(-x)[: k + 1]
    if not top[k] > 0:
        return math.nan
    g = float(np.mean(np.log(top[:k] / top[k])))
    return math.inf if g <= 0 else 1.0 / g
