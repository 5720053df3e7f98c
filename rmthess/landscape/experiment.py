"""The loss-landscape paper's experiment (seed 000), end to end: ``landscape_experiment``.

Two panels, as in Kiselev & Grabovoy's figures: ``Delta_k = |L_{k+1} - L_k|`` against ``k``
for several hidden widths at a fixed depth, and for several depths at a fixed width. For
each network (trained by :func:`~rmthess.landscape.models.train_mlp`): the per-sample losses
at ``theta*``, the Monte-Carlo curve over random orders with its standard error, the exact
expectation ``E Delta_k^2 = S^2 / (k (k+1))`` and the large-k form of ``E|Delta_k|``, the
fitted log-log slope with a bootstrap CI over orders, and the paper's EMA-smoothed curve.
The Hessian-bound audit runs on the fixed-width, fixed-depth network at initialization,
after training, and with a small initialization. docs/theory.md section 9.3.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from rmthess._checks import check_float, check_int, check_positive_float, check_progress
from rmthess.data import as_dataset

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes

    from rmthess.curvature._types import Data
    from rmthess.data import Dataset

__all__ = ["LandscapeExperiment", "landscape_experiment", "paper_pixels", "plot_delta_panels"]

PANELS = ("hidden", "depth")


def paper_pixels(ds: Data, pixel_max: float | None = None) -> Dataset:
    """``ds`` with its pixels mapped to [-1, 1], the paper's input scaling: ``2 x / pixel_max
    - 1``.

    ``pixel_max``: the value of a white pixel; None detects it from the data: 1 when every
    ``x`` lies in [0, 1] (``digits()``, ``load_idx``), 16 for ``digits(scale=False)``, 255
    when the pixels are integers in [0, 255] with some above 1 (raw 8-bit images, e.g. an
    ``.npz`` of MNIST). Anything else (negative values, non-integers above 1, values above
    255) is not pixels: ``ValueError`` naming the range found, before any work. Given
    explicitly, every ``x`` must lie in ``[0, pixel_max]``. ``meta["pixel_max"]`` records it.
    """
    ds = as_dataset(ds)
    lo, hi = float(ds.X.min()), float(ds.X.max())
    if pixel_max is None:
        if lo >= 0 and hi <= 1:
            pixel_max = 1.0
        elif ds.meta.get("source") == "sklearn.datasets.load_digits" and not ds.meta["scale"]:
            pixel_max = 16.0
        elif lo >= 0 and hi <= 255 and bool(np.all(ds.X == np.round(ds.X))):
            pixel_max = 255.0
        else:
            raise ValueError(
                f"data: inputs range over [{lo:.6g}, {hi:.6g}], not pixels in [0, 1] or integer "
                "pixels 0..255; the paper's [-1, 1] scaling does not apply (pass pixel_max=, "
                "or use the inputs unscaled: --raw-inputs on the command line)"
            )
    else:
        pixel_max = check_positive_float("pixel_max", pixel_max)
        if lo < 0 or hi > pixel_max:
            raise ValueError(
                f"pixel_max = {pixel_max:g}, but the inputs range over [{lo:.6g}, {hi:.6g}]: "
                "every pixel must lie in [0, pixel_max]"
            )
    X = ds.X if pixel_max == 1 else ds.X / pixel_max
    return type(ds)(X * 2 - 1, ds.y, ds.n_classes, ds.name, {**ds.meta, "pixel_max": pixel_max})


@dataclass
class LandscapeExperiment:
    """Result of :func:`landscape_experiment`.

    ``runs``: one dict per (panel, hidden, layers) with the ``DeltaCurve`` (``curve``),
    ``DeltaExpected`` (``expected``), ``RateFit`` (``fit``) and the final training loss;
    ``audits``: ``{state: BoundAudit}`` for ``init``, ``trained``, ``small-init``.
    """

    data_name: str
    n: int
    runs: list = field(default_factory=list)
    audits: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per network: panel, hidden, layers, slope (+ se, CI), train loss, ..."""
        rows = []
        for r in self.runs:
            f, e = r["fit"], r["expected"]
            rows.append(
                dict(
                    panel=r["panel"],
                    hidden=r["hidden"],
                    layers=r["layers"],
                    train_loss=r["train_loss"],
                    loss_std=float(np.sqrt(e.variance)),
                    loss_mad=e.mad,
                    slope=f.slope,
                    slope_se=f.slope_se,
                    slope_ci_low=f.slope_ci[0],
                    slope_ci_high=f.slope_ci[1],
                    k_min=f.k_min,
                    k_max=f.k_max,
                    mc_vs_exact_z=r["mc_vs_exact_z"],
                )
            )
        return pd.DataFrame(rows)

    def audit_frame(self) -> pd.DataFrame:
        """The audits' summaries stacked, with a ``state`` column."""
        parts = [a.summary().assign(state=s) for s, a in self.audits.items()]
        if not parts:
            return pd.DataFrame()
        df = pd.concat(parts, ignore_index=True)
        return df[["state", *[c for c in df.columns if c != "state"]]]

    def to_dict(self) -> dict:
        from rmthess._stats import json_safe

        return json_safe(
            dict(
                data=self.data_name,
                n=self.n,
                **self.settings,
                fits=self.to_frame().to_dict("records"),
                audit=self.audit_frame().to_dict("records"),
            )
        )


