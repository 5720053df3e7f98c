"""Block laws of every layer of an L-hidden-layer MLP at init, given its deeper weights
(issue 20; docs/theory.md section 9.6).

Notation of :mod:`rmthess.theory.depth`: ``f(x) = V phi(W_L ... phi(W_1 x))``, layer ``k``'s
``(j, l)`` block ``(1/N) sum_i a_i^{jl} u_i u_i^T`` with ``a = (H_k)_jl`` (the pre-activation
Hessian; ``A_cc'`` for the output rows) and ``u = h_{k-1}`` (``h_0 = x``). Conditional on
the weights above the first layer, ``net = (W_2 .. W_L, V)``, the weight ``a`` is a function
of ``(g_1, y)`` only, ``g_1 = W_1 x ~ N(0, sigma^2 I)`` (isotropic inputs, ``d -> inf``),
labels uniform and independent of ``x`` (section 9.5). Hence, as ``d, N -> inf`` with
``d/N -> gamma``:

- **first layer** (``d x d`` blocks): the eigenvalue law of a block converges to the GMP law
  of ``nu = law(a | net)`` with ratio ``gamma`` (section 3; the argument of the
  one-hidden-layer case, whose weight also depends on ``x`` only through ``g``):
  :func:`depth_limiting_law`;
- **later layers and the output rows** (``m_{k-1} x m_{k-1}`` blocks, fixed size): the block
  converges to the deterministic ``E[a h_{k-1} h_{k-1}^T | net]``, whose eigenvalues are the
  limit spectrum: :func:`depth_block_limit`.

Both integrals over ``(g_1, y)`` use scrambled-Sobol draws (dimension ``m_1 + 1``, the last
coordinate for the label) through :func:`rmthess.theory.depth.layer_weights`, whose weights
equal ``torch.func.hessian`` of the network (tests/theory/test_depth.py). At L = 1 these are
the laws of hidden-* and output-* (:func:`rmthess.theory.limiting_law`,
:func:`rmthess.theory.output_block_limit`) for any activation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_choice, check_int, check_positive_float
from rmthess._random import check_seed, rng

if TYPE_CHECKING:
    from rmthess.activations import Activation
    from rmthess.inits import InitLike
    from rmthess.theory.law import GMPLaw

__all__ = ["depth_block_limit", "depth_limiting_law", "sample_network"]

Network = tuple[list[np.ndarray], np.ndarray]
"""``(Ws, V)``: the weights above the first layer, ``Ws = [W_2, ..., W_L]``, ``V`` (C x m_L)."""


def sample_network(
    C: int, widths: tuple[int, ...], seed: int = 0, *, init: InitLike = "lecun"
) -> Network:
    """The weights above the first layer of an MLP at init: ``Ws = [W_2, ..., W_L]`` (``W_k``
    of shape ``m_k x m_{k-1}``) and ``V`` (``C x m_L``), entries ``N(0, sigma^2/fan_in)``,
    from ``numpy.random.default_rng`` of ``seed`` (:func:`rmthess._random.rng`) in that order.

    >>> Ws, V = sample_network(3, (4, 5))
    >>> [W.shape for W in Ws], V.shape
    ([(5, 4)], (3, 5))
    """
    from rmthess.theory.depth import check_depth_args

    _, C, _, ws, _, ini, *_ = check_depth_args(
        "ce", C, 1.0, widths, "relu", init, None, 20, 4, seed
    )
    gen = rng(check_seed(seed))
    s = ini.sigma
    Ws = [
        gen.standard_normal((ws[k + 1], ws[k])) * (s / math.sqrt(ws[k])) for k in range(len(ws) - 1)
    ]
    return Ws, gen.standard_normal((C, ws[-1])) * (s / math.sqrt(ws[-1]))


def _check_net(net, C: int, ws: tuple[int, ...]) -> Network:
    """``net`` as float64 arrays of the shapes ``widths`` and ``C`` imply."""
    if not isinstance(net, tuple | list) or len(net) != 2:
        raise TypeError("net must be a pair (Ws, V): Ws = [W_2 .. W_L], V of shape (C, m_L)")
    Ws, V = net
    Ws = [np.asarray(W, dtype=np.float64) for W in Ws]
    V = np.asarray(V, dtype=np.float64)
    want = [(ws[k + 1], ws[k]) for k in range(len(ws) - 1)]
    if [W.shape for W in Ws] != want or V.shape != (C, ws[-1]):
        raise ValueError(
            f"net must have W_2 .. W_L of shapes {want} and V of shape {(C, ws[-1])}, got "
            f"{[W.shape for W in Ws]} and {V.shape}"
        )
    if not all(np.all(np.isfinite(W)) for W in [*Ws, V]):
        raise ValueError("net must be finite")
    return Ws, V


def _weights(loss, layer, block, C, ws, act: Activation, net, sigma, n, seed):
    """``(a, u)``: the block weights of ``layer`` (1-based; ``L + 1`` the output rows) at
    block ``(0, 0)`` / ``(0, 1)`` for ``n`` QMC draws, and the layer's input ``u`` (None for
    the first layer)."""
    from scipy.special import ndtr

    from rmthess.theory.block_laws import _gaussian_qmc
    from rmthess.theory.depth import layer_weights

    Ws, V = net
    z = _gaussian_qmc(n, ws[0] + 1, seed)
    g1 = z[:, : ws[0]] * sigma
    y = np.minimum((ndtr(z[:, ws[0]]) * C).astype(np.int64), C - 1)
    one = (np.array([0]), np.array([0 if block == "diag" else 1]))
    pairs = [one] * (len(ws) + 1)
    a, hs = layer_weights(g1, y, Ws, V, loss, act, pairs)
    return a[layer - 1][:, 0], (None if layer == 1 else hs[layer - 2])


def _check(loss, block, C, widths, activation, init, net, n, seed, layer, name):
    from rmthess.activations import get_activation
    from rmthess.theory.depth import check_depth_args

    block = check_choice("block", block, ("diag", "off"))
    loss, C, _, ws, act, ini, *_ = check_depth_args(
        loss, C, 1.0, widths, activation, init, None, 20, 4, seed
    )
    n = check_int(name, n, 1, 2**24)
    seed = check_seed(seed)
    L = len(ws)
    layer = check_int("layer", layer, 1, L + 1)
    if block == "off" and (ws + (C,))[layer - 1] < 2:
        raise ValueError("an off-diagonal block needs at least 2 rows in the layer")
    net = sample_network(C, ws, seed, init=ini) if net is None else _check_net(net, C, ws)
    return loss, block, C, ws, get_activation(act), ini, net, n, seed, layer


def depth_limiting_law(
    loss: str,
    block: str,
    C: int,
    gamma: float,
    widths: tuple[int, ...],
    activation: str = "relu",
    *,
    net: Network | None = None,
    init: InitLike = "lecun",
    n_atoms: int = 4096,
    seed: int = 0,
) -> GMPLaw:
    """Limiting spectral law of a first-layer block (``"diag"``: rows 0, 0; ``"off"``: rows
    0, 1) of the MLP with hidden ``widths``, given ``net`` (module docstring).

    Parameters
    ----------
    loss : ``"ce"`` or ``"mse"``; block : ``"diag"`` or ``"off"``.
    C : int in [2, 10**5]; gamma : float > 0, ``d / N``.
    widths : tuple of 1 to 8 ints in [2, 4096], the hidden widths ``m_1 .. m_L``.
    activation : a name of :data:`rmthess.activations.ACTIVATIONS` (every hidden layer).
    net : ``(Ws, V)`` the weights above the first layer (shapes from ``widths``, ``C``);
        None: :func:`sample_network` ``(C, widths, seed)``.
    init : a normal init (``"lecun"`` or a float sigma): the scale of ``g_1`` (and of a
        sampled ``net``).
    n_atoms : int in [1, 2**24], scrambled-Sobol atoms of the weight law; seed : int.

    Returns
    -------
    GMPLaw of ``nu = law(a | net)`` (signed atoms where a smooth activation adds residual
    terms), ratio ``gamma``.
    """
    from rmthess.theory.law import GMPLaw

    gamma = check_positive_float("gamma", gamma)
    loss, block, C, ws, act, ini, net, n, seed, _ = _check(
        loss, block, C, widths, activation, init, net, n_atoms, seed, 1, "n_atoms"
    )
    a, _ = _weights(loss, 1, block, C, ws, act, net, ini.sigma, n, seed)
    return GMPLaw(a, np.full(n, 1.0 / n), gamma)


def depth_block_limit(
    loss: str,
    layer: int,
    block: str,
    C: int,
    widths: tuple[int, ...],
    activation: str = "relu",
    *,
    net: Network | None = None,
    init: InitLike = "lecun",
    n_samples: int = 2**14,
    seed: int = 0,
) -> np.ndarray:
    """The deterministic limit ``E[a h_{k-1} h_{k-1}^T | net]`` (``m_{k-1} x m_{k-1}``) of a
    block of layer ``k = layer``, from 2 to ``L + 1`` (``L + 1``: the output rows), rows 0, 0
    (``"diag"``) or 0, 1 (``"off"``), as ``d, N -> inf`` (module docstring). Arguments as in
    :func:`depth_limiting_law`; ``n_samples`` scrambled-Sobol draws (error ~ 1/n_samples for
    these smooth integrands). ``layer = 1`` (``d x d`` blocks: a GMP law) is refused."""
    loss, block, C, ws, act, ini, net, n, seed, layer = _check(
        loss, block, C, widths, activation, init, net, n_samples, seed, layer, "n_samples"
    )
    if layer == 1:
        raise ValueError(
            "layer must be in [2, L + 1]: the first layer's blocks are d x d and converge to a "
            "GMP law (depth_limiting_law), not to a fixed matrix"
        )
    a, u = _weights(loss, layer, block, C, ws, act, net, ini.sigma, n, seed)
    return (u * a[:, None]).T @ u / n
