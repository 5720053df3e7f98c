"""Section ``theory``: exact fixed-C limits of every case and the large-C constants.

:func:`rmthess.theory.frobenius_limits` on a log grid of C (the Monte-Carlo cases,
hidden-ce and output-ce, at the simulated C only) and
:func:`rmthess.theory.asymptotic_constants` (``F ~ A C^-p``). No checks of its own: the
numbers are the predictions the other sections test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmthess.cases import get_case
from rmthess.report.config import ReportConfig
from rmthess.report.sections._base import Output, Section, m_for

NAME = "theory"
NEEDS: tuple[str, ...] = ()


@dataclass
class TheoryResult:
    """Exact limits (one row per case and C) and large-C constants (one row per case)."""

    cfg: ReportConfig
    limits: object  # pandas.DataFrame: FrobeniusLimits.to_dict() rows
    asymptotics: object  # pandas.DataFrame: AsymptoticConstants.to_dict() rows

    def asym_of(self, case: str) -> dict | None:
        """``{A_diag, p_diag, A_off, p_off}`` of ``case``, or None if not finite."""
        rows = self.asymptotics[self.asymptotics["case"] == case]
        return None if rows.empty else rows.iloc[0].to_dict()

    def limits_of(self, case: str):
        """The limits of ``case`` indexed by C."""
        return self.limits[self.limits["case"] == case].set_index("C")


def C_grid(cfg: ReportConfig, case: str) -> list[int]:
    """C values of the theory curve: the simulated C, plus a log grid unless Monte Carlo."""
    if get_case(case).monte_carlo_theory:
        return sorted(set(cfg.Cs))
    lo, hi = min(cfg.Cs), max(cfg.Cs)
    grid = np.unique(np.round(np.geomspace(lo, hi, cfg.theory_C_points)).astype(int))
    return sorted(set(grid.tolist()) | set(cfg.Cs))


def units(cfg: ReportConfig) -> int:
    return sum(len(C_grid(cfg, c)) if get_case(c).monte_carlo_theory else 1 for c in cfg.cases)


def _stored_limits(cfg: ReportConfig):
    """``{(case, C): record}`` of the theory records in ``cfg.store`` that match this run
    (gamma, m and, for the Monte-Carlo cases, the number of samples)."""
    if cfg.store is None:
        return {}
    from rmthess.sweep import load
    from rmthess.sweep.store import ResultStore

    manifest = ResultStore(cfg.store).read_manifest()
    if manifest is None or manifest.get("task") != "theory":
        raise ValueError(f"store {cfg.store!r} is not a sweep store of theory records")
    out = {}
    for rec in load(cfg.store).to_dict("records"):
        c = get_case(rec["case"])
        m = m_for(rec["case"], cfg.m)
        if rec["case"] not in cfg.cases or not np.isclose(rec["gamma"], cfg.gamma):
            continue
        if (m is None) != (rec.get("m") is None or np.isnan(rec.get("m", np.nan))):
            continue
        if m is not None and int(rec["m"]) != m:
            continue
        if c.monte_carlo_theory:
            want = cfg.theory_samples
            got = rec.get("samples")
            got = None if got is None or np.isnan(got) else int(got)
            if got != want:
                continue
        keep = {k: v for k, v in rec.items() if k not in _STORE_ONLY}
        keep["source"] = "store"
        out[(rec["case"], int(rec["C"]))] = keep
    return out


_STORE_ONLY = ("hash", "seconds", "started", "finished", "host", "attempt", "samples")


def compute(cfg: ReportConfig, *, device=None, step=lambda label: None) -> TheoryResult:
    """Limits at every C of :func:`C_grid` (the same ``seed`` at every C: common random
    numbers make the Monte-Carlo theory curve smooth in C) and the large-C constants."""
    import pandas as pd

    from rmthess.theory import asymptotic_constants, frobenius_limits

    rows, asym = [], []
    stored = _stored_limits(cfg)
    for case in cfg.cases:
        c = get_case(case)
        m = m_for(case, cfg.m)
        kwargs = {"seed": cfg.seed}
        if c.monte_carlo_theory and cfg.theory_samples is not None:
            kwargs["samples"] = cfg.theory_samples
        for C in C_grid(cfg, case):
            if (case, C) in stored:
                rows.append(stored[(case, C)])
            else:
                rows.append({**frobenius_limits(case, C, cfg.gamma, m, **kwargs).to_dict()})
                rows[-1]["source"] = "computed"
            if c.monte_carlo_theory:
                step(f"theory {case} C={C}")
        if m is None or m >= c.asymptotic_m_min:
            asym.append(asymptotic_constants(case, cfg.gamma, m).to_dict())
        if not c.monte_carlo_theory:
            step(f"theory {case}")
    return TheoryResult(cfg, pd.DataFrame.from_records(rows), pd.DataFrame.from_records(asym))


def checks(result: TheoryResult) -> list:
    return []


def render(result: TheoryResult, out: Output) -> Section:
    cfg = result.cfg
    sec = Section("Theory: exact limits at fixed C and large-C constants")
    sec.text.append(
        f"gamma = d/N = {cfg.gamma:g}, hidden width m = {cfg.m}. F_diag = lim (1/d)||H_kk||_F^2, "
        "F_off = lim (1/d)||H_kl||_F^2 (no 1/d for the m x m output-layer blocks); "
        "hidden-ce and output-ce are Monte-Carlo integrals (standard errors in the table), "
        "the other cases exact (docs/theory.md sections 4-5). Large-C asymptotes: F ~ A C^-p."
    )
    lim, asym = result.limits, result.asymptotics
    sec.tables.append(("Exact limits", lim, out.table(lim, "theory_limits.csv")))
    sec.tables.append(("Large-C constants", asym, out.table(asym, "asymptotics.csv")))
    return sec
