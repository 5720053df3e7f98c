"""Block maps of every layer of an L-hidden-layer MLP at init, any activation (issue 20;
docs/theory.md section 9.6).

The net ``f(x) = V phi(W_L ... phi(W_1 x))`` (widths ``m_1 .. m_L``, no bias, entries
``N(0, sigma^2/fan_in)``), pre-activations ``g_1 = W_1 x``, ``g_k = W_k h_{k-1}``,
``h_k = phi(g_k)``, logits ``z = V h_L``; ``r = dl/dz`` and ``A = d^2 l/dz^2`` (CE: ``p - e_y``,
``diag p - p p^T``; MSE: ``z - e_y``, ``I``). The rows of ``W_k`` are the blocks of layer
``k``: row ``j`` and row ``l`` meet in

    d^2 l / dW_k[j] dW_k[l] = (H_k)_jl h_{k-1} h_{k-1}^T,     H_k = d^2 l / dg_k^2,

(``h_0 = x``), and the rows of ``V`` (class ``c``, ``c'``) in ``A_cc' h_L h_L^T``. The
pre-activation Hessians follow one backward recursion: with ``J_k = dz/dg_k`` (``C x m_k``;
``J_L = V D_L``, ``J_k = J_{k+1} W_{k+1} D_k``, ``D_k = diag phi'(g_k)``) and ``b_k = dl/dh_k``
(``b_L = V^T r``, ``b_k = W_{k+1}^T (phi'(g_{k+1}) * b_{k+1})``),

    H_k = J_k^T A J_k + R_k,        R_L = diag(phi''(g_L) * b_L),
    R_k = D_k W_{k+1}^T R_{k+1} W_{k+1} D_k + diag(phi''(g_k) * b_k):

a Gauss-Newton part and a residual part that vanishes for the piecewise-linear activations
(relu, leaky-relu, linear: ``phi'' = 0``), where the weights are label-free.

**Limits** (isotropic inputs ``x ~ N(0, I_d)``, ``d, N -> inf``, ``gamma = d/N``, widths
fixed). The first layer's input is ``x``: as in section 4, ``g_1 ~ N(0, sigma^2 I)`` and

    F_1 = (1/d) ||block||_F^2 -> gamma E[a^2] + E_net[(E[a | net])^2],    a = (H_1)_jl.

Every later layer (and the output layer) has a fixed-width input ``h_{k-1}``, so its block tends
to the deterministic ``E[a h h^T | net]`` (``N -> inf``) and

    F_k = ||block||_F^2 -> E_net ||E[a h_{k-1} h_{k-1}^T | net]||_F^2,

plus, at a finite ``N``, the sampling term ``(E[a^2 |h|^4] - F_k) / N`` (``N=`` adds it; the
first layer's finite-N term is the gamma term). ``net`` is the weights above the layer's
input, ``(W_2 .. W_L, V)`` (``W_1`` enters only through the law of ``g_1``). ``F_diag`` /
``F_off`` are the means over the diagonal / off-diagonal blocks of each layer's map and
``r = sqrt(F_off / F_diag)``. L = 1 gives the one-hidden-layer cases (hidden-* and
output-*), L = 2 the first layer of :func:`rmthess.theory.deep_frobenius`.

Monte Carlo: ``samples`` independent networks, ``inner`` draws of ``(g_1, y)`` each (labels
uniform, independent of ``x``: the at-init label model of section 9.5); the products of
means from two independent halves of the draws (unbiased); SEs over networks. Above 32 rows a
layer's map is sampled: 32 random diagonal and 32 random off-diagonal blocks per network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rmthess._checks import check_int, check_positive_float
from rmthess._random import check_seed, rng
from rmthess._stats import json_safe, summarize_pairs
from rmthess.activations import get_activation
from rmthess.theory.activation_hidden import check_draws, check_normal_init
from rmthess.theory.block_pairs import ALL_BLOCKS_MAX, probability_weights

if TYPE_CHECKING:
    import pandas as pd

    from rmthess.activations import Activation
    from rmthess.inits import InitLike

__all__ = ["DepthLimits", "depth_frobenius", "layer_weights"]

MAX_DEPTH = 8
QUANTITIES = ("F_diag", "F_off", "ratio")


@dataclass
class DepthLimits:
    """Per-layer block-map limits of an MLP at init (module docstring).

    Attributes
    ----------
    loss, C, gamma, widths, activation, init : the setting.
    N : int or None, the finite-N term of the later layers (None: ``N -> inf``).
    layers : tuple of str, ``"hidden1" .. "hiddenL", "output"`` (the module names of
        :func:`rmthess.curvature.mlp`).
    rows : tuple of int, blocks per side of each layer's map (``m_k``; ``C`` for the output).
    F_diag, F_off, ratio : arrays, one entry per layer; ``F_diag_se``, ``F_off_se``,
        ``ratio_se`` their standard errors over networks.
    samples, inner, seed : the Monte Carlo.
    """

    loss: str
    C: int
    gamma: float
    widths: tuple[int, ...]
    activation: str
    init: str
    N: int | None
    layers: tuple[str, ...]
    rows: tuple[int, ...]
    F_diag: np.ndarray
    F_off: np.ndarray
    ratio: np.ndarray
    F_diag_se: np.ndarray
    F_off_se: np.ndarray
    ratio_se: np.ndarray
    samples: int = 0
    inner: int = 0
    seed: int = 0
    per_network: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: ``layer, rows, F_diag, F_diag_se, F_off, F_off_se, ratio,
        ratio_se`` and the setting."""
        return layers_frame(self, ("loss", "C", "gamma", "activation", "init", "N"))

    def to_dict(self) -> dict:
        """JSON-safe: the setting and, per layer, ``<quantity>_<layer>`` and its ``*_se``."""
        keys = ("loss", "C", "gamma", "activation", "init", "N", "samples", "inner", "seed")
        return layers_dict(self, keys)


