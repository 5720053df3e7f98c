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
    """C values of the theory curve: the simulated C, plus a log grid unless the case's
    limits are costly integrals (Monte Carlo or the Gram quadrature: seconds per C)."""
    if get_case(case).mc_route:
        return sorted(set(cfg.Cs))
    lo, hi = min(cfg.Cs), max(cfg.Cs)
    grid = np.unique(np.round(np.geomspace(lo, hi, cfg.theory.C_points)).astype(int))
    return sorted(set(grid.tolist()) | set(cfg.Cs))


def units(cfg: ReportConfig) -> int:
    return sum(len(C_grid(cfg, c)) if get_case(c).mc_route else 1 for c in cfg.cases)


REPORT_INIT = "lecun"  # the initialization every simulation of the report uses


def check_store(store) -> None:
    """Refuse (``ValueError``, before any work) a ``store`` that is not a sweep store of
    ``theory`` records."""
    import os

    from rmthess.sweep.store import ResultStore

    if not os.path.isdir(os.path.join(store, "results")):
        raise ValueError(f"--store must be a sweep store directory, got {store!r}")
    manifest = ResultStore(store).read_manifest()
    task = None if not isinstance(manifest, dict) else manifest.get("task")
    if task != "theory":
        raise ValueError(
            f"--store {store!r} holds {task!r} records, not 'theory' records (a store of "
            "'rmthess sweep run' with task = \"theory\")"
        )


def _same(rec, key, want) -> bool:
    """``rec[key] == want`` where a missing or NaN value is ``None``."""
    got = rec.get(key)
    if got is not None and isinstance(got, float) and np.isnan(got):
        got = None
    if want is None or got is None:
        return want is None and got is None
    return got == want


def _stored_limits(cfg: ReportConfig):
    """``{(case, C): record}`` of the theory records in ``cfg.store`` that match this run on
    every setting that changes the limit or its estimator: gamma, m, the initialization
    (the report simulates :data:`REPORT_INIT`), and for the Monte-Carlo cases the numbers
    of V and g draws the report would use (``n_samples``, ``n_inner``), for the Gram
    quadrature its method and tolerance (``method``, ``tol``). The Monte-Carlo
    seed is not matched: it changes the noise of the estimate (whose standard error the
    record holds), not what is estimated; sweep seeds come from the configuration hash."""
    if cfg.store is None:
        return {}
    from rmthess.inits import resolve_init
    from rmthess.sweep import load
    from rmthess.theory.frobenius import DEFAULT_TOL
    from rmthess.theory.hidden_integrals import default_sizes

    check_store(cfg.store)
    want_init = resolve_init(REPORT_INIT)
    out = {}
    for rec in load(cfg.store).to_dict("records"):
        if rec.get("case") not in cfg.cases or not np.isclose(rec["gamma"], cfg.gamma):
            continue
        c = get_case(rec["case"])
        m, C = m_for(rec["case"], cfg.m), int(rec["C"])
        if not _same(rec, "m", m):
            continue
        try:
            init = resolve_init(rec.get("init"))
        except (TypeError, ValueError):  # missing or unknown: not known to be ours
            continue
        if (init.name, init.sigma) != (want_init.name, want_init.sigma):
            continue
        if rec.get("method") != c.theory_method:  # computed by another route than this run's
            continue
        if c.mc_route and c.theory_method == "quadrature" and not _same(rec, "tol", DEFAULT_TOL):
            continue
        if c.monte_carlo_theory:
            n_V, n_g = default_sizes(rec["case"], C, m, cfg.theory.samples, None)
            if not (_same(rec, "n_samples", n_V) and _same(rec, "n_inner", n_g)):
                continue
        keep = {k: v for k, v in rec.items() if k not in _STORE_ONLY}
        keep["source"] = "store"
        out[(rec["case"], C)] = keep
    return out


_STORE_ONLY = ("hash", "seconds", "started", "finished", "host", "attempt", "samples", "inner")


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
        kwargs = {"seed": cfg.seed, "progress": False}  # the report's bar only: none nested
        if c.monte_carlo_theory and cfg.theory.samples is not None:
            kwargs["samples"] = cfg.theory.samples
        if not c.mc_route:
            step(f"theory {case}")
        for C in C_grid(cfg, case):
            if c.mc_route:
                step(f"theory {case} C={C}")
            if (case, C) in stored:
                rows.append(stored[(case, C)])
            else:
                rows.append({**frobenius_limits(case, C, cfg.gamma, m, **kwargs).to_dict()})
                rows[-1]["source"] = "computed"
        if m is None or m >= c.asymptotic_m_min:
            asym.append(asymptotic_constants(case, cfg.gamma, m).to_dict())
    return TheoryResult(cfg, pd.DataFrame.from_records(rows), pd.DataFrame.from_records(asym))


def checks(result: TheoryResult) -> list:
    return []


def render(result: TheoryResult, out: Output) -> Section:
    cfg = result.cfg
    sec = Section("Theory: exact limits at fixed C and large-C constants")
    sec.text.append(
        f"gamma = d/N = {cfg.gamma:g}, hidden width m = {cfg.m}. F_diag = lim (1/d)||H_kk||_F^2, "
        "F_off = lim (1/d)||H_kl||_F^2 (no 1/d for the m x m output-layer blocks); "
        "hidden-ce is a Monte-Carlo integral (standard errors in the table), output-ce a "
        "deterministic quadrature to relative 1e-6 (error estimates in the table), the other "
        "cases exact (docs/theory.md sections 4-5). Large-C asymptotes: F ~ A C^-p."
    )
    lim, asym = result.limits, result.asymptotics
    sec.tables.append(("Exact limits", lim, out.table(lim, "theory_limits.csv")))
    sec.tables.append(("Large-C constants", asym, out.table(asym, "asymptotics.csv")))
    return sec
