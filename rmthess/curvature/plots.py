"""Pictures of curvature matrices: a block map as a heatmap, and ``|H|`` entry-wise with its
parameter groups marked (the block-structure paper's Figure 1 style).

matplotlib is imported inside the functions, so importing this module is cheap. Both
functions draw into ``ax`` (a new figure when None) and return the ``Axes``
(``ax.figure`` is the Figure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from rmthess._checks import check_bool, check_choice

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.axes import Axes

    from rmthess.curvature._types import Array
    from rmthess.curvature.blocks import BlockMap
    from rmthess.curvature.operators import CurvatureOperator

    # rows or columns of a region: a group name, a list of them, or a slice
    Groups = str | list[str] | slice

__all__ = ["plot_block_map", "plot_hessian", "BLOCK_MAP_VALUES"]

BLOCK_MAP_VALUES = ("rms", "sq_norm")
_MAX_TICKS = 40


def _axes(ax, size):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=size)
    return ax


def _log_norm(A: np.ndarray, span: float = 1e-8):
    """LogNorm over the positive entries (vmin no less than ``span * vmax``); None if none."""
    from matplotlib.colors import LogNorm

    pos = A[np.isfinite(A) & (A > 0)]
    if not pos.size:
        return None
    vmax = float(pos.max())
    return LogNorm(vmin=max(float(pos.min()), vmax * span), vmax=vmax)


def _image(ax, A, log: bool, label: str):
    shown = np.where(A > 0, A, np.nan) if log else A
    norm = _log_norm(A) if log else None
    im = ax.imshow(shown, cmap="viridis", norm=norm, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label=label, shrink=0.85)
    return im


def plot_block_map(
    bm: BlockMap, ax: Axes | None = None, *, value: str = "rms", log: bool = True
) -> Axes:
    """Heatmap of a :class:`~rmthess.curvature.blocks.BlockMap`, blocks named on the axes.

    ``value="rms"``: root-mean-square entry ``sqrt(||H_rc||_F^2 / (|I_r| |I_c|))`` (blocks
    of different sizes compare); ``"sq_norm"``: ``||H_rc||_F^2``. ``log``: logarithmic colour
    scale (zero entries left blank). Tick labels are the block names (every k-th one beyond
    40 blocks). Returns the Axes.
    """
    value = check_choice("value", value, BLOCK_MAP_VALUES)
    log = check_bool("log", log)
    A = np.asarray(bm.rms if value == "rms" else bm.sq_norm, dtype=float)
    L = A.shape[0]
    ax = _axes(ax, (1.6 + 0.3 * min(L, 30), 1.2 + 0.3 * min(L, 30)))
    label = "rms entry" if value == "rms" else "squared Frobenius norm"
    _image(ax, A, log, label)
    step = max(1, int(np.ceil(L / _MAX_TICKS)))
    ticks = np.arange(0, L, step)
    names = [bm.names[i] for i in ticks]
    ax.set_xticks(ticks, names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_xlabel("column block")
    ax.set_ylabel("row block")
    n_stoch = int((~np.asarray(bm.exact)).sum())
    how = f"{bm.probes} probes" if n_stoch else "exact"
    ax.set_title(f"{bm.kind} block map ({value}, {how})", fontsize=10)
    return ax


def _groups(offsets_or_op) -> list[tuple[str, int, int]]:
    """``[(name, start, stop)]`` from ``{name: slice}`` or an object with ``.offsets``."""
    offsets = getattr(offsets_or_op, "offsets", offsets_or_op)
    if not hasattr(offsets, "items"):
        raise TypeError(
            "offsets_or_op must be a mapping {name: slice} or have .offsets (a "
            f"CurvatureOperator), got {type(offsets_or_op).__name__}"
        )
    out = []
    for name, sl in offsets.items():
        if not isinstance(sl, slice):
            raise TypeError(f"offsets_or_op: {name!r} must map to a slice, got {sl!r}")
        out.append((str(name), int(sl.start), int(sl.stop)))
    return sorted(out, key=lambda g: g[1])


def _span(spec, groups, where: str) -> tuple[int, int]:
    """A part's row or column range: a group name, a list of names, or a slice."""
    if isinstance(spec, slice):
        return int(spec.start), int(spec.stop)
    names = [spec] if isinstance(spec, str) else list(spec)
    by_name = {g[0]: g for g in groups}
    bad = [n for n in names if n not in by_name]
    if bad or not names:
        raise ValueError(
            f"parts: {where} names unknown group(s) {bad}; known: {', '.join(by_name)}"
        )
    return min(by_name[n][1] for n in names), max(by_name[n][2] for n in names)


