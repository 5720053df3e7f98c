"""The loss-landscape paper's network: a bias-free ReLU MLP trained with Adam (seed 000).

Kiselev & Grabovoy (section 3.3 and 5; their code ``code/get_loss_values.py``) use

    z = W^(L) relu(W^(L-1) relu( ... relu(W^(1) x))),     W^(1): h x n, W^(p): h x h, W^(L): K x h,

with no biases, cross-entropy, Adam (lr 1e-3), shuffled mini-batches of 64, 10 epochs,
torch's default initialisation (``nn.Linear``: entries uniform on ``+-1/sqrt(fan_in)``).

How depth is counted (the one place where the paper, its code and its figures differ):

- ``layers`` here is the paper's ``L``: the number of weight matrices (``L - 1`` hidden
  layers of width ``h``). Theorem 1 and Lemma 1 are stated in this ``L``.
- The authors' code takes ``num_layers`` = the number of extra ``h x h`` layers between the
  input layer and the output layer, so ``L = num_layers + 2`` (their ``num_layers = 1``
  is ``784 -> 16 -> 16 -> 10``, three weight matrices). The paper's figure legend
  ("number of hidden layers 1..10") is that ``num_layers``.
- ``layers = 1`` is multinomial logistic regression ``z = W x`` (no hidden layer; ``hidden``
  is then unused). ``784 -> 16 x 6 -> 10`` is ``hidden=16, layers=7`` (code: 5).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import torch
from torch import nn

from rmthess._checks import check_int, check_memory, check_positive_float, check_progress
from rmthess._device import Device, DType, resolve_device, resolve_dtype
from rmthess.curvature.models import mlp, train
from rmthess.data import as_dataset

if TYPE_CHECKING:
    from rmthess.curvature._types import Data

__all__ = ["check_relu_mlp", "relu_mlp", "train_mlp"]

PROGRESS_STEPS = 2000
"""``progress=None`` shows a tqdm bar when training takes at least this many Adam steps."""

_NOT_APPLICABLE = (
    "Theorem 1, Lemma 1 and the corrected bounds of rmthess.landscape.bounds assume a "
    "bias-free fully connected ReLU network z = W_L relu(... relu(W_1 x))"
)


def relu_mlp(
    d: int,
    C: int,
    hidden: int,
    layers: int,
    *,
    seed: int = 0,
    init_scale: float = 1.0,
    dtype: DType = "float32",
    device: Device = "cpu",
) -> nn.Sequential:
    """The paper's bias-free ReLU MLP ``d -> hidden x (layers - 1) -> C``, untrained.

    ``layers`` is the paper's ``L`` (weight matrices, >= 1; see the module docstring).
    Weights: torch's default law (uniform on ``+-1/sqrt(fan_in)``, as the authors' code),
    drawn from ``torch.Generator().manual_seed(seed)``, then multiplied by ``init_scale``
    (> 0; 0.1 gives the small-weight regime of the bound audit). Modules are
    ``hidden1, act1, ..., output`` (:func:`rmthess.curvature.models.mlp`).
    """
    d, C = check_int("d", d, 1), check_int("C", C, 2)
    hidden = check_int("hidden", hidden, 1)
    layers = check_int("layers", layers, 1)
    seed = check_int("seed", seed, 0)
    init_scale = check_positive_float("init_scale", init_scale)
    dtype = resolve_dtype(dtype)
    widths = (d, *(hidden,) * (layers - 1), C)
    n_params = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    check_memory(
        2.0 * n_params * torch.finfo(dtype).bits / 8,  # the weights and their initial draw
        f"relu_mlp({d} -> {hidden} x {layers - 1} -> {C}): {n_params} parameters",
        "lower d, C, hidden or layers",
    )
    model = mlp(
        d,
        C,
        (hidden,) * (layers - 1),
        activation="relu",
        bias=False,
        init="torch-default",
        seed=seed,
        dtype=dtype,
        device=resolve_device(device),
    )
    if init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(init_scale)
    return model


def train_mlp(
    data: Data,
    hidden: int,
    layers: int,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    init_scale: float = 1.0,
    dtype: DType = "float32",
    device: Device = "cpu",
    progress: bool | None = None,
) -> nn.Sequential:
    """Train the paper's MLP (:func:`relu_mlp`) on ``data``; return it at ``theta*``.

    Parameters
    ----------
    data : ``rmthess.data.Dataset`` (inputs ``d = data.d``, classes ``C = data.n_classes``),
        or anything :func:`rmthess.data.as_dataset` accepts (``(X, y)``, a DataLoader...)
    hidden, layers : width ``h`` and the paper's ``L`` (weight matrices; authors' code
        ``num_layers = L - 2``)
    epochs : full passes (>= 0; 0 returns the initialisation with a one-row log)
    lr : Adam learning rate (torch defaults otherwise)
    batch_size : samples per step; each epoch is a fresh permutation from a
        ``torch.Generator`` seeded with ``seed + 1`` (the weights use ``seed``), cut into
        ``ceil(N / batch_size)`` batches, the last one smaller (as a shuffled DataLoader)
    init_scale : multiplies the initial weights (see :func:`relu_mlp`)
    progress : tqdm bar; ``None`` shows one on a terminal (stderr) when there are >=
        :data:`PROGRESS_STEPS` steps

    Returns the ``nn.Sequential`` with ``model.train_log_``, a tidy DataFrame with one row
    per epoch (``epoch`` 0 = before training): ``epoch, step, loss, accuracy`` where loss
    (mean cross-entropy) and accuracy are those of the whole of ``data`` at the end of that
    epoch. Deterministic for a given ``seed`` on the CPU.
    """
    data = as_dataset(data)
    epochs = check_int("epochs", epochs, 0)
    lr = check_positive_float("lr", lr)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0)
    progress = check_progress(progress)
    C = data.n_classes
    model = relu_mlp(
        data.d, C, hidden, layers, seed=seed, init_scale=init_scale, dtype=dtype, device=device
    )
    X, y = data.tensors(resolve_dtype(dtype), next(model.parameters()).device)
    return _train(model, X, y, epochs, lr, batch_size, seed, progress)


def _train(model, X, y, epochs: int, lr: float, batch_size: int, seed: int, progress):
    """:func:`train_mlp`'s training on checked arguments and tensors already on the device:
    Adam on the mean cross-entropy, ``epochs`` shuffled passes in mini-batches, through the
    one trainer :func:`rmthess.curvature.train` (its ``epochs`` schedule)."""
    n_batches = math.ceil(len(X) / batch_size)
    show = progress
    if progress is None:  # a bar for long runs, on a terminal
        show = epochs * n_batches >= PROGRESS_STEPS and sys.stderr.isatty()
    # seed + 1: the published numbers (report, goldens) depend on this stream; kept as is
    log = train(
        model,
        nn.CrossEntropyLoss(),
        (X, y),
        epochs=epochs,
        lr=lr,
        batch_size=min(batch_size, len(X)),
        seed=seed + 1,
        progress=bool(show),
    )
    model.train_log_ = log[["epoch", "step", "loss", "accuracy"]]
    return model


# ---------------------------------------------------------------------------- architecture
def check_relu_mlp(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices ``[W^(1), ..., W^(L)]`` of a bias-free ReLU MLP, in forward order.

    Accepted: any ``nn.Module`` whose leaf modules, in registration order, are
    ``Linear(bias=False), ReLU, Linear(bias=False), ReLU, ..., Linear(bias=False)`` with
    chained shapes (nested ``Sequential``/``ModuleList``, as in the authors' ``Net``, is
    fine), and whose forward pass computes exactly ``W^(L) relu(... relu(W^(1) x))``: this
    is verified on 4 random inputs (relative difference <= 1e-4 in float32, 1e-10 in
    float64), since a custom ``forward`` may not follow the registration order.

    Anything else raises ``ValueError`` saying what is not a bias-free ReLU MLP (a bias,
    another activation, another layer type, two Linear layers without a ReLU, a ReLU on the
    output) and that Theorem 1, Lemma 1 and the corrected bounds then do not apply (their
    proofs use ``z = W^(L) D^(L-1) W^(L-1) ... D^(1) W^(1) x`` with 0/1 diagonal masks
    ``D``); ``TypeError`` if ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    weights: list[torch.Tensor] = []
    for k, (name, mod) in enumerate(leaves):
        where = f"module {name or type(mod).__name__!r} (position {k})"
        want_linear = k % 2 == 0
        if isinstance(mod, nn.Linear):
            if not want_linear:
                raise ValueError(
                    f"{where} is a Linear layer following a Linear layer without a ReLU in "
                    f"between: {_NOT_APPLICABLE}"
                )
            if mod.bias is not None:
                raise ValueError(
                    f"{where} has a bias: {_NOT_APPLICABLE}; with biases the Jacobian gains "
                    "the bias rows of F and the activations are no longer homogeneous in x, "
                    "so Theorem 1, Lemma 1 and the corrected bounds do not apply"
                )
            if weights and mod.weight.shape[1] != weights[-1].shape[0]:
                raise ValueError(
                    f"{where} takes {mod.weight.shape[1]} inputs but the previous Linear has "
                    f"{weights[-1].shape[0]} outputs: the layers are not one chain"
                )
            weights.append(mod.weight)
        elif isinstance(mod, nn.ReLU):
            if want_linear:
                raise ValueError(
                    f"{where} is a ReLU where a Linear layer is expected (the net must start "
                    f"with a Linear layer and alternate): {_NOT_APPLICABLE}"
                )
        elif isinstance(mod, (nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU)):
            raise ValueError(
                f"{where} is a {type(mod).__name__} activation, not ReLU: {_NOT_APPLICABLE}; "
                "the bounds need 0/1 activation masks (||D|| <= 1, z piecewise linear in each "
                "W), so Theorem 1, Lemma 1 and the corrected bounds do not apply"
            )
        else:
            raise ValueError(
                f"{where} is a {type(mod).__name__}, not a Linear or ReLU layer: "
                f"{_NOT_APPLICABLE}, so Theorem 1, Lemma 1 and the corrected bounds do not "
                "apply"
            )
    if isinstance(leaves[-1][1], nn.ReLU):
        raise ValueError(
            "the last module is a ReLU: the logits z must be the output of the last Linear "
            f"layer; {_NOT_APPLICABLE}"
        )
    _check_forward(model, weights)
    return weights


def _check_forward(model: nn.Module, weights: list[torch.Tensor]) -> None:
    W1 = weights[0]
    gen = torch.Generator().manual_seed(12345)
    x = torch.randn(4, W1.shape[1], generator=gen, dtype=torch.float64).to(W1.device, W1.dtype)
    with torch.no_grad():
        try:
            out = model(x)
        except RuntimeError as e:
            raise ValueError(f"model cannot take inputs of width {W1.shape[1]}: {e}") from None
        ref = x
        for p, W in enumerate(weights):
            ref = ref @ W.T
            if p < len(weights) - 1:
                ref = torch.relu(ref)
    tol = 1e-10 if W1.dtype == torch.float64 else 1e-4
    if out.shape != ref.shape or not torch.allclose(out, ref, rtol=tol, atol=tol * _scale(ref)):
        raise ValueError(
            "model's forward pass does not compute W_L relu(... relu(W_1 x)) over its Linear "
            f"layers in registration order: {_NOT_APPLICABLE}"
        )


def _scale(t: torch.Tensor) -> float:
    s = float(t.abs().max()) if t.numel() else 0.0
    return s if s > 0 and math.isfinite(s) else 1.0
