"""The report pipeline: theory + simulation -> checks, figures, CSV tables, index.html.

:func:`run_report` is the whole of ``rmthess report``. Sections (each timed; a section
that raises is recorded as a failed check and the report still renders):

1. ``theory``    exact fixed-C limits ``F_diag, F_off`` of every case on a log grid of C
                 (:func:`rmthess.theory.frobenius_limits`) and the large-C constants
                 (:func:`rmthess.theory.asymptotic_constants`).
2. ``frobenius`` simulated block norms over the C grid (:mod:`rmthess.simulate`), compared
                 with theory at every C (within ``k_se`` SE + finite-size allowance), exact
                 zeros of the MSE off-diagonal blocks; figure F vs C (paper Figs 8-9).
3. ``decay``     slope of log r(C) on log C with bootstrap CI vs the predicted -1 / -1/2.
4. ``spectra``   eigenvalue histogram of a diagonal and an off-diagonal linear-ce block
                 under the limiting GMP density; Kolmogorov-Smirnov distance check.
5. ``heatmaps``  |H| of the hidden layer at C = 10, 100, 1000 (paper Fig 6), MSE and CE,
                 and of a whole one-hidden-layer Hessian with its cross-layer block (Figs 2-3).
6. ``dynamics``  block norms along Adam training: the cross-layer block shrinks.

Everything is written to a staging directory and moved into ``out`` at the end
(:mod:`rmthess.report.outdir`), ``index.html`` last. numpy's BLAS runs single-threaded
during the run (:mod:`rmthess.report.threads`: 6x faster Monte-Carlo theory on 2 loaded
cores).
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rmthess.report.checks import (
    Check,
    check_abs,
    check_close,
    check_error,
    check_lower,
    check_upper,
    format_table,
)
from rmthess.report.config import FIT_CASES, ReportConfig
from rmthess.report.html import Section, render_html
from rmthess.report.outdir import Staging, prepare_out_dir
from rmthess.report.threads import blas_threads

PREDICTED_SLOPES = {"linear-ce": -1.0, "output-ce": -1.0, "hidden-ce": -0.5, "hidden-mse": -0.5}
MC_THEORY_CASES = ("hidden-ce", "output-ce")
SLOPE_FINITE_SIZE = 0.05
"""Relative allowance on a fitted slope for the finite-(d, N) bias of r(C) (its O(1/d)
relative corrections vary slowly with C, which tilts the log-log line by a few percent)."""
"""Cases whose fixed-C theory is a Monte-Carlo integral (with a standard error)."""


@dataclass
class ReportResult:
    """What :func:`run_report` returns."""

    out: Path
    checks: list[Check]
    seconds: float
    section_seconds: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def summary(self) -> str:
        n_fail = sum(not c.passed for c in self.checks)
        head = "PASS" if self.passed else "FAIL"
        lines = [
            format_table(self.checks),
            f"{head}: {len(self.checks) - n_fail}/{len(self.checks)} checks passed in "
            f"{self.seconds:.1f} s; report: {self.out / 'index.html'}",
        ]
        return "\n".join(lines)


class _Progress:
    """tqdm bar over the report's work units (no-op when disabled)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, desc="rmthess report", unit="step", file=sys.stderr, dynamic_ncols=True
            )

    def step(self, label: str, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _m_for(case: str, m: int) -> int | None:
    return None if case.startswith("linear") else m


def _theory_limits(case, C, gamma, m, seed, samples):
    """:func:`rmthess.theory.frobenius_limits`; ``samples`` (V draws) for the Monte-Carlo
    cases, None for the theory layer's default. The same ``seed`` at every C (common
    random numbers: the theory curve is smooth in C, and the independent-error SE used
    for its slope is conservative)."""
    from rmthess.theory import frobenius_limits

    kwargs = {"seed": seed}
    if samples is not None and case in MC_THEORY_CASES:
        kwargs["samples"] = samples
    return frobenius_limits(case, C, gamma, m=_m_for(case, m), **kwargs)


def _theory_C_grid(cfg: ReportConfig, case: str) -> list[int]:
    if case in MC_THEORY_CASES:
        return sorted(set(cfg.Cs))
    lo, hi = min(cfg.Cs), max(cfg.Cs)
    grid = np.unique(np.round(np.geomspace(lo, hi, cfg.theory_C_points)).astype(int))
    return sorted(set(grid.tolist()) | set(cfg.Cs))


# ----------------------------------------------------------------------------- sections
class _Ctx:
    def __init__(self, cfg, device, staging: Staging, progress: _Progress):
        self.cfg = cfg
        self.device = device
        self.root = staging.path
        self.fig_dir = staging.path / "figures"
        self.tab_dir = staging.path / "tables"
        self.fig_dir.mkdir()
        self.tab_dir.mkdir()
        self.progress = progress
        self.checks: list[Check] = []
        self.sections: list[Section] = []
        self.data: dict = {}

    def save_fig(self, fig, name: str) -> Path:
        from rmthess.report.figures import save

        path = self.fig_dir / name
        save(fig, path)
        return path

    def save_csv(self, df, name: str) -> str:
        df.to_csv(self.tab_dir / name, index=False)
        return name


def _section_theory(ctx: _Ctx) -> Section:
    import pandas as pd

    from rmthess.theory import asymptotic_constants

    cfg = ctx.cfg
    recs = []
    asym = {}
    for case in cfg.cases:
        for C in _theory_C_grid(cfg, case):
            lim = _theory_limits(case, C, cfg.gamma, cfg.m, cfg.seed, cfg.theory_samples)
            if case in MC_THEORY_CASES:
                ctx.progress.step(f"theory {case} C={C}")
            recs.append(
                dict(
                    case=case,
                    C=C,
                    gamma=cfg.gamma,
                    m=_m_for(case, cfg.m),
                    F_diag=float(lim.F_diag),
                    F_off=float(lim.F_off),
                    ratio=float(lim.ratio),
                    F_diag_se=float(getattr(lim, "F_diag_se", 0.0) or 0.0),
                    F_off_se=float(getattr(lim, "F_off_se", 0.0) or 0.0),
                    ratio_se=float(getattr(lim, "stderr", 0.0) or 0.0),
                    method=str(getattr(lim, "method", "")),
                )
            )
        try:
            ac = asymptotic_constants(case, cfg.gamma, m=_m_for(case, cfg.m))
            asym[case] = (float(ac.A_diag), float(ac.p_diag), float(ac.A_off), float(ac.p_off))
        except ValueError:
            pass
        if case not in MC_THEORY_CASES:
            ctx.progress.step(f"theory {case}")
    theory = pd.DataFrame.from_records(recs)
    ctx.data["theory"] = theory
    ctx.data["asym"] = asym
    asym_df = pd.DataFrame(
        [dict(case=k, A_diag=v[0], p_diag=v[1], A_off=v[2], p_off=v[3]) for k, v in asym.items()]
    )
    sec = Section("Theory: exact limits at fixed C and large-C constants")
    sec.text.append(
        f"gamma = d/N = {cfg.gamma:g}, hidden width m = {cfg.m}. F_diag = lim (1/d)||H_kk||_F^2, "
        "F_off = lim (1/d)||H_kl||_F^2 (no 1/d for the m x m output-layer blocks); "
        "hidden-ce and output-ce are Monte-Carlo integrals (standard errors in the table), "
        "the other cases exact. Large-C asymptotes: F ~ A C^-p."
    )
    sec.tables.append(("Exact limits", theory, ctx.save_csv(theory, "theory_limits.csv")))
    sec.tables.append(("Large-C constants", asym_df, ctx.save_csv(asym_df, "asymptotics.csv")))
    return sec


def _simulate_case(ctx: _Ctx, case: str, seed: int):
    """Per-C table (and a DecayFit for the decaying cases) of one case."""
    from rmthess.simulate.fits import fit_decay
    from rmthess.simulate.frobenius import frobenius_sweep

    cfg = ctx.cfg
    trials = cfg.trials_hidden if case.startswith("hidden") else cfg.trials
    m = _m_for(case, cfg.m)
    d, N, extra = cfg.d, cfg.N, {}
    if case.startswith("output"):
        # m x m output blocks: no 1/d and no gamma in the limit; their finite-N Hessian
        # carries the exact O(1/N) self-term bias (1/N) E||a h h^T||^2, which the i != j
        # U-statistic (unbiased=True, the theory layer's own estimator) removes.
        d, N, extra = cfg.d_output, cfg.N_output, {"unbiased": True}
    common = dict(m=m, trials=trials, seed=seed, device=ctx.device, dtype="float64", **extra)
    if case in FIT_CASES:
        fit = fit_decay(case, cfg.Cs, d, N, n_boot=cfg.n_boot, **common)
        return fit.table, fit
    return frobenius_sweep(case, cfg.Cs, d, N, **common), None


def _worst(rows: list[tuple[int, Check]], section: str, label: str) -> Check:
    """Aggregate per-C checks into one: the C with the largest |deviation|/tolerance."""

    def score(c: Check) -> float:
        if not (math.isfinite(c.measured) and math.isfinite(c.predicted)):
            return math.inf
        return (
            abs(c.measured - c.predicted) / c.tolerance
            if c.tolerance > 0
            else (0.0 if c.measured == c.predicted else math.inf)
        )

    C, worst = max(rows, key=lambda t: score(t[1]))
    n_fail = sum(not c.passed for _, c in rows)
    detail = (
        f"{len(rows)} C values, {n_fail} outside tolerance; worst at C={C} "
        f"({score(worst):.2f} x tol); {worst.detail}"
    )
    return Check(
        section,
        f"{label} (worst C={C})",
        worst.measured,
        worst.predicted,
        worst.tolerance,
        n_fail == 0,
        detail,
    )


def _section_frobenius(ctx: _Ctx) -> Section:
    import pandas as pd

    from rmthess.report.figures import fig_frobenius_vs_C

    cfg = ctx.cfg
    theory = ctx.data.get("theory")
    tables, fits = [], {}
    for i, case in enumerate(cfg.cases):
        try:
            table, fit = _simulate_case(ctx, case, cfg.seed + 1000 * (i + 1))
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            ctx.checks.append(check_error("frobenius", f"{case} simulation", exc))
            ctx.progress.step(f"simulate {case}")
            continue
        tables.append(table.assign(case=case))
        if fit is not None:
            fits[case] = fit
        ctx.progress.step(f"simulate {case}")
    sim = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["case", "C", "F_diag", "F_diag_se", "F_off", "F_off_se"])
    )
    ctx.data["sim"], ctx.data["fits"] = sim, fits
    # checks: simulation vs theory at every C where both exist
    comp = []
    for case in cfg.cases:
        sm = sim[sim["case"] == case]
        if theory is None or sm.empty:
            continue
        th = theory[theory["case"] == case].set_index("C")
        per_q: dict[str, list] = {"F_diag": [], "F_off": []}
        for _, row in sm.iterrows():
            C = int(row["C"])
            if C not in th.index:
                continue
            t = th.loc[C]
            for q in ("F_diag", "F_off"):
                if q == "F_off" and case in ("linear-mse", "output-mse"):
                    continue
                chk = check_close(
                    "frobenius",
                    f"{case} {q}",
                    row[q],
                    t[q],
                    row[f"{q}_se"],
                    t[f"{q}_se"],
                    k=cfg.k_se,
                    rel_allowance=cfg.rel_allowance,
                )
                per_q[q].append((C, chk))
                comp.append(
                    dict(
                        case=case,
                        C=C,
                        quantity=q,
                        simulated=row[q],
                        simulated_se=row[f"{q}_se"],
                        theory=t[q],
                        theory_se=t[f"{q}_se"],
                        tolerance=chk.tolerance,
                        passed=chk.passed,
                    )
                )
        for q, rows in per_q.items():
            if rows:
                ctx.checks.append(_worst(rows, "frobenius", f"{case} {q} sim vs theory"))
        if case in ("linear-mse", "output-mse"):
            rel = float(np.max(np.abs(sm["F_off"]) / np.abs(sm["F_diag"])))
            ctx.checks.append(
                check_abs(
                    "frobenius",
                    f"{case} exactly block diagonal: max F_off/F_diag",
                    rel,
                    0.0,
                    1e-12,
                    "off-diagonal blocks vanish identically (THEORY.md section 2); tolerance = "
                    "float64 round-off",
                )
            )
    comp_df = pd.DataFrame(comp)
    fig = fig_frobenius_vs_C(
        theory if theory is not None else sim.iloc[:0],
        sim,
        ctx.data.get("asym", {}),
        [c for c in cfg.cases if c in set(sim["case"])],
    )
    sec = Section("Frobenius norms of the Hessian blocks against C (paper Figures 8-9)")
    sec.text.append(
        f"Simulation: d = {cfg.d}, N = {cfg.N} (gamma = {cfg.gamma:g}), m = {cfg.m}; the "
        f"output-layer cases (m x m blocks, no gamma dependence) use d = {cfg.d_output}, "
        f"N = {cfg.N_output} to shrink their O(m^2/N + m^2/d) finite-size bias; "
        f"{cfg.trials} independent draws per C ({cfg.trials_hidden} for the hidden-layer cases, "
        "whose averages over V are heavy-tailed); points are means +- 1 standard error. "
        "Lines: exact fixed-C theory (shaded: +-2 SE of the Monte-Carlo theory cases); "
        "dashed: large-C asymptote A C^-p. "
        f"Check: |sim - theory| <= {cfg.k_se:g} combined SE + {cfg.rel_allowance:.0%} "
        "finite-size allowance (finite d, N corrections are O(1/d + 1/N))."
    )
    sec.figures.append(
        ("F_diag and F_off against C, per case", ctx.save_fig(fig, "frobenius_vs_C.png"))
    )
    sec.tables.append(
        (
            "Simulated block norms (means over trials)",
            sim,
            ctx.save_csv(sim, "simulated_frobenius.csv"),
        )
    )
    if not comp_df.empty:
        sec.tables.append(
            ("Simulation vs theory, every C", comp_df, ctx.save_csv(comp_df, "sim_vs_theory.csv"))
        )
    return sec


