"""Checks and conversions of ``(model, loss_fn, data)`` shared by every curvature routine.

Everything here runs before any Hessian-vector product: bad input gets one ``ValueError`` /
``TypeError`` naming the argument, and no long computation starts on input that would fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rmthess._checks import check_choice, check_int

LOSSES = {"ce": nn.CrossEntropyLoss, "mse": nn.MSELoss}
REDUCTIONS = ("mean", "sum")
# Modules whose forward pass in training mode is random or batch-dependent: the Hessian of
# the loss is then not a fixed matrix.
_MODE_DEPENDENT = (nn.Dropout, nn.modules.batchnorm._BatchNorm, nn.AlphaDropout)
DEFAULT_BATCH = 4096


@dataclass(frozen=True)
class Problem:
    """A checked ``(model, loss, data)`` triple, data as a list of ``(X, y)`` batches on the
    parameters' device and dtype.

    ``names``/``shapes``: the parameters that require grad, in ``model.named_parameters()``
    order; the flat parameter vector is ``torch.cat([p.flatten() for p in params])``.
    """

    model: nn.Module
    loss_fn: nn.Module
    names: tuple[str, ...]
    params: tuple[torch.Tensor, ...]
    batches: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    n_data: int
    n_outputs: int

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(p.shape) for p in self.params)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params)

    @property
    def offsets(self) -> dict[str, slice]:
        """``name -> slice`` of each parameter tensor in the flat parameter vector."""
        out, start = {}, 0
        for n, p in zip(self.names, self.params, strict=True):
            out[n] = slice(start, start + p.numel())
            start += p.numel()
        return out

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.params[0].dtype

    def weight(self, batch_size: int) -> float:
        """Weight of one batch's loss in the data-set loss (``B/N`` for a mean, 1 for a sum)."""
        return batch_size / self.n_data if self.loss_fn.reduction == "mean" else 1.0


