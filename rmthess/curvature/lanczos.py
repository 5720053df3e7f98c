"""Lanczos with full reorthogonalisation that stops at a residual tolerance (issue 21).

For ``k`` extreme eigenpairs of a symmetric operator ``A``: the Krylov basis ``Q_j`` (unit
start vector ``q_1``), ``A Q_j = Q_j T_j + beta_j q_{j+1} e_j^T`` with ``T_j`` tridiagonal; a
Ritz pair ``(theta, Q_j s)`` of ``T_j`` has the residual norm ``||A Q_j s - theta Q_j s|| =
beta_j |s_j|`` exactly (in exact arithmetic; full reorthogonalisation, two passes of
classical Gram-Schmidt, keeps the computed basis orthonormal to round-off, so the bound
holds to about ``eps ||A||``). The run stops after the first step at which every wanted Ritz
value has ``beta_j |s_j| <= tol |theta|``: no product is spent on residuals (ARPACK's route
measures them with ``k`` more). A breakdown (``beta_j ~ 0``: an invariant subspace) continues
from a fresh random vector orthogonal to the basis, so a low-rank or zero operator is
handled. Cost: one product per step, ``O(P j)`` per step for the reorthogonalisation; memory
``P (max_steps + 1)`` numbers. Where ``max_steps`` is reached first the caller falls back to
ARPACK (implicit restarts).

References: Golub & Van Loan, Matrix Computations (4th ed.), section 10.3 (the residual bound)
and 10.3.1 (complete reorthogonalisation).
"""

from __future__ import annotations

import numpy as np

from rmthess._random import rng

__all__ = ["lanczos_extreme"]


def _pick(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    if which == "LA":
        return np.argsort(-theta, kind="stable")[:k]
    if which == "SA":
        return np.argsort(theta, kind="stable")[:k]
    return np.argsort(-np.abs(theta), kind="stable")[:k]


def lanczos_extreme(
    matmat, P: int, k: int, which: str, tol: float, max_steps: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(theta, V, residuals, converged)``: the ``k`` wanted Ritz values (ordered as
    ``which``), their unit Ritz vectors ``V`` (P, k), the relative residual bounds
    ``beta_j |s_j| / max(|theta|, floor)`` and whether all are ``<= tol`` (module docstring).
    ``matmat(X)`` multiplies a float64 ``(P, 1)`` block."""
    gen = rng(seed)
    Q = np.empty((P, max_steps + 1))
    q = gen.standard_normal(P)
    Q[:, 0] = q / np.linalg.norm(q)
    alpha = np.zeros(max_steps)
    beta = np.zeros(max_steps)
    scale = 0.0
    theta = np.zeros(0)
    S = np.zeros((0, 0))
    res = np.zeros(0)
    for j in range(max_steps):
        w = matmat(Q[:, j : j + 1])[:, 0]
        alpha[j] = Q[:, j] @ w
        for _ in range(2):  # two passes of classical Gram-Schmidt against the whole basis
            w -= Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        b = float(np.linalg.norm(w))
        scale = max(scale, abs(alpha[j]), b)
        T = np.diag(alpha[: j + 1]) + np.diag(beta[:j], 1) + np.diag(beta[:j], -1)
        theta_all, S_all = np.linalg.eigh(T)
        idx = _pick(theta_all, min(k, j + 1), which)
        theta, S = theta_all[idx], S_all[:, idx]
        floor = P * np.finfo(float).eps * max(scale, float(np.abs(theta_all).max(initial=0.0)))
        res = b * np.abs(S[-1, :]) / np.maximum(np.abs(theta), max(floor, np.finfo(float).tiny))
        if j + 1 >= k and np.all(res <= tol):
            break
        if j + 1 == min(max_steps, P):
            break
        if b <= 16 * np.finfo(float).eps * max(scale, 1e-300):  # invariant subspace: restart
            q = gen.standard_normal(P)
            for _ in range(2):
                q -= Q[:, : j + 1] @ (Q[:, : j + 1].T @ q)
            Q[:, j + 1] = q / np.linalg.norm(q)
            beta[j] = 0.0
        else:
            Q[:, j + 1] = w / b
            beta[j] = b
    m = len(S)
    V = Q[:, :m] @ S
    V /= np.linalg.norm(V, axis=0, keepdims=True)
    return theta, V, res, bool(len(theta) == k and np.all(res <= tol))
