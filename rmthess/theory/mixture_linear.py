"""Frobenius norms of the linear model's Hessian blocks for Gaussian-mixture inputs whose
components are the classes (issue 19 item 4; docs/theory.md section 4, "Class-structured
inputs").

Inputs: ``n_k = pi_k N`` samples of component ``k`` (the data's own class counts), ``x | k ~
N(mu_k, Sigma_k)``, independent given their components. Blocks ``H_kl = (1/N) sum_i a_i x_i
x_i^T`` with ``a_i = A(z_i)[k, l]``, ``z_i = W x_i``: at init ``A(z) = diag(p) - p p^T``
(linear-ce) or ``I`` (linear-mse) does not depend on the label ``y_i``, so the labels enter
only as the partition of the samples into components (shuffling the labels of a data set
leaves its blocks unchanged; the mixture built from shuffled labels is the pooled Gaussian).
Summing over the pairs ``(i, j)`` by components,

    (1/d) E||H_kl||_F^2 = (1/(d N^2)) [ sum_k n_k D_k + sum_{k,l} n_k (n_l - delta_kl) P_kl ],
    D_k = E_k[a^2 |x|^4],   P_kl = E[a a' (x . x')^2],  x ~ component k, x' ~ component l.

**Exact at finite d** (:func:`mixture_block_expectations`, behind
``conditional_frobenius(..., inputs=)`` when the statistics carry class covariances). Given
``W`` and the component, ``x | z`` is Gaussian: mean ``m = P_k xi``, ``P_k = [mu_k, B_k]``,
``B_k = Sigma_k W^T M_k^{-1}``, ``M_k = W Sigma_k W^T``, ``xi = (1, z - W mu_k)``, covariance
``S_k = Sigma_k - Sigma_k W^T M_k^{-1} W Sigma_k``. Then ``D_k`` is the one-Gaussian term
(:mod:`rmthess.theory.aniso_linear`) of component ``k`` and, for independent ``x | z ~ N(m,
S_k)``, ``x' | z' ~ N(m', S_l)``,

    E[(x . x')^2 | z, z'] = tr(S_k S_l) + m^T S_l m + m'^T S_k m' + (m . m')^2,

so with ``Q_k = E_k[a xi xi^T]`` ((C+1) x (C+1)), ``e_k = E_k[a]`` and ``G_kl = P_k^T P_l``:

    P_kl = tr(S_k S_l) e_k e_l + e_l tr(Q_k P_k^T S_l P_k) + e_k tr(Q_l P_l^T S_k P_l)
           + tr(Q_k G_kl Q_l G_kl^T).

The ``C``-dim averages over ``z ~ N(W mu_k, M_k)`` are Monte Carlo, two independent halves
per component (the products take one factor from each: unbiased), averaged over networks.
Components of any rank are allowed (``M_k^+`` where ``M_k`` is singular; a point mass
``Sigma_k = 0`` is a sample of its own: with one point mass per sample the route is the
average over ``W`` of the data set's own blocks).

**Limit** ``d_eff -> inf`` (:func:`mixture_linear_limits`, behind ``frobenius_limits(...,
inputs=)``). Per logit ``c`` the pair ``(z_c, z'_c)`` of two samples of components ``k, l``
is bivariate normal (independent over ``c``), variances ``s_k^2 = sigma^2 v_k``, ``v_k = tau_1k +
|mu_k|^2/d``, covariance ``sigma^2 mu_k . mu_l / d`` (the offsets ``W mu_k`` are shared by
a component and correlated across components through the class means), ``|x|^4/d^2 -> v_k^2``
and, decoupling as in the mean-aware limit,

    F = gamma sum_k pi_k v_k^2 E_k[a^2] + sum_{k,l} pi_k pi_l R_kl E_kl[a a'],
    R_kl = E(x . x')^2 / d = tr((Sigma_k + mu_k mu_k^T)(Sigma_l + mu_l mu_l^T)) / d,

``E_k[a^2]`` the isotropic moment at logit scale ``s_k`` and ``E_kl[a a']`` the correlated
pair integrals of :func:`rmthess.theory.ce_inner.output_inner` at scales ``(s_k, s_l)`` and
correlation ``rho_kl = (mu_k . mu_l / d) / sqrt(v_k v_l)``. One component: the mean-aware
limit. Neglected: relative ``O(C / d_eff)`` with ``d_eff`` the smallest within-class one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rmthess.theory.block_pairs import blocks_from_pairs

if TYPE_CHECKING:
    from collections.abc import Callable

    from rmthess.theory.inputs import InputStats

__all__ = [
    "check_mixture",
    "components",
    "data_self_term",
    "mixture_block_expectations",
    "mixture_linear_asymptotic",
    "mixture_linear_limits",
]


def check_mixture(weights, means, covariances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pi, mu, Sigma)`` as float arrays of shapes ``(K,), (K, d), (K, d, d)``, ``pi``
    normalised; ``ValueError`` naming the bad argument."""
    arrs = []
    for name, v, nd in (
        ("weights", weights, 1),
        ("means", means, 2),
        ("covariances", covariances, 3),
    ):
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of numbers: {exc}") from None
        if a.ndim != nd or a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(
                f"{name} must be a finite, non-empty {nd}-D array, got shape {a.shape}"
            )
        arrs.append(a)
    w, mus, covs = arrs
    K, d = mus.shape
    if w.shape != (K,):
        raise ValueError(f"weights must have shape ({K},) like means' {K} rows, got {w.shape}")
    if covs.shape != (K, d, d):
        raise ValueError(f"covariances must have shape ({K}, {d}, {d}), got {covs.shape}")
    if w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {w}")
    if not np.allclose(covs, covs.transpose(0, 2, 1), rtol=1e-10, atol=0):
        raise ValueError("covariances must be symmetric")
    for k in range(K):
        lam = np.linalg.eigvalsh(covs[k])
        if lam.min() < -1e-9 * max(lam.max(), 0.0):
            raise ValueError(
                f"covariances[{k}] must be positive semi-definite, got eigenvalues in "
                f"[{lam.min():.3g}, {lam.max():.3g}]"
            )
    return w / w.sum(), mus, covs


