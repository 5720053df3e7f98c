"""Section ``clusters``: the clustered-data ablation of the paper's Appendix B.2 (Figs 11-12).

Data: ``rmthess.data.clustered`` (K = clusters x C centres on the unit sphere, several
clusters per class, d = ``cfg.cluster.d``, ``cfg.cluster.per_class`` samples per class); model: the
paper's one-hidden-layer ReLU net (m = ``cfg.cluster.m``, no biases, LeCun initialization), CE
loss, at initialization. For every (clusters, C): the off/diag ratio of the class blocks of
the output layer and of the hidden-neuron blocks, exact (block norms from the dense Hessian).

Paper's finding: the block-diagonal pattern appears when C is large, whatever the number of
clusters. Check: for every cluster count, the class-block ratio at the largest C is below the
one at the smallest C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmthess.report.checks import Check, check_upper
from rmthess.report.config import ReportConfig
from rmthess.report.sections._base import Output, Section, section_seed

NAME = "clusters"
NEEDS: tuple[str, ...] = ()


@dataclass
class ClustersResult:
    cfg: ReportConfig
    ratios: object  # DataFrame: clusters, C, blocks, ratio


def units(cfg: ReportConfig) -> int:
    return len(cfg.cluster.counts)


def compute(cfg: ReportConfig, *, device=None, step=lambda label: None) -> ClustersResult:
    import pandas as pd

    from rmthess.curvature import curvature_operator, mlp
    from rmthess.curvature.blocks import block_norms
    from rmthess.data import clustered

    recs = []
    for K in cfg.cluster.counts:
        step(f"clusters K={K}")
        for C in cfg.cluster.Cs:
            ds = clustered(C, cfg.cluster.d, C * cfg.cluster.per_class, clusters=K, seed=cfg.seed)
            model = mlp(
                ds.d,
                C,
                (cfg.cluster.m,),
                bias=False,
                seed=section_seed(cfg, "clusters", "model", C),
            )
            op = curvature_operator(model, "ce", ds.tensors())
            for b in ("output-rows", "hidden-rows"):
                bm = block_norms(None, None, None, b, op=op, exact=True, progress=False)
                recs.append(dict(clusters=K, C=C, blocks=b, ratio=bm.ratio, n_matvecs=bm.n_matvecs))
    return ClustersResult(cfg, pd.DataFrame(recs))


def checks(result: ClustersResult) -> list[Check]:
    cfg, df, out = result.cfg, result.ratios, []
    cmin, cmax = min(cfg.cluster.Cs), max(cfg.cluster.Cs)
    for K in cfg.cluster.counts:
        sub = df[(df["clusters"] == K) & (df["blocks"] == "output-rows")].set_index("C")["ratio"]
        out.append(
            check_upper(
                NAME,
                f"{K} clusters/class: class-block ratio r(C={cmax}) / r(C={cmin})",
                sub[cmax] / sub[cmin],
                1.0,
                "paper App. B.2: block-diagonal structure appears at large C whatever the "
                "number of clusters (exact ratios of one Hessian each)",
            )
        )
    return out


COINCIDE_RTOL = 0.005
"""Curves r(C) within 0.5 % of each other at every C look like one line on the plot."""


def _coinciding(df, blocks: str, counts) -> list[list[int]]:
    """The cluster counts of one panel grouped by coinciding curves r(C) (within
    :data:`COINCIDE_RTOL` at every C): ``[[1, 2, 4], ...]``."""
    groups: list[tuple[list[int], object, object]] = []
    for K in counts:
        sub = df[(df["clusters"] == K) & (df["blocks"] == blocks)].sort_values("C")
        C, r = sub["C"].to_numpy(), sub["ratio"].to_numpy()
        for Ks, C0, r0 in groups:
            if np.array_equal(C, C0) and np.allclose(r, r0, rtol=COINCIDE_RTOL, atol=0.0):
                Ks.append(K)
                break
        else:
            groups.append(([K], C, r))
    return [Ks for Ks, _, _ in groups]


def render(result: ClustersResult, out: Output) -> Section:
    import matplotlib.pyplot as plt

    cfg, df = result.cfg, result.ratios
    sec = Section("Clustered data: block ratio vs number of classes (paper Appendix B.2)")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    styles = [("o", "-", 7), ("s", "--", 5.5), ("^", ":", 4.5), ("D", "-.", 3.5)]
    for ax, b in zip(axes, ("output-rows", "hidden-rows"), strict=True):
        groups = _coinciding(df, b, cfg.cluster.counts)
        for i, K in enumerate(cfg.cluster.counts):
            sub = df[(df["clusters"] == K) & (df["blocks"] == b)].sort_values("C")
            marker, ls, ms = styles[i % len(styles)]
            label = f"{K} cluster(s) per class"
            same = next(Ks for Ks in groups if K in Ks)
            if len(same) > 1:  # say so: coinciding curves show as one
                label += f" (= {', '.join(str(k) for k in same if k != K)}: curves coincide)"
            ax.plot(sub["C"], sub["ratio"], ls=ls, marker=marker, ms=ms, mfc="none", label=label)
        ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(list(cfg.cluster.Cs), [str(c) for c in cfg.cluster.Cs])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("number of classes C")
        ax.set_title("class blocks (output layer)" if b == "output-rows" else "hidden neurons")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("off/diag ratio r")
    sec.figures.append(("block ratio vs C, per cluster count", out.figure(fig, "clusters.png")))
    sec.text.append(
        f"K-clustered data (clusters on the unit sphere in d = {cfg.cluster.d}, several per "
        f"class, {cfg.cluster.per_class} samples per class), one hidden ReLU layer of "
        f"{cfg.cluster.m} neurons, CE, at initialization; exact block norms of one Hessian per "
        "point (dense-free: unit probes on each block)."
    )
    sec.tables.append(("Ratios", df, out.table(df, "clusters.csv")))
    return sec
