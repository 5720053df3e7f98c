"""Plot a column of a sweep store against another: :func:`plot`."""

from __future__ import annotations

__all__ = ["plot"]


def _auto_log(values) -> bool:
    """Log scale when every value is > 0 and they span more than a factor 20."""
    import numpy as np

    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size >= 2 and (v > 0).all() and v.max() / v.min() > 20)


def plot(store, x: str = "C", y: str = "ratio", hue: str | None = "case", *, logx=None,
         logy=None, ax=None):  # fmt: skip
    """Plot ``y`` against ``x`` from :func:`rmthess.sweep.load` (``store`` is a path or a
    DataFrame), one line per value of ``hue`` (None: one line), with ``y_se`` error bars
    when the column exists. ``logx``/``logy``: None = auto (positive values spanning more
    than a factor 20). Returns the matplotlib ``Axes``.
    """
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
    for key, g in groups:
        g = g.sort_values(x, kind="mergesort")
        yerr = g[f"{y}_se"].astype(float) if f"{y}_se" in g.columns else None
        label = None if hue is None else f"{hue}={key}"
        ax.errorbar(g[x].astype(float), g[y].astype(float), yerr=yerr, marker="o", label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if logx if logx is not None else _auto_log(df[x]):
        ax.set_xscale("log")
    if logy if logy is not None else _auto_log(df[y]):
        ax.set_yscale("log")
    if hue is not None:
        ax.legend(fontsize="small")
    return ax
