"""Matplotlib figures of the report, from plain arrays and pandas DataFrames.

No function here computes anything but a plot: the numbers come from
:mod:`rmthess.report.runner`, so the figures can be re-drawn from the report's CSVs.
Each function returns a :class:`matplotlib.figure.Figure` (Agg-safe; nothing is shown).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

CASE_TITLES = {
    "linear-mse": "linear, MSE",
    "linear-ce": "linear, CE (Thm 1)",
    "hidden-mse": "hidden layer, MSE (Thm 2)",
    "hidden-ce": "hidden layer, CE (Thm 2)",
    "output-mse": "output layer, MSE",
    "output-ce": "output layer, CE (Thm 2)",
}
DIAG_COLOR = "tab:blue"
OFF_COLOR = "tab:red"


def save(fig, path, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` and close it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def _grid(n: int, ncols: int = 3, size=(4.6, 3.6)):
    nrows = max(1, math.ceil(n / ncols))
    ncols = min(ncols, n)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _c_axis(ax, Cs) -> None:
    """Log x axis with the C values themselves as tick labels."""
    Cs = sorted({int(c) for c in Cs})
    ax.set_xscale("log")
    if len(Cs) > 8:
        Cs = Cs[:: math.ceil(len(Cs) / 8)]
    ax.set_xticks(Cs)
    ax.set_xticklabels([str(c) for c in Cs])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _tidy_log_y(ax) -> None:
    """Log y axis when the data span a decade or more, else linear (readable ticks)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    if lo > 0 and math.log10(hi / lo) < 1:
        ax.set_yscale("linear")
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def _positive(y):
    y = np.asarray(y, dtype=float)
    return np.where(y > 0, y, np.nan)


def fig_frobenius_vs_C(theory, sim, asym: dict, cases) -> plt.Figure:
    """F_diag and F_off against C, one panel per case (paper Figures 8-9).

    Parameters
    ----------
    theory : DataFrame
        Columns ``case, C, F_diag, F_off`` (+ optional ``F_diag_se, F_off_se``): the
        exact fixed-C limits (a line; with a shaded band where a Monte-Carlo stderr exists).
    sim : DataFrame
        Columns ``case, C, F_diag, F_diag_se, F_off, F_off_se``: simulated means and
        standard errors (points with error bars).
    asym : dict
        ``case -> (A_diag, p_diag, A_off, p_off)``: large-C asymptotes ``A C^-p`` (dashed).
    cases : sequence of str
    """
    fig, axes = _grid(len(cases))
    for ax, case in zip(axes, cases, strict=True):
        th = theory[theory["case"] == case].sort_values("C")
        sm = sim[sim["case"] == case].sort_values("C")
        cgrid = np.asarray(th["C"], dtype=float)
        for key, color, label in (
            ("F_diag", DIAG_COLOR, r"$F_{\rm diag}$"),
            ("F_off", OFF_COLOR, r"$F_{\rm off}$"),
        ):
            yth = _positive(th[key])
            if np.isfinite(yth).any():
                ax.plot(cgrid, yth, "-", color=color, lw=1.6, label=f"{label} theory")
                se_key = f"{key}_se"
                if se_key in th and np.nanmax(np.asarray(th[se_key], float), initial=0) > 0:
                    se = np.asarray(th[se_key], float)
                    ax.fill_between(cgrid, yth - 2 * se, yth + 2 * se, color=color, alpha=0.2)
            if case in asym and len(cgrid):
                A_diag, p_diag, A_off, p_off = asym[case]
                A, p = (A_diag, p_diag) if key == "F_diag" else (A_off, p_off)
                if A and math.isfinite(A) and A > 0 and math.isfinite(p):
                    cc = np.geomspace(cgrid.min(), cgrid.max(), 64)
                    ax.plot(
                        cc,
                        A * cc ** (-p),
                        "--",
                        color=color,
                        lw=1.0,
                        alpha=0.8,
                        label=f"{label} large-C: {A:.3g}" + (f" C^{-p:g}" if p else ""),
                    )
            ysm = np.asarray(sm[key], float)
            if len(ysm) and np.isfinite(_positive(ysm)).any():
                ax.errorbar(
                    sm["C"],
                    ysm,
                    yerr=np.asarray(sm[f"{key}_se"], float),
                    fmt="o",
                    ms=4,
                    color=color,
                    mfc="white",
                    capsize=3,
                    label=f"{label} simulated",
                )
        _c_axis(ax, sm["C"] if len(sm) else cgrid)
        _tidy_log_y(ax)
        ax.set_xlabel("number of classes C")
        ax.set_ylabel(
            r"$\|H_{kl}\|_F^2$ (per dim.)" if not case.startswith("output") else r"$\|H_{kl}\|_F^2$"
        )
        title = CASE_TITLES.get(case, case)
        if case.endswith("mse") and case != "hidden-mse":
            title += r"   ($F_{\rm off}=0$ exactly)"
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=6.5, loc="best")
    fig.suptitle("Frobenius norms of Hessian blocks vs number of classes", y=1.0)
    fig.tight_layout()
    return fig


