"""Seeded sampling of the paper's setting (THEORY.md section 1).

Data ``X`` is ``d x N`` with i.i.d. N(0, 1) entries (columns are samples ``x_i``).
LeCun-normal weights: every entry ~ N(0, 1/fan_in). Linear model ``W`` is ``C x d``;
the one-hidden-layer net ``f(x) = V relu(W x)`` has ``W`` ``m x d`` and ``V`` ``C x m``.

All samplers take a leading ``trials`` dimension and a ``torch.Generator``; the same
seed on the same device gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rmthess._checks import check_int
from rmthess.simulate.device import resolve_device, resolve_dtype


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (a non-negative int)."""
    seed = check_int("seed", seed, 0)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def gaussian(shape, gen: torch.Generator, device, dtype, std: float = 1.0) -> torch.Tensor:
    """I.i.d. N(0, std^2) tensor of ``shape``."""
    out = torch.randn(*shape, generator=gen, device=device, dtype=dtype)
    return out.mul_(std) if std != 1.0 else out


@dataclass
class Instance:
    """One batch of sampled problems (leading dimension = trials).

    X: (trials, d, N) data. W: (trials, C, d) for linear models, (trials, m, d) for the
    hidden layer. V: (trials, C, m) output weights, or None for linear models.
    """

    X: torch.Tensor
    W: torch.Tensor
    V: torch.Tensor | None

    @property
    def trials(self) -> int:
        return self.X.shape[0]


def sample_instance(
    model: str,
    C: int,
    d: int,
    N: int,
    m: int | None = None,
    trials: int = 1,
    seed: int = 0,
    device="auto",
    dtype="float64",
) -> Instance:
    """Sample data and LeCun-initialized weights.

    ``model`` is ``"linear"`` (W: C x d) or ``"hidden"`` (one-hidden-layer ReLU net,
    W: m x d, V: C x m). Draw order is fixed (X, then W, then V) so results are
    reproducible for a given seed and device.
    """
    if model not in ("linear", "hidden"):
        raise ValueError(f"unknown model {model!r}; allowed: linear, hidden")
    C = check_int("C", C, 1)
    d = check_int("d", d, 1)
    N = check_int("N", N, 1)
    trials = check_int("trials", trials, 1)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    gen = make_generator(seed, dev)
    X = gaussian((trials, d, N), gen, dev, dt)
    if model == "linear":
        W = gaussian((trials, C, d), gen, dev, dt, std=d**-0.5)
        return Instance(X=X, W=W, V=None)
    if m is None:
        raise ValueError("m (hidden width) is required for the one-hidden-layer model")
    m = check_int("m", m, 1)
    W = gaussian((trials, m, d), gen, dev, dt, std=d**-0.5)
    V = gaussian((trials, C, m), gen, dev, dt, std=m**-0.5)
    return Instance(X=X, W=W, V=V)
