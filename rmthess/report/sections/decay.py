"""Section ``decay``: the slope of log r(C) on log C against the exact theory and the rate.

Takes the decay fits of the ``frobenius`` section (same draws) and the exact limits of the
``theory`` section. Checks: (1) the fitted slope against the least-squares slope of the
exact fixed-C limits at the same C (the Monte-Carlo theory's SE propagated through the
least-squares weights), within ``k_se`` combined SE + 5%; (2) when the grid starts at
C >= 8, against the large-C rate (-1 or -1/2) within ``slope_tol``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rmthess.report.checks import Check, check_abs, check_close
from rmthess.report.config import ReportConfig
from rmthess.report.sections._base import Output, Section
from rmthess.report.sections.frobenius import FrobeniusResult
from rmthess.report.sections.theory import TheoryResult

NAME = "decay"
NEEDS = ("theory", "frobenius")

SLOPE_FINITE_SIZE = 0.05
"""Relative allowance on a fitted slope for the finite-(d, N) bias of r(C): its O(1/d)
relative corrections vary slowly with C, which tilts the log-log line by a few percent."""


@dataclass
class DecayResult:
    """One row per decaying case: fitted slope, its CI, the exact theory's slope."""

    cfg: ReportConfig
    table: object  # DataFrame
    panels: list  # for the figure
    theory: TheoryResult


def units(cfg: ReportConfig) -> int:
    return 0


def theory_slope(th, Cs) -> tuple[float, float]:
    """OLS slope of log r(C) of the exact limits ``th`` (indexed by C) over ``Cs``, and its
    standard error from the Monte-Carlo ``ratio_se`` (0 for exact cases)."""
    from rmthess.simulate.fits import ols_slope

    if not set(Cs) <= set(th.index):
        return math.nan, 0.0
    sub = th.loc[sorted(Cs)]
    ratio = sub["ratio"].to_numpy(float)
    if not (ratio > 0).all():
        return math.nan, 0.0
    logC = np.log(np.asarray(sorted(Cs), float))
    slope = float(ols_slope(logC, np.log(ratio))[0])
    xc = logC - logC.mean()
    w = xc / (xc**2).sum()
    rel = sub["ratio_se"].fillna(0.0).to_numpy(float) / ratio
    return slope, float(math.sqrt(np.sum((w * rel) ** 2)))


def compute(
    cfg: ReportConfig,
    *,
    theory: TheoryResult,
    frobenius: FrobeniusResult,
    device=None,
    step=lambda label: None,
) -> DecayResult:
    import pandas as pd

    recs, panels = [], []
    for case in [c for c in cfg.cases if c in frobenius.fits]:
        fit = frobenius.fits[case]
        t_slope, t_se = theory_slope(theory.limits_of(case), fit.Cs)
        recs.append(
            dict(
                case=case,
                C_min=min(fit.Cs),
                C_max=max(fit.Cs),
                slope=fit.slope,
                slope_se=fit.slope_se,
                slope_ci_low=fit.slope_ci[0],
                slope_ci_high=fit.slope_ci[1],
                theory_slope_same_C=t_slope,
                theory_slope_se=t_se,
                predicted_large_C=fit.predicted_slope,
            )
        )
        tab = fit.to_frame().sort_values("C")
        panels.append(
            dict(
                case=case,
                C=tab["C"].to_numpy(float),
                ratio=tab["ratio"].to_numpy(float),
                ratio_se=tab["ratio_se"].to_numpy(float),
                slope=fit.slope,
                ci_low=fit.slope_ci[0],
                ci_high=fit.slope_ci[1],
                intercept=fit.intercept,
                predicted_slope=fit.predicted_slope,
            )
        )
    return DecayResult(cfg, pd.DataFrame(recs), panels, theory)


def checks(result: DecayResult) -> list[Check]:
    cfg, out = result.cfg, []
    for _, r in result.table.iterrows():
        ci = f"95% bootstrap CI [{r['slope_ci_low']:.3f}, {r['slope_ci_high']:.3f}]"
        C_range = f"C={r['C_min']}..{r['C_max']}"
        out.append(
            check_close(
                NAME,
                f"{r['case']} slope vs exact theory, {C_range}",
                r["slope"],
                r["theory_slope_same_C"],
                r["slope_se"],
                r["theory_slope_se"],
                k=cfg.k_se,
                rel_allowance=SLOPE_FINITE_SIZE,
                detail=f"{ci}; theory = OLS slope of the exact fixed-C limits at the same C",
            )
        )
        if r["C_min"] >= 8:
            out.append(
                check_abs(
                    NAME,
                    f"{r['case']} slope vs large-C rate {r['predicted_large_C']:g}",
                    r["slope"],
                    r["predicted_large_C"],
                    cfg.slope_tol,
                    f"{ci}; exact theory's own slope over these C: {r['theory_slope_same_C']:.3f}",
                )
            )
    return out


def render(result: DecayResult, out: Output) -> Section:
    from rmthess.report.figures import fig_ratio_decay

    cfg = result.cfg
    sec = Section("Decay of r(C) = ||H_off||_F / ||H_diag||_F")
    sec.text.append(
        "Least-squares slope of log r(C) against log C over the simulated C grid with a 95% "
        "bootstrap confidence interval (rmthess._stats.bootstrap_slope, trials resampled "
        "within each C), beside the predicted large-C rate: 1/C for linear-ce and "
        "output-ce, 1/sqrt(C) for hidden-ce and hidden-mse. Checks: (1) the fitted slope "
        "against the slope of the exact fixed-C limits over the same C values (within "
        f"{cfg.k_se:g} combined SE + {SLOPE_FINITE_SIZE:.0%}); (2) when the grid starts at "
        f"C >= 8, against the large-C rate within {cfg.slope_tol:g}. At small C the exact "
        "curve itself is not yet a power law (e.g. hidden-mse has r(C)^2 proportional to "
        "1/(C+2)), which is why (2) needs C >= 8."
    )
    if result.panels:
        fig = fig_ratio_decay(result.panels, result.theory.limits)
        sec.figures.append(("r(C) with fitted slope", out.figure(fig, "ratio_decay.png")))
    sec.tables.append(("Fitted slopes", result.table, out.table(result.table, "decay_fits.csv")))
    return sec
