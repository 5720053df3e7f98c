"""The report page (html.py) and its figures (figures.py): layout and readability."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from rmthess.report import figures  # noqa: E402
from rmthess.report.checks import check_close, check_upper  # noqa: E402
from rmthess.report.html import Section, render_html  # noqa: E402

DPI = getattr(figures, "DPI", 110)  # what save() writes
PAGE_PX = 1200  # max-width of the page body (html.py _CSS)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- helpers
def embedded_font_pt(fig) -> float:
    """Smallest visible font (points) as shown on the page: a PNG W inches wide (tight
    box, as saved) at DPI px/inch shows at min(W*DPI, PAGE_PX) CSS px = /96 inches."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    width_in = fig.get_tightbbox(r).width
    scale = min(width_in * DPI, PAGE_PX) / (96.0 * width_in)
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(Text)
        if t.get_visible()
        and t.get_text().strip()
        and (t.axes is None or t.axes.get_visible())
        and t.get_window_extent(r).width > 0
    ]
    return min(sizes) * scale


def legends_overlapping_data(fig) -> list:
    """Legends whose box overlaps an axes that draws data (lines, images, collections)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    data_axes = [
        ax for ax in fig.axes if ax.get_visible() and (ax.lines or ax.images or ax.collections)
    ]
    bad = []
    for leg in fig.findobj(Legend):
        box = leg.get_window_extent(r)
        bad += [leg for ax in data_axes if box.overlaps(ax.get_window_extent(r))]
    return bad


def _fit_panel(case, pred):
    C = np.array([16.0, 32, 64, 128, 256])
    r = 0.9 * C**pred * (1 + 0.02 * np.sin(C))
    return dict(
        case=case,
        C=C,
        ratio=r,
        ratio_se=0.03 * r,
        slope=pred + 0.01,
        ci_low=pred - 0.02,
        ci_high=pred + 0.04,
        intercept=math.log(0.9),
        predicted_slope=pred,
    )


def _fits():
    return [
        _fit_panel("linear-ce", -1.0),
        _fit_panel("hidden-mse", -0.5),
        _fit_panel("hidden-ce", -0.5),
        _fit_panel("output-ce", -1.0),
    ]


def _dynamics_df():
    step = np.arange(0, 101, 10)
    decay = np.exp(-step / 50)
    return pd.DataFrame(
        dict(
            step=step,
            loss=2.0 * decay + 0.1,
            cross=0.7 * decay + 0.1,
            cross_residual=0.6 * decay + 0.01,
            cross_gn=0.2 + 0 * step,
            hidden_diag=0.6 + 0 * step,
            hidden_off=0.1 + 0.05 * (1 - decay),
            circulant_fraction=0.95 * decay + 0.1,
            accuracy=0.1 + 0.8 * (1 - decay),
        )
    )


# ----------------------------------------------------------------------------- figures
def test_ratio_decay_readable_at_page_width():
    theory = pd.DataFrame(
        [
            dict(case=f["case"], C=c, ratio=v)
            for f in _fits()
            for c, v in zip(f["C"], f["ratio"], strict=True)
        ]
    )
    fig = figures.fig_ratio_decay(_fits(), theory)
    assert embedded_font_pt(fig) >= 9.0
    assert legends_overlapping_data(fig) == []


def test_dynamics_legend_hides_no_curve_and_is_readable():
    fig = figures.fig_dynamics(
        _dynamics_df(),
        columns=["cross", "cross_residual", "cross_gn", "hidden_diag", "hidden_off"],
        fractions=["circulant_fraction", "accuracy"],
    )
    assert legends_overlapping_data(fig) == []
    assert embedded_font_pt(fig) >= 9.0
    labels = {t.get_text() for leg in fig.findobj(Legend) for t in leg.get_texts()}
    assert {"cross", "hidden_off", "accuracy"} <= labels  # every curve still labelled


def _heat_panels():
    rng = np.random.default_rng(0)
    return [
        dict(title=f"scale {s:g}", H=s * rng.standard_normal((12, 12)), boundaries=[4, 8])
        for s in (1.0, 1e-2, 10.0, 1e-1)
    ]


def _norms(fig):
    ims = [im for ax in fig.axes for im in ax.images]
    return [(im.norm.vmin, im.norm.vmax) for im in ims]


def test_fig_heatmaps_shares_one_log_scale_and_one_colourbar():
    panels = _heat_panels()
    fig = figures.fig_heatmaps(panels, ncols=2)
    norms = _norms(fig)
    assert len(norms) == len(panels)
    assert len(set(norms)) == 1  # identical vmin, vmax in every panel
    vmin, vmax = norms[0]
    assert 0 < vmin < vmax
    assert len(fig.axes) == len(panels) + 1  # one colour bar for all
    # the pooled scale covers the largest panel: its 99.5% quantile of |H| is vmax
    pooled = np.concatenate([np.abs(p["H"]).ravel() for p in panels])
    assert math.isclose(vmax, np.quantile(pooled, 0.995), rel_tol=1e-12)


def test_fig_heatmaps_scale_per_row_or_per_panel():
    panels = _heat_panels()
    rows = _norms(figures.fig_heatmaps(panels, ncols=2, shared_scale="rows"))
    assert rows[0] == rows[1] and rows[2] == rows[3] and rows[0] != rows[2]
    own = figures.fig_heatmaps(panels, ncols=2, shared_scale=False)
    assert len(set(_norms(own))) == len(panels) and len(own.axes) == 2 * len(panels)
    with pytest.raises(ValueError, match="shared_scale"):
        figures.fig_heatmaps(panels, shared_scale="columns")


def test_fig_heatmaps_axis_labels_from_panels():
    H = np.arange(1.0, 1 + 6 * 4).reshape(6, 4)
    fig = figures.fig_heatmaps(
        [
            dict(
                title="cross-layer block",
                H=H,
                xlabel="output-layer weights V",
                ylabel="hidden-layer weights W",
            ),
            dict(title="whole", H=np.ones((3, 3))),
        ]
    )
    ax0, ax1 = fig.axes[:2]
    assert ax0.get_xlabel() == "output-layer weights V"
    assert ax0.get_ylabel() == "hidden-layer weights W"
    assert ax1.get_xlabel() == "parameter index"


# ----------------------------------------------------------------------------- the page
def _page(tmp_path, checks, tables=()):
    fig_dir = tmp_path / "figures"
    fig_dir.mkdir()
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    figures.save(fig, fig_dir / "first.png")
    sec = Section(
        "Frobenius", text=["words"], figures=[("the first figure", fig_dir / "first.png")]
    )
    sec.tables.extend(tables)
    return render_html("t", checks, [sec], {"mode": "tiny"}, {"python": "3"}, fig_dir, 1.0)


def _many_checks():
    checks = [check_close("frobenius", f"linear-ce F_diag C={c}", 1.0, 1.0, 0.1) for c in range(59)]
    checks.append(check_upper("dynamics", "circulant fraction last / first", 0.9, 0.5))
    return checks


def test_summary_and_figures_come_before_the_full_check_table(tmp_path):
    page = _page(tmp_path, _many_checks())
    i_banner = page.index("1 CHECK(S) FAILED: 59/60 passed")
    i_failed = page.index("circulant fraction last / first")  # listed in the summary
    i_fig = page.index("<img")
    i_full = page.index("linear-ce F_diag C=0")  # first row of the full table
    assert i_banner < i_failed < i_fig < i_full
    # the full table is collapsible and every check is in it
    details = page[page.index("<details", i_fig) :]
    assert all(f"linear-ce F_diag C={c}<" in details for c in range(59))
    assert "&lt;= 0.5" in page  # one-sided bound shown as a bound
    assert "predicted</th>" not in page


def test_missing_values_render_the_same(tmp_path):
    df_obj = pd.DataFrame({"case": ["a", "b", "c", "d"], "m": [None, np.nan, pd.NA, pd.NaT]})
    df_float = pd.DataFrame({"case": ["a", "b", "c", "d"], "m": [np.nan] * 4})
    page = _page(tmp_path, _many_checks(), [("obj", df_obj, "o.csv"), ("flt", df_float, "f.csv")])
    cells = re.findall(r'<td class="l">[abcd]</td><td>([^<]*)</td>', page)
    assert len(cells) == 8
    assert len(set(cells)) == 1 and cells[0] not in ("None", "nan", "<NA>", "NaT", "")


def test_tables_scroll_and_numbers_have_four_digits(tmp_path):
    df = pd.DataFrame(
        {"case": ["a"], "C": [123456789], "x": [0.123456789], "y": [16384.0], "z": [1.5e-7]}
    )
    page = _page(tmp_path, _many_checks(), [("wide", df, "w.csv")])
    row = re.search(r'<td class="l">a</td>(.*?)</tr>', page).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row) == ["123456789", "0.1235", "16384", "1.5e-07"]
    n_tables = page.count("<table")
    assert n_tables >= 3
    assert page.count("<div class='tablewrap'><table") == n_tables
    assert "overflow-x:auto" in page


def test_frobenius_figure_readable_at_page_width():
    cases = ["linear-ce", "hidden-ce", "output-mse"]
    Cs = [4, 8, 16, 32]
    theory = pd.DataFrame(
        [dict(case=k, C=c, F_diag=1.0 / c, F_off=1.0 / c**2) for k in cases for c in Cs]
    )
    sim = theory.assign(F_diag_se=0.01 * theory["F_diag"], F_off_se=0.01 * theory["F_off"])
    fig = figures.fig_frobenius_vs_C(theory, sim, {"linear-ce": (1.0, 1.0, 1.0, 2.0)}, cases)
    assert embedded_font_pt(fig) >= 9.0
