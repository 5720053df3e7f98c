"""Seeded sampling of the paper's setting (docs/theory.md section 1).

Data ``X`` is ``d x N`` with i.i.d. N(0, 1) entries (columns are samples ``x_i``).
Weights: every entry i.i.d. with mean 0 and variance ``sigma^2 / fan_in`` from the law of
``init`` (:func:`rmthess.inits.resolve_init`): ``"lecun"`` (default, the paper's: normal,
``sigma = 1``), ``"torch-default"`` (``nn.Linear``'s ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``)
or a float ``sigma`` (normal). Linear model ``W`` is ``C x d``; the one-hidden-layer net
``f(x) = V relu(W x)`` has ``W`` ``m x d`` and ``V`` ``C x m``.

Draws: a normal law is ``std * torch.randn``; the uniform law is
``b (2 torch.rand - 1)`` with ``b = std sqrt(3)`` (same variance ``std^2``), drawn from the
same generator at the same place in the draw order. ``init="lecun"`` gives bit-identical
numbers to the LeCun-only sampler that preceded the ``init`` keyword.

Seeding: every trial has its own random stream. Trial ``t`` of the stream
``(seed, *key)`` draws from a ``torch.Generator`` seeded with
:func:`trial_seeds` ``(seed, ..., key)[t]``, derived by ``numpy.random.SeedSequence(
entropy=seed, spawn_key=(*key, t))``; within a trial the draw order is fixed (X, then W,
then V). So the numbers of a trial depend only on ``(seed, key, t)``, the device and the
shapes, never on how many trials are sampled together, and distinct ``(seed, key, t)``
give statistically independent streams (SeedSequence hashing; no shared prefixes as with
``seed + i``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rmthess._checks import check_int, check_memory
from rmthess._random import seed_int
from rmthess.cases import case_for
from rmthess.inits import Init, resolve_init
from rmthess.simulate.device import Device, DType, resolve_device, resolve_dtype

if TYPE_CHECKING:
    from rmthess.inits import InitLike

__all__ = [
    "Instance",
    "sample_instance",
    "sample_trials",
    "trial_seeds",
    "make_generator",
    "init_weights",
]


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (a non-negative int)."""
    seed = check_int("seed", seed, 0)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def trial_seeds(seed: int, trials: int, key: Sequence[int] = (), start: int = 0) -> list[int]:
    """Seeds (63-bit ints) of trials ``start`` to ``start + trials - 1`` of stream ``(seed, *key)``.

    Trial ``t`` gets ``SeedSequence(entropy=seed, spawn_key=(*key, t)).generate_state(1,
    uint64)[0] >> 1``: a hash of ``(seed, key, t)``, so streams of different trials, keys or
    seeds are independent and a trial's seed does not depend on ``start`` or ``trials``.
    ``key`` entries are non-negative ints (e.g. ``(C,)`` for one configuration of a sweep).
    These are :func:`rmthess._random.seed_int` ``(seed, *key, t)``.
    """
    seed = check_int("seed", seed, 0)
    trials = check_int("trials", trials, 0)
    start = check_int("start", start, 0)
    key = tuple(check_int("key entry", k, 0) for k in key)
    return [seed_int(seed, *key, t) for t in range(start, start + trials)]


def gaussian(shape, gen: torch.Generator, device, dtype, std: float = 1.0) -> torch.Tensor:
    """I.i.d. N(0, std^2) tensor of ``shape``."""
    out = torch.randn(*shape, generator=gen, device=device, dtype=dtype)
    return out.mul_(std) if std != 1.0 else out


def init_weights(shape, fan_in: int, ini: Init, gen: torch.Generator, device, dtype):
    """I.i.d. weights of ``shape`` with the law of ``ini`` (resolved) and fan-in ``fan_in``.

    Normal: ``torch.randn * std`` (exactly the former LeCun draw when ``sigma = 1``).
    Uniform: ``(2 torch.rand - 1) * b``, ``b = std sqrt(3)``, support ``[-b, b)``.
    """
    std = ini.std(fan_in)
    if ini.dist == "uniform":
        out = torch.rand(*shape, generator=gen, device=device, dtype=dtype)
        return out.mul_(2.0).sub_(1.0).mul_(std * 3.0**0.5)
    if ini.sigma == 1.0:  # the historical LeCun draw, bit for bit
        return gaussian(shape, gen, device, dtype, std=fan_in**-0.5)
    return gaussian(shape, gen, device, dtype, std=std)