def _section_decay(ctx: _Ctx) -> Section:
    import pandas as pd

    from rmthess.report.figures import fig_ratio_decay
    from rmthess.simulate.fits import ols_slope

    cfg = ctx.cfg
    fits = ctx.data.get("fits", {})
    theory = ctx.data.get("theory")
    recs, panels = [], []
    for case in [c for c in cfg.cases if c in fits]:
        fit = fits[case]
        tab = fit.table.sort_values("C")
        theory_slope, theory_slope_se = math.nan, 0.0
        if theory is not None:
            th = theory[(theory["case"] == case) & theory["C"].isin(fit.Cs)].sort_values("C")
            if len(th) == len(fit.Cs) and (th["ratio"] > 0).all():
                logC = np.log(th["C"].to_numpy(float))
                theory_slope = float(ols_slope(logC, np.log(th["ratio"].to_numpy(float)))[0])
                # Monte-Carlo theory: propagate the SE of log r(C) through the OLS weights
                xc = logC - logC.mean()
                w = xc / (xc**2).sum()
                rel = th["ratio_se"].to_numpy(float) / th["ratio"].to_numpy(float)
                theory_slope_se = float(math.sqrt(np.sum((w * rel) ** 2)))
        recs.append(
            dict(
                case=case,
                C_min=min(fit.Cs),
                C_max=max(fit.Cs),
                slope=fit.slope,
                ci_low=fit.ci[0],
                ci_high=fit.ci[1],
                slope_se=fit.slope_se,
                theory_slope_same_C=theory_slope,
                theory_slope_se=theory_slope_se,
                predicted_large_C=fit.predicted_slope,
            )
        )
        panels.append(
            dict(
                case=case,
                C=tab["C"].to_numpy(float),
                ratio=tab["ratio"].to_numpy(),
                ratio_se=tab["ratio_se"].to_numpy(),
                slope=fit.slope,
                ci_low=fit.ci[0],
                ci_high=fit.ci[1],
                intercept=fit.intercept,
                predicted_slope=fit.predicted_slope,
            )
        )
        ci = f"95% bootstrap CI [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]"
        ctx.checks.append(
            check_close(
                "decay",
                f"{case} slope vs exact theory, C={min(fit.Cs)}..{max(fit.Cs)}",
                fit.slope,
                theory_slope,
                fit.slope_se,
                theory_slope_se,
                k=cfg.k_se,
                rel_allowance=SLOPE_FINITE_SIZE,
                detail=f"{ci}; theory = OLS slope of the exact fixed-C limits at the same C",
            )
        )
        if min(fit.Cs) >= 8:
            ctx.checks.append(
                check_abs(
                    "decay",
                    f"{case} slope vs large-C rate {fit.predicted_slope:g}",
                    fit.slope,
                    fit.predicted_slope,
                    cfg.slope_tol,
                    f"{ci}; exact theory's own slope over these C: {theory_slope:.3f}",
                )
            )
    df = pd.DataFrame(recs)
    sec = Section("Decay of r(C) = ||H_off||_F / ||H_diag||_F")
    sec.text.append(
        "Least-squares slope of log r(C) against log C over the simulated C grid with a 95% "
        "bootstrap confidence interval (trials resampled within each C), beside the predicted "
        "large-C rate: 1/C for linear-ce and output-ce, 1/sqrt(C) for hidden-ce and hidden-mse. "
        "Checks: (1) the fitted slope against the slope of the exact fixed-C limits over the "
        f"same C values (within {cfg.k_se:g} combined SE + {SLOPE_FINITE_SIZE:.0%}); "
        f"(2) when the grid starts at C >= 8, against the large-C rate within {cfg.slope_tol:g}. "
        "At small C the exact curve itself is not yet a power law (e.g. hidden-mse has "
        "r(C)^2 proportional to 1/(C+2)), which is why (2) needs C >= 8."
    )
    if panels:
        sec.figures.append(
            (
                "r(C) with fitted slope",
                ctx.save_fig(fig_ratio_decay(panels, theory), "ratio_decay.png"),
            )
        )
    sec.tables.append(("Fitted slopes", df, ctx.save_csv(df, "decay_fits.csv")))
    return sec


