"""Simulated block maps of every layer of an L-hidden-layer MLP at init, closed form in
torch (issue 20; docs/theory.md section 9.6): the fast independent route for
:func:`rmthess.theory.depth_frobenius` (autograd, :func:`rmthess.curvature.layer_block_maps`,
is the slow one).

Setting: the paper's, one layer deeper at a time. Data ``X`` (d x N, N(0, 1)), weights
``W_1 .. W_L``, ``V`` i.i.d. ``N(0, sigma^2/fan_in)``, no bias, labels uniform and
independent of ``X``; ``f(x) = V phi(W_L ... phi(W_1 x))``. With ``g_k`` the pre-activations,
``h_k = phi(g_k)`` (``h_0 = x``), ``r = dl/dz`` and ``A = d^2 l/dz^2`` (CE: ``p - e_y``,
``diag p - p p^T``; MSE ``l = |z - e_y|^2 / 2``: ``z - e_y``, ``I``), the rows ``j, l`` of
``W_k`` meet in ``(1/N) sum_i (H_k)_{i,jl} h_{k-1,i} h_{k-1,i}^T`` and the output rows in
``(1/N) sum_i A_{i,cc'} h_{L,i} h_{L,i}^T``, with the per-sample pre-activation Hessians

    H_k = J_k^T A J_k + R_k,   J_L = V D_L,  J_k = J_{k+1} W_{k+1} D_k,  D_k = diag phi'(g_k),
    R_L = diag(phi''(g_L) b_L),  R_k = D_k W_{k+1}^T R_{k+1} W_{k+1} D_k + diag(phi''(g_k) b_k),
    b_L = V^T r,  b_k = W_{k+1}^T (phi'(g_{k+1}) * b_{k+1})

(:func:`pre_activation_hessians`; equal to ``torch.func.hessian`` in the pre-activations,
tests/simulate/test_deep_sim.py). Block norms by the Gram route
(:func:`rmthess.simulate.gram.gram_sq_norms`),
``||block||_F^2 = (1/N^2) sum_{i,i'} a_i a_i' (u_i . u_i')^2``, the first layer's divided
by ``d`` (section 2); every pair of rows up to 32 rows, else 32 random diagonal and 32 random
off-diagonal blocks per trial (:func:`rmthess.theory.block_pairs.choose_pairs`). The values
include the ``i = i'`` terms: compare with ``depth_frobenius(..., N=N)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from rmthess._checks import check_int, check_memory
from rmthess.simulate.device import Device, DType, resolve_device, resolve_dtype
from rmthess.simulate.sampling import gaussian, init_weights, make_generator, trial_seeds
from rmthess.simulate.torch_activations import TorchActivation, torch_activation

if TYPE_CHECKING:
    import pandas as pd

    from rmthess.inits import InitLike

__all__ = ["DepthBlockNorms", "depth_block_frobenius", "pre_activation_hessians"]


@dataclass
class DepthBlockNorms:
    """Simulated per-layer block norms of an MLP at init (module docstring).

    Attributes
    ----------
    loss, C, d, N, widths, activation, init : the setting; gamma = d / N.
    trials, seed, device, dtype, seconds : the run.
    layers : ``"hidden1" .. "hiddenL", "output"``; rows : blocks per side of each map.
    F_diag, F_off, ratio : arrays, one entry per layer, means over trials; ``*_se`` their
        standard errors over the independent trials.
    per_trial : (trials, layers, 2) the per-trial ``(F_diag, F_off)``.
    """

    loss: str
    C: int
    d: int
    N: int
    widths: tuple[int, ...]
    activation: str
    init: str
    layers: tuple[str, ...]
    rows: tuple[int, ...]
    F_diag: np.ndarray
    F_off: np.ndarray
    ratio: np.ndarray
    F_diag_se: np.ndarray
    F_off_se: np.ndarray
    ratio_se: np.ndarray
    trials: int = 0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float64"
    seconds: float = 0.0
    per_trial: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def gamma(self) -> float:
        return self.d / self.N

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: ``layer, rows, F_diag, F_diag_se, F_off, F_off_se, ratio,
        ratio_se`` and the setting."""
        from rmthess.theory.depth import layers_frame

        return layers_frame(self, ("loss", "C", "d", "N", "activation", "init", "trials"))

    def to_dict(self) -> dict:
        """JSON-safe: the setting, ``gamma`` and, per layer, ``<quantity>_<layer>`` and its
        ``*_se``."""
        from rmthess.theory.depth import layers_dict

        keys = ("loss", "C", "d", "N", "gamma", "activation", "init", "trials", "seed",
                "device", "dtype", "seconds")  # fmt: skip
        return layers_dict(self, keys)


