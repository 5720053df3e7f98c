"""Frobenius norms of the linear model's Hessian blocks for Gaussian inputs ``x ~ N(mu, Sigma)``
(issue 19; docs/theory.md section 4, "Anisotropic inputs").

Blocks ``H_kl = (1/N) sum_i a_i x_i x_i^T`` with ``a_i = A(z_i)[k, l]``, ``z_i = W x_i`` the
logits (linear-mse: ``a = delta_kl``; linear-ce: ``a = p_k(delta_kl - p_l)``, ``p =
softmax(z)``), ``W`` with i.i.d. ``N(0, sigma^2/d)`` entries. Then

    (1/d) E||H_kl||_F^2 = (1/(d N)) E[a^2 |x|^4] + ((N-1)/(d N)) E[a a' (x . x')^2]

(``x'`` an independent sample). Two routes:

**Limit** (:func:`aniso_linear_limits`, behind ``frobenius_limits(..., inputs=)``). Given ``W``
the logits are ``N(b, W Sigma W^T)``, ``b = W mu``, and ``W Sigma W^T -> sigma^2 tau_1 I``
(fluctuations ``O(1/sqrt(d_eff))``). ``a`` depends on ``x`` only through ``z`` (C numbers),
``|x|^4 / d^2 -> (tau_1 + |mu|^2/d)^2`` and ``E(x . x')^2 / d = tau_2 + 2 mu^T Sigma mu / d +
|mu|^4 / d`` (``= ||Sigma + mu mu^T||_F^2 / d``, exact), and decoupling gives

    F = gamma (tau_1 + |mu|^2/d)^2 E[a(z)^2] + (tau_2 + 2 mu^T Sigma mu/d + |mu|^4/d) E[a(z) a(z')]

where ``z = b + zeta``, ``z' = b + zeta'`` share the offset ``b`` (one network) and average
over it: per class ``(z_c, z'_c)`` is bivariate normal with variance ``s^2 = sigma^2 (tau_1
+ |mu|^2/d)`` and correlation ``rho = (|mu|^2/d) / (tau_1 + |mu|^2/d)``. So ``E[a^2]`` is the
isotropic moment at logit scale ``s`` (:func:`rmthess.theory.softmax_moments.softmax_moments`)
and ``E[a a']`` the correlated-pair integral ``I2`` (off) or ``(C-1) I2 + (C-1)(C-2) I3``
(diag) of :func:`rmthess.theory.ce_inner.output_inner`. Centred data (``mu = 0``): ``rho = 0``,
``E[a a'] = (E a)^2`` and ``F = gamma tau_1^2 E[a^2] + tau_2 (E a)^2`` at logit scale
``sigma sqrt(tau_1)``; ``Sigma = I``: today's Theorem 1. Neglected: terms of relative order
``C / d_eff`` (the fluctuations of ``W Sigma W^T`` and the conditional mean of ``x`` given
``z``), which carry ``O(1)`` (not ``O(d)``) parts of the pair term when ``mu != 0``.

**Exact at finite d** (:func:`conditional_frobenius`). Given ``W``, ``x | z`` is Gaussian with
mean ``m(z) = mu + B (z - b)``, ``B = Sigma W^T M^{-1}``, ``M = W Sigma W^T``, and covariance
``S = Sigma - Sigma W^T M^{-1} W Sigma`` (``t = tr S``, ``t2 = tr S^2``), so

    E[|x|^4 | z]          = (t + |m|^2)^2 + 2 t2 + 4 m^T S m,
    E[(x . x')^2 | z, z'] = t2 + m^T S m + m'^T S m' + (m . m')^2,

and ``E[a a' (m . m')^2] = ||P Q P^T||_F^2 = tr(Q G Q G)`` with ``P = [mu, B]`` (d x (C+1)),
``G = P^T P`` and ``Q = E[a xi xi^T]``, ``xi = (1, z - b)``: everything reduces to the
``C + 1`` dimensions spanned by ``mu`` and the rows of ``W Sigma``. The remaining ``C``-dim
Gaussian averages over ``z ~ N(b, M)`` are taken by Monte Carlo (``draws`` per network; the
products of two averages from independent halves, so the estimate is unbiased), and the
result is averaged over independent networks ``W``. Exact for Gaussian inputs at every
``d`` and ``N`` (no ``d_eff`` condition); in the eigenbasis of ``Sigma`` (a normal ``W`` is
rotation invariant). linear-mse is closed form: ``F_diag = ((tr Sigma + |mu|^2)^2 + 2 tr
Sigma^2 + 4 mu^T Sigma mu) / (d N) + (N-1) ||Sigma + mu mu^T||_F^2 / (d N)``.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_choice, check_int
from rmthess._random import check_seed, rng
from rmthess._stats import summarize_pairs
from rmthess.cases import get_case
from rmthess.inits import resolve_init
from rmthess.theory.block_pairs import (
    SAMPLED_BLOCKS,
    blocks_from_pairs,
    sampled_pairs,
    softmax_weights,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from rmthess.inits import InitLike
    from rmthess.theory.frobenius import FrobeniusLimits
    from rmthess.theory.inputs import InputStats

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_NETWORKS",
    "aniso_linear_asymptotic",
    "aniso_linear_limits",
    "conditional_frobenius",
]

DEFAULT_NETWORKS = 200
"""Default number of independent networks ``W`` of :func:`conditional_frobenius`."""
DEFAULT_DRAWS = 4096
"""Default number of logit draws per network of :func:`conditional_frobenius`."""
ALL_BLOCKS_MAX_C = 11
""":func:`conditional_frobenius` computes every block up to this C; above it, per network,
``SAMPLED_BLOCKS`` (:mod:`rmthess.theory.block_pairs`) random diagonal and as many random
off-diagonal blocks (unbiased for
the block averages; the standard error over networks includes the sampling)."""
FINITE_SIZE_WARN = 0.1
"""``frobenius_limits(..., inputs=)`` warns when ``C / d_eff`` exceeds this."""
LINEAR_CASES = ("linear-mse", "linear-ce")


def check_inputs(inputs: object, case: str, allowed: tuple = LINEAR_CASES) -> InputStats:
    """``inputs`` must be an :class:`~rmthess.theory.inputs.InputStats` (``TypeError``) and
    ``case`` one of ``allowed`` (default the linear cases; ``ValueError``), both naming
    ``inputs``."""
    from rmthess.theory.inputs import InputStats

    if not isinstance(inputs, InputStats):
        raise TypeError(
            f"inputs must be an InputStats (rmthess.theory.input_stats), got "
            f"{type(inputs).__name__}"
        )
    if case not in allowed:
        raise ValueError(
            f"inputs (anisotropic Gaussian inputs) is supported for {', '.join(allowed)} "
            f"only, got case {case!r}"
        )
    return inputs


def aniso_linear_limits(case: str, C: int, gamma: float, sigma: float, stats: InputStats) -> dict:
    """Fields ``F_diag, F_off, ratio, ratio_se`` of the limit (module docstring) for a
    linear case at init scale ``sigma`` (arguments checked by the caller)."""
    d_eff = stats.d_eff
    if stats.level == "mixture":  # the smallest within-class one
        assert stats.class_d_eff is not None and stats.class_weights is not None
        d_eff = float(np.min(stats.class_d_eff[stats.class_weights > 0]))
    ratio = C / d_eff if d_eff > 0 else math.inf
    if ratio > FINITE_SIZE_WARN:
        warnings.warn(
            f"C / d_eff = {C}/{d_eff:.3g} = {ratio:.2g} > {FINITE_SIZE_WARN}: "
            "the limit's finite-size corrections O(C/d_eff) are not small for these inputs "
            "(rmthess.theory.conditional_frobenius is exact at finite d)",
            RuntimeWarning,
            stacklevel=3,
        )
    if stats.level == "mixture":
        from rmthess.theory.mixture_linear import mixture_linear_limits

        return mixture_linear_limits(case, C, gamma, sigma, stats)
    Q, P = stats.norm_moment, stats.pair_moment
    if case == "linear-mse":
        return dict(F_diag=gamma * Q + P, F_off=0.0, ratio=0.0, ratio_se=0.0)
    from rmthess.theory.softmax_moments import SIGMA_MAX, softmax_moments

    v = stats.tau1 + stats.mean_sq
    s = sigma * math.sqrt(v)
    if s > SIGMA_MAX:
        raise ValueError(
            f"inputs give logits of scale sigma sqrt(tau_1 + |mu|^2/d) = {s:.3g} > {SIGMA_MAX:g} "
            "(the softmax is one-hot and the quadrature tables do not reach): rescale the data"
        )
    mom = softmax_moments(C, sigma=s)
    e2, e3, e4 = (float(mom.p[n]) for n in (2, 3, 4))
    a2_diag, a2_off = e2 - 2.0 * e3 + e4, float(mom.pp[2])
    if stats.mean_sq == 0.0:
        pair_diag, pair_off = (1.0 / C - e2) ** 2, float(mom.pp[1]) ** 2
    else:
        from rmthess.theory.ce_inner import output_inner
        from rmthess.theory.frobenius import QUADRATURE_MAX_C

        if C > QUADRATURE_MAX_C:
            raise ValueError(
                f"C must be <= {QUADRATURE_MAX_C:.0e} for inputs with a mean (the correlated "
                f"pair quadrature), got {C}"
            )

        I2, I3 = output_inner(s, s, stats.mean_sq / v, float(C))
        pair_off, pair_diag = I2, (C - 1) * I2 + (C - 1) * (C - 2) * I3
    Fd = gamma * Q * a2_diag + P * pair_diag
    Fo = gamma * Q * a2_off + P * pair_off
    return dict(F_diag=Fd, F_off=Fo, ratio=math.sqrt(Fo / Fd), ratio_se=0.0)


def aniso_linear_asymptotic(
    case: str, gamma: float, sigma: float, stats: InputStats
) -> tuple[float, float, float, float]:
    """Large-C constants ``(A_diag, p_diag, A_off, p_off)`` of the limit above.

    As ``C -> inf`` the softmax normaliser is ``C E[e^z] = C e^{s^2/2}`` (the offsets ``b_c``
    average out over the classes; ``s^2 = sigma^2 (tau_1 + |mu|^2/d)``), so ``p_k ~ e^{z_k -
    s^2/2} / C`` and ``C^2 E[a^2] -> e^{s^2}``, ``C^4 E[a_off^2] -> e^{2 s^2}``, while the
    pair factors keep only the shared offset: ``C^2 E[p_k p'_k] -> e^{sigma^2 |mu|^2/d}``,
    ``C^4 E[p_k p_l p'_k p'_l] -> e^{2 sigma^2 |mu|^2/d}``. With ``P`` the pair moment and
    ``Q = (tau_1 + |mu|^2/d)^2``:

        A_diag = P e^{sigma^2 |mu|^2/d} + gamma Q e^{s^2},          p_diag = 2,
        A_off  = P e^{2 sigma^2 |mu|^2/d} + gamma Q e^{2 s^2},      p_off  = 4

    (``Sigma = I, mu = 0``: ``1 + e gamma``, ``1 + e^2 gamma``). linear-mse: ``A_diag =
    gamma Q + P``, ``p_diag = 0``, no off-diagonal block. Non-finite where a constant
    overflows (the caller refuses it). Mixture inputs:
    :func:`rmthess.theory.mixture_linear.mixture_linear_asymptotic`."""
    if stats.level == "mixture":
        from rmthess.theory.mixture_linear import mixture_linear_asymptotic

        return mixture_linear_asymptotic(case, gamma, sigma, stats)
    Q, P = stats.norm_moment, stats.pair_moment
    if case == "linear-mse":
        return (gamma * Q + P, 0.0, 0.0, math.inf)
    s2 = sigma * sigma * (stats.tau1 + stats.mean_sq)
    b2 = sigma * sigma * stats.mean_sq
    if 2 * s2 > 700:
        return (math.inf, 2.0, math.inf, 4.0)
    return (
        P * math.exp(b2) + gamma * Q * math.exp(s2),
        2.0,
        P * math.exp(2 * b2) + gamma * Q * math.exp(2 * s2),
        4.0,
    )


def conditional_frobenius(
    case: str,
    C: int,
    inputs: InputStats,
    N: int,
    *,
    m: int | None = None,
    init: InitLike = "lecun",
    networks: int = DEFAULT_NETWORKS,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    self_term: str = "model",
) -> FrobeniusLimits:
    """Exact ``E (1/d)||H_kl||_F^2`` of the linear model (or of the hidden layer of
    ``V relu(W x)``) at finite ``d`` and ``N`` for Gaussian inputs with the mean and
    covariance of ``inputs`` (module docstring), or for the Gaussian mixture of its classes
    when ``inputs`` carries class covariances (``level == "mixture"``;
    :mod:`rmthess.theory.mixture_linear`).

    Parameters
    ----------
    case : ``"linear-mse"``, ``"linear-ce"``, ``"hidden-mse"`` or ``"hidden-ce"`` (the
        ``m x m`` map of the first layer's ``d x d`` blocks, :mod:`rmthess.theory.aniso_hidden`;
        networks ``(W, V)`` from ``init``).
    C : int >= 2, number of classes.
    m : hidden width, int in [2, 4096], for the hidden cases (refused for the linear ones).
    inputs : InputStats (``d`` from it; ``mean_coords`` and ``eigenvalues`` used).
    N : int >= 1, number of samples in the data set (``gamma = d / N`` in the result).
    init : a normal init (``"lecun"`` or a float sigma): the reduction uses the rotation
        invariance of a Gaussian ``W``.
    networks : int in [2, 10**6], independent ``W`` (linear-ce; the SE is over them). Above
        ``C = 11`` each network evaluates 32 random diagonal and 32 random off-diagonal
        blocks (:data:`ALL_BLOCKS_MAX_C`), not all ``C(C+1)/2``.
    draws : even int in [16, 10**7], logit draws per network (Monte Carlo over ``z``).
    seed : int, seeds the networks and the draws.
    self_term : ``"model"`` (default: the ``i = j`` terms ``a_i^2 |x_i|^4`` from the Gaussian
        law) or ``"data"``: from the data's own sample norms (``inputs.sq_norms``, the data
        route of :func:`~rmthess.theory.input_stats`), exact over ``W`` for any input law
        (:func:`rmthess.theory.mixture_linear.data_self_term`); the pairs ``i != j`` stay
        Gaussian. ``inputs`` of the result gets ``"+norms"``.

    Cost (one core, d = 64..2000, default draws): about 12 ms per network at C = 10, 0.2 s
    at C = 100, 14 s at C = 1000 (the shared kernel of the draws, ``draws^2 C / 4``).
    Mixture of K classes: ``K`` times the draws plus ``K^2 d^2 (C+1)`` per network; K = C =
    10: 0.1 s per network at d = 64, 0.37 s at d = 784.

    Returns
    -------
    FrobeniusLimits with ``method="conditional"``, the standard errors over networks,
    ``n_samples = networks``, ``n_inner = draws`` (0 and 0 for linear-mse, exact) and
    ``inputs`` the level of the statistics. ``ValueError`` for ``rank(Sigma) < C`` (the
    logit covariance ``W Sigma W^T`` is singular; a mixture's classes may have any rank).
    """
    from rmthess._checks import check_memory
    from rmthess.theory.frobenius import FrobeniusLimits
    from rmthess.theory.mixture_linear import mixture_block_expectations

    c = get_case(case)
    C = check_int("C", C, 2, 10**4)
    hidden = c.name in ("hidden-mse", "hidden-ce")
    stats = check_inputs(inputs, c.name, LINEAR_CASES + ("hidden-mse", "hidden-ce"))
    if hidden and m is None:
        raise ValueError(f"m (hidden width, an int in [2, 4096]) is required for {c.name}")
    if hidden:
        m = check_int("m", m, 2, 4096)
    elif m is not None:
        raise ValueError(f"m (hidden width) is for the hidden cases, not {c.name}; got m={m!r}")
    N = check_int("N", N, 1)
    networks = check_int("networks", networks, 2, 10**6)
    draws = check_int("draws", draws, 16, 10**7)
    if draws % 2:
        raise ValueError(f"draws must be even (two independent halves), got {draws}")
    seed = check_seed(seed)
    self_term = check_choice("self_term", self_term, ("model", "data"))
    if self_term == "data" and stats.sq_norms is None:
        raise ValueError(
            "self_term='data' needs the sample norms of a data set: inputs from "
            "rmthess.theory.input_stats(X, ...), not from a spectrum or a mixture"
        )
    ini = resolve_init(init)
    if ini.dist != "normal":
        raise ValueError(
            f"init must be a normal init for the conditional route (it rotates W into the "
            f"eigenbasis of Sigma), got {ini.name!r}"
        )
    if hidden and self_term == "data":
        raise ValueError(
            "self_term='data' is for the linear cases (their i = j terms are exact from the "
            f"sample norms); {c.name} uses the Gaussian self term"
        )
    if hidden:
        from rmthess.theory.aniso_hidden import conditional_hidden

        assert m is not None
        return conditional_hidden(c.name, C, m, stats, N, ini, networks, draws, seed)
    d = stats.d
    gamma = d / N
    mixture = stats.level == "mixture"
    model_self = self_term == "model"
    label = stats.level + ("" if model_self else "+norms")
    extra = (0.0, 0.0)
    if not model_self:
        from rmthess.theory.mixture_linear import data_self_term

        assert stats.sq_norms is not None
        extra = data_self_term(c.name, C, stats.sq_norms, N, d, ini.sigma)
    if c.name == "linear-mse" and mixture:
        from rmthess.theory.mixture_linear import mixture_mse_exact

        Fd = mixture_mse_exact(stats, N, model_self) + extra[0]
    if c.name == "linear-mse" and not mixture:
        lam, m0 = stats.eigenvalues, stats.mean_coords
        msq = float(m0 @ m0)
        mcov = float(m0 @ (lam * m0))
        t1, t2 = float(lam.sum()), float(lam @ lam)
        four = (t1 + msq) ** 2 + 2.0 * t2 + 4.0 * mcov
        pair = t2 + 2.0 * mcov + msq * msq
        Fd = ((four / N if model_self else 0.0) + (N - 1) / N * pair) / d + extra[0]
    if c.name == "linear-mse":
        return FrobeniusLimits(
            c.name,
            C,
            gamma,
            None,
            Fd,
            0.0,
            0.0,
            0.0,
            method="conditional",
            init=ini.name,
            inputs=label,
        )
    comps = _check_rank(stats, C)
    sample = C > ALL_BLOCKS_MAX_C
    nb = 2 * SAMPLED_BLOCKS if sample else C * (C + 1) // 2
    h = draws // 2
    kernel = nb * (C + 1) ** 2 > h * (C + 1 + nb)  # the route block_expectations takes
    check_memory(
        8.0 * draws * (3 * nb + 4 * C + 8)
        + 8.0 * (h * h if kernel and not mixture else draws * (C + 1) ** 2)
        + 8.0 * 2 * nb * (C + 1) ** 2 * (len(comps[0]) if mixture else 1)
        + 8.0 * d * (C + 1) * 4
        + (8.0 * len(comps[0]) * (d * d + 2 * d * (C + 1)) if mixture else 0.0),
        f"conditional_frobenius(C={C}, draws={draws})",
        "lower draws",
    )
    gen = rng(seed, "conditional-frobenius")
    per = np.empty((networks, 2))

    def expectations(W, pairs=None):
        if mixture:
            return mixture_block_expectations(W, *comps, N, draws, gen, pairs, model_self)
        return block_expectations(
            W, stats.eigenvalues, stats.mean_coords, N, draws, gen, pairs, self_term=model_self
        )

    for t in range(networks):
        W = gen.standard_normal((C, d)) * (ini.sigma / math.sqrt(d))
        if sample:
            v = expectations(W, sampled_pairs(C, gen))
            per[t] = v[:SAMPLED_BLOCKS].mean(), v[SAMPLED_BLOCKS:].mean()
            continue
        F = expectations(W)
        off = ~np.eye(C, dtype=bool)
        per[t] = np.mean(np.diag(F)), np.mean(F[off])
    per += np.asarray(extra)
    return conditional_result(c.name, C, gamma, None, per, draws, seed, ini.name, label)


def conditional_result(
    case: str,
    C: int,
    gamma: float,
    m: int | None,
    per: np.ndarray,
    draws: int,
    seed: int,
    init: str,
    inputs: str,
) -> FrobeniusLimits:
    """The record of a conditional route from its per-network ``(F_diag, F_off)`` rows:
    means, SEs over networks and the ratio (:func:`rmthess._stats.summarize_pairs`)."""
    from rmthess.theory.frobenius import FrobeniusLimits

    est = summarize_pairs(per)
    return FrobeniusLimits(
        case,
        C,
        gamma,
        m,
        est["F_diag"],
        est["F_off"],
        est["ratio"],
        est["ratio_se"],
        method="conditional",
        F_diag_se=est["F_diag_se"],
        F_off_se=est["F_off_se"],
        n_samples=len(per),
        n_inner=draws,
        seed=seed,
        init=init,
        inputs=inputs,
    )


def _check_rank(stats: InputStats, C: int) -> tuple:
    """The mixture's components (``()`` for one Gaussian: ``ValueError`` naming ``inputs``
    when its covariance has rank ``< C``, the logits ``W x`` have no density; a mixture's
    components may have any rank, :mod:`rmthess.theory.mixture_linear`)."""
    if stats.level == "mixture":
        from rmthess.theory.mixture_linear import components

        return components(stats)
    if stats.rank < C:
        raise ValueError(
            f"inputs has rank(Sigma) = {stats.rank} < C = {C}: the logits W x have a singular "
            "covariance and no density (give more input directions than classes)"
        )
    return ()


def block_expectations(
    W: np.ndarray,
    lam: np.ndarray,
    m0: np.ndarray,
    N: int,
    draws: int,
    gen: np.random.Generator,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    route: str = "auto",
    self_term: bool = True,
    weight_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``E_x[(1/d)||H_kl||_F^2 | W]`` for linear-ce with Gaussian inputs of covariance
    ``diag(lam)`` and mean ``m0`` (module docstring; ``W`` in that basis), by ``draws``
    Monte-Carlo logit draws (unbiased): the ``(C, C)`` array, or the values at ``pairs =
    (rows, cols)``. ``weight_fn(z, rows, cols)`` gives the block weights ``a`` of the draws
    ``z = W x`` (default :func:`softmax_weights`, linear-ce; any weight that depends on ``x``
    only through ``W x`` works: the hidden layer's, :mod:`rmthess.theory.aniso_hidden`).

    ``tr(Q1 G Q2 G)`` (``Q1, Q2`` from the two halves of the draws) is formed either per
    block from the ``(C+1) x (C+1)`` matrices ``Q`` (``route="q"``: cost ``draws (C+1)^2``
    per block) or from the kernel ``K = (Xi_1 G Xi_2^T)^2`` of the two halves shared by all
    blocks (``route="kernel"``: ``a_1^T K a_2 / h^2``; cost ``h^2 (C+1)`` once and ``h^2``
    per block); the two are the same sum. ``"auto"`` takes the cheaper."""
    C, d = W.shape
    WL = W * lam
    M = WL @ W.T
    M = 0.5 * (M + M.T)
    Minv = np.linalg.inv(M)
    A1 = WL @ WL.T
    A2 = (WL * lam) @ WL.T
    t = float(lam.sum() - np.sum(Minv * A1))
    MA = Minv @ A1
    t2 = float(lam @ lam - 2.0 * np.sum(Minv * A2) + np.sum(MA * MA.T))
    P = np.column_stack([m0, WL.T @ Minv])  # [mu, B]
    SP = lam[:, None] * P - WL.T @ (Minv @ (WL @ P))  # S P
    G = P.T @ P
    Hs = P.T @ SP
    Hs = 0.5 * (Hs + Hs.T)
    zeta = gen.standard_normal((draws, C)) @ np.linalg.cholesky(M).T
    iu, ju = np.triu_indices(C) if pairs is None else pairs
    a = (weight_fn or softmax_weights)(zeta + W @ m0, iu, ju)  # (draws, blocks)
    xi = np.column_stack([np.ones(draws), zeta])
    qG = np.einsum("ni,ij,nj->n", xi, G, xi)
    qH = np.einsum("ni,ij,nj->n", xi, Hs, xi)
    f1 = (t + qG) ** 2 + 2.0 * t2 + 4.0 * qH
    T1 = (a * a).T @ f1 / draws
    h = draws // 2
    K = C + 1
    nb = iu.size
    if route == "auto":
        route = "q" if nb * K * K <= h * (K + nb) else "kernel"
    s1, s2 = slice(0, h), slice(h, 2 * h)
    e1, e2 = a[s1].mean(axis=0), a[s2].mean(axis=0)
    h1, h2 = a[s1].T @ qH[s1] / h, a[s2].T @ qH[s2] / h
    if route == "q":
        R = []
        for sl in (s1, s2):
            X2 = (xi[sl][:, :, None] * xi[sl][:, None, :]).reshape(h, K * K)
            R.append((a[sl].T @ X2 / h).reshape(-1, K, K) @ G)
        quad = np.einsum("bij,bji->b", R[0], R[1])
    else:
        Ker = (xi[s1] @ G @ xi[s2].T) ** 2
        quad = np.einsum("nb,nb->b", a[s1], Ker @ a[s2]) / (h * h)
    T2 = t2 * e1 * e2 + e1 * h2 + e2 * h1 + quad
    vals = ((T1 / N if self_term else 0.0) + (N - 1) / N * T2) / d
    return blocks_from_pairs(vals, C, pairs)
