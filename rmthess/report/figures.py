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
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from rmthess.cases import get_case  # noqa: E402

DIAG_COLOR = "tab:blue"
OFF_COLOR = "tab:red"
DPI = 110
"""Resolution of the saved PNGs (pixels per figure inch)."""
PAGE_WIDTH_PX = 1200
"""Widest an image is shown on the report page (CSS px, 96 per inch; see html.py)."""
LEGEND_PT = 9
"""Legend font size (points of the figure)."""


def save(fig, path, dpi: int = DPI) -> None:
    """Write ``fig`` as PNG to ``path`` and close it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def _grid(n: int, ncols: int = 3, size=(4.6, 3.6), layout=None):
    nrows = max(1, math.ceil(n / ncols))
    ncols = min(ncols, n)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, layout=layout
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
    """Log y axis when the data span a decade or more, else linear (readable ticks). A log
    axis spanning less than ~2.5 decades gets labelled ticks at 1, 2 and 5 times the
    powers of ten (with powers only, such a panel showed one labelled tick)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    if lo > 0 and math.log10(hi / lo) < 1:
        ax.set_yscale("linear")
        return
    if lo > 0 and math.log10(hi / lo) < 2.5:
        ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _case_facts(case):
    """The registry's :class:`rmthess.cases.Case` of ``case``; None for a free label."""
    try:
        return get_case(case)
    except (ValueError, TypeError, KeyError):
        return None


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
    fig, axes = _grid(len(cases), ncols=2, size=(5.4, 4.0))
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
        facts = _case_facts(case)
        per_dim = facts is None or facts.normalization == "1/d"
        ax.set_ylabel(r"$\|H_{kl}\|_F^2$" + (" (per dim.)" if per_dim else ""))
        title = get_case(case).title
        if facts is not None and facts.zero_off:
            title += r"   ($F_{\rm off}=0$ exactly)"
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("Frobenius norms of Hessian blocks vs number of classes", y=1.0)
    fig.tight_layout()
    return fig


def _rate_tex(pred: float) -> str:
    if abs(pred + 1) < 1e-9:
        return "1/C"
    if abs(pred + 0.5) < 1e-9:
        return r"1/\sqrt{C}"
    return f"C^{{{pred:g}}}"


def fig_ratio_decay(fits, theory=None, ncols: int = 2) -> plt.Figure:
    """r(C) = sqrt(F_off/F_diag) on log-log axes with the fitted slope and its CI.

    One panel per case, ``ncols`` panels a row; each panel's title carries the fitted
    slope with its CI and the predicted large-C rate; one legend (line styles) below the
    panels, so no curve is hidden and every label stays >= 9 pt on the report page.

    Parameters
    ----------
    fits : list of dict
        Keys ``case, C (array), ratio (array), ratio_se (array), slope, ci_low, ci_high,
        intercept, predicted_slope``. The fitted line is ``exp(intercept) C^slope``.
    theory : DataFrame, optional
        Columns ``case, C, ratio``: the exact theory ratio curve.
    ncols : int
        Panels per row.
    """
    ncols = max(1, min(ncols, len(fits)))
    fig, axes = _grid(len(fits), ncols=ncols, size=(5.0, 3.7), layout="constrained")
    handles = {}
    for ax, fit in zip(axes, fits, strict=True):
        case = fit["case"]
        C = np.asarray(fit["C"], float)
        r = np.asarray(fit["ratio"], float)
        handles["sim"] = ax.errorbar(
            C,
            r,
            yerr=np.asarray(fit["ratio_se"], float),
            fmt="o",
            ms=4,
            color="k",
            mfc="white",
            capsize=3,
            label="simulated r(C) ± 1 SE",
        )
        cc = np.geomspace(C.min(), C.max(), 64)
        slope, lo, hi = fit["slope"], fit["ci_low"], fit["ci_high"]
        (handles["fit"],) = ax.plot(
            cc,
            math.exp(fit["intercept"]) * cc**slope,
            "-",
            color="tab:green",
            label="least-squares fit",
        )
        pred = fit["predicted_slope"]
        # reference line with the predicted slope through the geometric centre of the points
        cmid = math.exp(np.mean(np.log(C)))
        rmid = math.exp(np.mean(np.log(r[r > 0]))) if np.any(r > 0) else 1.0
        (handles["pred"],) = ax.plot(
            cc,
            rmid * (cc / cmid) ** pred,
            ":",
            color="tab:purple",
            lw=1.8,
            label="predicted large-C rate (through the points' centre)",
        )
        if theory is not None and "ratio" in theory:
            th = theory[theory["case"] == case].sort_values("C")
            if len(th):
                (handles["theory"],) = ax.plot(
                    th["C"],
                    _positive(th["ratio"]),
                    "-",
                    color="tab:orange",
                    lw=1.2,
                    alpha=0.9,
                    label="exact fixed-C theory r(C)",
                )
        _c_axis(ax, C)
        _tidy_log_y(ax)
        ax.set_xlabel("number of classes C")
        ax.set_ylabel(r"$r(C)=\|H_{\rm off}\|_F/\|H_{\rm diag}\|_F$")
        ax.set_title(
            f"{get_case(case).title}\nfit slope {slope:.3f} [{lo:.3f}, {hi:.3f}], "
            f"predicted ${_rate_tex(pred)}$ ({pred:g})",
            fontsize=10,
        )
        ax.grid(True, which="both", alpha=0.25)
    order = [k for k in ("sim", "fit", "pred", "theory") if k in handles]
    fig.legend(
        [handles[k] for k in order],
        [handles[k].get_label() for k in order],
        loc="outside lower center",
        ncols=2,
        fontsize=LEGEND_PT,
        frameon=False,
    )
    fig.suptitle("Decay of the off/diagonal block ratio r(C) (slope: 95% bootstrap CI)")
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


