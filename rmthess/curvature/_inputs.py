"""Checks and conversions of ``(model, loss_fn, data)`` shared by every curvature routine.

Everything here runs before any Hessian-vector product: bad input gets one ``ValueError`` /
``TypeError`` naming the argument, and no long computation starts on input that would fail.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rmthess._checks import check_choice, check_int

LOSSES = {"ce": nn.CrossEntropyLoss, "mse": nn.MSELoss}
REDUCTIONS = ("mean", "sum")
# Modules whose forward pass in training mode is random (every dropout: Dropout, Dropout1d/2d/3d,
# AlphaDropout, FeatureAlphaDropout derive from _DropoutNd; RReLU draws its slopes) or depends
# on the batch (BatchNorm): the Hessian of the loss is then not a fixed matrix.
_MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.RReLU, nn.modules.batchnorm._BatchNorm)
# Modules random in training mode only when their ``dropout`` probability is > 0.
_DROPOUT_ARG = (nn.MultiheadAttention, nn.RNNBase)
DEFAULT_BATCH = 4096
# Losses whose "mean" is a WEIGHTED mean over the batch (class weights, ignored targets): the
# data-set loss is then not the sample-size-weighted mean of the batch losses.
_WEIGHTED_MEAN = (nn.CrossEntropyLoss, nn.NLLLoss)


@dataclass(frozen=True)
class Problem:
    """A checked ``(model, loss, data)`` triple, data as a list of ``(X, y)`` batches on the
    parameters' device and dtype.

    ``names``/``shapes``: the parameters that require grad, in ``model.named_parameters()``
    order; the flat parameter vector is ``torch.cat([p.flatten() for p in params])``.
    ``loss_fn`` is the loss as given; ``batch_loss_fn`` the loss applied to each batch, such
    that the data-set loss is ``sum_b weight(B_b) * batch_loss_fn(model(X_b), y_b)``. They
    differ for a cross-entropy / NLL loss with ``reduction="mean"`` and class weights or
    ignored targets: its mean is weighted (``sum_i w_{y_i} l_i / sum_i w_{y_i}`` over the
    non-ignored targets), so ``batch_loss_fn`` is the same loss with ``reduction="sum"`` and
    class weights ``w / W`` (``W`` the total weight of ALL targets), and every batch weighs 1.
    """

    model: nn.Module
    loss_fn: nn.Module
    names: tuple[str, ...]
    params: tuple[torch.Tensor, ...]
    batches: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    n_data: int
    n_outputs: int
    batch_loss_fn: nn.Module | None = None

    def __post_init__(self):
        if self.batch_loss_fn is None:
            object.__setattr__(self, "batch_loss_fn", self.loss_fn)

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
        """Weight of one batch's ``batch_loss_fn`` in the data-set loss (``B/N`` for a mean, 1
        for a sum)."""
        return batch_size / self.n_data if self.batch_loss_fn.reduction == "mean" else 1.0


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
    dtype = next(iter(dtypes))
    if not dtype.is_floating_point:
        raise TypeError("model parameters must be floating point")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"model parameters must be float32 or float64, got {dtype}: half precision "
            "(eps ~1e-3 for float16, 1e-2 for bfloat16) is too coarse for curvature "
            "products and numpy has no bfloat16; call model.float() or model.double()"
        )
    check_deterministic(model)
    return tuple(n for n, _ in named), tuple(p for _, p in named)


def check_deterministic(model: nn.Module) -> None:
    """``ValueError`` naming the first module whose output is random or depends on the batch:
    any dropout (``_DropoutNd``: Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout),
    RReLU, BatchNorm in training mode (RReLU in eval mode too: torch.func cannot batch it);
    MultiheadAttention and RNN/LSTM/GRU with ``dropout > 0`` in training mode; BatchNorm
    without running statistics
    (``track_running_stats=False``), which normalises by the batch in eval mode too."""
    for name, mod in model.named_modules():
        what = f"model module {name!r} ({type(mod).__name__})"
        random = isinstance(mod, _MODE_DEPENDENT) or (
            isinstance(mod, _DROPOUT_ARG) and float(getattr(mod, "dropout", 0) or 0) > 0
        )
        if random and mod.training:
            raise ValueError(
                f"{what} is in training mode, where its output is random or depends on the "
                "batch, so the curvature would not be one matrix; call model.eval() first"
            )
        if isinstance(mod, nn.RReLU):
            raise ValueError(
                f"{what} in eval mode is nn.LeakyReLU({(mod.lower + mod.upper) / 2:g}) "
                "(slope (lower + upper) / 2), but torch.func cannot batch its kernel "
                "(aten::rrelu_with_noise); replace it by that LeakyReLU"
            )
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is None:
            raise ValueError(
                f"{what} has no running statistics (track_running_stats=False): it "
                "normalises by the statistics of each batch even in eval mode, so the "
                "curvature would depend on the batching; use track_running_stats=True"
            )


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
        if n == 0:
            raise ValueError(f"data is empty: X has shape {tuple(X.shape)} (0 samples)")
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
    if isinstance(loss_fn, _WEIGHTED_MEAN) and integer:
        if y.dim() != 1:
            raise ValueError(f"data: class labels y must be 1-D, batch {i} has shape {y.shape}")
        kept = y[y != loss_fn.ignore_index]
        if len(kept) and (int(kept.min()) < 0 or int(kept.max()) >= n_out):
            raise ValueError(
                f"data: labels of batch {i} must lie in [0, {n_out - 1}] (the model has "
                f"{n_out} outputs) or equal ignore_index={loss_fn.ignore_index}, got "
                f"[{int(kept.min())}, {int(kept.max())}]"
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
        raise ValueError("data is empty: it gave no (X, y) batch")
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
    batch_loss = _batch_loss(loss_fn, batches, n_out, dt, dev)
    return Problem(model, loss_fn, names, params, tuple(batches), n, int(n_out), batch_loss)


def _batch_loss(loss_fn, batches, n_out: int, dtype, device) -> nn.Module:
    """The loss to apply to each batch (:class:`Problem`): ``loss_fn`` itself, except for a
    class-weighted or target-ignoring cross-entropy / NLL mean over class labels, which
    becomes the same loss with ``reduction="sum"`` and class weights ``w / W``: summed over
    the batches it is exactly the weighted mean over all data (label smoothing included)."""
    if not isinstance(loss_fn, _WEIGHTED_MEAN) or loss_fn.reduction != "mean":
        return loss_fn
    if any(y.dtype.is_floating_point for _, y in batches):
        return loss_fn  # class probabilities: a plain mean over samples
    w = loss_fn.weight
    ignored = any(bool((y == loss_fn.ignore_index).any()) for _, y in batches)
    if w is None and not ignored:
        return loss_fn
    w = torch.ones(n_out, dtype=dtype, device=device) if w is None else w.to(device, dtype)
    if w.shape != (n_out,):
        raise ValueError(
            f"loss_fn: class weight must have one entry per output ({n_out}), got shape "
            f"{tuple(w.shape)}"
        )
    total = sum(float(w[y[y != loss_fn.ignore_index]].sum()) for _, y in batches)
    if not total > 0:
        raise ValueError(
            f"loss_fn: the total class weight of the non-ignored targets is {total:g} (every "
            f"target is ignore_index={loss_fn.ignore_index}, or their weights are 0): the "
            "mean loss is 0/0"
        )
    out = copy.deepcopy(loss_fn)
    out.reduction = "sum"
    out.weight = w / total
    return out
