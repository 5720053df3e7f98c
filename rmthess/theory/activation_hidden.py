"""Hidden-layer blocks of ``f(x) = V phi(W x)`` for any activation ``phi`` of
:data:`rmthess.activations.ACTIVATIONS` (issue 20; docs/theory.md section 9.5).

With ``g = W x``, ``r = dl/df`` (CE: ``p - e_y``; MSE, ``l = |f - y|^2 / 2``: ``f - e_y``)
and ``A = d^2 l / df^2`` (CE: ``diag p - p p^T``; MSE: ``I``), the first layer's ``(j, l)``
block is ``H_jl = (1/N) sum_i a_i^{jl} x_i x_i^T`` with

    a^{jl} = phi'(g_j) phi'(g_l) v_j^T A v_l  +  delta_jl phi''(g_j) v_j^T r,

``v_j`` the j-th column of ``V``: a Gauss-Newton part and, where ``phi'' != 0``, a residual
part on the diagonal blocks only, which depends on the labels. For ReLU, leaky ReLU and the
identity ``phi'' = 0`` almost everywhere and the weights are those of section 2.1.

**Label model.** At initialisation the labels carry no information about the random
projection ``W x``: ``y`` uniform on the ``C`` classes, independent of ``x`` (MSE targets the
one-hot ``e_y``). The measured counterpart is a network at init on data whose labels are
independent of its features, e.g. ``rmthess.data.gaussian``.

**Limit** (isotropic inputs, ``d, N -> inf``, ``gamma = d/N``). As for ReLU (docs/theory.md
section 4) the decoupling of ``a`` from ``x`` gives

    F = gamma E[a^2] + E_V[(E_{g, y}[a | V])^2],     g ~ N(0, sigma^2 I_m),

estimated here by Monte Carlo: ``samples`` independent ``V`` (entries ``N(0, sigma^2/m)``),
``inner`` draws of ``(g, y)`` each; the square of the inner mean from two independent halves
(unbiased); ``F_diag``/``F_off`` the means over the diagonal/off-diagonal blocks of each ``V``
and their SEs over the ``V`` draws. ``phi = relu`` reproduces hidden-mse's closed form and
hidden-ce's quadrature within the SE (tests/theory/test_activation_hidden.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_choice, check_int, check_positive_float
from rmthess._random import check_seed, rng
from rmthess.activations import Activation, get_activation
from rmthess.inits import resolve_init

if TYPE_CHECKING:
    from collections.abc import Callable

    from rmthess.inits import Init, InitLike
    from rmthess.theory.frobenius import FrobeniusLimits

__all__ = ["activation_frobenius", "activation_weights"]

DEFAULT_SAMPLES = 2000
DEFAULT_INNER = 256


def activation_weights(
    g: np.ndarray,
    y: np.ndarray | None,
    V: np.ndarray,
    loss: str,
    act: Activation,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """Block weights ``a^{jl}`` (module docstring) of draws ``g`` (n, m) with labels ``y``
    (n,) at the blocks ``(rows, cols)``: shape (n, blocks). For the piecewise-linear
    activations (``act.homogeneous``: relu, leaky-relu, linear) ``phi'' = 0`` and the weights
    do not depend on the labels: ``y`` may be None."""
    d1 = act.dphi(g)
    z = act.phi(g) @ V.T
    if loss == "ce":
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        pv = p @ V
        gn = p @ (V[:, rows] * V[:, cols]) - pv[:, rows] * pv[:, cols]
    else:
        gn = np.broadcast_to((V[:, rows] * V[:, cols]).sum(axis=0), (g.shape[0], rows.size))
    a = d1[:, rows] * d1[:, cols] * gn
    diag = rows == cols
    if act.homogeneous or not np.any(diag):
        return a
    if y is None:
        raise ValueError(f"y (labels) is needed for {act.name!r}: its phi'' term depends on them")
    r = (p if loss == "ce" else z) - np.eye(V.shape[0])[y]
    rv = r @ V  # (n, m): v_j . r
    a[:, diag] += act.d2phi(g)[:, rows[diag]] * rv[:, rows[diag]]
    return a


def activation_frobenius(
    case: str,
    C: int,
    gamma: float,
    m: int,
    activation: str | Activation = "tanh",
    *,
    init: InitLike = "lecun",
    samples: int = DEFAULT_SAMPLES,
    inner: int = DEFAULT_INNER,
    seed: int = 0,
) -> FrobeniusLimits:
    """Fixed-C limits ``F_diag``, ``F_off``, ``ratio`` of the hidden layer's or the output
    layer's blocks for any activation (module docstring), by Monte Carlo with standard errors
    over ``V`` (output-mse: exact).

    Output layer (``output-*``, blocks ``E[a h h^T | V]`` with ``h = phi(g)``, ``m x m``, no
    ``1/d``): the Hessian of ``V phi(W x)`` in ``V`` has no residual term, whatever ``phi``.
    output-mse (``a = delta_cc'``) is exact, ``F_diag = m M_2^2 + m (m - 1) M_1^4`` with
    ``M_k = E[phi(sigma g)^k]`` (:meth:`rmthess.activations.Activation.gaussian_moment`),
    ``F_off = 0``; output-ce is the nested Monte Carlo of ReLU's
    :func:`rmthess.theory.hidden_integrals.output_ce_mc` with ``h = phi(g)`` (U-statistics,
    ``O(samples inner^2 C)``, SEs over ``V``).

    Parameters
    ----------
    case : ``"hidden-mse"``, ``"hidden-ce"``, ``"output-mse"`` or ``"output-ce"``.
    C : int in [2, 10**5], classes.
    gamma : float > 0, ``d / N`` (unused by output-*, whose blocks have fixed size m).
    m : int in [2, 4096] (hidden-*) or [1, 4096] (output-*), hidden width.
    activation : a name of :data:`rmthess.activations.ACTIVATIONS` or an ``Activation``.
    init : a normal init (``"lecun"`` or a float sigma): ``W`` and ``V`` entries
        ``N(0, sigma^2 / fan_in)``.
    samples : int in [20, 10**7], independent ``V`` draws (the SE is over them).
    inner : even int in [4, 10**7], ``(g, y)`` draws per ``V``.
    seed : seeds the draws.

    Cost: ``samples * inner * m^2 / 2`` weight evaluations (m = 16, defaults: about 1 s).

    Returns
    -------
    FrobeniusLimits with ``method="monte-carlo"`` and ``activation`` the name.
    """
    case, C, gamma, act, ini, samples, inner, seed = check_mc_args(
        case, C, gamma, activation, init, samples, inner, seed, ACTIVATION_CASES
    )
    m = check_int("m", m, 1 if case.startswith("output") else 2, 4096)
    if case.startswith("output"):
        return _output_limits(case, C, gamma, m, act, ini, samples, inner, seed)

    def draw(gen: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        V = gen.standard_normal((C, m)) * (ini.sigma / math.sqrt(m))
        g = gen.standard_normal((inner, m)) * ini.sigma
        y = gen.integers(0, C, inner)
        return activation_weights(g, y, V, case.split("-")[1], act, rows, cols)

    memory = 8.0 * inner * (4 * m * (m + 1) // 2 + 6 * m + 3 * C)
    return mc_block_limits(
        case, C, gamma, m, act, ini, samples, inner, seed, draw, memory, "activation-frobenius"
    )


def _output_limits(case, C, gamma, m, act, ini, samples, inner, seed) -> FrobeniusLimits:
    """output-* of :func:`activation_frobenius` (its docstring)."""
    from dataclasses import replace

    from rmthess.theory.aniso_linear import conditional_result
    from rmthess.theory.frobenius import FrobeniusLimits

    if case == "output-mse":
        M1 = act.gaussian_moment("phi", 1, ini.sigma)
        M2 = act.gaussian_moment("phi", 2, ini.sigma)
        Fd = m * M2 * M2 + m * (m - 1) * M1**4
        return FrobeniusLimits(
            case, C, gamma, m, Fd, 0.0, 0.0, 0.0, method="closed-form", init=ini.name,
            activation=act.name,
        )  # fmt: skip
    from threadpoolctl import threadpool_limits

    from rmthess._checks import check_memory
    from rmthess.theory.hidden_integrals import output_ce_mc

    need = 8.0 * (6 * inner * inner + 6 * inner * C + 2 * inner * m + C * m)
    check_memory(need, f"activation_frobenius('output-ce', C={C}, inner={inner})", "lower inner")

    with threadpool_limits(limits=1, user_api="blas"):
        est = output_ce_mc(C, m, samples, inner, seed, init=ini, phi=act.phi)
    per = np.stack([est.diag_mean2, est.off_mean2], axis=1)
    res = conditional_result(case, C, gamma, m, per, inner, seed, ini.name, "isotropic")
    return replace(res, method="monte-carlo", activation=act.name)


HIDDEN_CASES = ("hidden-mse", "hidden-ce")
ACTIVATION_CASES = (*HIDDEN_CASES, "output-mse", "output-ce")
"""The cases of :func:`activation_frobenius` (both layers of the one-hidden-layer net)."""


def check_mc_args(
    case, C, gamma, activation, init, samples, inner, seed, cases=HIDDEN_CASES
) -> tuple:
    """The arguments shared by :func:`activation_frobenius` and
    :func:`rmthess.theory.deep_frobenius`, checked (one ``ValueError``/``TypeError`` each);
    ``case`` one of ``cases``."""
    case = check_choice("case", case, cases)
    C = check_int("C", C, 2, 10**5)
    gamma = check_positive_float("gamma", gamma)
    act = get_activation(activation)
    ini = check_normal_init(init)
    samples, inner = check_draws(samples, inner)
    return case, C, gamma, act, ini, samples, inner, check_seed(seed)


def check_normal_init(init) -> Init:
    """The resolved ``init``; ``ValueError`` unless normal (the Monte-Carlo routes draw normal
    weights and tilt them)."""
    ini = resolve_init(init)
    if ini.dist != "normal":
        raise ValueError(f"init must be a normal init (lecun or a float sigma), got {ini.name!r}")
    return ini


def check_draws(samples, inner) -> tuple[int, int]:
    """``samples`` in [20, 1e7] outer draws (networks: the SE is over them) and an even
    ``inner`` in [4, 1e7] (two independent halves for every product of means)."""
    samples = check_int("samples", samples, 20, 10**7)
    inner = check_int("inner", inner, 4, 10**7)
    if inner % 2:
        raise ValueError(f"inner must be even (two independent halves), got {inner}")
    return samples, inner


def mc_block_limits(
    case: str,
    C: int,
    gamma: float,
    m: int,
    act: Activation,
    ini: Init,
    samples: int,
    inner: int,
    seed: int,
    draw: Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray],
    memory: float,
    key: str,
    widths: tuple[int, ...] | None = None,
) -> FrobeniusLimits:
    """``F = gamma E[a^2] + E_outer[(E_inner a)^2]`` over ``samples`` outer draws: ``draw(gen,
    rows, cols)`` returns the ``(inner, blocks)`` weights of one outer draw (its downstream
    weights fixed); the square of the inner mean from two independent halves; ``F_diag`` /
    ``F_off`` the means over the ``m x m`` map's diagonal / off-diagonal blocks, SEs over the
    outer draws."""
    from dataclasses import replace

    from rmthess._checks import check_memory
    from rmthess.theory.aniso_linear import conditional_result

    check_memory(memory, key.replace("-", "_"), "lower inner")
    gen = rng(seed, key, act.name)
    rows, cols = np.triu_indices(m)
    diag = rows == cols
    h = inner // 2
    per = np.empty((samples, 2))
    for s in range(samples):
        a = draw(gen, rows, cols)
        F = gamma * np.mean(a * a, axis=0) + a[:h].mean(axis=0) * a[h:].mean(axis=0)
        per[s] = F[diag].mean(), F[~diag].mean()
    res = conditional_result(case, C, gamma, m, per, inner, seed, ini.name, "isotropic")
    return replace(res, method="monte-carlo", activation=act.name, widths=widths)