def ks_distance(samples, x, density, zero_mass: float = 0.0) -> float:
    """Kolmogorov-Smirnov distance ``sup_t |F_n(t) - F(t)|`` between ``samples`` and a law.

    The law's CDF is ``zero_mass * 1[t >= 0] + int_{x_0}^t density`` (trapezoid rule on
    the increasing grid ``x``, which must cover the support); accuracy O(grid step^2) plus
    the grid's coverage of the support.
    """
    s = np.sort(np.asarray(samples, float))
    x = np.asarray(x, float)
    dens = np.clip(np.nan_to_num(np.asarray(density, float)), 0, None)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(x))])
    cont = np.interp(s, x, cdf)
    F_right = cont + zero_mass * (s >= 0)  # F(s)
    F_left = cont + zero_mass * (s > 0)  # F(s-): an atom at 0 counts from 0 on
    n = len(s)
    d_plus = np.max(np.arange(1, n + 1) / n - F_right)
    d_minus = np.max(F_left - np.arange(0, n) / n)
    return float(max(d_plus, d_minus))


def _section_spectra(ctx: _Ctx) -> Section:
    import pandas as pd

    from rmthess.report.figures import fig_spectra
    from rmthess.simulate.spectra import block_eigenvalues
    from rmthess.theory import GMPLaw, block_weight_law

    cfg = ctx.cfg
    case, C, d, N = "linear-ce", cfg.spectra_C, cfg.spectra_d, cfg.spectra_N
    gamma = d / N
    panels, recs = [], []
    for block in ("diag", "off"):
        ev = block_eigenvalues(case, block, C, d, N, seed=cfg.seed + 7, device=ctx.device)
        atoms, weights = block_weight_law(case, block, C, gamma, seed=cfg.seed)
        law = GMPLaw(atoms, weights, gamma)
        span = ev.max() - ev.min()
        x = np.linspace(ev.min() - 0.15 * span, ev.max() + 0.15 * span, 1500)
        dens = np.asarray(law.pdf(x), float)
        zm = float(getattr(law, "zero_mass", 0.0) or 0.0)
        mass = float(np.trapezoid(dens, x)) + zm
        ks = ks_distance(ev, x, dens, zm)
        recs.append(
            dict(
                block=block,
                C=C,
                d=d,
                N=N,
                gamma=gamma,
                ks=ks,
                theory_mass=mass,
                ev_min=ev.min(),
                ev_max=ev.max(),
                ev_mean=ev.mean(),
                law_mean=float(law.moment(1)),
                law_m2=float(law.moment(2)),
                ev_m2=float(np.mean(ev**2)),
            )
        )
        panels.append(
            dict(
                title=f"linear-ce {'diagonal' if block == 'diag' else 'off-diagonal'}"
                f" block, C={C}, gamma={gamma:g}",
                eigenvalues=ev,
                x=x,
                density=dens,
                zero_mass=zm,
            )
        )
        ctx.checks.append(
            check_upper(
                "spectra",
                f"linear-ce {block} block: KS distance to GMP law",
                ks,
                cfg.ks_tol,
                f"d={d}, N={N}; eigenvalue rigidity makes KS O(1/d) up to edge effects",
            )
        )
        ctx.checks.append(
            check_close(
                "spectra",
                f"linear-ce {block} block: mean eigenvalue vs law",
                ev.mean(),
                law.moment(1),
                k=0.0,
                rel_allowance=max(cfg.rel_allowance, 3 / math.sqrt(d)),
                detail="trace/d of one block fluctuates O(1/sqrt(dN)); allowance 3/sqrt(d)",
            )
        )
        ctx.progress.step(f"spectra {block}")
    df = pd.DataFrame(recs)
    sec = Section("Limiting spectral density of a block (beyond the paper)")
    sec.text.append(
        "Eigenvalues of one diagonal block H_00 and one off-diagonal block H_01 of a "
        f"linear model with CE loss (C = {C}, d = {d}, N = {N}), histogrammed under the "
        "limiting density from the generalized Marchenko-Pastur equation with the block's "
        "weight law (rmthess.theory.GMPLaw)."
    )
    sec.figures.append(
        (
            "block spectra vs limiting density",
            ctx.save_fig(fig_spectra(panels), "block_spectra.png"),
        )
    )
    sec.tables.append(("Spectra summary", df, ctx.save_csv(df, "spectra.csv")))
    return sec


