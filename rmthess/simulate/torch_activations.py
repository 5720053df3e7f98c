"""The activations of :data:`rmthess.activations.ACTIVATIONS` in torch: ``phi``, ``phi'``,
``phi''`` as elementwise tensor functions (CPU/GPU, any float dtype) for the closed-form
blocks of :mod:`rmthess.simulate.weights`.

The numpy table of the ground floor defines the names and the conventions (``phi'(0) = 0``
for ReLU, the negative slope 0.01 of leaky-relu, exact GELU ``x Phi(x)``); this is its torch
twin, kept apart because the theory layer must not import torch. Each entry is checked
against the numpy one and against ``torch.func`` derivatives of ``phi`` in
tests/simulate/test_torch_activations.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rmthess.activations import LEAKY_SLOPE, get_activation

__all__ = ["TorchActivation", "torch_activation"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TorchActivation:
    """``phi``, ``phi'`` (``dphi``), ``phi''`` (``d2phi``) of one activation, in torch;
    ``homogeneous``: piecewise linear (``phi'' = 0``: the blocks carry no label term)."""

    name: str
    phi: Fn
    dphi: Fn
    d2phi: Fn
    homogeneous: bool


def _pdf(x: torch.Tensor) -> torch.Tensor:
    return _INV_SQRT_2PI * torch.exp(-0.5 * x * x)


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def _zero(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def _sig_d1(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 - s)


def _sig_d2(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _tanh_d1(x: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(x)
    return 1.0 - t * t


def _tanh_d2(x: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(x)
    return -2.0 * t * (1.0 - t * t)


_TABLE: dict[str, tuple[Fn, Fn, Fn]] = {
    "relu": (torch.relu, lambda x: (x > 0).to(x.dtype), _zero),
    "leaky-relu": (
        lambda x: torch.where(x > 0, x, LEAKY_SLOPE * x),
        lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, LEAKY_SLOPE)),
        _zero,
    ),
    "linear": (lambda x: x, torch.ones_like, _zero),
    "tanh": (torch.tanh, _tanh_d1, _tanh_d2),
    "sigmoid": (torch.sigmoid, _sig_d1, _sig_d2),
    "softplus": (lambda x: torch.logaddexp(x, torch.zeros_like(x)), torch.sigmoid, _sig_d1),
    "gelu": (
        lambda x: x * _cdf(x),
        lambda x: _cdf(x) + x * _pdf(x),
        lambda x: _pdf(x) * (2.0 - x * x),
    ),
}


def torch_activation(activation: object) -> TorchActivation:
    """The :class:`TorchActivation` of a name of :data:`rmthess.activations.ACTIVATIONS` (or
    an ``Activation``); a ``ValueError`` naming the choices otherwise.

    >>> import torch
    >>> torch_activation("tanh").dphi(torch.zeros(1)).item()
    1.0
    """
    act = get_activation(activation)
    phi, dphi, d2phi = _TABLE[act.name]
    return TorchActivation(act.name, phi, dphi, d2phi, act.homogeneous)