def check_model(model) -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
    """Named parameters of ``model`` that require grad (at least one; one dtype and device)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no parameters that require grad: nothing to differentiate")
    dtypes = {p.dtype for _, p in named}
    devices = {p.device for _, p in named}
    if len(dtypes) > 1 or len(devices) > 1:
        raise ValueError(
            f"model parameters must share one dtype and device, got {sorted(map(str, dtypes))} "
            f"on {sorted(map(str, devices))}"
        )
    if not next(iter(dtypes)).is_floating_point:
        raise TypeError("model parameters must be floating point")
    for name, mod in model.named_modules():
        if isinstance(mod, _MODE_DEPENDENT) and mod.training:
            raise ValueError(
                f"model module {name!r} ({type(mod).__name__}) is in training mode, where its "
                "output is random or depends on the batch; call model.eval() first"
            )
    return tuple(n for n, _ in named), tuple(p for _, p in named)


def check_loss(loss_fn) -> nn.Module:
    """A loss module with ``reduction`` "mean" or "sum"; "ce"/"mse" build the torch default."""
    if isinstance(loss_fn, str):
        return LOSSES[check_choice("loss_fn", loss_fn, tuple(LOSSES))]()
    if not isinstance(loss_fn, nn.Module):
        raise TypeError(
            "loss_fn must be a torch.nn loss module (e.g. nn.CrossEntropyLoss()) or one of "
            f"{tuple(LOSSES)}, got {type(loss_fn).__name__}"
        )
    red = getattr(loss_fn, "reduction", None)
    if red not in REDUCTIONS:
        raise ValueError(
            f"loss_fn must reduce over the batch: reduction must be one of {REDUCTIONS}, "
            f"got {red!r}"
        )
    return loss_fn


def _tensor(name: str, a, device, dtype=None) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(np.array(a))  # a copy: the caller's array may be read-only
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")
    return a.to(device=device, dtype=dtype) if dtype is not None else a.to(device)


def _raw_batches(data, batch_size: int | None):
    """``data`` as a list of ``(X, y)`` pairs (Dataset, ``(X, y)`` tuple or an iterable)."""
    if hasattr(data, "X") and hasattr(data, "y") and hasattr(data, "n_classes"):
        data = (data.X, data.y)  # an rmthess.data.Dataset
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(a, torch.Tensor | np.ndarray) for a in data)
    ):
        X, y = data
        if len(X) != len(y):
            raise ValueError(
                f"data: X and y disagree on the number of samples: X has shape "
                f"{tuple(X.shape)}, y has shape {tuple(y.shape)}"
            )
        n = len(X)
        bs = n if batch_size is None and n <= DEFAULT_BATCH else (batch_size or DEFAULT_BATCH)
        return [(X[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)]
    if batch_size is not None:
        raise ValueError("batch_size applies only to data given as one (X, y) pair")
    try:
        batches = list(data)
    except TypeError:
        raise TypeError(
            "data must be an (X, y) pair of tensors/arrays, an rmthess.data.Dataset, or an "
            f"iterable of (X, y) batches, got {type(data).__name__}"
        ) from None
    for i, b in enumerate(batches):
        if not (isinstance(b, tuple | list) and len(b) == 2):
            raise TypeError(f"data: batch {i} is not an (X, y) pair")
        if len(b[0]) != len(b[1]):
            raise ValueError(
                f"data: batch {i} has {len(b[0])} inputs but {len(b[1])} targets "
                f"(X shape {tuple(b[0].shape)}, y shape {tuple(b[1].shape)})"
            )
    return batches


def _targets(loss_fn, y: torch.Tensor, n_out: int, i: int, dtype) -> torch.Tensor:
    integer = not (y.dtype.is_floating_point or y.dtype.is_complex)
    if isinstance(loss_fn, nn.CrossEntropyLoss) and integer:
        if y.dim() != 1:
            raise ValueError(f"data: class labels y must be 1-D, batch {i} has shape {y.shape}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_out):
            raise ValueError(
                f"data: labels of batch {i} must lie in [0, {n_out - 1}] (the model has "
                f"{n_out} outputs), got [{int(y.min())}, {int(y.max())}]"
            )
        return y.long()
    if isinstance(loss_fn, nn.MSELoss) and integer and y.dim() == 1:
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_out):
            raise ValueError(f"data: labels of batch {i} must lie in [0, {n_out - 1}]")
        return nn.functional.one_hot(y.long(), n_out).to(dtype)
    if y.dtype.is_floating_point:
        if not torch.isfinite(y).all():
            raise ValueError(f"data: y of batch {i} contains NaN or inf")
        return y.to(dtype)
    return y


def check_problem(model, loss_fn, data, *, batch_size: int | None = None) -> Problem:
    """Check everything and move the data to the parameters' device and dtype.

    ``data``: ``(X, y)`` (split into batches of ``batch_size``, default all samples up to
    4096 per batch), an ``rmthess.data.Dataset``, or an iterable of ``(X, y)`` batches (a
    ``DataLoader``; it is read once and kept, so it must fit in memory). Integer labels with an
    ``MSELoss`` are one-hot encoded to the model's output width. The data-set loss is the mean
    (or sum) over *all* samples, whatever the batching.
    """
    names, params = check_model(model)
    loss_fn = check_loss(loss_fn)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1)
    raw = _raw_batches(data, batch_size)
    if not raw:
        raise ValueError("data is empty")
    dev, dt = params[0].device, params[0].dtype
    batches, n_out = [], None
    for i, (X, y) in enumerate(raw):
        X = _tensor("X", X, dev, dt if not torch.is_tensor(X) or X.is_floating_point() else None)
        if not X.is_floating_point():
            X = X.to(dt)
        if X.shape[0] == 0:
            raise ValueError(f"data: batch {i} is empty")
        if not torch.isfinite(X).all():
            bad = int((~torch.isfinite(X.reshape(len(X), -1))).any(1).nonzero()[0, 0])
            raise ValueError(f"data: X of batch {i} contains NaN or inf (first at sample {bad})")
        if n_out is None:
            with torch.no_grad():
                try:
                    out = model(X[:1])
                except RuntimeError as e:
                    raise ValueError(
                        f"data: model cannot take X of shape {tuple(X.shape)}: {e}"
                    ) from None
            n_out = out.shape[-1] if out.dim() > 1 else 1
        y = _tensor("y", y, dev)
        batches.append((X, _targets(loss_fn, y, n_out, i, dt)))
    with torch.no_grad():  # one forward+loss on the first batch: shapes agree with the loss
        try:
            loss_fn(model(batches[0][0][:2]), batches[0][1][:2])
        except (RuntimeError, ValueError, IndexError) as e:
            raise ValueError(f"data: loss_fn cannot take the model output and y: {e}") from None
    n = sum(len(X) for X, _ in batches)
    return Problem(model, loss_fn, names, params, tuple(batches), n, int(n_out))