def pre_activation_hessians(
    G1: torch.Tensor,
    Y: torch.Tensor,
    Ws: list[torch.Tensor],
    V: torch.Tensor,
    loss: str,
    act: TorchActivation,
) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
    """Per-sample ``H_k = d^2 l / dg_k^2`` of every hidden layer (module docstring) for first
    pre-activations ``G1`` (N, m_1) and labels ``Y`` (N,): ``(H, A, hs)`` with ``H[k]`` of
    shape (N, m_{k+1}, m_{k+1}), ``A`` (N, C, C) the output Hessian and ``hs[k] = h_{k+1}``
    (N, m_{k+1}). ``Ws = [W_2 .. W_L]``, ``V`` (C, m_L)."""
    g = [G1]
    hs = [act.phi(G1)]
    for W in Ws:
        g.append(hs[-1] @ W.T)
        hs.append(act.phi(g[-1]))
    C = V.shape[0]
    Z = hs[-1] @ V.T
    onehot = torch.nn.functional.one_hot(Y, C).to(Z.dtype)
    if loss == "ce":
        P = torch.softmax(Z, dim=-1)
        R = P - onehot
        A = torch.diag_embed(P) - P.unsqueeze(2) * P.unsqueeze(1)
    else:
        R = Z - onehot
        A = torch.eye(C, dtype=Z.dtype, device=Z.device).expand(Z.shape[0], C, C)
    L = len(g)
    H: list[torch.Tensor] = [torch.empty(0)] * L
    b = R @ V  # dl/dh_L
    J = V.unsqueeze(0) * act.dphi(g[-1]).unsqueeze(1)  # (N, C, m_L)
    Rk = None
    for k in range(L - 1, -1, -1):
        d1 = act.dphi(g[k])
        if k < L - 1:
            W = Ws[k]
            b = (b * act.dphi(g[k + 1])) @ W
            J = (J @ W) * d1.unsqueeze(1)
        Hk = J.transpose(1, 2) @ (A @ J)
        if not act.homogeneous:
            if Rk is None:
                Rk = torch.diag_embed(act.d2phi(g[k]) * b)
            else:
                W = Ws[k]
                Rk = d1.unsqueeze(2) * (W.T @ Rk @ W) * d1.unsqueeze(1)
                Rk = Rk + torch.diag_embed(act.d2phi(g[k]) * b)
            Hk = Hk + Rk
        H[k] = Hk
    return H, A, hs


def _check(loss, C, d, N, widths, activation, init, trials, seed):
    from rmthess.simulate._plan import check_size
    from rmthess.theory.depth import check_depth_args

    loss, C, _, ws, act, ini, *_ = check_depth_args(
        loss, C, 1.0, widths, activation, init, None, 20, 4, seed
    )
    d = check_size("d", d, 1)
    N = check_size("N", N, 2)
    trials = check_int("trials", trials, 2, 10**5)
    big = max(ws + (C,))
    need = 8.0 * (d * N + 2 * N * N + N * C * big * 3 + 4 * N * big * big + 64 * N)
    check_memory(need, f"depth_block_frobenius(d={d}, N={N}, widths={ws}, C={C})", "lower N")
    return loss, C, d, N, ws, act, ini, trials


def depth_block_frobenius(
    loss: str,
    C: int,
    d: int,
    N: int,
    widths: tuple[int, ...],
    activation: str = "relu",
    *,
    trials: int = 8,
    seed: int = 0,
    device: Device = "auto",
    dtype: DType = "float64",
    init: InitLike = "lecun",
) -> DepthBlockNorms:
    """Simulate the block maps of every layer of an MLP at init (module docstring).

    Parameters
    ----------
    loss : ``"ce"`` or ``"mse"``; C : int in [2, 10**5], classes.
    d : input dimension; N : samples (>= 2); both at most ``MAX_SIZE``.
    widths : tuple of 1 to 8 ints in [2, 4096], the hidden widths ``m_1 .. m_L``.
    activation : a name of :data:`rmthess.activations.ACTIVATIONS` (every hidden layer).
    trials : independent networks and data sets, >= 2 (the SEs are over them); seed.
    device : ``"auto" | "cpu" | "cuda"``; dtype : ``"float64"`` or ``"float32"``.
    init : a normal init (``"lecun"`` or a float sigma), as the theory's.

    Memory per trial ``~ d N + 2 N^2 + 3 N C m + 4 N m^2`` numbers (``m`` the widest
    layer), checked first. Theory: ``depth_frobenius(loss, C, d / N, widths, activation,
    N=N)``.

    Returns
    -------
    DepthBlockNorms (one entry per layer, the output layer last).
    """
    from rmthess.simulate.gram import gram_sq_norms
    from rmthess.theory.block_pairs import choose_pairs, diag_off_means
    from rmthess.theory.depth import layer_estimates

    loss, C, d, N, ws, act_, ini, trials = _check(
        loss, C, d, N, widths, activation, init, trials, seed
    )
    act = torch_activation(act_)
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    L = len(ws)
    sizes = (*ws, C)
    per = np.empty((trials, L + 1, 2))
    t0 = time.perf_counter()
    for t, s in enumerate(trial_seeds(seed, trials, key=(C, 3))):
        gen = make_generator(s, dev)
        X = gaussian((N, d), gen, dev, dt)
        fans = (d, *ws)
        W = [init_weights((ws[k], fans[k]), fans[k], ini, gen, dev, dt) for k in range(L)]
        V = init_weights((C, ws[-1]), ws[-1], ini, gen, dev, dt)
        Y = torch.randint(0, C, (N,), generator=gen, device=dev)
        H, A, hs = pre_activation_hessians(X @ W[0].T, Y, W[1:], V, loss, act)
        pair_gen = np.random.default_rng(s)
        for k in range(L + 1):
            rows, cols = choose_pairs(sizes[k], pair_gen)
            M = H[k] if k < L else A
            a = M[:, torch.as_tensor(rows, device=dev), torch.as_tensor(cols, device=dev)]
            U = X if k == 0 else hs[k - 1]
            F = gram_sq_norms(U.T[None], a[None])[0].double().cpu().numpy()
            F /= d if k == 0 else 1
            per[t, k] = diag_off_means(F, rows, cols)
    seconds = time.perf_counter() - t0
    arr = layer_estimates(per)
    layers = tuple(f"hidden{k + 1}" for k in range(L)) + ("output",)
    return DepthBlockNorms(
        loss, C, d, N, ws, act.name, ini.name, layers, sizes, arr["F_diag"], arr["F_off"],
        arr["ratio"], arr["F_diag_se"], arr["F_off_se"], arr["ratio_se"], trials, seed,
        str(dev), str(dt).replace("torch.", ""), seconds, per,
    )  # fmt: skip