def _block_ratio(H: np.ndarray, K: int, p: int) -> float:
    """sqrt(mean_{k != l} ||H_kl||^2 / mean_k ||H_kk||^2) of a (K p) x (K p) matrix."""
    B = (H.reshape(K, p, K, p) ** 2).sum(axis=(1, 3))
    diag = np.trace(B) / K
    off = (B.sum() - np.trace(B)) / (K * (K - 1))
    return float(math.sqrt(off / diag))


def _section_heatmaps(ctx: _Ctx) -> Section:
    import pandas as pd

    from rmthess.report.figures import fig_heatmaps
    from rmthess.simulate.heatmaps import hessian_heatmap

    cfg = ctx.cfg
    d, N, m = cfg.heatmap_d, cfg.heatmap_N, cfg.heatmap_m
    sec = Section("Hessian heatmaps |H| (paper Figures 2-3 and 6)")
    recs, panels = [], []
    for loss in ("mse", "ce"):
        for C in cfg.heatmap_Cs:
            H, lay = hessian_heatmap(
                "hidden",
                loss,
                C,
                d,
                N,
                m,
                seed=cfg.seed + C,
                part="hidden",
                device=ctx.device,
                return_layout=True,
            )
            r = _block_ratio(H, m, d)
            recs.append(dict(loss=loss, C=C, d=d, N=N, m=m, block_ratio=r))
            panels.append(
                dict(
                    title=f"hidden layer |H|, {loss.upper()}, C={C}",
                    H=H,
                    boundaries=lay.row_bounds[1:-1],
                )
            )
        ctx.progress.step(f"heatmaps {loss}")
    df = pd.DataFrame(recs)
    fig = fig_heatmaps(panels, ncols=len(cfg.heatmap_Cs))
    sec.figures.append(
        (
            "hidden-layer Hessian |H| at several C (Figure 6)",
            ctx.save_fig(fig, "heatmap_hidden.png"),
        )
    )
    cmin, cmax = min(cfg.heatmap_Cs), max(cfg.heatmap_Cs)
    pred = math.sqrt(cmin / cmax)
    for loss in ("mse", "ce"):
        sub = df[df["loss"] == loss].set_index("C")["block_ratio"]
        ctx.checks.append(
            check_upper(
                "heatmaps",
                f"hidden {loss}: r(C={cmax}) / r(C={cmin}) from one Hessian",
                sub[cmax] / sub[cmin],
                min(0.9, 3 * pred),
                f"theory ~ sqrt({cmin}/{cmax}) = {pred:.3g} at large C; bound 3x that (one small "
                f"instance, d={d}, N={N})",
            )
        )
    # the whole one-hidden-layer Hessian and its cross-layer block, at init and after
    # training (Figures 2-3)
    C = cfg.heatmap_full_C
    steps = cfg.heatmap_train_steps
    train_kwargs = dict(steps=steps, lr=cfg.train_lr)
    full_panels, cross_panels = [], []
    for step in (0, steps):
        H, lay = hessian_heatmap(
            "hidden",
            "ce",
            C,
            d,
            N,
            m,
            seed=cfg.seed,
            part="full",
            step=step,
            train_kwargs=train_kwargs,
            device=ctx.device,
            return_layout=True,
        )
        split = lay.layer_split if lay.layer_split is not None else m * d
        when = "at init" if step == 0 else f"after {step} Adam steps"
        bounds = lay.row_bounds[1:-1]
        full_panels.append(
            dict(title=f"whole Hessian |H|, CE, C={C}, {when}", H=H, boundaries=bounds)
        )
        cross_panels.append(
            dict(
                title=f"cross-layer block |H_wv|, {when}",
                H=H[:split, split:],
                boundaries=[b for b in bounds if b < split],
                col_boundaries=[b - split for b in bounds if b > split],
            )
        )
        ctx.progress.step(f"heatmap step {step}")
    full_panels += cross_panels
    fig2 = fig_heatmaps(full_panels, ncols=2)
    sec.figures.append(
        (
            "whole one-hidden-layer Hessian and its cross-layer block (CE), at "
            "initialization and after training",
            ctx.save_fig(fig2, "heatmap_full.png"),
        )
    )
    sec.text.append(
        f"Hidden-layer heatmaps: d = {d}, N = {N}, m = {m}; white lines separate the blocks "
        "(one per hidden neuron); log colour scale. Each single Hessian's block ratio "
        "r = sqrt(mean off-block ||H_jl||^2 / mean diagonal ||H_jj||^2) is tabulated. The "
        "whole Hessian orders the parameters as rows of W, then rows of V. At initialization "
        "the cross-layer block shows the block-circulant stripes of the residual term (one "
        "column per block, paper eq. 21); after training they are gone."
    )
    sec.tables.append(("Block ratio of single Hessians", df, ctx.save_csv(df, "heatmaps.csv")))
    return sec


