"""Decay fits of the structure measure r(C) = sqrt(F_off / F_diag) against C.

THEORY.md section 4 predicts ``r(C) ~ c C^{beta}`` with ``beta = -1`` (linear-ce,
output-ce) and ``beta = -1/2`` (hidden-ce, hidden-mse); linear-mse and output-mse are
exactly block diagonal (r = 0) and have no slope.

:func:`fit_decay` simulates ``r(C)`` for every C (:func:`block_frobenius`), fits the
ordinary least-squares line ``log r = alpha + beta log C`` and gives a bootstrap
confidence interval for ``beta``: for each bootstrap replicate the trials of every C are
resampled with replacement (trials are independent draws), ``r(C)`` is recomputed as
``sqrt(mean F_off / mean F_diag)`` and the line refitted; the interval is the
percentile interval of the replicated slopes.

Note that the predicted slope is the LARGE-C rate: at finite C the local slope of the
exact fixed-C limit differs (e.g. hidden-mse has ``r(C)^2 proportional to 1/(C + 2)``, local slope
``-C / (2 (C + 2))``). When ``theory=True`` the same line is fitted to the exact fixed-C
limits of :func:`rmthess.theory.frobenius_limits` at ``gamma = d / N`` (``theory_slope``),
which is what a finite sweep should reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rmthess._checks import check_case, check_int

PREDICTED_SLOPES = {"linear-ce": -1.0, "output-ce": -1.0, "hidden-ce": -0.5, "hidden-mse": -0.5}
"""Large-C exponent of r(C) (THEORY.md section 4, summary table)."""


def ols_slope(logC: np.ndarray, logr: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares line ``logr = intercept + slope logC``.

    Works on the last axis, so ``logr`` may be (B, n) for B replicates (then arrays).
    """
    x = np.asarray(logC, dtype=float)
    y = np.asarray(logr, dtype=float)
    xc = x - x.mean()
    slope = (y * xc).sum(axis=-1) / (xc**2).sum()
    intercept = y.mean(axis=-1) - slope * x.mean()
    return slope, intercept


@dataclass
class DecayFit:
    """Result of :func:`fit_decay`.

    slope : OLS slope of log r(C) on log C. ci : (lo, hi) bootstrap percentile interval
    at level ``level``. slope_se : bootstrap standard deviation of the slope.
    predicted_slope : large-C exponent (THEORY.md). theory_slope : the OLS slope of the
    exact fixed-C theory limits over the same Cs (nan if not computed). table : tidy
    ``pandas.DataFrame``, one row per C (see :func:`rmthess.simulate.frobenius_sweep`).
    """

    case: str
    Cs: list
    d: int
    N: int
    m: int | None
    trials: int
    slope: float
    intercept: float
    ci: tuple
    slope_se: float
    level: float
    n_boot: int
    predicted_slope: float
    theory_slope: float = float("nan")
    table: object = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "case": self.case,
            "Cs": list(self.Cs),
            "d": self.d,
            "N": self.N,
            "m": self.m,
            "trials": self.trials,
            "slope": self.slope,
            "ci_low": self.ci[0],
            "ci_high": self.ci[1],
            "slope_se": self.slope_se,
            "predicted_slope": self.predicted_slope,
            "theory_slope": None if not math.isfinite(self.theory_slope) else self.theory_slope,
        }

    def to_frame(self):
        """The per-C table (tidy ``pandas.DataFrame``)."""
        return self.table


def fit_decay(
    case: str,
    Cs=(8, 16, 32, 64, 128, 256),
    d: int = 256,
    N: int = 512,
    m: int | None = None,
    trials: int = 8,
    seed: int = 0,
    n_boot: int = 1000,
    level: float = 0.95,
    device="auto",
    dtype="float64",
    theory: bool = False,
    progress: bool = False,
    **kwargs,
) -> DecayFit:
    """Simulate r(C) over ``Cs`` and fit its power-law decay.

    Parameters
    ----------
    case : linear-ce, output-ce, hidden-ce or hidden-mse (the MSE linear/output cases
        have r = 0 exactly and are refused).
    Cs : at least 2 distinct class counts (>= 2).
    d, N, m, trials, seed, device, dtype : passed to :func:`block_frobenius` (C number i
        uses seed ``seed + i``).
    n_boot : bootstrap replicates (>= 10). level : confidence level in (0, 1).
    theory : also fit the exact limits of :func:`rmthess.theory.frobenius_limits`.

    Returns
    -------
    DecayFit. The bootstrap CI reflects Monte-Carlo noise only; finite-C curvature of the
    true r(C) is a bias that ``theory_slope`` exposes.
    """
    from rmthess.simulate.frobenius import block_frobenius

    case = check_case(case)
    if case not in PREDICTED_SLOPES:
        raise ValueError(
            f"case {case!r} is exactly block diagonal (r = 0): no decay to fit; "
            f"allowed: {', '.join(PREDICTED_SLOPES)}"
        )
    Cs = sorted({check_int("C", c, 2) for c in Cs})
    if len(Cs) < 2:
        raise ValueError(f"Cs must hold at least 2 distinct values >= 2, got {Cs}")
    n_boot = check_int("n_boot", n_boot, 10)
    if not (0 < float(level) < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    trials = check_int("trials", trials, 2)
    it = Cs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(Cs, desc=f"fit {case}", unit="C")
    results = []
    for i, C in enumerate(it):
        results.append(block_frobenius(case, C, d, N, m, trials, seed + i, device, dtype, **kwargs))
    logC = np.log(np.asarray(Cs, dtype=float))
    logr = np.array([math.log(r.ratio) for r in results])
    slope, intercept = ols_slope(logC, logr)
    rng = np.random.default_rng([seed, 0xB007])
    boot_logr = np.empty((n_boot, len(Cs)))
    for j, r in enumerate(results):
        idx = rng.integers(0, r.trials, size=(n_boot, r.trials))
        fo = r.F_off[idx].mean(axis=1)
        fd = r.F_diag[idx].mean(axis=1)
        boot_logr[:, j] = 0.5 * (np.log(np.maximum(fo, 1e-300)) - np.log(fd))
    boot_slopes, _ = ols_slope(logC, boot_logr)
    alpha = (1 - float(level)) / 2
    ci = (float(np.quantile(boot_slopes, alpha)), float(np.quantile(boot_slopes, 1 - alpha)))
    import pandas as pd

    table = pd.DataFrame.from_records([r.summary_record() for r in results])
    theory_slope = float("nan")
    if theory:
        from rmthess.theory import frobenius_limits

        tr = []
        for C in Cs:
            lim = frobenius_limits(case, C, d / N, m=m)
            tr.append(lim.ratio)
        table["ratio_theory"] = tr
        theory_slope = float(ols_slope(logC, np.log(np.asarray(tr)))[0])
    return DecayFit(
        case=case,
        Cs=Cs,
        d=d,
        N=N,
        m=m,
        trials=trials,
        slope=float(slope),
        intercept=float(intercept),
        ci=ci,
        slope_se=float(np.std(boot_slopes, ddof=1)),
        level=float(level),
        n_boot=n_boot,
        predicted_slope=PREDICTED_SLOPES[case],
        theory_slope=theory_slope,
        table=table,
    )
