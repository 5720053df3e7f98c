"""Full-Hessian heatmaps ``|H|`` for small sizes (the seed paper's Figures 1-7).

The Hessian is the exact closed form of :mod:`rmthess.simulate.hessian` (checked against
``torch.func.hessian``), so large C is cheap for the hidden layer: its (m d) x (m d) block
costs O(N m^2 (d^2 + C)) whatever C is (Figure 6: C = 10, 100, 1000).

Parameter order (rows and columns): rows of W (m blocks of size d, or C blocks for the
linear model), then rows of V (C blocks of size m). :func:`heatmap_layout` gives the block
boundaries to draw; the paper plots ``|H|`` entry-wise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rmthess._checks import check_choice, check_int
from rmthess.cases import case_for

if TYPE_CHECKING:  # torch is imported only when a heatmap is computed
    from rmthess.simulate.device import Device, DType

__all__ = ["Heatmap", "HeatmapLayout", "PARTS", "block_ratio", "heatmap_layout", "hessian_heatmap"]

PARTS = ("full", "hidden", "output", "cross")


@dataclass
class HeatmapLayout:
    """Where the blocks of a heatmap lie.

    row_bounds, col_bounds: block boundaries (0, ..., size), one block per output neuron of
    a layer (one row of W or V). layer_split: index where the W parameters end and the V
    parameters begin (``full`` part of the hidden model), else None. title: a short label.
    """

    shape: tuple[int, int]
    row_bounds: list[int]
    col_bounds: list[int]
    layer_split: int | None = None
    title: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class Heatmap:
    """What :func:`hessian_heatmap` returns: ``|H|`` entry-wise and where its blocks lie.

    ``values`` is a numpy array; ``numpy.asarray(heatmap)`` gives it too.
    """

    values: object  # numpy.ndarray
    layout: HeatmapLayout

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        return np.asarray(self.values, dtype=dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    def block_ratio(self) -> float:
        """:func:`block_ratio` of a square heatmap with equal blocks (a layer's Hessian)."""
        bounds = self.layout.row_bounds
        return block_ratio(self.values, len(bounds) - 1, bounds[1] - bounds[0])


def block_ratio(H, K: int, p: int) -> float:
    """``sqrt(mean_{k != l} ||H_kl||_F^2 / mean_k ||H_kk||_F^2)`` of a ``(K p) x (K p)`` matrix.

    The one-Hessian version of ``r = sqrt(F_off / F_diag)`` (docs/theory.md section 4).

    >>> import numpy as np
    >>> block_ratio(np.kron(np.ones((2, 2)), np.eye(3)), 2, 3)
    1.0
    """
    import numpy as np

    H = np.asarray(H, float)
    B = (H.reshape(K, p, K, p) ** 2).sum(axis=(1, 3))
    diag = np.trace(B) / K
    off = (B.sum() - np.trace(B)) / (K * (K - 1))
    return float(np.sqrt(off / diag))


def _bounds(*groups):
    out = [0]
    for count, size in groups:
        start = out[-1]
        out.extend(start + size * (k + 1) for k in range(count))
    return out


def heatmap_layout(model: str, C: int, d: int, m: int | None = None, part: str = "full"):
    """Block boundaries of the ``part`` of the Hessian of ``model`` (see :class:`HeatmapLayout`)."""
    model = check_choice("model", model, ("linear", "hidden"))
    part = check_choice("part", part, PARTS)
    C = check_int("C", C, 1)
    d = check_int("d", d, 1)
    if model == "linear":
        if part != "full":
            raise ValueError(f"the linear model has one layer: part must be 'full', got {part!r}")
        b = _bounds((C, d))
        return HeatmapLayout((C * d, C * d), b, b, None, "linear: W blocks")
    if m is None:
        raise ValueError("m (hidden width) is required for the one-hidden-layer model")
    m = check_int("m", m, 1)
    hid, out = _bounds((m, d)), _bounds((C, m))
    if part == "hidden":
        return HeatmapLayout((m * d, m * d), hid, hid, None, "hidden layer H_ww")
    if part == "output":
        return HeatmapLayout((C * m, C * m), out, out, None, "output layer H_vv")
    if part == "cross":
        return HeatmapLayout((m * d, C * m), hid, out, None, "cross-layer H_wv")
    full = _bounds((m, d), (C, m))
    n = m * d + C * m
    return HeatmapLayout((n, n), full, full, m * d, "full Hessian")


def hessian_heatmap(
    model: str,
    loss: str,
    C: int,
    d: int,
    N: int,
    m: int | None = None,
    seed: int = 0,
    part: str = "full",
    step: int | None = None,
    *,
    train_kwargs: dict | None = None,
    device: Device = "cpu",
    dtype: DType = "float64",
    init="lecun",
) -> Heatmap:
    """``|H|`` entry-wise (small sizes) with its block layout, as a :class:`Heatmap`.

    Parameters
    ----------
    model : "linear" or "hidden" (one-hidden-layer ReLU net, needs ``m``).
    loss : "mse" or "ce".
    C, d, N, m : classes, input dimension, samples, hidden width (positive ints).
    seed : seeds data, weights (law ``init``) and the random labels (``random_labels(C, N, seed)``;
        they enter only the cross-layer block).
    part : "full" (whole Hessian), "hidden" (H_ww), "output" (H_vv), "cross" (H_wv).
    step : None or 0 for initialization; otherwise (hidden model only) the Hessian after
        ``step`` steps of full-batch Adam training on random labels
        (:func:`rmthess.simulate.training.train_states`; ``train_kwargs`` passes lr,
        schedule and total ``steps`` of the cosine schedule, default ``steps = step``).
    device, dtype : default "cpu" / "float64" so that a figure is the same on every
        machine (CPU and CUDA generators draw different numbers); "auto"/"cuda" accepted.
    init : weight initialisation, ``"lecun"`` (default), ``"torch-default"`` or a float
        sigma (:func:`rmthess.inits.resolve_init`).
    """
    from rmthess.simulate.hessian import (
        full_hessian,
        hessian_blocks,
        hessian_parts,
        random_labels,
    )
    from rmthess.simulate.sampling import sample_instance

    layout = heatmap_layout(model, C, d, m, part)
    loss = check_choice("loss", loss, ("mse", "ce"))
    N = check_int("N", N, 1)
    if step is not None:
        step = check_int("step", step, 0)
    from rmthess.inits import resolve_init

    ini = resolve_init(init)
    if model == "linear":
        if step:
            raise ValueError("step > 0 (training) is supported for the hidden model only")
        inst = sample_instance("linear", C, d, N, seed=seed, device=device, dtype=dtype, init=ini)
        H = full_hessian("linear", loss, inst)
    else:
        if step:
            from rmthess.simulate.training import train_states

            kw = {"steps": step, **(train_kwargs or {})}
            if kw["steps"] < step:
                raise ValueError(f"train_kwargs['steps'] must be >= step={step}")
            inst = Y = None
            for t, _, snap, labels in train_states(
                C=C,
                d=d,
                m=m,
                N=N,
                loss=loss,
                seed=seed,
                device=device,
                dtype=dtype,
                init=ini,
                record_every=step,
                **kw,
            ):
                if t == step:
                    inst, Y = snap, labels
                    break
        else:
            inst = sample_instance(
                "hidden", C, d, N, m=m, seed=seed, device=device, dtype=dtype, init=ini
            )
            Y = random_labels(C, N, seed, inst.X.device)
        if part in ("hidden", "output"):
            Hb = hessian_blocks(case_for(part, loss).name, inst)
            K, _, p, _ = Hb.shape
            H = Hb.permute(0, 2, 1, 3).reshape(K * p, K * p)
        else:
            parts = hessian_parts(loss, inst, Y)
            H = parts.wv if part == "cross" else parts.full()
    arr = H.abs().cpu().numpy()
    assert arr.shape == layout.shape
    layout.meta = {
        "model": model,
        "loss": loss,
        "C": C,
        "d": d,
        "N": N,
        "m": m,
        "seed": seed,
        "part": part,
        "step": step or 0,
        "init": ini.name,
    }
    return Heatmap(arr, layout)
