"""Decay fits of the structure measure r(C) = sqrt(F_off / F_diag) against C.

docs/theory.md section 5 predicts ``r(C) ~ c C^{beta}`` with ``beta = -1`` (linear-ce,
output-ce) and ``beta = -1/2`` (hidden-ce, hidden-mse): the registry's
:attr:`rmthess.cases.Case.predicted_slope`. linear-mse and output-mse are exactly block
diagonal (r = 0) and have no slope.

:func:`fit_decay` simulates ``r(C)`` for every C (:func:`block_frobenius`), fits the
ordinary least-squares line ``log r = alpha + beta log C`` and gives a bootstrap
confidence interval for ``beta`` with :func:`rmthess._stats.bootstrap_slope` (percentile
method; the stream ``(seed, "fit_decay")`` of :func:`rmthess._random.rng`): each replicate
resamples the independent trials of every C with replacement, recomputes
``r(C) = sqrt(mean F_off / mean F_diag)`` and refits the line.

The predicted slope is the LARGE-C rate: at finite C the local slope of the exact
fixed-C limit differs (e.g. hidden-mse has ``r(C)^2`` proportional to ``1/(C + 2)``, local
slope ``-C / (2 (C + 2))``). With ``theory=True`` (the default) the same line is fitted to
the exact fixed-C limits of :func:`rmthess.theory.frobenius_limits` at ``gamma = d / N``
(``theory_slope``), which is what a finite sweep should reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rmthess._checks import check_bool, check_float, check_int, check_progress
from rmthess._random import rng
from rmthess._stats import bootstrap_slope, json_safe, ols_slope
from rmthess.cases import cases_where, get_case
from rmthess.inits import resolve_init

if TYPE_CHECKING:  # torch is imported only when a fit runs
    from collections.abc import Sequence

    import pandas as pd

    from rmthess.inits import InitLike
    from rmthess.simulate.device import Device, DType

__all__ = ["DecayFit", "fit_decay", "ols_slope"]


@dataclass
class DecayFit:
    """Result of :func:`fit_decay`.

    Attributes
    ----------
    slope, slope_se : OLS slope of log r(C) on log C and its bootstrap standard error.
    slope_ci : (lo, hi) bootstrap percentile interval at level ``level``.
    intercept : of the fitted line.
    predicted_slope : large-C exponent (registry). theory_slope : OLS slope of the exact
        fixed-C theory limits over the same Cs, for the same ``init`` (nan with
        ``theory=False``).
    init : name of the weight initialisation of the simulation AND of the theory.
    theory_method : how the theory limits were computed (registry; "" with ``theory=False``).
    theory_samples, theory_inner, theory_seed : the Monte-Carlo theory's V draws (None:
        :func:`rmthess.theory.frobenius_limits`' default per C; the draws used are in
        :meth:`to_frame`'s ``theory_n_samples``), g draws per V and seed (hidden-ce,
        output-ce only; None for the exact cases or with ``theory=False``).
    results : the :class:`rmthess.simulate.frobenius.BlockFrobenius` of every C.
    """

    case: str
    Cs: list
    d: int
    N: int
    m: int | None
    trials: int
    slope: float
    slope_se: float
    slope_ci: tuple
    intercept: float
    level: float
    n_boot: int
    predicted_slope: float
    theory_slope: float = float("nan")
    theory_ratios: list = field(default_factory=list)
    results: list = field(default_factory=list, repr=False)
    init: str = "lecun"
    theory_method: str = ""
    theory_samples: int | None = None
    theory_inner: int | None = None
    theory_seed: int | None = None
    theory_ratio_ses: list = field(default_factory=list)
    theory_n_samples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Scalars of the fit (flat, JSON-safe); the per-C values are in :meth:`to_frame`."""
        rec = dict(case=self.case, C_min=min(self.Cs), C_max=max(self.Cs), d=self.d, N=self.N)
        rec.update(m=self.m, trials=self.trials, slope=self.slope, slope_se=self.slope_se)
        rec.update(slope_ci_low=self.slope_ci[0], slope_ci_high=self.slope_ci[1])
        rec.update(level=self.level, n_boot=self.n_boot, predicted_slope=self.predicted_slope)
        rec.update(theory_slope=self.theory_slope, intercept=self.intercept, init=self.init)
        rec.update(theory_method=self.theory_method, theory_samples=self.theory_samples)
        rec.update(theory_inner=self.theory_inner, theory_seed=self.theory_seed)
        return json_safe(rec)

    def to_frame(self) -> pd.DataFrame:
        """Tidy per-C table: one :meth:`BlockFrobenius.to_dict` row per C (plus
        ``ratio_theory``, ``ratio_theory_se`` and ``theory_n_samples`` when the theory was
        fitted)."""
        import pandas as pd

        df = pd.DataFrame.from_records([r.to_dict() for r in self.results])
        if self.theory_ratios:
            df["ratio_theory"] = self.theory_ratios
            df["ratio_theory_se"] = self.theory_ratio_ses
            df["theory_n_samples"] = self.theory_n_samples
        return df


def _log_ratio(M):
    """``log r = (log F_off - log F_diag) / 2`` from interleaved means ``(F_off, F_diag)``."""
    return 0.5 * (np.log(np.maximum(M[..., 0::2], 1e-300)) - np.log(M[..., 1::2]))