def fig_ratio_decay(fits, theory=None) -> plt.Figure:
    """r(C) = sqrt(F_off/F_diag) on log-log axes with the fitted slope and its CI.

    Parameters
    ----------
    fits : list of dict
        Keys ``case, C (array), ratio (array), ratio_se (array), slope, ci_low, ci_high,
        intercept, predicted_slope``. The fitted line is ``exp(intercept) C^slope``.
    theory : DataFrame, optional
        Columns ``case, C, ratio``: the exact theory ratio curve.
    """
    fig, axes = _grid(len(fits), ncols=min(4, max(1, len(fits))), size=(4.2, 3.6))
    for ax, fit in zip(axes, fits, strict=True):
        case = fit["case"]
        C = np.asarray(fit["C"], float)
        r = np.asarray(fit["ratio"], float)
        ax.errorbar(
            C,
            r,
            yerr=np.asarray(fit["ratio_se"], float),
            fmt="o",
            ms=4,
            color="k",
            mfc="white",
            capsize=3,
            label="simulated r(C)",
        )
        cc = np.geomspace(C.min(), C.max(), 64)
        slope, lo, hi = fit["slope"], fit["ci_low"], fit["ci_high"]
        ax.plot(
            cc,
            math.exp(fit["intercept"]) * cc**slope,
            "-",
            color="tab:green",
            label=f"fit: slope {slope:.3f} [{lo:.3f}, {hi:.3f}]",
        )
        pred = fit["predicted_slope"]
        # reference line with the predicted slope through the geometric centre of the points
        cmid = math.exp(np.mean(np.log(C)))
        rmid = math.exp(np.mean(np.log(r[r > 0]))) if np.any(r > 0) else 1.0
        frac = (
            "1/C"
            if abs(pred + 1) < 1e-9
            else (r"1/\sqrt{C}" if abs(pred + 0.5) < 1e-9 else f"C^{{{pred:g}}}")
        )
        ax.plot(
            cc,
            rmid * (cc / cmid) ** pred,
            ":",
            color="tab:purple",
            lw=1.5,
            label=f"predicted ${frac}$ (slope {pred:g})",
        )
        if theory is not None and "ratio" in theory:
            th = theory[theory["case"] == case].sort_values("C")
            if len(th):
                ax.plot(
                    th["C"],
                    _positive(th["ratio"]),
                    "-",
                    color="tab:orange",
                    lw=1.0,
                    alpha=0.9,
                    label="exact theory r(C)",
                )
        _c_axis(ax, C)
        _tidy_log_y(ax)
        ax.set_xlabel("number of classes C")
        ax.set_ylabel(r"$r(C)=\|H_{\rm off}\|_F/\|H_{\rm diag}\|_F$")
        ax.set_title(CASE_TITLES.get(case, case), fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=6.5, loc="lower left")
    fig.suptitle("Decay of the off/diagonal block ratio r(C)", y=1.0)
    fig.tight_layout()
    return fig