def components(stats: InputStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pi, mu, Sigma)`` of the components with positive weight (empty classes dropped)."""
    assert stats.class_covariances is not None
    assert stats.class_weights is not None and stats.class_means is not None
    keep = stats.class_weights > 0
    return (
        np.asarray(stats.class_weights[keep]),
        np.asarray(stats.class_means[keep]),
        np.asarray(stats.class_covariances[keep]),
    )


def _pair_stats(stats: InputStats):
    """``pi, v_k, G_kl = mu_k . mu_l / d, R_kl`` of the limit (module docstring)."""
    w, mus, covs = components(stats)
    d = stats.d
    M2 = covs + mus[:, :, None] * mus[:, None, :]
    R = np.einsum("kij,lij->kl", M2, M2) / d
    G = mus @ mus.T / d
    v = np.einsum("kii->k", covs) / d + np.diag(G)
    return w, v, G, R


def mixture_linear_limits(case: str, C: int, gamma: float, sigma: float, stats: InputStats) -> dict:
    """Fields ``F_diag, F_off, ratio, ratio_se`` of the mixture limit (module docstring)."""
    w, v, G, R = _pair_stats(stats)
    if case == "linear-mse":
        Fd = gamma * float(w @ v**2) + float(w @ R @ w)
        return dict(F_diag=Fd, F_off=0.0, ratio=0.0, ratio_se=0.0)
    from rmthess.theory.ce_inner import output_inner
    from rmthess.theory.frobenius import QUADRATURE_MAX_C
    from rmthess.theory.softmax_moments import SIGMA_MAX, softmax_moments

    s = sigma * np.sqrt(v)
    if s.max() > SIGMA_MAX:
        raise ValueError(
            f"inputs give logits of scale sigma sqrt(tau_1k + |mu_k|^2/d) up to {s.max():.3g} > "
            f"{SIGMA_MAX:g} (the softmax is one-hot and the quadrature tables do not reach): "
            "rescale the data"
        )
    if C > QUADRATURE_MAX_C:
        raise ValueError(
            f"C must be <= {QUADRATURE_MAX_C:.0e} for mixture inputs (the correlated pair "
            f"quadrature), got {C}"
        )
    K = w.size
    Fd = Fo = 0.0
    for k in range(K):
        mom = softmax_moments(C, sigma=float(s[k]))
        e2, e3, e4 = (float(mom.p[n]) for n in (2, 3, 4))
        q = gamma * w[k] * v[k] ** 2
        Fd += q * (e2 - 2.0 * e3 + e4)
        Fo += q * float(mom.pp[2])
    for k in range(K):
        for j in range(k, K):
            rho = float(np.clip(G[k, j] / math.sqrt(v[k] * v[j]), -1.0, 1.0))
            I2, I3 = output_inner(float(s[k]), float(s[j]), rho, float(C))
            wt = (1.0 if j == k else 2.0) * w[k] * w[j] * R[k, j]
            Fd += wt * ((C - 1) * I2 + (C - 1) * (C - 2) * I3)
            Fo += wt * I2
    return dict(F_diag=Fd, F_off=Fo, ratio=math.sqrt(Fo / Fd), ratio_se=0.0)


def mixture_linear_asymptotic(
    case: str, gamma: float, sigma: float, stats: InputStats
) -> tuple[float, float, float, float]:
    """Large-C constants ``(A_diag, p_diag, A_off, p_off)`` of the mixture limit: as in the
    one-Gaussian case ``C^2 E_k[a^2] -> e^{s_k^2}``, ``C^4 E_k[a_off^2] -> e^{2 s_k^2}``,
    and the pair factors keep the offset covariance ``sigma^2 G_kl``:

        A_diag = sum_kl pi_k pi_l R_kl e^{sigma^2 G_kl} + gamma sum_k pi_k v_k^2 e^{s_k^2},
        A_off  = sum_kl pi_k pi_l R_kl e^{2 sigma^2 G_kl} + gamma sum_k pi_k v_k^2 e^{2 s_k^2}.

    linear-mse: ``A_diag = gamma sum pi_k v_k^2 + sum pi_k pi_l R_kl``, ``p_diag = 0``."""
    w, v, G, R = _pair_stats(stats)
    if case == "linear-mse":
        return (gamma * float(w @ v**2) + float(w @ R @ w), 0.0, 0.0, math.inf)
    s2 = sigma * sigma * v
    b2 = sigma * sigma * G
    if 2 * max(s2.max(), b2.max()) > 700:
        return (math.inf, 2.0, math.inf, 4.0)
    WR = w[:, None] * w[None, :] * R
    A_diag = float(np.sum(WR * np.exp(b2))) + gamma * float(w @ (v**2 * np.exp(s2)))
    A_off = float(np.sum(WR * np.exp(2 * b2))) + gamma * float(w @ (v**2 * np.exp(2 * s2)))
    return (A_diag, 2.0, A_off, 4.0)


SELF_GRID = 48
"""Nodes (in ``log s``) of the spline through the per-sample self moments of
:func:`data_self_term`."""


def data_self_term(case: str, C: int, sq_norms: np.ndarray, N: int, d: int, sigma: float):
    """``(F_diag, F_off)`` parts of the ``i = j`` terms, exact over ``W`` for any inputs with
    these sample norms ``q_i = |x_i|^2 / d``: ``z_i = W x_i ~ N(0, sigma^2 q_i I_C)`` given
    ``x_i``, so

        F_self = (1/(d N^2)) sum_i |x_i|^4 E[a^2](sigma sqrt(q_i)) = (d/N) mean_i q_i^2 m2(s_i)

    with ``m2`` the isotropic self moment at logit scale ``s_i`` (``(C-1) I2 + (C-1)(C-2) I3``
    diagonal, ``I2`` off-diagonal, of :func:`rmthess.theory.ce_inner.output_inner` at
    correlation 1; exact to ~1e-10, any scale), taken on :data:`SELF_GRID` nodes in ``log
    s`` and a cubic spline (relative error < 1e-6). The mean is over the norm law: ``N`` is the
    size of the data set the blocks are taken over."""
    q = np.asarray(sq_norms, dtype=np.float64)
    scale = d / N
    if case == "linear-mse":
        return scale * float(np.mean(q * q)), 0.0
    from scipy.interpolate import CubicSpline

    from rmthess.theory.ce_inner import output_inner

    s = sigma * np.sqrt(np.maximum(q, 1e-300))
    lo, hi = math.log(max(s.min(), 1e-3)), math.log(max(s.max(), 1e-3))
    if hi - lo < 1e-9:
        grid = np.array([lo])
    else:
        grid = lo + (hi - lo) * 0.5 * (1 - np.cos(np.pi * np.arange(SELF_GRID) / (SELF_GRID - 1)))
    m = np.array([output_inner(math.exp(g), math.exp(g), 1.0, float(C)) for g in grid])
    md = np.log((C - 1) * m[:, 0] + (C - 1) * (C - 2) * m[:, 1])
    mo = np.log(m[:, 0])
    ls = np.log(np.maximum(s, 1e-3))
    if grid.size == 1:
        vd, vo = np.full(q.size, md[0]), np.full(q.size, mo[0])
    else:
        vd, vo = CubicSpline(grid, md)(ls), CubicSpline(grid, mo)(ls)
    return scale * float(np.mean(q * q * np.exp(vd))), scale * float(np.mean(q * q * np.exp(vo)))


def mixture_mse_exact(stats: InputStats, N: int, self_term: bool = True) -> float:
    """linear-mse ``F_diag`` at finite ``d, N`` (closed form, module docstring; the pairs
    ``i != j`` only with ``self_term=False``)."""
    w, mus, covs = components(stats)
    n = w * N
    d = stats.d
    t1 = np.einsum("kii->k", covs)
    t2 = np.einsum("kij,kij->k", covs, covs)
    msq = np.sum(mus**2, axis=1)
    mcov = np.einsum("ki,kij,kj->k", mus, covs, mus)
    four = (t1 + msq) ** 2 + 2.0 * t2 + 4.0 * mcov
    M2 = covs + mus[:, :, None] * mus[:, None, :]
    R = np.einsum("kij,lij->kl", M2, M2)
    pairs = n[:, None] * (n[None, :] - np.eye(n.size))
    return float(((n @ four if self_term else 0.0) + np.sum(pairs * R)) / (d * N * N))


def _inverse_and_factor(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(M^{-1}, L)`` with ``L L^T = M`` (Cholesky) for a well-conditioned ``M``; for a
    singular one (a component of rank ``< C``, or a point mass) the pseudo-inverse and the
    eigen-factor: Gaussian conditioning holds with ``M^+`` since ``z - b`` lies in the range
    of ``M``."""
    w, V = np.linalg.eigh(M)
    top = max(float(w[-1]), 0.0)
    if top > 0 and w[0] > 1e-10 * top:
        return np.linalg.inv(M), np.linalg.cholesky(M)
    keep = w > 1e-10 * top if top > 0 else np.zeros(w.size, dtype=bool)
    Vk = V[:, keep]
    return (Vk / w[keep]) @ Vk.T, V * np.sqrt(np.where(keep, w, 0.0))


