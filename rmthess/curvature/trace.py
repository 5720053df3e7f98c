"""Stochastic trace estimation with honest standard errors (Hutchinson, Hutch++).

For a symmetric ``P x P`` operator ``A`` (any input of :mod:`rmthess.curvature.eigen`)
and probes ``g`` with ``E[g g^T] = I`` (Rademacher: entries +-1; normal: N(0, 1)),
``E[g^T A g] = tr A``.

Hutchinson: ``n`` probes, ``t = mean_i g_i^T A g_i``, ``se = std(g_i^T A g_i) / sqrt(n)``.
The per-probe variance is ``2 sum_{i != j} A_ij^2`` (Rademacher) or ``2 ||A||_F^2``
(normal): large when ``A`` has a few large eigenvalues, as Hessians do.

Hutch++ (Meyer, Musco, Musco & Woodruff 2020, "Hutch++: optimal stochastic trace
estimation") first removes the dominant eigenspace: ``S`` (P, n_Q) probes,
``Q = orth(A S)`` (range finder), then with ``n_G`` FRESH probes ``g_i``::

    t = tr(Q^T A Q) + (1/n_G) sum_i g_i^T (I - Q Q^T) A (I - Q Q^T) g_i .

Its standard error. Write ``Pi = Q Q^T``. Given ``Q`` (i.e. given ``S``), the first term is
a constant and the second a plain Hutchinson mean of i.i.d. samples
``x_i = g_i^T (I - Pi) A (I - Pi) g_i`` (the ``g_i`` are independent of ``S``), with
``E[x_i | Q] = tr((I - Pi) A (I - Pi))``. Because ``Pi^2 = Pi`` and the trace is cyclic,
``tr(Pi A Pi) + tr((I - Pi) A (I - Pi)) = tr(A Pi) + tr(A (I - Pi)) = tr A``, so
``E[t | Q] = tr A`` for EVERY ``Q``: ``Var(E[t | Q]) = 0`` and, by the law of total
variance, ``Var(t) = E[Var(t | Q)] = E[sigma^2(Q)] / n_G`` with
``sigma^2(Q) = Var(x_i | Q)``. The sample variance ``s^2`` of the ``x_i`` is unbiased for
``sigma^2(Q)`` given ``Q``, hence ``E[s^2 / n_G] = Var(t)``: ``se = s / sqrt(n_G)`` is an
unbiased variance estimate, exactly as for Hutchinson, and ``(t - tr A) / se`` is
approximately standard normal (Student-t-like for small ``n_G``; quadratic forms of
Rademacher vectors are skewed when ``A`` is dominated by a few directions, which Hutch++
deflates). curvlinops' ``hutchpp_trace`` and ``xtrace`` return the estimate only, with no
standard error and from torch's global RNG, which is why this module exists.

Matrix-vector budget: ``n_Q = matvecs // 3`` (``A S``), ``n_Q`` (``A Q``),
``n_G = matvecs - 2 n_Q``. When ``matvecs >= P`` the trace is computed exactly from the ``P``
unit vectors (``method="exact"``, ``se = 0``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_choice, check_float, check_int, check_memory, progress_bar
from rmthess._random import check_seed, rng
from rmthess._stats import json_safe
from rmthess.curvature._operand import _as_operator, _record

if TYPE_CHECKING:
    import pandas as pd

    from rmthess.curvature._types import Operator

__all__ = ["TraceEstimate", "hessian_trace"]

METHODS = ("hutch++", "hutchinson")
MIN_ADAPTIVE_PROBES = 30
"""The adaptive mode (``rtol``) stops only with at least this many Hutchinson probes, so that
the standard error it compares with the target is itself accurate (to ~13%)."""
DISTRIBUTIONS = ("rademacher", "normal")
"""Probe entries: +-1 or N(0, 1); the words of every probe sampler of rmthess (block maps too).
``"gaussian"``, this function's former word, is accepted with a ``DeprecationWarning``."""
DEFAULT_MATVECS = 99
"""Products of a fixed-budget trace (``matvecs`` left out, no ``rtol``)."""
ADAPTIVE_FIRST = 30
"""First batch of the adaptive mode (``rtol`` given, ``matvecs`` left out)."""
MIN_RTOL = 1e-12
"""Smallest ``rtol``: a relative standard error below ~1e-12 needs ~1e24 probes."""


