"""Plot a column of a sweep store against another: :func:`plot`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas and matplotlib are imported when a plot is drawn
    import os

    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["plot"]

_MAX_DATA_TICKS = 12  # a log axis with at most this many distinct values is ticked at them


def _positive(values):
    import numpy as np

    v = np.asarray([x for x in values if x is not None], dtype=float)
    return v[np.isfinite(v)]


def _auto_log(values, factor: float = 20.0) -> bool:
    """Log scale when every value is > 0 and they span more than ``factor``."""
    v = _positive(values)
    return bool(v.size >= 2 and (v > 0).all() and v.max() / v.min() > factor)


def _decays(groups, x: str, y: str) -> bool:
    """True when ``y > 0`` everywhere, falls with ``x`` (last value below the first) in
    at least half of the lines, and spans more than a factor 3 overall: a decay (e.g.
    ``ratio ~ C^-1/2``), shown on log-log axes where it is a straight line."""
    import numpy as np

    falling = total = 0
    lo, hi = np.inf, 0.0
    for _, g in groups:
        g = g.sort_values(x, kind="mergesort")
        yv = g[y].astype(float).to_numpy()
        yv = yv[np.isfinite(yv)]
        if yv.size < 2:
            continue
        if (yv <= 0).any():
            return False
        total += 1
        falling += bool(yv[-1] < yv[0])
        lo, hi = min(lo, yv.min()), max(hi, yv.max())
    return total > 0 and 2 * falling >= total and hi / lo > 3


def _log_axis(axis, values, *, data_ticks: bool) -> None:
    """Readable log-axis ticks: at the data values when ``data_ticks`` and there are few
    (``C = 2, 8, 64``), at 1-2-5 x 10^k over less than two decades, else at powers of 10;
    minor ticks unlabelled (no overlapping ``2x10^0 3x10^0 ...``)."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    v = np.unique(_positive(values))
    v = v[v > 0]
    decades = np.log10(v.max() / v.min()) if v.size else 0.0
    if data_ticks and 0 < v.size <= _MAX_DATA_TICKS:
        axis.set_major_locator(FixedLocator(v.tolist()))
        axis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:.3g}"))
    elif decades < 2:  # a log axis over less than two decades: 1-2-5 ticks
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:.3g}"))
    else:
        axis.set_major_locator(LogLocator(base=10))
    axis.set_minor_formatter(NullFormatter())


def plot(
    store: str | os.PathLike[str] | pd.DataFrame,
    x: str = "C",
    y: str = "ratio",
    hue: str | None = "case",
    *,
    logx: bool | None = None,
    logy: bool | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Plot ``y`` against ``x`` from :func:`rmthess.sweep.load` (``store`` is a path or a
    DataFrame), one line per value of ``hue`` (None: one line), with error bars of
    ``±1 SE`` from the ``{y}_se`` column when the store has one (the Monte-Carlo records:
    ``theory`` of hidden-ce/output-ce, ``simulate``; exact records have SE 0).

    ``logy``: None = auto (positive values spanning more than a factor 20, or a decay:
    falling with ``x`` in most lines and spanning more than a factor 3). ``logx``: None =
    auto (positive values spanning more than a factor 20, or more than 4 when ``y``
    decays: log-log). Log axes are ticked at the data values when there are at
    most 12 distinct ones, with unlabelled minor ticks. Returns the matplotlib ``Axes``.
    """
    import numpy as np
    import pandas as pd

    from rmthess.sweep.store import load

    df = store if isinstance(store, pd.DataFrame) else load(store)
    for name, col in (("x", x), ("y", y), ("hue", hue)):
        if col is not None and col not in df.columns:
            raise ValueError(f"{name}={col!r} is not a column; columns: {', '.join(df.columns)}")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.5))
    groups = [(None, df)] if hue is None else list(df.groupby(hue, sort=False, dropna=False))
    se = f"{y}_se" if f"{y}_se" in df.columns else None
    for key, g in groups:
        g = g.sort_values(x, kind="mergesort")
        yerr = g[se].astype(float).to_numpy() if se else None
        if yerr is not None and not np.any(yerr > 0):
            yerr = None  # exact values: no bars
        label = None if hue is None else f"{hue}={key}"
        ax.errorbar(g[x].astype(float), g[y].astype(float), yerr=yerr, marker="o",
                    markersize=4, capsize=3, elinewidth=1, label=label)  # fmt: skip
    ax.set_xlabel(x)
    ax.set_ylabel(y if se is None else f"{y} (bars: ±1 SE)")
    decay = _decays(groups, x, y)
    if logx if logx is not None else _auto_log(df[x], 4.0 if decay else 20.0):
        ax.set_xscale("log")
        _log_axis(ax.xaxis, df[x], data_ticks=True)
    if logy if logy is not None else (_auto_log(df[y]) or decay):
        ax.set_yscale("log")
        _log_axis(ax.yaxis, df[y], data_ticks=False)
    if hue is not None:
        ax.legend(fontsize="small")
    return ax