def mixture_block_expectations(
    W: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    N: int,
    draws: int,
    gen: np.random.Generator,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    self_term: bool = True,
    weight_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``E_x[(1/d)||H_kl||_F^2 | W]`` for linear-ce with mixture inputs (module docstring),
    ``n_k = weights_k N``, by ``draws`` logit draws per component (two halves): the ``(C,
    C)`` array, or the values at ``pairs = (rows, cols)``. ``W`` in the input coordinates.
    ``self_term=False``: the ``i != j`` pairs only. ``weight_fn``: the block weights of the
    draws ``z = W x`` (:func:`rmthess.theory.aniso_linear.block_expectations`)."""
    from rmthess.theory.block_pairs import softmax_weights

    weight_fn = weight_fn or softmax_weights
    C, d = W.shape
    K = weights.size
    h = draws // 2
    iu, ju = np.triu_indices(C) if pairs is None else pairs
    n = weights * N
    T1 = np.zeros(iu.size)
    Ps, Ss, e, Q = [], [], [], []
    for k in range(K):
        WS = W @ covs[k]
        M = WS @ W.T
        Minv, L = _inverse_and_factor(0.5 * (M + M.T))
        S = covs[k] - WS.T @ Minv @ WS
        S = 0.5 * (S + S.T)
        P = np.column_stack([means[k], WS.T @ Minv])
        zeta = gen.standard_normal((draws, C)) @ L.T
        a = weight_fn(zeta + W @ means[k], iu, ju)
        xi = np.column_stack([np.ones(draws), zeta])
        G = P.T @ P
        H = P.T @ S @ P
        qG = np.einsum("ni,ij,nj->n", xi, G, xi)
        qH = np.einsum("ni,ij,nj->n", xi, H, xi)
        f1 = (np.trace(S) + qG) ** 2 + 2.0 * np.sum(S * S) + 4.0 * qH
        T1 += n[k] * ((a * a).T @ f1) / draws
        halves = []
        for sl in (slice(0, h), slice(h, 2 * h)):
            X2 = (xi[sl][:, :, None] * xi[sl][:, None, :]).reshape(h, -1)
            halves.append((a[sl].T @ X2 / h).reshape(-1, C + 1, C + 1))
        Ps.append(P)
        Ss.append(S)
        e.append((a[:h].mean(axis=0), a[h:].mean(axis=0)))
        Q.append(halves)
    T2 = np.zeros(iu.size)
    for k in range(K):
        for j in range(K):
            wt = n[k] * (n[j] - (1.0 if j == k else 0.0))
            if wt == 0.0:
                continue
            Pk, Pj = Ps[k], Ps[j]
            ek, ej = e[k][0], e[j][1]
            Qk, Qj = Q[k][0], Q[j][1]
            Hkj = Pk.T @ Ss[j] @ Pk
            Hjk = Pj.T @ Ss[k] @ Pj
            Gkj = Pk.T @ Pj
            quad = np.einsum("bij,jk,bkl,il->b", Qk, Gkj, Qj, Gkj, optimize=True)
            val = (
                np.sum(Ss[k] * Ss[j]) * ek * ej
                + ej * np.einsum("bij,ij->b", Qk, Hkj)
                + ek * np.einsum("bij,ij->b", Qj, Hjk)
                + quad
            )
            T2 += wt * val
    vals = ((T1 if self_term else 0.0) + T2) / (d * N * N)
    return blocks_from_pairs(vals, C, pairs)