def check_distribution(distribution, stacklevel: int = 3) -> str:
    """``"rademacher"`` or ``"normal"`` (``"gaussian"``: deprecated alias of ``"normal"``)."""
    if distribution == "gaussian":
        warnings.warn(
            "distribution='gaussian' is deprecated: say 'normal' (one probe vocabulary)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return "normal"
    return check_choice("distribution", distribution, DISTRIBUTIONS)


def _probes(rng: np.random.Generator, P: int, n: int, distribution: str) -> np.ndarray:
    """(P, n) float64 probes with ``E[g g^T] = I``: +-1 (Rademacher) or N(0, 1) (normal)."""
    if distribution == "rademacher":
        return rng.integers(0, 2, size=(P, n)).astype(np.float64) * 2.0 - 1.0
    return rng.standard_normal((P, n))


@dataclass
class TraceEstimate:
    """Result of :func:`hessian_trace`.

    Attributes
    ----------
    trace, trace_se : estimate of ``tr A`` and its standard error (0 when exact).
    trace_trials : (n_probes,) per-probe estimates ``tr(Q^T A Q) + x_i`` (Hutch++) or
        ``g_i^T A g_i`` (Hutchinson); ``trace`` is their mean, ``trace_se`` their standard
        deviation over ``sqrt(n_probes)``. Empty when exact.
    deflated_trace : ``tr(Q^T A Q)`` (Hutch++; 0 for Hutchinson, nan when exact).
    n_deflation, n_probes : ``n_Q`` columns of ``Q`` and ``n_G`` Hutchinson probes.
    n_matvecs : products with ``A`` (``2 n_Q + n_G``; ``P`` when exact).
    method : ``"hutch++"``, ``"hutchinson"`` or ``"exact"``.
    rtol, max_matvecs, target_reached : the adaptive mode (None without ``rtol``).
    """

    trace: float
    trace_se: float
    n_matvecs: int
    method: str
    distribution: str
    P: int
    seed: int
    deflated_trace: float
    n_deflation: int
    n_probes: int
    trace_trials: np.ndarray = field(repr=False)
    rtol: float | None = None
    max_matvecs: int | None = None
    target_reached: bool | None = None

    @property
    def trace_ci(self) -> tuple[float, float]:
        """95% interval ``trace +- t_{0.975, n-1} trace_se`` (Student t; exact: a point)."""
        if self.n_probes < 2:
            return (self.trace, self.trace)
        from scipy.stats import t

        h = float(t.ppf(0.975, self.n_probes - 1)) * self.trace_se
        return (self.trace - h, self.trace + h)

    def to_dict(self) -> dict:
        """JSON-safe scalars, with the CI as two numbers (``trace_ci_low``,
        ``trace_ci_high``); the per-probe values are :meth:`to_frame`'s rows."""
        lo, hi = self.trace_ci
        return {**_record(self), **json_safe({"trace_ci_low": lo, "trace_ci_high": hi})}

    def to_frame(self) -> pd.DataFrame:
        """One row per probe: ``probe`` (0-based) and its estimate ``trace_trial`` (their
        mean is ``trace``); no rows when the trace is exact."""
        import pandas as pd

        return pd.DataFrame(
            dict(probe=np.arange(len(self.trace_trials)), trace_trial=self.trace_trials)
        )


def _exact(op) -> float:
    P, total = op.P, 0.0
    for j in range(0, P, 256):
        cols = np.arange(j, min(j + 256, P))
        E = np.zeros((P, len(cols)))
        E[cols, np.arange(len(cols))] = 1.0
        total += float(np.einsum("ij,ij->", E, op.matmat(E)))
    return total


def _residual_samples(op, Q, rng, n: int, distribution: str) -> np.ndarray:
    """``x_i = h_i^T A h_i`` with ``h_i = (I - Q Q^T) g_i`` for ``n`` fresh probes."""
    G = _probes(rng, op.P, n, distribution)
    if Q is not None:
        G = G - Q @ (Q.T @ G)
    return np.einsum("ij,ij->j", G, op.matmat(G))


def hessian_trace(
    A: Operator,
    *,
    matvecs: int | None = None,
    method: str = "hutch++",
    distribution: str = "rademacher",
    seed: int = 0,
    rtol: float | None = None,
    max_matvecs: int | None = None,
    progress: bool | None = None,
) -> TraceEstimate:
    """Unbiased estimate of ``tr A`` with an honest standard error (module docstring).

    Parameters
    ----------
    A : symmetric operator (LinearOperator, numpy array, torch tensor).
    matvecs : products with ``A`` to spend: >= 6 for Hutch++ (2 range-finder columns,
        2 deflated probes: a standard error needs 2), >= 2 for Hutchinson. ``matvecs >= P``
        gives the exact trace from ``P`` unit vectors instead. Default ``DEFAULT_MATVECS`` =
        99, or, in the adaptive mode (``rtol``), a first batch of ``ADAPTIVE_FIRST`` = 30
        from which the mode grows (so it can stop at 50 products where 99 were spent
        before; the honesty of its errors at this first batch is checked over 1000 seeds in
        validation/curvature_estimators.py).
    method : ``"hutch++"`` (default; error ``O(1/matvecs)`` for a decaying spectrum) or
        ``"hutchinson"`` (error ``O(1/sqrt(matvecs))``).
    distribution : ``"rademacher"`` (default, lower variance) or ``"normal"`` (the former
        ``"gaussian"`` works, with a ``DeprecationWarning``).
    seed : an integer in ``[0, 2**128)``; all probes come from ``rmthess._random.rng(seed)``
        (for an int the stream of ``numpy.random.default_rng(seed)``).
    rtol : adaptive mode, a number >= 1e-12. After the first ``matvecs`` products, keep
        adding Hutchinson probes (in the deflated space for Hutch++; ``Q`` is kept) in
        batches, each sized from the current variance to reach ``trace_se <= rtol *
        |trace|`` (at least the first batch's size), until the target holds with at least
        ``MIN_ADAPTIVE_PROBES`` probes or ``max_matvecs`` products are spent (the last batch
        is cut to the budget). ``target_reached`` says which. Caveat: stopping when the
        estimated SE is small favours runs whose SE is underestimated; measured over 1000
        seeds (validation/curvature_estimators.py) the z-scores keep std ~1.05.
    max_matvecs : budget of the adaptive mode (default ``10 * matvecs``, 990 when
        ``matvecs`` is left out), >= matvecs;
        only with ``rtol``.
    progress : a tqdm bar counting products (None: when stderr is a terminal).

    Returns
    -------
    TraceEstimate. Cost: ``n_matvecs`` products plus ``O(P matvecs^2)`` flops for the QR.
    """
    op = _as_operator(A)
    method = check_choice("method", method, METHODS)
    distribution = check_distribution(distribution)
    lo = 6 if method == "hutch++" else 2
    budget = 10 * (DEFAULT_MATVECS if matvecs is None else matvecs)  # adaptive default
    if matvecs is None:
        matvecs = DEFAULT_MATVECS if rtol is None else ADAPTIVE_FIRST
    matvecs = check_int("matvecs", matvecs, lo)
    seed = check_seed(seed)
    if rtol is not None:
        rtol = check_float("rtol", rtol, MIN_RTOL, None)
        max_matvecs = check_int(
            "max_matvecs", budget if max_matvecs is None else max_matvecs, matvecs
        )
    elif max_matvecs is not None:
        raise ValueError("max_matvecs applies only with rtol (the adaptive mode)")
    n_cols = min(op.P, 256) if matvecs >= op.P else 2 * max(matvecs // 3, 1) + 2
    batch = 0 if rtol is None else matvecs  # probes of one adaptive batch (typically)
    check_memory(
        8.0 * op.P * (n_cols + batch),
        f"hessian_trace(matvecs={matvecs}) of a {op.P} x {op.P} operator",
        "lower matvecs (or max_matvecs)",
    )
    common = dict(distribution=distribution, P=op.P, seed=seed, rtol=rtol)
    total = op.P if matvecs >= op.P else (max_matvecs if rtol is not None else matvecs)
    op.bar = progress_bar(progress, total=total, desc="trace", unit="HVP")
    try:
        return _hessian_trace(op, method, distribution, matvecs, seed, rtol, max_matvecs, common)
    finally:
        op.bar.close()
        op.bar = None


def _hessian_trace(op, method, distribution, matvecs, seed, rtol, max_matvecs, common):
    if matvecs >= op.P:
        tr = _exact(op)
        return TraceEstimate(
            trace=tr, trace_se=0.0, n_matvecs=op.n_matvecs, method="exact",
            deflated_trace=math.nan, n_deflation=0, n_probes=0, trace_trials=np.empty(0),
            max_matvecs=max_matvecs, target_reached=None if rtol is None else True, **common,
        )  # fmt: skip
    gen = rng(seed)
    Q, t_Q, n_Q = None, 0.0, 0
    if method == "hutch++":
        n_Q = matvecs // 3
        Q, _ = np.linalg.qr(op.matmat(_probes(gen, op.P, n_Q, distribution)))
        t_Q = float(np.einsum("ij,ij->", Q, op.matmat(Q)))
    n_G = matvecs - 2 * n_Q
    x = _residual_samples(op, Q, gen, n_G, distribution)
    reached = None
    if rtol is not None:
        while True:
            est, se = t_Q + x.mean(), x.std(ddof=1) / math.sqrt(len(x))
            left = max_matvecs - op.n_matvecs
            ok = se <= rtol * abs(est) and len(x) >= MIN_ADAPTIVE_PROBES
            if ok or left <= 0:
                reached = bool(se <= rtol * abs(est))
                break
            need = (x.std(ddof=1) / (rtol * abs(est))) ** 2 if est else math.inf
            need = math.ceil(need) if need < len(x) + left else len(x) + left  # no overflow
            batch = min(left, max(n_G, need - len(x), MIN_ADAPTIVE_PROBES - len(x)))
            x = np.concatenate([x, _residual_samples(op, Q, gen, batch, distribution)])
    return TraceEstimate(
        trace=float(t_Q + x.mean()),
        trace_se=float(x.std(ddof=1) / math.sqrt(len(x))),
        n_matvecs=op.n_matvecs,
        method=method,
        deflated_trace=t_Q,
        n_deflation=n_Q,
        n_probes=len(x),
        trace_trials=t_Q + x,
        max_matvecs=max_matvecs,
        target_reached=reached,
        **common,
    )
