"""Section ``spectra``: eigenvalues of one block against its limiting GMP law.

A diagonal block ``H_00`` and an off-diagonal block ``H_01`` of the linear model with CE
loss; the limiting law is :class:`rmthess.theory.GMPLaw` of the block's weight law
(docs/theory.md section 3). Checks: Kolmogorov-Smirnov distance (:func:`ks_statistic`,
``GMPLaw.cdf`` with its atom at zero) and the mean eigenvalue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rmthess.report.checks import Check, check_close, check_upper
from rmthess.report.config import ReportConfig
from rmthess.report.sections._base import Output, Section, section_seed

NAME = "spectra"
NEEDS: tuple[str, ...] = ()
CASE = "linear-ce"
BLOCKS = ("diag", "off")


def ks_statistic(samples, law) -> float:
    """Kolmogorov-Smirnov distance ``sup_t |F_n(t) - F(t)|`` between samples and a law
    with an atom at zero (``law.cdf`` right-continuous, ``law.zero_mass`` its atom).

    :func:`scipy.stats.kstest` assumes a continuous law: it takes ``F(x_i)`` for the left
    limit ``F(x_i-)`` too, which at an atom overstates the distance by up to the atom's
    mass (0.5 for Marchenko-Pastur at gamma = 2). Here ``F(x-) = F(x) - zero_mass 1[x = 0]``;
    without an atom the value equals ``kstest(samples, law.cdf).statistic``.
    """
    s = np.sort(np.asarray(samples, dtype=float))
    n = len(s)
    F = np.asarray(law.cdf(s), dtype=float)
    F_left = F - float(law.zero_mass) * (s == 0.0)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - F), np.max(F_left - (i - 1) / n)))


@dataclass
class SpectraResult:
    cfg: ReportConfig
    table: object  # DataFrame, one row per block
    panels: list  # eigenvalues and density on a grid, per block


def units(cfg: ReportConfig) -> int:
    return len(BLOCKS)


def compute(cfg: ReportConfig, *, device=None, step=lambda label: None) -> SpectraResult:
    import pandas as pd

    from rmthess.simulate.spectra import block_eigenvalues
    from rmthess.theory import GMPLaw, block_weight_law

    C, d, N = cfg.spectra.C, cfg.spectra.d, cfg.spectra.N
    gamma = d / N
    recs, panels = [], []
    for block in BLOCKS:
        step(f"spectra {block}")
        ev = block_eigenvalues(
            CASE, block, C, d, N, seed=section_seed(cfg, "spectra"), device=device
        )
        law = GMPLaw(*block_weight_law(CASE, block, C, gamma, seed=cfg.seed), gamma)
        span = ev.max() - ev.min()
        x = np.linspace(ev.min() - 0.15 * span, ev.max() + 0.15 * span, 1500)
        dens = np.asarray(law.pdf(x), float)
        ks = ks_statistic(ev, law)
        recs.append(
            dict(
                block=block,
                C=C,
                d=d,
                N=N,
                gamma=gamma,
                ks=ks,
                zero_mass=float(law.zero_mass),
                ev_min=ev.min(),
                ev_max=ev.max(),
                ev_mean=ev.mean(),
                law_mean=float(law.moment(1)),
                ev_m2=float(np.mean(ev**2)),
                law_m2=float(law.moment(2)),
            )
        )
        kind = "diagonal" if block == "diag" else "off-diagonal"
        panels.append(
            dict(
                title=f"{CASE} {kind} block, C={C}, gamma={gamma:g}",
                eigenvalues=ev,
                x=x,
                density=dens,
                zero_mass=float(law.zero_mass),
            )
        )
    return SpectraResult(cfg, pd.DataFrame(recs), panels)


def checks(result: SpectraResult) -> list[Check]:
    cfg, out = result.cfg, []
    for _, r in result.table.iterrows():
        d = int(r["d"])
        out.append(
            check_upper(
                NAME,
                f"{CASE} {r['block']} block: KS distance to GMP law",
                r["ks"],
                cfg.ks_tol,
                f"d={d}, N={int(r['N'])}; eigenvalues are rigid, so KS is O(1/d) up to edge "
                "effects (a KS p-value would assume independent samples: not used)",
            )
        )
        out.append(
            check_close(
                NAME,
                f"{CASE} {r['block']} block: mean eigenvalue vs law",
                r["ev_mean"],
                r["law_mean"],
                k=0.0,
                rel_allowance=max(cfg.rel_allowance, 3 / math.sqrt(d)),
                detail="trace/d of one block fluctuates O(1/sqrt(dN)); allowance 3/sqrt(d)",
            )
        )
    return out


def render(result: SpectraResult, out: Output) -> Section:
    from rmthess.report.figures import fig_spectra

    cfg = result.cfg
    sec = Section("Limiting spectral density of a block (beyond the paper)")
    sec.text.append(
        "Eigenvalues of one diagonal block H_00 and one off-diagonal block H_01 of a linear "
        f"model with CE loss (C = {cfg.spectra.C}, d = {cfg.spectra.d}, N = {cfg.spectra.N}), "
        "histogrammed under the limiting density from the generalized Marchenko-Pastur "
        "equation with the block's weight law (rmthess.theory.GMPLaw; docs/theory.md "
        "section 3)."
    )
    fig = fig_spectra(result.panels)
    sec.figures.append(("block spectra vs limiting density", out.figure(fig, "block_spectra.png")))
    sec.tables.append(("Spectra summary", result.table, out.table(result.table, "spectra.csv")))
    return sec