DYN_NORMS = (
    "cross",
    "cross_residual",
    "cross_gn",
    "hidden_diag",
    "hidden_off",
    "output_diag",
    "output_off",
)
DYN_LABELS = {
    "cross": "cross-layer H_wv (total)",
    "cross_residual": "H_wv residual part (block-circulant)",
    "cross_gn": "H_wv Gauss-Newton part",
    "hidden_diag": "hidden layer, diagonal blocks",
    "hidden_off": "hidden layer, off-diagonal blocks",
    "output_diag": "output layer, diagonal blocks",
    "output_off": "output layer, off-diagonal blocks",
    "circulant_fraction": "block-circulant fraction of ||H_wv||^2",
    "hidden_ratio": "hidden off/diag norm ratio",
    "accuracy": "training accuracy",
}


def _section_dynamics(ctx: _Ctx) -> Section:
    from rmthess.report.figures import fig_dynamics
    from rmthess.simulate.training import train_dynamics

    cfg = ctx.cfg
    m = cfg.heatmap_m if cfg.mode == "tiny" else cfg.m
    kw = dict(
        C=cfg.train_C,
        d=cfg.train_d,
        m=m,
        N=cfg.train_N,
        steps=cfg.train_steps,
        lr=cfg.train_lr,
        record_every=cfg.train_record_every,
        seed=cfg.seed,
        device=ctx.device,
        loss="ce",
    )
    df = train_dynamics(**kw)
    ctx.progress.step("dynamics")
    norms = [c for c in DYN_NORMS if c in df]
    fracs = [c for c in ("circulant_fraction", "hidden_ratio", "accuracy") if c in df]
    sec = Section("Dynamic force: the cross-layer block along training")
    fig = fig_dynamics(df, columns=norms, fractions=fracs, labels=DYN_LABELS)
    sec.figures.append(("block norms along training", ctx.save_fig(fig, "dynamics.png")))
    sec.tables.append(("Block norms along training", df, ctx.save_csv(df, "dynamics.csv")))
    sec.text.append(
        f"One-hidden-layer net, CE loss, random labels, C = {kw['C']}, d = {kw['d']}, "
        f"m = {kw['m']}, N = {kw['N']}, full-batch Adam, lr = {kw['lr']:g} with a cosine "
        f"schedule, {kw['steps']} steps (rmthess.simulate.training.train_dynamics; the paper "
        "uses d = C = 500, lr = 1e-4 until convergence). The residual part of the cross-layer "
        "block, (1/N) sum_i M_ij r_ik x_i e_j^T with r_i = p_i - e_{y_i}, is what draws the "
        "block-circulant stripes at initialization; it shrinks as the residuals do, while the "
        "Gauss-Newton part remains. The within-layer blocks stay near block diagonal."
    )
    first, last = df.iloc[0], df.iloc[-1]
    if "circulant_fraction" in df:
        ctx.checks.append(
            check_upper(
                "dynamics",
                "block-circulant fraction of H_wv: last / first",
                last["circulant_fraction"] / first["circulant_fraction"],
                0.5,
                f"from {first['circulant_fraction']:.3f} at init to "
                f"{last['circulant_fraction']:.3f}; the no-pattern level is 1/m = {1 / m:.3f}; "
                "bound: at least halved",
            )
        )
    if "cross_residual" in df:
        ctx.checks.append(
            check_upper(
                "dynamics",
                "residual (circulant) part of H_wv: last / first",
                last["cross_residual"] / first["cross_residual"],
                0.8,
                "the residuals p_i - e_y shrink as the training loss falls",
            )
        )
    if "circulant_fraction" in df:
        ctx.checks.append(
            check_lower(
                "dynamics",
                "block-circulant fraction at init (CE)",
                first["circulant_fraction"],
                0.5,
                "the residual term dominates H_wv at initialization (paper eq. 18-21)",
            )
        )
    return sec