def fit_decay(
    case: str,
    Cs: Sequence[int] = (8, 16, 32, 64, 128, 256),
    d: int = 256,
    N: int = 512,
    m: int | None = None,
    *,
    trials: int = 8,
    seed: int = 0,
    n_boot: int = 1000,
    level: float = 0.95,
    theory: bool = True,
    theory_samples: int | None = None,
    theory_inner: int | None = None,
    theory_seed: int = 0,
    init: InitLike = "lecun",
    progress: bool | None = False,
    device: Device = "auto",
    dtype: DType = "float64",
    **block_kwargs: Any,
) -> DecayFit:
    """Simulate r(C) over ``Cs`` and fit its power-law decay.

    Parameters
    ----------
    case : a case whose ratio decays (``rmthess.cases.cases_where(decays=True)``:
        linear-ce, hidden-mse, hidden-ce, output-ce).
    Cs : at least 2 distinct class counts (>= 2).
    d, N, m : passed to :func:`rmthess.simulate.frobenius.frobenius_sweep` (each C gets its
        own independent random stream derived from ``(seed, C)``; every C is validated
        before any runs), with ``trials``,
        ``device``, ``dtype`` and ``block_kwargs``.
    n_boot : bootstrap replicates (>= 10). level : confidence level in (0, 1).
    theory : also fit the exact limits of :func:`rmthess.theory.frobenius_limits`
        (``theory_slope``; for hidden-ce and output-ce a Monte-Carlo integral per C), at
        the same ``init`` as the simulation.
    theory_samples, theory_inner, theory_seed : ``samples``, ``inner`` and ``seed`` of
        :func:`rmthess.theory.frobenius_limits` for the Monte-Carlo cases (hidden-ce,
        output-ce; refused for the others, whose theory is exact); recorded in the result.
    init : weight initialisation (:func:`rmthess.inits.resolve_init`) of the simulation
        and of the theory; recorded in the result.

    Returns
    -------
    DecayFit. The bootstrap CI reflects Monte-Carlo noise only; finite-C curvature of the
    true r(C) is a bias that ``theory_slope`` exposes.
    """
    from rmthess.simulate.frobenius import sweep_results

    c = get_case(case)
    if not c.decays:
        raise ValueError(
            f"case {c.name!r} is exactly block diagonal (r = 0): no decay to fit; "
            f"allowed: {', '.join(cases_where(decays=True))}"
        )
    Cs = sorted({check_int("C", C, 2) for C in Cs})
    if len(Cs) < 2:
        raise ValueError(f"Cs must hold at least 2 distinct values >= 2, got {Cs}")
    n_boot = check_int("n_boot", n_boot, 10, 10**6)
    level = check_float("level", level, 0, 1, closed="neither")
    trials = check_int("trials", trials, 2)
    theory = check_bool("theory", theory)
    progress = check_progress(progress)
    ini = resolve_init(init)
    th_kw = dict(samples=theory_samples, inner=theory_inner)
    th_kw = {k: check_int(f"theory_{k}", v) for k, v in th_kw.items() if v is not None}
    theory_seed = check_int("theory_seed", theory_seed, 0)
    if th_kw and not c.mc_route:
        raise ValueError(
            f"theory_samples and theory_inner apply only to the Monte-Carlo cases "
            f"({', '.join(cases_where(mc_route=True))}); case {c.name!r} has an "
            f"exact theory ({c.theory_method}): leave them out"
        )
    if c.mc_route:
        th_kw["seed"] = theory_seed
    results = sweep_results(
        c.name, Cs, d, N, m, trials=trials, seed=seed, device=device, dtype=dtype,
        progress=progress, init=ini, **block_kwargs,
    )  # fmt: skip
    logC = np.log(np.asarray(Cs, dtype=float))
    logr = np.array([math.log(r.ratio) for r in results])
    slope, intercept = ols_slope(logC, logr)
    groups = [np.column_stack([r.F_off_trials, r.F_diag_trials]) for r in results]
    boot = bootstrap_slope(
        logC, groups, _log_ratio, n_boot=n_boot, level=level, rng=rng(seed, "fit_decay")
    )
    theory_slope, lims = float("nan"), []
    if theory:
        from rmthess.theory import frobenius_limits

        lims = [frobenius_limits(c.name, C, d / N, m, init=ini, **th_kw) for C in Cs]
        theory_slope = float(ols_slope(logC, np.log([t.ratio for t in lims]))[0])
    mc = theory and bool(lims) and lims[0].method == "monte-carlo"
    return DecayFit(
        case=c.name,
        Cs=Cs,
        d=d,
        N=N,
        m=m,
        trials=trials,
        slope=float(slope),
        slope_se=boot.se,
        slope_ci=boot.ci,
        intercept=float(intercept),
        level=level,
        n_boot=n_boot,
        predicted_slope=c.predicted_slope,
        theory_slope=theory_slope,
        theory_ratios=[t.ratio for t in lims],
        results=results,
        init=ini.name,
        theory_method=(lims[0].method if lims else c.theory_method) if theory else "",
        theory_samples=th_kw.get("samples") if mc else None,
        theory_inner=lims[0].n_inner if mc else None,
        theory_seed=theory_seed if mc else None,
        theory_ratio_ses=[t.ratio_se for t in lims],
        theory_n_samples=[t.n_samples for t in lims],
    )