def _log_norm(mats, span: float = 1e-4):
    """LogNorm over the positive entries of ``mats`` pooled: vmax the 99.5% quantile,
    vmin the 5% quantile but no less than ``span * vmax`` (None when nothing is > 0)."""
    pos = np.concatenate([m[m > 0] for m in mats]) if mats else np.empty(0)
    if not pos.size:
        return None
    vmax = float(np.quantile(pos, 0.995))
    vmin = max(float(np.quantile(pos, 0.05)), vmax * span)
    return LogNorm(vmin=vmin, vmax=vmax)


SEPARATOR = "#e8412c"
"""Colour of the block boundaries of the heatmaps: distinct from the white of exact zeros."""


def _imshow_abs(ax, A, title, norm, boundaries=(), col_boundaries=None, xlabel=None, ylabel=None):
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")  # exact zeros: white
    im = ax.imshow(np.where(A > 0, A, np.nan), cmap=cmap, norm=norm, interpolation="nearest")
    for b in boundaries:
        ax.axhline(b - 0.5, color=SEPARATOR, lw=0.9, alpha=0.9)
    for b in boundaries if col_boundaries is None else col_boundaries:
        ax.axvline(b - 0.5, color=SEPARATOR, lw=0.9, alpha=0.9)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel or "parameter index")
    ax.set_ylabel(ylabel or "parameter index")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return im


def fig_heatmaps(panels, ncols: int | None = None, shared_scale=True) -> plt.Figure:
    """|H| heatmaps side by side (log colour scale; red lines = block boundaries; white =
    entries exactly 0).

    Parameters
    ----------
    panels : list of dict
        Keys ``title, H (2-D array), boundaries (indices where a block starts)`` and
        optional ``col_boundaries`` (columns, when they differ from the rows), ``xlabel``
        and ``ylabel`` (default "parameter index"; e.g. "output-layer weights V" for the
        columns of a cross-layer block).
    ncols : int, optional
        Panels per row (default: all in one row).
    shared_scale : True, False or "rows"
        True: one log colour scale (pooled over every panel) and one colour bar, so that
        panels compare by colour; "rows": one shared scale and colour bar per row of
        panels (e.g. one loss per row, whose magnitudes differ); False: each panel its own.
    """
    if shared_scale not in (True, False, "rows"):
        raise ValueError(f"shared_scale must be True, False or 'rows'; got {shared_scale!r}")
    ncols = ncols or len(panels)
    fig, axes = _grid(len(panels), ncols=ncols, size=(4.3, 3.9), layout="constrained")
    mats = [np.abs(np.asarray(p["H"], float)) for p in panels]
    if shared_scale is True:
        groups = [list(range(len(panels)))]
    elif shared_scale == "rows":
        groups = [list(range(i, min(i + ncols, len(panels)))) for i in range(0, len(panels), ncols)]
    else:
        groups = [[i] for i in range(len(panels))]
    label = "|H| (log scale; white: exactly 0)"
    for group in groups:
        norm = _log_norm([mats[i] for i in group])
        ims = [
            _imshow_abs(
                axes[i],
                mats[i],
                panels[i]["title"],
                norm,
                panels[i].get("boundaries", ()),
                panels[i].get("col_boundaries"),
                panels[i].get("xlabel"),
                panels[i].get("ylabel"),
            )
            for i in group
        ]
        fig.colorbar(
            ims[0],
            ax=[axes[i] for i in group],
            shrink=0.8 if len(group) > 1 else 0.9,
            label=label if len(group) == 1 else f"{label}, one scale for {len(group)} panels",
        )
    return fig


def fig_dynamics(df, columns=None, fractions=(), labels=None) -> plt.Figure:
    """Block norms along training (the "dynamic force").

    Panels on a two-column grid: the norms (log y), the legends (in a panel of their
    own, so no legend hides a curve), the fractions and the loss.

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
    names = ["norms", "legend"] + ["fractions"] * bool(fractions) + ["loss"] * ("loss" in df)
    if len(names) % 2:
        names.append(".")
    mosaic = [names[i : i + 2] for i in range(0, len(names), 2)]
    fig, axd = plt.subplot_mosaic(
        mosaic, figsize=(10.4, 3.6 * len(mosaic)), layout="constrained", empty_sentinel="."
    )
    ax = axd["norms"]
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
    leg_ax = axd["legend"]
    leg_ax.axis("off")
    first = leg_ax.legend(
        *ax.get_legend_handles_labels(),
        loc="upper left",
        fontsize=LEGEND_PT,
        title="block norms",
        title_fontsize=LEGEND_PT + 1,
        frameon=False,
    )
    if fractions:
        leg_ax.add_artist(first)
        ax = axd["fractions"]
        for col in fractions:
            ax.plot(df["step"], df[col], "-", lw=1.5, label=labels.get(col, col))
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("training step (Adam)")
        ax.set_ylabel("fraction")
        ax.set_title("Block-circulant pattern fades", fontsize=10)
        ax.grid(True, alpha=0.25)
        leg_ax.legend(
            *ax.get_legend_handles_labels(),
            loc="lower left",
            fontsize=LEGEND_PT,
            title="fractions (lower left panel)",
            title_fontsize=LEGEND_PT + 1,
            frameon=False,
        )
    if "loss" in df:
        ax = axd["loss"]
        ax.plot(df["step"], df["loss"], "-", color="k", lw=1.5)
        ax.set_xlabel("training step (Adam)")
        ax.set_ylabel("training loss (CE)")
        ax.set_title("Loss", fontsize=10)
        ax.grid(True, alpha=0.25)
    return fig
