"""Small multilayer perceptrons and a plain training loop, for curvature measurements.

``mlp(d, C, hidden=(m,), bias=False, init="lecun")`` is the block-structure paper's
one-hidden-layer network ``z = V relu(W x)`` (docs/theory.md section 1), with ``W`` the weight
of module ``"hidden1"`` and ``V`` that of ``"output"``; the flat parameter vector
``[W.flatten(), V.flatten()]`` is the order of :mod:`rmthess.simulate.hessian`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rmthess._checks import (
    check_bool,
    check_choice,
    check_int,
    check_memory,
    check_positive_float,
    check_progress,
    progress_bar,
)
from rmthess._device import Device, DType, resolve_device, resolve_dtype
from rmthess._random import check_seed, seed_int
from rmthess.curvature._inputs import check_loss, check_problem
from rmthess.inits import INITS

if TYPE_CHECKING:
    from rmthess.curvature._types import Data, Loss, Widths

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
_DEPRECATED_INITS = {"pytorch": "torch-default"}
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}

__all__ = ["mlp", "train", "ACTIVATIONS", "INITS"]


def mlp(
    d: int,
    C: int,
    hidden: Widths = (16,),
    *,
    activation: str = "relu",
    bias: bool = True,
    init: str = "lecun",
    seed: int = 0,
    dtype: DType = "float64",
    device: Device = "cpu",
) -> nn.Sequential:
    """A fully connected net ``d -> hidden[0] -> hidden[1] -> C`` (any depth) with named layers.

    Modules are ``hidden1, act1, hidden2, act2, ..., output``. ``init="lecun"``: every weight
    entry i.i.d. ``N(0, 1/fan_in)``, biases zero (the paper's Assumption 2);
    ``init="torch-default"``: ``nn.Linear``'s default, weights and biases uniform on
    ``+-1/sqrt(fan_in)`` (the names of :data:`rmthess.inits.INITS`; the former name
    ``"pytorch"`` still works, with a ``DeprecationWarning``). ``hidden=()`` is the linear
    model ``z = W x``. ``C >= 2`` classes. ``dtype``: ``"float64"`` (default) or
    ``"float32"`` (or that torch dtype); ``device``: ``"cpu"`` (default: a model is built where
    its data will be; see :data:`rmthess._device.Device`), ``"auto"``, ``"cuda"``,
    ``"cuda:N"`` or a ``torch.device``. Sizes whose
    weights would not fit in half the RAM are refused before any allocation. ``bias``: True
    or False. Weights are drawn from
    ``torch.Generator().manual_seed(seed)`` for ``seed < 2**63``, and from
    ``manual_seed(rmthess._random.seed_int(seed))`` for larger seeds up to ``2**128 - 1``.
    """
    d = check_int("d", d, 1)
    C = check_int("C", C, 2)
    given: Any = hidden  # checked here: an int, a sequence of ints, or a clear error
    if isinstance(given, numbers.Number):  # one width (a bad one is named below)
        given = (given,)
    try:
        given = tuple(given)
    except TypeError:
        raise TypeError(
            f"hidden must be an int or a sequence of ints, got {type(given).__name__}"
        ) from None
    hidden = tuple(check_int("hidden", h, 1) for h in given)
    act = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
    bias = check_bool("bias", bias)
    if isinstance(init, str) and init in _DEPRECATED_INITS:
        warnings.warn(
            f"mlp(init={init!r}) is deprecated: say init={_DEPRECATED_INITS[init]!r} (the same "
            "weights; one init vocabulary across rmthess)",
            DeprecationWarning,
            stacklevel=2,
        )
        init = _DEPRECATED_INITS[init]
    init = check_choice("init", init, INITS)
    seed = check_seed(seed)
    dtype = resolve_dtype(dtype)
    device = resolve_device(device)
    widths = (d, *hidden, C)
    n_params = sum(a * b + bias * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    check_memory(
        2.0 * n_params * dtype.itemsize,  # the weights and their initial draw
        f"mlp({d} -> {hidden} -> {C}): {n_params} parameters",
        "lower d, C or hidden",
    )
    # seeds < 2**63 seed torch directly (the numbers of every earlier run stay as they were)
    gen = torch.Generator().manual_seed(seed if seed < 2**63 else seed_int(seed))
    layers: list[tuple[str, nn.Module]] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        lin = nn.Linear(a, b, bias=bias, dtype=dtype)
        with torch.no_grad():
            if init == "lecun":
                lin.weight.copy_(torch.randn(b, a, generator=gen, dtype=dtype) / math.sqrt(a))
                if bias:
                    lin.bias.zero_()
            else:
                bound = 1 / math.sqrt(a)
                lin.weight.copy_((torch.rand(b, a, generator=gen, dtype=dtype) * 2 - 1) * bound)
                if bias:
                    lin.bias.copy_((torch.rand(b, generator=gen, dtype=dtype) * 2 - 1) * bound)
        last = i == len(widths) - 2
        layers.append(("output" if last else f"hidden{i + 1}", lin))
        if not last:
            layers.append((f"act{i + 1}", act()))
    return nn.Sequential(OrderedDict(layers)).to(device)


def train(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    *,
    steps: int = 500,
    epochs: int | None = None,
    lr: float = 1e-2,
    optimizer: str = "adam",
    batch_size: int | None = None,
    seed: int = 0,
    log_every: int = 10,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Train ``model`` in place; returns the log ``step, loss, accuracy`` (tidy DataFrame).

    The one trainer of rmthess (:func:`rmthess.landscape.train_mlp` builds the paper's MLP
    and calls it). Two schedules:

    - ``steps`` (default): full-batch steps (``batch_size=None``), else mini-batches drawn
      without replacement from a ``torch.Generator`` seeded with ``seed``; logged every
      ``log_every`` steps and after the last.
    - ``epochs=E``: ``E`` passes over the data, each in the order of one
      ``torch.randperm(N, generator)`` cut into consecutive mini-batches of ``batch_size``
      (the last one shorter); logged at the start and after every epoch, with an ``epoch``
      column. ``steps`` and ``log_every`` are then not used.

    ``accuracy`` (argmax of the output against integer labels) is logged for classification
    data, else NaN. Loss and accuracy are those of the whole data set at the logged step,
    before the update. ``progress``: a tqdm bar (None: when stderr is a terminal).
    ``seed``: any integer in ``[0, 2**128)`` (below ``2**63`` it seeds torch directly).
    """
    if epochs is not None:
        epochs = check_int("epochs", epochs, 0)
    steps = check_int("steps", steps, 0)
    lr = check_positive_float("lr", lr)
    opt_cls = OPTIMIZERS[check_choice("optimizer", optimizer, tuple(OPTIMIZERS))]
    log_every = check_int("log_every", log_every, 1)
    loss_fn = check_loss(loss_fn)
    pb = check_problem(model, loss_fn, data)
    X = torch.cat([b[0] for b in pb.batches])
    y = torch.cat([b[1] for b in pb.batches])
    labels = y if not y.dtype.is_floating_point else (y.argmax(1) if y.dim() == 2 else None)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1, len(X))
    progress = check_progress(progress)
    seed = check_seed(seed)
    opt = opt_cls(pb.params, lr=lr)
    gen = torch.Generator().manual_seed(seed if seed < 2**63 else seed_int(seed))
    rows = []

    def log(step):
        with torch.no_grad():
            out = model(X)
            acc = float((out.argmax(1) == labels).double().mean()) if labels is not None else np.nan
            rows.append((step, float(loss_fn(out, y)), acc))

    if epochs is not None:
        return _train_epochs(
            model, loss_fn, opt, X, y, log, rows, epochs, batch_size, gen, progress
        )
    bar = progress_bar(progress, total=steps, desc="train", unit="step")
    for step in range(steps):
        if step % log_every == 0:
            log(step)
        if batch_size is None:
            xb, yb = X, y
        else:
            idx = torch.randperm(len(X), generator=gen)[:batch_size].to(X.device)
            xb, yb = X[idx], y[idx]
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
        bar.update()
    bar.close()
    log(steps)
    return pd.DataFrame(rows, columns=["step", "loss", "accuracy"])


def _train_epochs(model, loss_fn, opt, X, y, log, rows, epochs, batch_size, gen, progress):
    """:func:`train`'s epoch schedule on checked arguments (see its docstring)."""
    N = len(X)
    batch_size = N if batch_size is None else batch_size
    n_batches = math.ceil(N / batch_size)
    epoch_of = [0]
    log(0)
    bar = progress_bar(progress, total=epochs, desc="train", unit="epoch")
    for epoch in range(1, epochs + 1):
        order = torch.randperm(N, generator=gen).to(X.device)
        for b in range(n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
        log(epoch * n_batches)
        epoch_of.append(epoch)
        bar.set_postfix(loss=f"{rows[-1][1]:.4f}", refresh=False)
        bar.update()
    bar.close()
    df = pd.DataFrame(rows, columns=["step", "loss", "accuracy"])
    df.insert(0, "epoch", epoch_of)
    return df
