"""Per-sample losses ``l_i(theta)`` of a model, in batched forward passes.

The data-set loss of :mod:`rmthess.curvature` is ``L = mean_i l_i`` (docs/theory.md section
9.2); this module returns the ``l_i`` themselves, from the ``reduction="none"`` counterpart
of the loss: ``nn.CrossEntropyLoss`` keeps its ``weight``, ``ignore_index`` and
``label_smoothing``; ``nn.MSELoss`` gives per-element squares, averaged over the outputs of
each sample (so that ``mean_i l_i`` is the batch mean of ``MSELoss()``, the mean over all
elements); any other ``torch.nn`` loss with a ``reduction`` attribute is copied with
``reduction="none"`` and averaged over its non-batch dimensions. Each function checks, on
the first batch, that the plain mean of the ``l_i`` is the loss's own batch mean (class
weights, for one, make it a weighted mean: refused, since ``L_k`` would not be the mean of
the first ``k`` losses).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from rmthess._checks import check_int
from rmthess.curvature._inputs import check_loss, check_problem
from rmthess.data.coerce import as_xy, is_sample_dataset

if TYPE_CHECKING:
    from rmthess.curvature._types import Data, Loss

__all__ = ["per_sample_losses", "unreduced_loss"]


def _with_reduction(loss_fn: nn.Module, reduction: str) -> nn.Module:
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        return nn.CrossEntropyLoss(
            weight=loss_fn.weight,
            ignore_index=loss_fn.ignore_index,
            label_smoothing=loss_fn.label_smoothing,
            reduction=reduction,
        )
    if isinstance(loss_fn, nn.MSELoss):
        return nn.MSELoss(reduction=reduction)
    out = copy.copy(loss_fn)
    out.reduction = reduction
    return out


def unreduced_loss(loss_fn: Loss) -> tuple[nn.Module, nn.Module]:
    """``(mean_loss, none_loss)``: the loss with ``reduction="mean"`` and with ``"none"``.

    ``loss_fn``: a ``torch.nn`` loss module (any ``reduction``: "none" is accepted here) or
    "ce" / "mse". ``TypeError`` for anything without a ``reduction`` attribute.
    """
    if isinstance(loss_fn, nn.Module) and getattr(loss_fn, "reduction", None) == "none":
        loss_fn = _with_reduction(loss_fn, "mean")
    loss_fn = check_loss(loss_fn)
    return _with_reduction(loss_fn, "mean"), _with_reduction(loss_fn, "none")


def as_batches(data):
    """``data`` as :func:`rmthess.curvature._inputs.check_problem` takes it: a map-style torch
    ``Dataset`` (samples, not batches) becomes one ``(X, y)`` pair (:func:`as_xy`); anything
    else (a pair, a Dataset, a DataLoader of batches) is passed on unchanged."""
    return as_xy(data) if is_sample_dataset(data) else data


def per_sample(none_loss: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) per-sample losses from a ``reduction="none"`` loss: mean over non-batch dims."""
    v = none_loss(out, y)
    return v.reshape(v.shape[0], -1).mean(dim=1) if v.dim() > 1 else v


def check_per_sample(mean_loss, none_loss, model, X, y) -> None:
    """``ValueError`` unless ``mean(per-sample losses) == mean_loss(batch)`` to round-off."""
    with torch.no_grad():
        out = model(X)
        ref = float(mean_loss(out, y))
        per = per_sample(none_loss, out, y)
    eps = torch.finfo(out.dtype).eps if out.is_floating_point() else 1e-7
    scale = abs(ref) + float(per.abs().mean())
    if per.shape != (len(X),) or not abs(float(per.mean()) - ref) <= 1e3 * eps * scale + 1e-300:
        raise ValueError(
            f"loss_fn {type(mean_loss).__name__}: its batch mean ({ref:.6g}) is not the plain "
            f"mean of its per-sample losses ({float(per.mean()):.6g}); class weights or "
            "ignored targets make L_k a weighted mean, which the Delta_k curve does not use"
        )


def per_sample_losses(
    model: nn.Module, loss_fn: Loss, data: Data, *, batch_size: int = 4096
) -> np.ndarray:
    """The losses ``l_i`` of every sample, float64 ndarray of shape (N,), in data order.

    Parameters
    ----------
    model : torch.nn.Module (not in training mode if it has Dropout/BatchNorm).
    loss_fn : ``nn.CrossEntropyLoss``, ``nn.MSELoss`` (any reduction), another ``torch.nn``
        loss with a ``reduction`` attribute, or "ce" / "mse" (see the module docstring).
    data : ``(X, y)``, an ``rmthess.data.Dataset``, a torch ``Dataset`` of samples or an
        iterable of ``(X, y)`` batches (a ``DataLoader``); NaN
        or inf inputs are refused (:func:`rmthess.curvature._inputs.check_problem`).
    batch_size : samples per forward pass (>= 1); batches of an iterable are cut to it.

    Forward passes under ``torch.no_grad()``, in the model's dtype and device. The losses are
    returned as computed: NaN/inf losses (a diverged model) are refused later, by
    :func:`rmthess.landscape.delta.delta_curve`.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    mean_loss, none_loss = unreduced_loss(loss_fn)
    pb = check_problem(model, mean_loss, as_batches(data))
    check_per_sample(mean_loss, none_loss, pb.model, *pb.batches[0])
    out = []
    with torch.no_grad():
        for X, y in pb.batches:
            for i in range(0, len(X), batch_size):
                z = pb.model(X[i : i + batch_size])
                out.append(per_sample(none_loss, z, y[i : i + batch_size]).double().cpu())
    return torch.cat(out).numpy()