SECTIONS = (
    ("theory", _section_theory, 6),
    ("frobenius", _section_frobenius, 6),
    ("decay", _section_decay, 0),
    ("spectra", _section_spectra, 2),
    ("heatmaps", _section_heatmaps, 4),  # 2 losses + 2 training states
    ("dynamics", _section_dynamics, 1),
)


def environment(device) -> dict:
    """Versions, device and machine facts recorded in the report."""
    import matplotlib
    import pandas
    import scipy
    import torch

    import rmthess

    env = {
        "rmthess": rmthess.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "pandas": pandas.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(device),
        "torch threads": torch.get_num_threads(),
        "cpu count": __import__("os").cpu_count(),
    }
    if getattr(device, "type", "") == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def run_report(
    cfg: ReportConfig,
    out,
    device="auto",
    force: bool = False,
    progress: bool = True,
    sections=None,
) -> ReportResult:
    """Run every section of the report and write it atomically into ``out``.

    Parameters
    ----------
    cfg : ReportConfig (see :func:`rmthess.report.config.get_config`).
    out : output directory; created if absent; refused if non-empty unless ``force``.
    device : ``"auto" | "cpu" | "cuda"``; ``cuda`` on a machine without it raises
        ``ValueError`` before anything is written.
    progress : draw a tqdm progress bar on stderr.
    sections : names of the sections to run (default: all of :data:`SECTIONS`).

    Returns
    -------
    ReportResult (checks, timings, written files). On ``KeyboardInterrupt`` (or any
    exception) the staging directory is removed and nothing claiming success remains.
    """
    from rmthess.simulate.device import resolve_device

    dev = resolve_device(device)
    names = [s[0] for s in SECTIONS]
    if sections is not None:
        bad = sorted(set(sections) - set(names))
        if bad:
            raise ValueError(f"unknown report section(s) {bad}; allowed: {', '.join(names)}")
    out = prepare_out_dir(out, force=force)
    t_start = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    todo = [s for s in SECTIONS if sections is None or s[0] in sections]
    units = {
        "theory": len(cfg.cases) + sum(c in MC_THEORY_CASES for c in cfg.cases) * (len(cfg.Cs) - 1)
    }
    bar = _Progress(sum(units.get(s[0], s[2]) for s in todo), progress)
    timings = {}
    try:
        with Staging(out) as staging, blas_threads(1):
            ctx = _Ctx(cfg, dev, staging, bar)
            for name, fn, _ in todo:
                t0 = time.perf_counter()
                try:
                    sec = fn(ctx)
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as exc:  # a broken section becomes a failed check
                    ctx.checks.append(check_error(name, f"section {name} ran", exc))
                    sec = Section(f"{name}: FAILED", text=[f"{type(exc).__name__}: {exc}"])
                timings[name] = time.perf_counter() - t0
                sec.seconds = timings[name]
                ctx.sections.append(sec)
            total = time.perf_counter() - t_start
            import pandas as pd

            checks_df = pd.DataFrame([c.to_dict() for c in ctx.checks])
            checks_df.to_csv(ctx.tab_dir / "checks.csv", index=False)
            settings = cfg.to_dict()
            settings["device requested"] = str(device)
            settings["started"] = started
            settings.update({f"time {k} (s)": round(v, 2) for k, v in timings.items()})
            settings["total time (s)"] = round(total, 2)
            env = environment(dev)
            (staging.path / "run.json").write_text(
                json.dumps(
                    {
                        "settings": settings,
                        "environment": env,
                        "checks": [c.to_dict() for c in ctx.checks],
                    },
                    indent=1,
                    default=str,
                )
            )
            page = render_html(
                f"rmthess report ({cfg.mode} mode)",
                ctx.checks,
                ctx.sections,
                settings,
                env,
                ctx.fig_dir,
                total,
            )
            (staging.path / "index.html").write_text(page, encoding="utf-8")
            files = staging.commit()
    finally:
        bar.close()
    return ReportResult(
        out=out, checks=ctx.checks, seconds=total, section_seconds=timings, files=files
    )
