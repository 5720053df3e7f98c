"""Section ``frobenius``: simulated block norms against the exact limits at every C.

For every case, :func:`rmthess.simulate.frobenius_sweep` (or :func:`rmthess.simulate.fit_decay`
for the cases whose ratio decays, so that the same draws give the slope) over the C grid;
checks: simulation vs theory at every C within ``k_se`` combined standard errors plus the
finite-size allowance (docs/theory.md section 6), and the exact zeros of the MSE
off-diagonal blocks. Figure: F_diag and F_off against C (paper Figures 8-9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rmthess.cases import get_case
from rmthess.report.checks import Check, check_abs, check_close, check_error
from rmthess.report.config import ReportConfig
from rmthess.report.sections._base import Output, Section, m_for, section_seed, worst_of
from rmthess.report.sections.theory import TheoryResult

NAME = "frobenius"
NEEDS = ("theory",)
QUANTITIES = ("F_diag", "F_off")


@dataclass
class FrobeniusResult:
    """Simulated norms (one row per case and C), the decay fits, and the comparison."""

    cfg: ReportConfig
    theory: TheoryResult
    sim: object  # DataFrame: BlockFrobenius.to_dict() rows with a case column
    fits: dict = field(default_factory=dict)  # case -> DecayFit
    comparison: object = None  # DataFrame: sim vs theory per case, C, quantity
    errors: list = field(default_factory=list)  # (case, exception) of failed simulations


def units(cfg: ReportConfig) -> int:
    return len(cfg.cases)


def _sizes(cfg: ReportConfig, case: str) -> tuple[int, int, dict]:
    """``(d, N, extra)`` of a case: the m x m output blocks use their own, larger sizes and
    the i != j U-statistic, which removes their exact O(1/N) self-term bias
    (docs/theory.md section 6)."""
    if get_case(case).layer == "output":
        return cfg.d_output, cfg.N_output, {"unbiased": True}
    return cfg.d, cfg.N, {}


def simulate_case(cfg: ReportConfig, case: str, *, seed: int, device):
    """``(per-C table, DecayFit or None)`` of one case."""
    from rmthess.simulate.fits import fit_decay
    from rmthess.simulate.frobenius import frobenius_sweep

    c = get_case(case)
    d, N, extra = _sizes(cfg, case)
    trials = cfg.trials_hidden if c.layer == "hidden" else cfg.trials
    kw = dict(trials=trials, seed=seed, device=device, dtype="float64", **extra)
    m = m_for(case, cfg.m)
    if c.decays:
        fit = fit_decay(case, cfg.Cs, d, N, m, n_boot=cfg.n_boot, theory=False, **kw)
        return fit.to_frame(), fit
    return frobenius_sweep(case, cfg.Cs, d, N, m, **kw), None


def compute(
    cfg: ReportConfig, *, theory: TheoryResult, device=None, step=lambda label: None
) -> FrobeniusResult:
    import pandas as pd

    tables, fits, errors = [], {}, []
    for case in cfg.cases:
        step(f"simulate {case}")
        try:
            table, fit = simulate_case(
                cfg, case, seed=section_seed(cfg, "frobenius", case), device=device
            )
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            errors.append((case, exc))
        else:
            tables.append(table.assign(case=case))
            if fit is not None:
                fits[case] = fit
    cols = ["case", "C", "F_diag", "F_diag_se", "F_off", "F_off_se"]
    sim = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=cols)
    comp = []
    for case in cfg.cases:
        sm, th = sim[sim["case"] == case], theory.limits_of(case)
        for _, row in sm.iterrows():
            C = int(row["C"])
            if C not in th.index:
                continue
            for q in QUANTITIES:
                if q == "F_off" and get_case(case).zero_off:
                    continue
                comp.append(
                    dict(
                        case=case,
                        C=C,
                        quantity=q,
                        simulated=row[q],
                        simulated_se=row[f"{q}_se"],
                        theory=th.loc[C, q],
                        theory_se=th.loc[C, f"{q}_se"],
                    )
                )
    return FrobeniusResult(cfg, theory, sim, fits, pd.DataFrame(comp), errors)


def checks(result: FrobeniusResult) -> list[Check]:
    cfg = result.cfg
    out = [check_error(NAME, f"{case} simulation", exc) for case, exc in result.errors]
    comp = result.comparison
    for case in cfg.cases:
        for q in QUANTITIES:
            rows = []
            if comp is not None and not comp.empty:
                sub = comp[(comp["case"] == case) & (comp["quantity"] == q)]
                for _, r in sub.iterrows():
                    chk = check_close(
                        NAME,
                        f"{case} {q}",
                        r["simulated"],
                        r["theory"],
                        r["simulated_se"],
                        r["theory_se"],
                        k=cfg.k_se,
                        rel_allowance=cfg.rel_allowance,
                    )
                    rows.append((int(r["C"]), chk))
            if rows:
                out.append(worst_of(rows, NAME, f"{case} {q} sim vs theory"))
        sm = result.sim[result.sim["case"] == case]
        if get_case(case).zero_off and not sm.empty:
            rel = float(np.max(np.abs(sm["F_off"]) / np.abs(sm["F_diag"])))
            out.append(
                check_abs(
                    NAME,
                    f"{case} exactly block diagonal: max F_off/F_diag",
                    rel,
                    0.0,
                    1e-12,
                    "off-diagonal blocks vanish identically (docs/theory.md section 2); "
                    "tolerance = float64 round-off",
                )
            )
    return out


def render(result: FrobeniusResult, out: Output) -> Section:
    from rmthess.report.figures import fig_frobenius_vs_C

    cfg, sim = result.cfg, result.sim
    cases = [c for c in cfg.cases if c in set(sim["case"])]
    asym = {}
    for case in cases:
        a = result.theory.asym_of(case)
        if a is not None:
            p_off = a["p_off"] if a["p_off"] is not None else float("inf")
            asym[case] = (a["A_diag"], a["p_diag"], a["A_off"], p_off)
    fig = fig_frobenius_vs_C(result.theory.limits, sim, asym, cases)
    sec = Section("Frobenius norms of the Hessian blocks against C (paper Figures 8-9)")
    sec.text.append(
        f"Simulation: d = {cfg.d}, N = {cfg.N} (gamma = {cfg.gamma:g}), m = {cfg.m}; the "
        f"output-layer cases (m x m blocks, no gamma dependence) use d = {cfg.d_output}, "
        f"N = {cfg.N_output} to shrink their O(m^2/N + m^2/d) finite-size bias; "
        f"{cfg.trials} independent draws per C ({cfg.trials_hidden} for the hidden-layer cases, "
        "whose averages over V are heavy-tailed); points are means +- 1 standard error. "
        "Lines: exact fixed-C theory (shaded: +-2 SE where a theory value is a "
        "Monte-Carlo integral); "
        "dashed: large-C asymptote A C^-p. "
        f"Check: |sim - theory| <= {cfg.k_se:g} combined SE + {cfg.rel_allowance:.0%} "
        "finite-size allowance (finite d, N corrections are O(1/d + 1/N); docs/theory.md "
        "section 6)."
    )
    sec.figures.append(
        ("F_diag and F_off against C, per case", out.figure(fig, "frobenius_vs_C.png"))
    )
    sec.tables.append(
        (
            "Simulated block norms (means over trials)",
            sim,
            out.table(sim, "simulated_frobenius.csv"),
        )
    )
    if result.comparison is not None and not result.comparison.empty:
        comp = result.comparison
        sec.tables.append(
            ("Simulation vs theory, every C", comp, out.table(comp, "sim_vs_theory.csv"))
        )
    return sec