def _mc_vs_exact(curve, expected) -> float:
    """z-score of the Monte-Carlo orders against the exact ``E Delta_k^2 = S^2/(k(k+1))``.

    Pooled over the odd k: per order, ``Y = mean_{k odd} k (k+1) Delta_k^2`` has
    ``E Y = S^2`` exactly and, as an average of nearly uncorrelated terms, is close to normal
    across orders, so ``(mean Y - S^2) / se(Y)`` is an honest z (measured over 40 seeds on
    trained digits MLPs: std z 0.94-0.97). Not all k: Welford's identity
    ``sum_{k=1}^{n-1} k/(k+1) (l_{k+1} - L_k)^2 = (n-1) S^2`` makes the sum over every k the
    same for every order (no information). Not one z per k: with heavy-tailed per-sample
    losses, ``Delta_k^2`` over 100 orders is far from normal (|z| up to 14 seen).
    """
    sel = curve.k % 2 == 1
    k = curve.k[sel].astype(float)
    Y = (curve.delta_trials[:, sel] ** 2 * (k * (k + 1))).mean(axis=1)
    return float((Y.mean() - expected.variance) / (Y.std(ddof=1) / np.sqrt(len(Y))))


def _int_tuple(name, values, lo):
    if isinstance(values, int):
        values = (values,)
    out = tuple(check_int(name, v, lo) for v in values)
    if not out:
        raise ValueError(f"{name} must list at least one value")
    return out