@dataclass
class Instance:
    """One batch of sampled problems (leading dimension = trials).

    X: (trials, d, N) data. W: (trials, C, d) for linear models, (trials, m, d) for the
    hidden layer. V: (trials, C, m) output weights, or None for linear models.
    activation: the hidden activation (a name of :data:`rmthess.activations.ACTIVATIONS`;
    ``"relu"``, the paper's, for linear models too). Y: (trials, N) integer labels, uniform
    and independent of X (the at-init label model), drawn only where the blocks depend on
    them (an activation with ``phi'' != 0``); None otherwise.
    """

    X: torch.Tensor
    W: torch.Tensor
    V: torch.Tensor | None
    activation: str = "relu"
    Y: torch.Tensor | None = None

    def trial(self, t: int) -> Instance:
        """Trial ``t`` alone (leading dimension kept, size 1); ``t`` already validated."""
        sl = slice(t, t + 1)
        V = None if self.V is None else self.V[sl]
        Y = None if self.Y is None else self.Y[sl]
        return Instance(self.X[sl], self.W[sl], V, self.activation, Y)

    @property
    def trials(self) -> int:
        return self.X.shape[0]


def sample_trials(
    model: str,
    C: int,
    d: int,
    N: int,
    m: int | None,
    seeds: Sequence[int],
    device,
    dtype,
    *,
    init: InitLike = "lecun",
    activation: str = "relu",
) -> Instance:
    """Sample one trial per entry of ``seeds`` (already validated sizes; no checks).

    Trial ``t`` fills ``X[t]`` (d x N, N(0, 1)), then ``W[t]`` (variance ``sigma^2/d``),
    then ``V[t]`` (variance ``sigma^2/m``, hidden model only), weights from the law of
    ``init`` (:func:`init_weights`), then, for an activation with ``phi'' != 0``, the labels
    ``Y[t]`` (uniform on the C classes), all from a generator seeded with ``seeds[t]`` (ReLU
    draws no labels: its numbers are those from before the ``activation`` keyword).
    """
    from rmthess.activations import get_activation

    ini = resolve_init(init)
    act = get_activation(activation)
    T = len(seeds)
    K_W = C if model == "linear" else m
    X = torch.empty(T, d, N, device=device, dtype=dtype)
    W = torch.empty(T, K_W, d, device=device, dtype=dtype)
    V = None if model == "linear" else torch.empty(T, C, m, device=device, dtype=dtype)
    labels = model == "hidden" and not act.homogeneous
    Y = torch.empty(T, N, device=device, dtype=torch.long) if labels else None
    for t, s in enumerate(seeds):
        gen = make_generator(s, device)
        X[t] = gaussian((d, N), gen, device, dtype)
        W[t] = init_weights((K_W, d), d, ini, gen, device, dtype)
        if V is not None:
            V[t] = init_weights((C, m), m, ini, gen, device, dtype)
        if Y is not None:
            Y[t] = torch.randint(0, C, (N,), generator=gen, device=device)
    return Instance(X=X, W=W, V=V, activation=act.name, Y=Y)


def sample_instance(
    model: str,
    C: int,
    d: int,
    N: int,
    m: int | None = None,
    *,
    trials: int = 1,
    seed: int = 0,
    device: Device = "auto",
    dtype: DType = "float64",
    init: InitLike = "lecun",
    activation: str = "relu",
) -> Instance:
    """Sample data and initialized weights for ``trials`` independent trials.

    ``model`` is ``"linear"`` (W: C x d) or ``"hidden"`` (one-hidden-layer net ``V phi(W
    x)``, W: m x d, V: C x m, ``phi`` = ``activation``, a name of
    :data:`rmthess.activations.ACTIVATIONS`, ReLU by default; the linear model takes only
    ``"relu"``; labels ``Y`` are drawn where ``phi'' != 0``, :func:`sample_trials`).
    ``X`` has i.i.d. N(0, 1) entries; ``W`` and ``V`` have i.i.d. entries of the ``init``
    law (``"lecun"``: N(0, 1/fan_in); ``"torch-default"``:
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; a float ``sigma``: N(0, sigma^2/fan_in);
    see :mod:`rmthess.inits`), all independent. Trial ``t`` uses the stream
    ``trial_seeds(seed, trials)[t]`` (module docstring): the first ``k`` trials of
    ``trials=n`` equal those of ``trials=k``.
    """
    if not isinstance(model, str) or model not in ("linear", "hidden"):
        what = repr(model) if isinstance(model, str) else type(model).__name__
        raise ValueError(f"unknown model {what}; allowed: linear, hidden")
    C = check_int("C", C, 2)
    d = check_int("d", d, 1)
    N = check_int("N", N, 1)
    trials = check_int("trials", trials, 1)
    seed = check_int("seed", seed, 0)
    ini = resolve_init(init)
    activation = case_for(model, "mse").check_activation(activation)
    if model == "hidden":
        if m is None:
            raise ValueError("m (hidden width) is required for the one-hidden-layer model")
        m = check_int("m", m, 1)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    width = d if model == "linear" else m
    entries = trials * (d * N + (C * d if model == "linear" else m * d + C * width))
    check_memory(
        entries * torch.empty((), dtype=dt).element_size(),
        f"sample_instance (trials={trials}, C={C}, d={d}, N={N}, m={m})",
        "lower C, d, N, m or trials",
    )
    return sample_trials(
        model, C, d, N, m, trial_seeds(seed, trials), dev, dt, init=ini, activation=activation
    )
