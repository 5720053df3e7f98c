"""Section ``depth``: the block map of every layer of MLPs at init, measured, next to the
theory of every layer (issue 20; docs/theory.md section 9.6).

Networks ``rmthess.curvature.mlp(d, C, widths, activation, bias=False)`` at LeCun init on
Gaussian inputs ``x ~ N(0, I_d)`` with uniform labels, CE. Measured: the exact row-block
maps of every ``Linear`` layer (:func:`rmthess.curvature.layer_block_maps`), the first
layer's ``||H_jl||^2`` divided by ``d``, mean over ``cfg.depth.networks`` networks, ``r`` by
the delta method. Predicted: :func:`rmthess.theory.depth_frobenius` at the same ``gamma =
d/N`` with the finite-``N`` term of the later layers (``N=N``), Monte Carlo with SEs.

Checks: per cell and layer, the ratio ``r`` within ``cfg.depth.tol`` (the issue's 10 %) + 3
combined SEs. The figure shows ``r`` by layer, measured (points with 2 SE bars) and
predicted (lines), one panel per cell, with each layer's fan-out (the next layer's width, or
C) on the axis: the fan-out conjecture at a glance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rmthess.report.checks import Check, check_close
from rmthess.report.config import ReportConfig
from rmthess.report.sections._base import Output, Section, section_seed

NAME = "depth"
NEEDS: tuple[str, ...] = ()


@dataclass
class DepthResult:
    cfg: ReportConfig
    table: object  # DataFrame: one row per (cell, layer)


def units(cfg: ReportConfig) -> int:
    return len(cfg.depth.cells)


def measure_layers(widths, C, act, d, N, networks, seed) -> np.ndarray:
    """``(networks, layers, 2)`` per-network ``(F_diag, F_off)`` of every layer of
    ``mlp(d, C, widths, act, bias=False)`` (float64, LeCun) on ``N`` Gaussian inputs with uniform
    labels, CE, by :func:`rmthess.curvature.layer_block_maps`; the first layer's norms divided
    by ``d``. Also used by validation/depth_study.py."""
    import torch

    from rmthess.curvature import layer_block_maps, mlp

    gen = torch.Generator().manual_seed(seed)
    out = np.empty((networks, len(widths) + 1, 2))
    for t in range(networks):
        net = mlp(d, C, widths, activation=act, bias=False, seed=seed + 1 + t)
        X = torch.randn(N, d, generator=gen, dtype=torch.float64)
        y = torch.randint(0, C, (N,), generator=gen)
        maps = layer_block_maps(net.double(), "ce", (X, y), progress=False)
        for k, bm in enumerate(maps.values()):
            scale = d if k == 0 else 1.0
            out[t, k] = bm.F_diag / scale, bm.F_off / scale
    return out


def compute(cfg: ReportConfig, *, device=None, step=lambda label: None) -> DepthResult:
    import pandas as pd

    from rmthess._stats import summarize_pairs
    from rmthess.theory import depth_frobenius

    dc, recs = cfg.depth, []
    for widths, C, act in dc.cells:
        tag = f"{act} {'x'.join(map(str, widths))} C={C}"
        step(f"depth {tag}")
        seed = section_seed(cfg, "depth", act, C, *widths)
        per = measure_layers(tuple(widths), C, act, dc.d, dc.N, dc.networks, seed)
        with warnings.catch_warnings():  # m / d: the finite-size warning of small cells
            warnings.simplefilter("ignore", RuntimeWarning)
            th = depth_frobenius(
                "ce", C, dc.d / dc.N, tuple(widths), act, N=dc.N, samples=dc.samples, seed=seed
            )
        fanouts = (*widths[1:], C, None)
        for k, layer in enumerate(th.layers):
            meas = summarize_pairs(per[:, k])
            recs.append(
                dict(
                    cell=tag,
                    activation=act,
                    widths="x".join(map(str, widths)),
                    depth=len(widths),
                    C=C,
                    layer=layer,
                    fan_out=fanouts[k],
                    r=meas["ratio"],
                    r_se=meas["ratio_se"],
                    r_theory=float(th.ratio[k]),
                    r_theory_se=float(th.ratio_se[k]),
                    F_diag=meas["F_diag"],
                    F_diag_theory=float(th.F_diag[k]),
                    F_off=meas["F_off"],
                    F_off_theory=float(th.F_off[k]),
                    rel_err=float(th.ratio[k]) / meas["ratio"] - 1.0,
                )
            )
    return DepthResult(cfg, pd.DataFrame(recs))


def checks(result: DepthResult) -> list[Check]:
    dc = result.cfg.depth
    return [
        check_close(
            NAME,
            f"{row.cell} {row.layer}: r measured vs depth_frobenius",
            row.r,
            row.r_theory,
            row.r_se,
            row.r_theory_se,
            k=3.0,
            rel_allowance=dc.tol,
            detail=f"d={dc.d}, N={dc.N}, {dc.networks} networks; exact layer_block_maps",
        )
        for row in result.table.itertuples()
    ]


def render(result: DepthResult, out: Output) -> Section:
    import matplotlib.pyplot as plt

    cfg, df = result.cfg, result.table
    dc = cfg.depth
    cells = list(dict.fromkeys(df["cell"]))
    sec = Section("Every layer of deeper MLPs: measured block ratios vs theory (issue 20)")
    ncol = min(len(cells), 4)
    nrow = -(-len(cells) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.0 * nrow), squeeze=False)
    for ax, cell in zip(axes.flat, cells, strict=False):
        sub = df[df["cell"] == cell]
        x = np.arange(len(sub))
        ax.errorbar(x, sub["r"], yerr=2 * sub["r_se"], fmt="o", label="measured (2 SE)")
        ax.plot(x, sub["r_theory"], "-", color="k", lw=1, label="depth_frobenius")
        labels = [
            f"{lay}\n({'-' if fo is None or fo != fo else int(fo)})"
            for lay, fo in zip(sub["layer"], sub["fan_out"], strict=True)
        ]
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_title(cell, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    for ax in axes.flat[len(cells) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("off/diag ratio r")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    sec.figures.append(
        ("r by layer (fan-out in parentheses), measured vs theory", out.figure(fig, "depth.png"))
    )
    worst = df.loc[df["rel_err"].abs().idxmax()]
    sec.text.append(
        f"MLPs without biases at LeCun init, CE, Gaussian inputs (d = {dc.d}, N = {dc.N}, "
        f"uniform labels), {dc.networks} networks per cell; every layer's row-block map exact "
        "(layer_block_maps), the first layer's norms divided by d. Theory: depth_frobenius "
        f"(gamma = d/N, the finite-N term of the later layers, {dc.samples} Monte-Carlo "
        f"networks). Largest relative error of r: {100 * worst['rel_err']:+.1f} % "
        f"({worst['cell']}, {worst['layer']}). The fan-out conjecture (docs/theory.md 9.6): a "
        "narrow later layer caps the decay, but C and the narrowest later width combine; the "
        "fan-out alone does not set r."
    )
    sec.tables.append(("Ratios by layer", df, out.table(df, "depth.csv")))
    return sec