def landscape_experiment(
    data: Data,
    *,
    hidden: Sequence[int] = (4, 8, 16, 32, 64),
    layers: Sequence[int] = (1, 3, 5),
    fixed_hidden: int = 16,
    fixed_layers: int = 3,
    orders: int = 100,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    ema: float = 0.99,
    k_min: int = 10,
    audit_samples: int | None = 200,
    seed: int = 0,
    progress: bool | None = None,
) -> LandscapeExperiment:
    """Train the paper's bias-free ReLU MLPs and measure ``Delta_k`` for each.

    ``hidden`` widths at ``fixed_layers`` weight matrices (the paper's ``L``; the authors'
    code's ``num_layers = L - 2``), and ``layers`` at ``fixed_hidden``. ``audit_samples``:
    rows audited per state (None: all; 0 skips the audit). ``data``: a
    :class:`rmthess.data.Dataset` or anything :func:`rmthess.data.as_dataset` accepts; it is
    converted to torch once. ``progress``: a tqdm bar over the networks on stderr (None:
    when stderr is a terminal and there are more than 2 networks). Every argument is
    checked before any training starts.
    """
    from rmthess.landscape.bounds import hessian_bound_audit
    from rmthess.landscape.delta import MAX_EXPECTED_WORK, delta_curve, delta_expected, fit_rate
    from rmthess.landscape.losses import per_sample_losses
    from rmthess.landscape.models import _train, relu_mlp

    hidden = _int_tuple("hidden", hidden, 1)
    layers = _int_tuple("layers", layers, 1)
    fixed_hidden = check_int("fixed_hidden", fixed_hidden, 1)
    fixed_layers = check_int("fixed_layers", fixed_layers, 1)
    orders = check_int("orders", orders, 2)
    epochs = check_int("epochs", epochs, 0)
    lr = check_positive_float("lr", lr)
    batch_size = check_int("batch_size", batch_size, 1)
    if ema is not None:
        ema = check_float("ema", ema, 0, 1, closed="neither")
    seed = check_int("seed", seed, 0)
    progress = check_progress(progress)
    k_min = check_int("k_min", k_min, 1)
    if audit_samples is not None:
        audit_samples = check_int("audit_samples", audit_samples, 0)
    data = as_dataset(data)
    n = data.n
    if k_min > n // 10 - 2:
        raise ValueError(
            f"k_min must be at most n/10 - 2 = {n // 10 - 2} for a slope fit over k = "
            f"k_min..n/10 (>= 3 points; n = {n} samples, at least {10 * (k_min + 2)} needed), "
            f"got {k_min}"
        )
    configs = [("hidden", h, fixed_layers) for h in hidden]
    configs += [("depth", fixed_hidden, L) for L in layers]
    res = LandscapeExperiment(
        data.name,
        n,
        settings=dict(
            orders=orders, epochs=epochs, lr=lr, batch_size=batch_size, ema=ema, seed=seed
        ),
    )
    it = configs
    if progress or (progress is None and len(configs) > 2 and sys.stderr.isatty()):
        from tqdm.auto import tqdm

        it = tqdm(configs, desc="landscape", unit="net")
    dtype = torch.float32  # train_mlp's default: the paper's networks
    # exact curve at every k up to MAX_EXPECTED_WORK = n K, else at 2000 log-spaced k
    ks = None if n * (n - 1) <= MAX_EXPECTED_WORK else np.geomspace(1, n - 1, 2000).astype(int)
    X, y = data.tensors(dtype)  # the one conversion of the data to torch
    trained = {}

    def train(h, L):
        if (h, L) not in trained:
            model = relu_mlp(data.d, data.n_classes, h, L, seed=seed, dtype=dtype)
            trained[(h, L)] = _train(model, X, y, epochs, lr, batch_size, seed, None)
        return trained[(h, L)]

    for panel, h, L in it:
        model = train(h, L)
        losses = per_sample_losses(model, "ce", (X, y))
        curve = delta_curve(losses, orders, seed=seed, ema=ema)
        expected = delta_expected(losses, k=ks)
        fit = fit_rate(curve, k_min=k_min, k_max=n // 10, seed=seed)
        res.runs.append(
            dict(
                panel=panel,
                hidden=h,
                layers=L,
                curve=curve,
                expected=expected,
                fit=fit,
                train_loss=float(losses.mean()),
                mc_vs_exact_z=_mc_vs_exact(curve, expected),
            )
        )
    if audit_samples != 0:
        base = dict(seed=seed, dtype=dtype)
        states = {
            "init": relu_mlp(data.d, data.n_classes, fixed_hidden, fixed_layers, **base),
            "trained": train(fixed_hidden, fixed_layers),
            "small-init": relu_mlp(
                data.d, data.n_classes, fixed_hidden, fixed_layers, init_scale=0.1, **base
            ),
        }
        for state, model in states.items():
            res.audits[state] = hessian_bound_audit(
                model, data, "ce", samples=audit_samples, seed=seed
            )
    return res


def plot_delta_panels(
    res: LandscapeExperiment, axes: Sequence[Axes] | np.ndarray | None = None
) -> Sequence[Axes] | np.ndarray:
    """The paper's two panels: Delta_k vs k (log-log) per width and per depth, each with
    the Monte-Carlo mean and its +-2 SE band, the exact rms ``S / sqrt(k(k+1))`` (thin
    dotted), the large-k form ``MAD/(k+1)`` (dash-dot) and the paper's EMA (dashed)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    for ax, panel in zip(axes, PANELS, strict=True):
        runs = [r for r in res.runs if r["panel"] == panel]
        for i, r in enumerate(runs):
            c, e, f = r["curve"], r["expected"], r["fit"]
            col = f"C{i}"
            lab = f"h={r['hidden']}" if panel == "hidden" else f"L={r['layers']}"
            ax.plot(c.k, c.mean, color=col, lw=1, label=f"{lab}: slope {f.slope:.3f}")
            ax.fill_between(
                c.k, c.mean - 2 * c.mean_se, c.mean + 2 * c.mean_se, color=col, alpha=0.2, lw=0
            )
            ax.plot(e.k, e.mean_abs, color=col, lw=0.8, ls="-.")
            if c.ema is not None:
                ax.plot(c.k, c.ema, color=col, lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("k (samples)")
        fixed = runs[0]["layers"] if panel == "hidden" else runs[0]["hidden"]
        ax.set_title(
            f"varying width, L = {fixed}" if panel == "hidden" else f"varying depth, h = {fixed}"
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(
            fontsize=7, loc="lower left", title="mean (band: +-2 SE); -. MAD/(k+1); -- EMA 0.99"
        )
    axes[0].set_ylabel("Delta_k = |L_{k+1} - L_k|")
    return axes
