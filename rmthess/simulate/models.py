"""Plain torch models and losses of the paper's setting (docs/theory.md section 1).

Models (no biases), for data ``X`` of shape (..., d, N) (columns are samples):

- linear: logits ``Z = W X``, ``W`` (C, d); ``params = (W,)``.
- hidden: one-hidden-layer net ``Z = V phi(W X)``, ``W`` (m, d), ``V`` (C, m);
  ``params = (W, V)``; ``phi`` ReLU (the paper's) or any activation of
  :data:`rmthess.activations.ACTIVATIONS` (``activation=``; ``torch.nn``'s modules).

Losses (mean over the N samples):

- CE:  ``L = -(1/N) sum_i log softmax(z_i)[y_i]``  (``Y``: integer labels, shape (N,)).
- MSE: ``L = (1/(2N)) sum_i ||z_i - y_i||^2``  (``Y``: float targets (C, N), or integer
  labels (N,), which are one-hot encoded).

These are the *reference* definitions: the closed forms of :mod:`rmthess.simulate.hessian`
are checked against ``torch.func.hessian`` of :func:`loss`.
"""

from __future__ import annotations

import torch

from rmthess._checks import check_choice

MODELS = ("linear", "hidden")
LOSSES = ("mse", "ce")


def forward(model: str, params, X: torch.Tensor, activation: str = "relu") -> torch.Tensor:
    """Logits (..., C, N) of ``model`` ("linear" or "hidden") with ``params`` on ``X``;
    ``activation``: the hidden model's (a name of :data:`rmthess.activations.ACTIVATIONS`)."""
    model = check_choice("model", model, MODELS)
    params = tuple(params)
    if model == "linear":
        if len(params) != 1:
            raise ValueError(f"linear model takes params=(W,), got {len(params)} tensors")
        return params[0] @ X
    if len(params) != 2:
        raise ValueError(f"hidden model takes params=(W, V), got {len(params)} tensors")
    W, V = params
    if activation == "relu":
        return V @ torch.relu(W @ X)
    return V @ _module(activation)(W @ X)


def _module(activation: str) -> torch.nn.Module:
    """``torch.nn``'s own module of an activation: an implementation independent of
    :mod:`rmthess.simulate.torch_activations` (which the closed forms use)."""
    from rmthess.activations import LEAKY_SLOPE, get_activation

    name = get_activation(activation).name
    return {
        "relu": torch.nn.ReLU(),
        "leaky-relu": torch.nn.LeakyReLU(LEAKY_SLOPE),
        "linear": torch.nn.Identity(),
        "tanh": torch.nn.Tanh(),
        "sigmoid": torch.nn.Sigmoid(),
        "softplus": torch.nn.Softplus(beta=1.0, threshold=1e30),
        "gelu": torch.nn.GELU(approximate="none"),
    }[name]


def targets(loss_name: str, Y: torch.Tensor, C: int, dtype=None) -> torch.Tensor:
    """MSE targets (C, N) from float targets or integer labels (one-hot); CE: labels (N,)."""
    loss_name = check_choice("loss", loss_name, LOSSES)
    if not isinstance(Y, torch.Tensor):
        raise TypeError(f"Y must be a torch.Tensor, got {type(Y).__name__}")
    if loss_name == "ce" or not Y.dtype.is_floating_point:
        if Y.dtype.is_floating_point or Y.dim() != 1:
            raise ValueError("labels Y must be a 1-D integer tensor of length N")
        if Y.numel() and (int(Y.min()) < 0 or int(Y.max()) >= C):
            raise ValueError(f"labels Y must lie in [0, {C - 1}]")
        if loss_name == "ce":
            return Y
        return torch.nn.functional.one_hot(Y, C).T.to(dtype or torch.float64)
    if Y.dim() != 2 or Y.shape[0] != C:
        raise ValueError(f"MSE targets Y must have shape (C={C}, N), got {tuple(Y.shape)}")
    return Y


def loss_from_logits(loss_name: str, Z: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Mean loss from logits ``Z`` (C, N): CE with labels (N,), MSE with targets (C, N)."""
    loss_name = check_choice("loss", loss_name, LOSSES)
    C, N = Z.shape[-2], Z.shape[-1]
    Yt = targets(loss_name, Y, C, Z.dtype)
    if loss_name == "ce":
        logp = torch.log_softmax(Z, dim=-2)  # (C, N)
        return -logp.gather(-2, Yt.reshape(1, N)).sum() / N
    return 0.5 * ((Z - Yt) ** 2).sum() / N


def loss(
    case: str, params, X: torch.Tensor, Y: torch.Tensor, activation: str = "relu"
) -> torch.Tensor:
    """Mean loss of the model given by ``case`` on one data set ``X`` (d, N).

    ``case`` is a loss name ("mse", "ce") with the model taken from ``len(params)``
    (1: linear, 2: hidden), or a full case name (e.g. "hidden-ce", "output-mse",
    "linear-ce"), whose model must match ``params``. ``activation``: as in :func:`forward`.
    """
    if not isinstance(case, str):
        raise TypeError(f"case must be a string, got {case!r}")
    params = tuple(params)
    if case in LOSSES:
        loss_name = case
    else:
        from rmthess.cases import get_case

        c = get_case(case)
        loss_name = c.loss
        want = 1 if c.model == "linear" else 2
        if len(params) != want:
            raise ValueError(f"case {case!r} needs {want} parameter tensor(s), got {len(params)}")
    model = "linear" if len(params) == 1 else "hidden"
    return loss_from_logits(loss_name, forward(model, params, X, activation), Y)