def _layer_parts(groups) -> dict:
    """``"layers"``: the module prefix of each group (``hidden1.weight`` -> ``hidden1``);
    diagonal regions named by module, off-diagonal ones "cross"."""
    mods: dict[str, list[str]] = {}
    for name, *_ in groups:
        mods.setdefault(name.rsplit(".", 1)[0], []).append(name)
    parts = {}
    keys = list(mods)
    for i, a in enumerate(keys):
        parts[a] = (mods[a], mods[a])
        for b in keys[i + 1 :]:
            parts[f"cross {a}/{b}" if len(keys) > 2 else "cross"] = (mods[a], mods[b])
    return parts


def plot_hessian(
    M: Array,
    offsets_or_op: Mapping[str, slice] | CurvatureOperator,
    ax: Axes | None = None,
    *,
    log: bool = True,
    parts: str
    | Mapping[str, tuple[str | list[str] | slice, str | list[str] | slice]]
    | None = None,
) -> Axes:
    """``|M|`` entry-wise as a heatmap, with lines between parameter groups and labels.

    Parameters
    ----------
    M : (P, P) array (numpy or torch), e.g. from :func:`~rmthess.curvature.dense_hessian`.
    offsets_or_op : ``{name: slice}`` of the parameter groups (``CurvatureOperator.offsets``)
        or an object with ``.offsets`` (the operator itself). Groups must tile ``[0, P)``.
    log : logarithmic colour scale over the non-zero entries (zeros blank), as in the
        paper's Figure 1.
    parts : None, "layers", or ``{label: (rows, cols)}`` with ``rows``/``cols`` a group name,
        a list of group names or a slice: each region is outlined and labelled (e.g. for the
        one-hidden-layer net ``{"hidden": ("hidden1.weight", "hidden1.weight"), "output":
        ("output.weight", "output.weight"), "cross": ("hidden1.weight", "output.weight")}``;
        "layers" builds that from the module names).

    Returns the Axes.
    """
    if hasattr(M, "detach"):
        M = M.detach().cpu().numpy()
    A = np.abs(np.asarray(M, dtype=float))
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"M must be a square 2-D matrix, got shape {A.shape}")
    log = check_bool("log", log)
    groups = _groups(offsets_or_op)
    P = A.shape[0]
    if (
        not groups
        or groups[0][1] != 0
        or groups[-1][2] != P
        or any(g[2] != h[1] for g, h in zip(groups[:-1], groups[1:], strict=True))
    ):
        raise ValueError(
            f"offsets_or_op: the groups must tile [0, {P}) (M is {P} x {P}), got "
            f"{[(g[0], g[1], g[2]) for g in groups]}"
        )
    if parts == "layers":
        parts = _layer_parts(groups)
    elif parts is not None and not hasattr(parts, "items"):
        raise TypeError(f"parts must be None, 'layers' or a mapping, got {parts!r}")
    regions = []
    for label, spec in cast("Mapping[str, Any]", parts or {}).items():
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(f"parts: {label!r} must map to (rows, cols), got {spec!r}")
        regions.append((str(label), _span(spec[0], groups, label), _span(spec[1], groups, label)))
    from matplotlib.patches import Rectangle

    ax = _axes(ax, (6.0, 5.2))
    _image(ax, A, log, "|entry|")
    for _, start, _stop in groups[1:]:
        ax.axhline(start - 0.5, color="w", lw=0.6, alpha=0.8)
        ax.axvline(start - 0.5, color="w", lw=0.6, alpha=0.8)
    centers = [(a + b - 1) / 2 for _, a, b in groups]
    labels = [g[0] for g in groups]
    ax.set_xticks(centers, labels, rotation=90, fontsize=7)
    ax.set_yticks(centers, labels, fontsize=7)
    for label, (r0, r1), (c0, c1) in regions:
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, ec="r", lw=1.2))
        ax.text(
            (c0 + c1 - 1) / 2,
            (r0 + r1 - 1) / 2,
            label,
            color="r",
            ha="center",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    ax.set_title(f"|curvature| ({P} parameters)", fontsize=10)
    return ax