def fig_spectra(panels) -> plt.Figure:
    """Limiting spectral density over the simulated eigenvalue histogram.

    Parameters
    ----------
    panels : list of dict
        Keys ``title, eigenvalues (array), x (grid), density (theory pdf on x)``, and
        optional ``zero_mass`` (limiting atom at 0, noted in the legend).
    """
    fig, axes = _grid(len(panels), ncols=len(panels), size=(5.0, 3.8))
    for ax, p in zip(axes, panels, strict=True):
        ev = np.asarray(p["eigenvalues"], float)
        ax.hist(
            ev,
            bins=min(80, max(10, len(ev) // 12)),
            density=True,
            color="0.75",
            edgecolor="0.55",
            lw=0.4,
            label=f"simulated eigenvalues (d={len(ev)})",
        )
        label = "limiting density (GMP)"
        zm = p.get("zero_mass", 0.0) or 0.0
        if zm > 1e-12:
            label += f", atom {zm:.3g} at 0"
        ax.plot(p["x"], p["density"], "-", color="tab:red", lw=1.6, label=label)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.set_title(p["title"], fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.25)
    fig.tight_layout()
    return fig


def _imshow_abs(ax, A, title, boundaries=(), col_boundaries=None):
    A = np.abs(np.asarray(A, float))
    pos = A[A > 0]
    if pos.size:
        vmax = float(np.quantile(pos, 0.995))
        vmin = max(float(np.quantile(pos, 0.05)), vmax * 1e-4)
        norm = LogNorm(vmin=vmin, vmax=vmax)
    else:
        norm = None
    im = ax.imshow(np.where(A > 0, A, np.nan), cmap="viridis", norm=norm, interpolation="nearest")
    for b in boundaries:
        ax.axhline(b - 0.5, color="w", lw=0.5, alpha=0.6)
    for b in boundaries if col_boundaries is None else col_boundaries:
        ax.axvline(b - 0.5, color="w", lw=0.5, alpha=0.6)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("parameter index")
    ax.set_ylabel("parameter index")
    return im


def fig_heatmaps(panels, ncols: int | None = None) -> plt.Figure:
    """|H| heatmaps side by side (log colour scale; white lines = block boundaries).

    Parameters
    ----------
    panels : list of dict
        Keys ``title, H (2-D array), boundaries (indices where a block starts)`` and
        optional ``col_boundaries`` (columns, when they differ from the rows).
    """
    fig, axes = _grid(len(panels), ncols=ncols or len(panels), size=(4.3, 3.9))
    for ax, p in zip(axes, panels, strict=True):
        im = _imshow_abs(ax, p["H"], p["title"], p.get("boundaries", ()), p.get("col_boundaries"))
        fig.colorbar(im, ax=ax, shrink=0.8, label="|H| (log scale)")
    fig.tight_layout()
    return fig


def fig_dynamics(df, columns=None, fractions=(), labels=None) -> plt.Figure:
    """Block norms along training (the "dynamic force").

    Parameters
    ----------
    df : DataFrame
        A ``step`` column, one column per plotted quantity and optionally ``loss``.
    columns : list of str, optional
        Norm columns, drawn on a log y axis (default: every numeric column but ``step``,
        ``loss`` and ``fractions``).
    fractions : list of str
        Columns in [0, 1] (fractions, ratios, accuracy) drawn on a second, linear panel.
    labels : dict, optional
        Column -> legend label.
    """
    labels = labels or {}
    fractions = [c for c in fractions if c in df]
    if columns is None:
        columns = [
            c
            for c in df.columns
            if c not in ("step", "loss", "lr", *fractions) and np.issubdtype(df[c].dtype, np.number)
        ]
    panels = 1 + bool(fractions) + ("loss" in df)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.9), squeeze=False)
    axes = list(axes[0])
    ax = axes.pop(0)
    for col in columns:
        style = "-" if col.startswith("cross") else "--"
        ax.plot(
            df["step"],
            _positive(df[col]),
            style,
            lw=1.6 if style == "-" else 1.1,
            label=labels.get(col, col),
        )
    ax.set_yscale("log")
    ax.set_xlabel("training step (Adam)")
    ax.set_ylabel("Frobenius norm")
    ax.set_title("Hessian block norms along training", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=6.5)
    if fractions:
        ax = axes.pop(0)
        for col in fractions:
            ax.plot(df["step"], df[col], "-", lw=1.5, label=labels.get(col, col))
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("training step (Adam)")
        ax.set_ylabel("fraction")
        ax.set_title("Block-circulant pattern fades", fontsize=10)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6.5)
    if "loss" in df:
        ax = axes.pop(0)
        ax.plot(df["step"], df["loss"], "-", color="k", lw=1.5)
        ax.set_xlabel("training step (Adam)")
        ax.set_ylabel("training loss (CE)")
        ax.set_title("Loss", fontsize=10)
        ax.grid(True, alpha=0.25)
    fig.tight_layout()
    return fig
