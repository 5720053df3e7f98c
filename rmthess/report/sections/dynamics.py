"""Section ``dynamics``: block norms of a one-hidden-layer Hessian along Adam training.

The "dynamic force" (docs/theory.md section 7): the residual part of the cross-layer block,
which draws block-circulant stripes at initialization, fades as the residuals shrink.
Checks: the block-circulant fraction of ``||H_wv||^2`` is large at initialization and at
least halved by training; the residual part shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass

from rmthess.report.checks import Check, check_lower, check_upper
from rmthess.report.config import ReportConfig
from rmthess.report.sections._base import Output, Section

NAME = "dynamics"
NEEDS: tuple[str, ...] = ()

NORMS = (
    "cross",
    "cross_residual",
    "cross_gn",
    "hidden_diag",
    "hidden_off",
    "output_diag",
    "output_off",
)
FRACTIONS = ("circulant_fraction", "hidden_ratio", "accuracy")
LABELS = {
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


@dataclass
class DynamicsResult:
    cfg: ReportConfig
    m: int
    table: object  # DataFrame: train_dynamics output, one row per recorded step


def units(cfg: ReportConfig) -> int:
    return 1


def compute(cfg: ReportConfig, *, device=None, step=lambda label: None) -> DynamicsResult:
    from rmthess.simulate.training import train_dynamics

    m = cfg.heatmap.m if cfg.mode == "tiny" else cfg.m
    step("dynamics")
    df = train_dynamics(
        C=cfg.train.C,
        d=cfg.train.d,
        N=cfg.train.N,
        m=m,
        steps=cfg.train.steps,
        lr=cfg.train.lr,
        record_every=cfg.train.record_every,
        seed=cfg.seed,
        device=device,
        loss="ce",
    )
    return DynamicsResult(cfg, m, df)


def checks(result: DynamicsResult) -> list[Check]:
    df, m, out = result.table, result.m, []
    first, last = df.iloc[0], df.iloc[-1]
    frac0, frac1 = first["circulant_fraction"], last["circulant_fraction"]
    out.append(
        check_lower(
            NAME,
            "block-circulant fraction at init (CE)",
            frac0,
            0.5,
            "the residual term dominates H_wv at initialization (docs/theory.md section 7)",
        )
    )
    out.append(
        check_upper(
            NAME,
            "block-circulant fraction of H_wv: last / first",
            frac1 / frac0,
            0.5,
            f"from {frac0:.3f} at init to {frac1:.3f}; the no-pattern level is 1/m = {1 / m:.3f}; "
            "bound: at least halved",
        )
    )
    out.append(
        check_upper(
            NAME,
            "residual (circulant) part of H_wv: last / first",
            last["cross_residual"] / first["cross_residual"],
            0.8,
            "the residuals p_i - e_y shrink as the training loss falls",
        )
    )
    return out


def _trend(first: float, last: float) -> str:
    if last > 1.05 * first:
        return f"rises from {first:.3g} to {last:.3g}"
    if last < 0.95 * first:
        return f"falls from {first:.3g} to {last:.3g}"
    return f"stays near {first:.3g} (ends at {last:.3g})"


def describe(result: DynamicsResult) -> str:
    """What the curves of this run show, in words (measured, not assumed)."""
    df = result.table
    first, last = df.iloc[0], df.iloc[-1]
    return (
        "In this run the block-circulant fraction of the cross-layer block "
        f"{_trend(first['circulant_fraction'], last['circulant_fraction'])}, its residual part "
        f"{_trend(first['cross_residual'], last['cross_residual'])} and its total norm "
        f"{_trend(first['cross'], last['cross'])}; the hidden layer's off/diagonal ratio "
        f"{_trend(first['hidden_ratio'], last['hidden_ratio'])}, so training does not by itself "
        "make the within-layer blocks more block-diagonal here (training accuracy "
        f"{_trend(first['accuracy'], last['accuracy'])})."
    )


def render(result: DynamicsResult, out: Output) -> Section:
    from rmthess.report.figures import fig_dynamics

    cfg, df = result.cfg, result.table
    norms = [c for c in NORMS if c in df]
    fracs = [c for c in FRACTIONS if c in df]
    sec = Section("Dynamic force: the cross-layer block along training")
    fig = fig_dynamics(df, columns=norms, fractions=fracs, labels=LABELS)
    sec.figures.append(("block norms along training", out.figure(fig, "dynamics.png")))
    sec.text.append(
        f"One-hidden-layer net, CE loss, random labels, C = {cfg.train.C}, d = {cfg.train.d}, "
        f"m = {result.m}, N = {cfg.train.N}, full-batch Adam, lr = {cfg.train.lr:g} with a cosine "
        f"schedule, {cfg.train.steps} steps (rmthess.simulate.training.train_dynamics; the paper "
        "uses d = C = 500, lr = 1e-4 until convergence). The residual part of the cross-layer "
        "block, (1/N) sum_i M_ij r_ik x_i e_j^T with r_i = p_i - e_{y_i}, draws the "
        "block-circulant stripes at initialization; it shrinks as the residuals do, while the "
        "Gauss-Newton part remains."
    )
    sec.text.append(describe(result))
    sec.tables.append(("Block norms along training", df, out.table(df, "dynamics.csv")))
    return sec
