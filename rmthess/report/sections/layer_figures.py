"""Figures of the ``layer`` report section (plots only; the numbers come from ``layer.py``).

:func:`fig_layer_spectra`: one panel per C, the whole-layer limiting density, the
block-diagonal mixture density and the histogram of the simulated whole-layer eigenvalues,
with the atom at 0 drawn as a marked vertical line. :func:`fig_layer_gap`: the distances
between the two laws against C on log-log axes, with the fitted power-law slopes.
"""

from __future__ import annotations

import math

import numpy as np

LAYER_COLOR = "tab:blue"
BD_COLOR = "tab:orange"
HIST_COLOR = "0.78"
METRICS = (
    ("W1_rel", "W1 / mean", "o"),
    ("KS", "KS", "s"),
    ("edge_gap_rel", "|edge gap| / edge", "^"),
)


def fig_layer_spectra(panels):
    """One panel per dict of ``panels`` (keys: ``title``, ``nonzero`` (simulated nonzero
    eigenvalues, pooled over trials), ``n_total`` (all eigenvalues), ``zero_fraction``,
    ``x``, ``pdf``, ``pdf_bd``, ``zero_mass``, ``zero_mass_bd``).

    The histogram is normalised by the total number of eigenvalues (zeros included), so its
    area is the simulated nonzero fraction, comparable with the continuous part of the
    law (area ``1 - zero_mass``). The atom at 0 is a vertical line whose height is not
    to scale; its mass and the simulated zero fraction are written next to it.
    """
    from rmthess.report.figures import LEGEND_PT, _grid

    fig, axes = _grid(len(panels), ncols=3, size=(4.8, 3.8))
    for ax, p in zip(axes, panels, strict=True):
        nz = np.asarray(p["nonzero"], float)
        x = np.asarray(p["x"], float)
        n_bins = int(np.clip(np.sqrt(nz.size), 30, 70))  # no empty bins at small d
        bins = np.linspace(0.0, max(x.max(), nz.max() if nz.size else 0.0), n_bins)
        w = np.full(nz.size, 1.0 / (p["n_total"] * (bins[1] - bins[0])))
        ax.hist(nz, bins=bins, weights=w, color=HIST_COLOR, label="simulated (nonzero)")
        ax.plot(x, p["pdf"], "-", color=LAYER_COLOR, lw=1.6, label="whole-layer law")
        ax.plot(x, p["pdf_bd"], "--", color=BD_COLOR, lw=1.4, label="block-diagonal law")
        top = max(np.nanmax(p["pdf"]), np.nanmax(p["pdf_bd"]))
        ymax = 1.15 * top if math.isfinite(top) and top > 0 else 1.0
        ax.set_ylim(0.0, ymax)
        if p["zero_mass"] > 0:
            ax.vlines(0.0, 0.0, 0.9 * ymax, color=LAYER_COLOR, lw=2.2)
            ax.plot([0.0], [0.9 * ymax], "v", color=LAYER_COLOR, ms=7)
            ax.annotate(
                f"atom at 0: {p['zero_mass']:.4g}\nsimulated zeros: {p['zero_fraction']:.4g}"
                + (f"\nblock-diag. atom: {p['zero_mass_bd']:.3g}" if p["zero_mass_bd"] else ""),
                xy=(0.0, 0.9 * ymax),
                xytext=(0.05, 0.80),
                textcoords="axes fraction",
                fontsize=LEGEND_PT - 1,
                va="top",
            )
        ax.set_xlim(-0.02 * x.max(), x.max())
        ax.set_title(p["title"], fontsize=10)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density (continuous part)")
        ax.legend(fontsize=LEGEND_PT - 1, loc="upper right")
    fig.tight_layout()
    return fig


def _slope_text(curve, key) -> str:
    s, se = curve.slope.get(key, math.nan), curve.slope_se.get(key, math.nan)
    if not math.isfinite(s):
        return "slope n/a"
    return f"slope {s:.3f} $\\pm$ {se:.2g}" if math.isfinite(se) else f"slope {s:.3f}"


def fig_layer_gap(curves):
    """``curves``: list of ``(title, GapCurve)``; one log-log panel each with ``W1_rel``,
    ``KS`` and ``|edge_gap_rel|`` against C, the fitted slopes in the legend and a dotted
    ``C^-1`` reference through the first W1_rel point."""
    from rmthess.report.figures import LEGEND_PT, _c_axis, _grid

    fig, axes = _grid(len(curves), ncols=2, size=(5.4, 4.0))
    for ax, (title, curve) in zip(axes, curves, strict=True):
        df = curve.to_frame()
        Cs = np.asarray(df["C"], float)
        for key, label, marker in METRICS:
            y = np.abs(np.asarray(df[key], float))
            y = np.where(y > 0, y, np.nan)
            ax.plot(Cs, y, marker + "-", ms=5, label=f"{label} ({_slope_text(curve, key)})")
        y0 = float(df["W1_rel"].iloc[0])
        if math.isfinite(y0) and y0 > 0:
            ax.plot(Cs, y0 * Cs[0] / Cs, ":", color="0.4", label="$\\propto C^{-1}$")
        _c_axis(ax, Cs)
        ax.set_yscale("log")
        ax.set_xlabel("C (classes)")
        ax.set_ylabel("whole layer vs block-diagonal part")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=LEGEND_PT - 1)
    fig.tight_layout()
    return fig
