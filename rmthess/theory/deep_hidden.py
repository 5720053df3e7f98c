"""First-layer blocks of a two-hidden-layer MLP ``f(x) = V phi(W2 phi(W1 x))`` at init, any
activation of :data:`rmthess.activations.ACTIVATIONS` (issue 20; docs/theory.md 9.5).

With ``g = W1 x`` (``m1``), ``u = W2 phi(g)`` (``m2``), logits ``z = V phi(u)``, ``r = dl/dz``
and ``A = d^2 l/dz^2`` (section 1), the back-propagated columns are ``J = V diag(phi'(u)) W2``
(``C x m1``) and the ``(j, l)`` block of the first layer is ``(1/N) sum_i a_i^{jl} x_i x_i^T``
with

    a^{jl} = phi'(g_j) phi'(g_l) [ J_j^T A J_l + sum_k (V^T r)_k phi''(u_k) W2_kj W2_kl ]
             + delta_jl phi''(g_j) (J^T r)_j.

The first term is the Gauss-Newton part; the second (second layer's curvature) reaches the
off-diagonal blocks, the third only the diagonal ones; both vanish for ReLU, whose weights
are then label-free. The weight depends on ``x`` only through ``g``, so the decoupling of
section 4 holds as for one hidden layer (labels uniform and independent of ``x`` at init):

    F = gamma E[a^2] + E_{W2, V}[(E_{g, y}[a | W2, V])^2],     g ~ N(0, sigma^2 I_m1),

by Monte Carlo over ``(W2, V)`` (entries ``N(0, sigma^2/fan_in)``; SEs over them) with the
square of the inner mean from two independent halves.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_int
from rmthess.activations import Activation

if TYPE_CHECKING:
    from rmthess.inits import InitLike
    from rmthess.theory.frobenius import FrobeniusLimits

__all__ = ["deep_frobenius", "deep_weights"]


def deep_weights(
    g: np.ndarray,
    y: np.ndarray,
    W2: np.ndarray,
    V: np.ndarray,
    loss: str,
    act: Activation,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """First-layer block weights (module docstring) of pre-activations ``g`` (n, m1) with
    labels ``y`` at the blocks ``(rows, cols)``: shape (n, blocks)."""
    C = V.shape[0]
    u = act.phi(g) @ W2.T  # (n, m2)
    du = act.dphi(u)
    z = act.phi(u) @ V.T
    J = np.matmul(V[None, :, :] * du[:, None, :], W2)  # (n, C, m1), batched BLAS
    if loss == "ce":
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        pJ = np.matmul(p[:, None, :], J)[:, 0, :]  # (n, m1): p^T J_j
        gn = np.matmul(np.swapaxes(J * p[:, :, None], 1, 2), J)  # J^T diag(p) J
        gn = gn[:, rows, cols] - pJ[:, rows] * pJ[:, cols]
        r = p - np.eye(C)[y]
    else:
        gn = np.matmul(np.swapaxes(J, 1, 2), J)[:, rows, cols]
        r = z - np.eye(C)[y]
    vr = r @ V  # (n, m2): (V^T r)_k
    curv = (vr * act.d2phi(u)) @ (W2[:, rows] * W2[:, cols])
    d1 = act.dphi(g)
    a = d1[:, rows] * d1[:, cols] * (gn + curv)
    diag = rows == cols
    if np.any(diag):
        Jr = np.matmul(r[:, None, :], J)[:, 0, :]  # (J^T r)_j
        a[:, diag] += act.d2phi(g)[:, rows[diag]] * Jr[:, rows[diag]]
    return a


def deep_frobenius(
    case: str,
    C: int,
    gamma: float,
    widths: tuple[int, int],
    activation: str | Activation = "relu",
    *,
    init: InitLike = "lecun",
    samples: int = 2000,
    inner: int = 256,
    seed: int = 0,
) -> FrobeniusLimits:
    """Fixed-C limits ``F_diag``, ``F_off``, ``ratio`` of the FIRST layer's blocks of a
    two-hidden-layer MLP of widths ``(m1, m2)`` (module docstring), by Monte Carlo.

    Parameters
    ----------
    case : ``"hidden-mse"`` or ``"hidden-ce"`` (the loss; blocks of the first layer).
    C : int in [2, 10**5]; gamma : float > 0, ``d / N``.
    widths : ``(m1, m2)``, ints in [2, 4096]: the two hidden widths.
    activation : a name of :data:`rmthess.activations.ACTIVATIONS` (both layers).
    init : a normal init; samples : int in [20, 10**7] ``(W2, V)`` draws; inner : even int
        in [4, 10**7] ``(g, y)`` draws per draw; seed.

    Returns
    -------
    FrobeniusLimits with ``m = m1``, ``widths = (m1, m2)``, ``method="monte-carlo"``.
    """
    from rmthess.theory.activation_hidden import check_mc_args, mc_block_limits

    case, C, gamma, act, ini, samples, inner, seed = check_mc_args(
        case, C, gamma, activation, init, samples, inner, seed
    )
    if not isinstance(widths, tuple | list) or len(widths) != 2:
        raise ValueError(f"widths must be (m1, m2), two hidden widths, got {widths!r}")
    m1, m2 = (check_int("widths", w, 2, 4096) for w in widths)

    def draw(gen: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        W2 = gen.standard_normal((m2, m1)) * (ini.sigma / math.sqrt(m1))
        V = gen.standard_normal((C, m2)) * (ini.sigma / math.sqrt(m2))
        g = gen.standard_normal((inner, m1)) * ini.sigma
        y = gen.integers(0, C, inner)
        return deep_weights(g, y, W2, V, case.split("-")[1], act, rows, cols)

    memory = 8.0 * inner * (6 * m1 * (m1 + 1) // 2 + 3 * C * m1 + C * m2 + 4 * m2)
    return mc_block_limits(
        case, C, gamma, m1, act, ini, samples, inner, seed, draw, memory, "deep-frobenius",
        widths=(m1, m2),
    )  # fmt: skip