def layer_estimates(per: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer means, SEs and ratios (:func:`rmthess._stats.summarize_pairs`) of independent
    per-draw ``(F_diag, F_off)`` rows ``per`` of shape (draws, layers, 2): one array per
    field, one entry per layer; shared by :func:`depth_frobenius` and
    :func:`rmthess.simulate.deep.depth_block_frobenius`."""
    est = [summarize_pairs(per[:, i]) for i in range(per.shape[1])]
    return {k: np.array([e[k] for e in est]) for k in est[0]}


def layers_frame(res: Any, keys: tuple[str, ...]) -> pd.DataFrame:
    """The tidy frame of a per-layer result (``layers``, ``rows``, :data:`QUANTITIES` and
    their ``*_se`` arrays, ``widths``): one row per layer, the setting ``keys`` as columns;
    shared by :class:`DepthLimits` and :class:`rmthess.simulate.deep.DepthBlockNorms`."""
    import pandas as pd

    cols: dict[str, Any] = {"layer": list(res.layers), "rows": list(res.rows)}
    for q in QUANTITIES:
        cols[q] = getattr(res, q)
        cols[f"{q}_se"] = getattr(res, f"{q}_se")
    frame = pd.DataFrame(cols)
    for k in keys:
        frame[k] = getattr(res, k)
    frame["widths"] = "x".join(str(w) for w in res.widths)
    return frame


def layers_dict(res: Any, keys: tuple[str, ...]) -> dict:
    """The JSON-safe record of a per-layer result: the setting ``keys``, ``widths`` and, per
    layer, ``<quantity>_<layer>`` and ``<quantity>_se_<layer>``."""
    d: dict = {k: getattr(res, k) for k in keys}
    d["widths"] = "x".join(str(w) for w in res.widths)
    for i, name in enumerate(res.layers):
        for q in QUANTITIES:
            d[f"{q}_{name}"] = float(getattr(res, q)[i])
            d[f"{q}_se_{name}"] = float(getattr(res, f"{q}_se")[i])
    return json_safe(d)


def layer_weights(
    g1: np.ndarray,
    y: np.ndarray,
    Ws: list[np.ndarray],
    V: np.ndarray,
    loss: str,
    act: Activation,
    pairs: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Block weights of every layer for draws of the first pre-activations ``g1`` (n, m_1)
    with labels ``y``: ``(a, h)`` with ``a[k]`` (n, blocks) the weights ``(H_{k+1})_jl`` of
    hidden layer ``k + 1`` at ``pairs[k] = (rows, cols)`` and, last, ``A_cc'`` of the output
    layer at ``pairs[L]``; ``h[k]`` (n, fan_in) the input of layer ``k + 2`` (``h_1 .. h_L``;
    the first layer's input is ``x``). ``Ws = [W_2 .. W_L]`` (module docstring)."""
    g = [g1]
    hs = [act.phi(g1)]
    for W in Ws:
        g.append(hs[-1] @ W.T)
        hs.append(act.phi(g[-1]))
    C = V.shape[0]
    z = hs[-1] @ V.T
    if loss == "ce":
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        r = p - np.eye(C)[y]
    else:
        p = None
        r = z - np.eye(C)[y]
    L = len(g)
    rows, cols = pairs[L]
    if p is None:
        a_out = np.broadcast_to((rows == cols).astype(float), (g1.shape[0], rows.size))
    else:
        a_out = probability_weights(p, rows, cols)
    out: list[np.ndarray] = [np.empty(0)] * L
    b = r @ V  # dl/dh_L
    J = V[None, :, :] * act.dphi(g[-1])[:, None, :]  # (n, C, m_L) = dz/dg_L
    R = None
    for k in range(L - 1, -1, -1):
        d1 = act.dphi(g[k])
        if k < L - 1:
            W = Ws[k]  # g_{k+2} = W h_{k+1} (1-based layer numbers)
            b = (b * act.dphi(g[k + 1])) @ W
            J = np.matmul(J, W) * d1[:, None, :]
        rows, cols = pairs[k]
        if p is None:
            AJ = J
        else:
            pJ = np.matmul(p[:, None, :], J)  # (n, 1, m)
            AJ = p[:, :, None] * J - p[:, :, None] * pJ
        if d1.shape[1] <= ALL_BLOCKS_MAX:  # every pair: one batched product J^T A J
            a = np.matmul(np.swapaxes(J, 1, 2), AJ)[:, rows, cols]
        else:  # sampled pairs only
            a = np.einsum("ncb,ncb->nb", J[:, :, rows], AJ[:, :, cols])
        if not act.homogeneous:
            if R is None:
                R = np.zeros((g1.shape[0], d1.shape[1], d1.shape[1]))
            else:
                W = Ws[k]
                R = d1[:, :, None] * np.matmul(np.matmul(W.T, R), W) * d1[:, None, :]
            idx = np.arange(d1.shape[1])
            R[:, idx, idx] += act.d2phi(g[k]) * b
            a = a + R[:, rows, cols]
        out[k] = a
    return [*out, a_out], hs


def depth_frobenius(
    loss: str,
    C: int,
    gamma: float,
    widths: tuple[int, ...],
    activation: str | Activation = "relu",
    *,
    init: InitLike = "lecun",
    N: int | None = None,
    samples: int = 400,
    inner: int = 256,
    seed: int = 0,
) -> DepthLimits:
    """Limits of the block maps of every layer (each hidden layer's rows and the output
    rows) of an MLP at init with hidden ``widths`` (module docstring), by Monte Carlo.

    Parameters
    ----------
    loss : ``"ce"`` or ``"mse"``.
    C : int in [2, 10**5], classes; gamma : float > 0, ``d / N`` (the first layer).
    widths : tuple of 1 to 8 ints in [2, 4096], the hidden widths ``m_1 .. m_L``.
    activation : a name of :data:`rmthess.activations.ACTIVATIONS` (every hidden layer).
    init : a normal init (``"lecun"`` or a float sigma).
    N : int in [2, 10**9] or None: add the later layers' finite-N term (to compare with a
        measurement on N samples); None: their ``N -> inf`` limit.
    samples : int in [20, 10**7], networks; inner : even int in [4, 10**7], draws per
        network; seed.

    Cost: per network ``inner (C m^2 + blocks C)`` per layer (relu: m = 64, C = 10, L = 4
    about 10 ms); smooth activations add ``inner m^3`` per layer (the residual recursion).

    Returns
    -------
    DepthLimits (one entry per layer, the output layer last).

    >>> r = depth_frobenius("mse", 5, 0.5, (8,), samples=200, seed=1)
    >>> r.layers, round(float(r.F_off[1]), 12)   # output-mse: off-diagonal blocks are 0
    (('hidden1', 'output'), 0.0)
    """
    loss, C, gamma, ws, act, ini, N, samples, inner, seed = check_depth_args(
        loss, C, gamma, widths, activation, init, N, samples, inner, seed
    )
    per = _per_network(loss, C, gamma, ws, act, ini.sigma, N, samples, inner, seed)
    layers = tuple(f"hidden{k + 1}" for k in range(len(ws))) + ("output",)
    arr = layer_estimates(per)
    return DepthLimits(
        loss, C, gamma, ws, act.name, ini.name, N, layers, (*ws, C),
        arr["F_diag"], arr["F_off"], arr["ratio"], arr["F_diag_se"], arr["F_off_se"],
        arr["ratio_se"], samples, inner, seed, per,
    )  # fmt: skip


def check_depth_args(loss, C, gamma, widths, activation, init, N, samples, inner, seed) -> tuple:
    """The arguments of :func:`depth_frobenius`, checked and normalised (one
    ``ValueError``/``TypeError`` each, memory included) before any work; also the sweep task
    ``depth``'s validator."""
    from rmthess._checks import check_choice, check_memory

    loss = check_choice("loss", loss, ("ce", "mse"))
    C = check_int("C", C, 2, 10**5)
    gamma = check_positive_float("gamma", gamma)
    if not isinstance(widths, tuple | list) or not 1 <= len(widths) <= MAX_DEPTH:
        raise ValueError(
            f"widths must be a tuple of 1 to {MAX_DEPTH} hidden widths, got {widths!r}"
        )
    ws = tuple(check_int("widths", w, 2, 4096) for w in widths)
    act = get_activation(activation)
    ini = check_normal_init(init)
    if N is not None:
        N = check_int("N", N, 2, 10**9)
    samples, inner = check_draws(samples, inner)
    seed = check_seed(seed)
    big = max(ws + (C,))
    need = 8.0 * inner * (4 * C * big + 3 * C * C + 8 * big + 4 * 64)
    if not act.homogeneous:
        need += 8.0 * inner * 3 * max(ws) ** 2
    check_memory(need, f"depth_frobenius(widths={ws}, inner={inner})", "lower inner")
    return loss, C, gamma, ws, act, ini, N, samples, inner, seed


def _per_network(loss, C, gamma, ws, act, sigma, N, samples, inner, seed) -> np.ndarray:
    """``(samples, layers, 2)``: per network and layer ``(F_diag, F_off)``."""
    from rmthess.theory.block_pairs import choose_pairs, diag_off_means

    gen = rng(seed, "depth-frobenius", loss, act.name, *ws)
    L = len(ws)
    sizes = (*ws, C)
    h = inner // 2
    per = np.empty((samples, L + 1, 2))
    for s in range(samples):
        Ws = [
            gen.standard_normal((ws[k + 1], ws[k])) * (sigma / math.sqrt(ws[k]))
            for k in range(L - 1)
        ]
        V = gen.standard_normal((C, ws[-1])) * (sigma / math.sqrt(ws[-1]))
        pairs = [choose_pairs(n, gen) for n in sizes]
        g1 = gen.standard_normal((inner, ws[0])) * sigma
        y = gen.integers(0, C, inner)
        a, hs = layer_weights(g1, y, Ws, V, loss, act, pairs)
        for k, (rows, cols) in enumerate(pairs):
            ak = a[k]
            if k == 0:
                F = gamma * np.mean(ak * ak, axis=0) + ak[:h].mean(axis=0) * ak[h:].mean(axis=0)
            else:
                x = hs[k - 1]  # the layer's input h_k (1-based: h_{k}), fixed width
                K = (x[:h] @ x[h:].T) ** 2  # (h, h)
                F = np.sum(ak[:h] * (K @ ak[h:]), axis=0) / (h * h)
                if N is not None:
                    q = np.sum(x * x, axis=1) ** 2
                    F = F + (np.mean(ak * ak * q[:, None], axis=0) - F) / N
            per[s, k] = diag_off_means(F, rows, cols)
    return per
