"""Matrix-valued generalized Marchenko-Pastur (GMP) equation: whole-layer limiting spectra.

A whole layer's Hessian stacks its ``K x K`` blocks (``K = C`` classes or ``m`` hidden units):

    H = (1/N) sum_i A_i (x) x_i x_i^T          (``Kd x Kd``, docs/theory.md section 9.1)

with symmetric ``K x K`` weight matrices ``A_i ~ nu`` independent of ``x_i ~ N(0, I_d)`` and
``gamma = d/N``. Its resolvent is asymptotically ``G(z) (x) I_d``, where the ``K x K``
matrix ``G(z)`` is the unique solution with ``Im G = (G - G^*)/2i`` positive definite
(``z`` in ``C+``) of

    G = ( -z I + E_nu[ A (I + gamma G A)^{-1} ] )^{-1},                       (MGMP)

and the Stieltjes transform of the layer's spectral law is ``s(z) = tr G(z) / K``.

Method
------
* **Uniqueness and the branch.** For ``Im z > 0`` the map ``F(G)`` (right side of (MGMP))
  sends the Siegel upper half plane ``{Im G > 0}`` holomorphically into
  ``{Im G >= eta |F|^2-ish > 0, ||G|| <= 1/Im z}``: ``A (I + gamma G A)^{-1}
  = (A^{-1} + gamma G)^{-1}`` (by continuity for singular ``A``) has ``Im <= 0``, so
  ``Im F(G)^{-1} <= -Im z``. ``F`` maps a bounded domain strictly inside itself, so by the
  Earle-Hamilton fixed-point theorem (as in Helton, Far and Speicher, IMRN 2007, for the
  operator-valued semicircle) it has exactly one fixed point there, the limit of the iterates
  from any start. Every solution with ``Im G > 0`` lies in that domain, so *any* root with
  ``Im G > 0`` found by Newton is the right one; the solver checks ``Im G >= 0`` on every
  iterate (damping the step otherwise).
* **Newton** on ``Phi(G) = -z I + E[T] - G^{-1}``, ``T = A (I + gamma G A)^{-1}``, with the
  exact Jacobian ``dPhi[D] = G^{-1} D G^{-1} - gamma E[T D T]`` (a ``K^2 x K^2`` matrix,
  ``G^{-1} (x) G^{-1} - gamma E[T (x) T]``, the second term one matrix product of the
  ``n x K^2`` array of ``vec T``).
* **Down to the real axis.** Points ``z = x + i eta`` are reached by an ``eta`` ladder from
  ``eta0 ~ 4 (1 + gamma)`` (where ``G ~ -I/z``) down to the target, Newton at each rung from
  the previous one (vectorised over points). The boundary value ``G(x + i0)`` is then
  continued along the sorted grid at ``eta = 0`` (predictor: the previous point, kicked into
  ``C+``) and accepted if (a) ``Im G >= 0`` with a nonzero imaginary part (inside the
  support: boundary value of the certified branch), or (b) ``G`` is real with
  ``dG/dx = J^{-1} vec I`` positive semidefinite (outside: the resolvent of a matrix-valued
  measure is increasing in ``x``; the matrix form of the Silverstein-Choi criterion
  ``Z'(s) > 0`` used by the scalar solver). Otherwise the point is re-solved by the ladder to
  ``eta = 1e-10`` (relative) and Newton at ``eta = 0`` from there; if that fails too the
  small-``eta`` value is returned with flag 2.
* **Low rank.** Atoms are factored once, ``A = Q Lambda Q^T`` with their nonzero
  eigenvalues only (rank ``r <= K``), and ``T = Q Lambda (I + gamma Q^T G Q Lambda)^{-1}
  Q^T``: the hidden-layer weights have rank ``<= C`` while ``K = m``.
* **Exact reductions.** Diagonal atoms (``K = 1`` included) split (MGMP) into ``K`` scalar
  GMP equations: :func:`matrix_gmp_stieltjes` then calls the scalar solver
  (:mod:`rmthess.theory.gmp`) for each diagonal entry, bit-for-bit.

Cost (``n`` atoms of rank ``r``, ``K x K``): one Newton step at one point costs
``O(n (K^2 r + K r^2 + r^3))`` for ``E[T]`` plus ``O(n K^4)`` for the Jacobian (one complex
matrix product, BLAS) and ``O(K^6)`` for its solve; about 3 steps per point on the grid, 40-60
for a ladder. Measured in BENCHMARKS.md.

Accuracy: Newton stops at a relative step ``<= 1e-10`` (plus one step); the density is
accurate to ~1e-10 relative away from the edges (checked against the scalar solver, the
eta ladder, and simulation in ``tests/theory/test_matrix_gmp.py``); near a square-root edge the
conditioning limit is ``~ eps / sqrt(distance)`` as for the scalar solver. This is the
*solver* error, for the given atoms. When the atoms are draws from a continuous law
(:mod:`rmthess.theory.layer_laws`), the *discretisation* error against that law is far
larger and dominates: ``rmthess bench layer`` measured, for the linear-ce layer law
against 2^16 draws, Linf 0.15 density units at 1000 draws and 0.013 at 4096 (0.016 and
0.002 in the interior; solver error 3.5e-13 on the same 1000-atom law).
Points the solver cannot certify (flag 2, e.g. ``0 < |x| < 1e-10`` of the atom scale) get
density ``nan`` from :func:`matrix_gmp_density`, never an untrusted number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rmthess._checks import check_positive_float
from rmthess.theory.gmp import _as_array, check_gamma_range, gmp_stieltjes

__all__ = [
    "check_matrix_law",
    "matrix_gmp_density",
    "matrix_gmp_stieltjes",
    "matrix_gmp_zero_mass",
]

_SYM_TOL = 1e-10  # relative asymmetry accepted in the atoms (then symmetrised)
_WEIGHT_TOL = 1e-9
_CHUNK = 4_000_000  # complex entries of the (points, atoms, K, K) work arrays per chunk


# ------------------------------------------------------------------------------ input checks
def check_matrix_law(atoms, weights, gamma):
    """Validate a law of symmetric matrices; return ``(atoms (n,K,K), weights (n,), gamma)``.

    ``atoms``: real array of shape ``(n, K, K)`` (or ``(K, K)`` for one atom), finite,
    symmetric to ``1e-10`` relative (then symmetrised exactly); ``weights``: ``n`` finite
    values ``>= 0`` summing to 1 within ``1e-9``; ``gamma``: float in ``GAMMA_RANGE``.
    """
    gamma = check_gamma_range(check_positive_float("gamma", gamma))
    a = _as_array("atoms", atoms, np.float64, "real")
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"atoms must have shape (n, K, K) with n, K >= 1, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("atoms must be finite")
    amax = float(np.abs(a).max())
    asym = float(np.abs(a - a.transpose(0, 2, 1)).max())
    if asym > _SYM_TOL * max(amax, 1e-300):
        raise ValueError(f"atoms must be symmetric matrices (max |A - A^T| = {asym:.3g})")
    if amax > 1e150 or 0.0 < amax < 1e-150:
        raise ValueError(f"max |atom entry| must be in [1e-150, 1e150] (or 0), got {amax:g}")
    w = np.atleast_1d(_as_array("weights", weights, np.float64, "real"))
    if w.shape != (a.shape[0],):
        raise ValueError(f"weights must have shape ({a.shape[0]},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    if abs(float(w.sum()) - 1.0) > _WEIGHT_TOL:
        raise ValueError(f"weights must sum to 1 (within {_WEIGHT_TOL:g}), got {w.sum()!r}")
    return 0.5 * (a + a.transpose(0, 2, 1)), w / w.sum(), gamma


def _is_diagonal(a: np.ndarray) -> bool:
    K = a.shape[1]
    return K == 1 or not np.any(a[:, ~np.eye(K, dtype=bool)])


class _Factored:
    """Atoms factored once: ``A_j / scale = Q_j diag(lam_j) Q_j^T`` (nonzero eigenvalues)."""

    def __init__(self, a, w, gamma):
        lam, Q = np.linalg.eigh(a)
        self.K = a.shape[1]
        self.scale = float(np.abs(lam).max()) or 1.0
        tol = 1e-12 * self.scale
        nz = np.abs(lam) > tol
        self.ranks = nz.sum(axis=1)
        keep = (self.ranks > 0) & (w > 0)
        lam, Q, nz, self.w = lam[keep], Q[keep], nz[keep], w[keep]
        r = int(self.ranks.max()) if self.ranks.size else 0
        order = np.argsort(-np.abs(lam), axis=1, kind="stable")[:, :r]
        self.lam = np.take_along_axis(lam, order, axis=1) / self.scale
        self.lam[~np.take_along_axis(nz, order, axis=1)] = 0.0
        self.Q = np.take_along_axis(Q, order[:, None, :], axis=2)
        self.gamma = gamma
        self.mean_rank = float(np.dot(w, self.ranks))  # E[rank A] over all atoms
        # common kernel of all atoms: null space of sum_j w_j A_j^2 (PSD)
        S = np.einsum("n,nij,njk->ik", w, a, a) / self.scale**2
        ev = np.linalg.eigvalsh(S)
        self.k0 = int(np.sum(ev <= 1e-12 * max(ev.max(), 1e-300)))

    def expect_T(self, G, jac):
        """``E[T]`` (nz, K, K) and, if ``jac``, ``E[T (x) T]`` (nz, K^2, K^2) at ``G``."""
        Q, lam, w, g, K = self.Q, self.lam, self.w, self.gamma, self.K
        nz = G.shape[0]
        if lam.shape[0] == 0:
            zero = np.zeros((nz, K, K), complex)
            return zero, (np.zeros((nz, K * K, K * K), complex) if jac else None)
        r = lam.shape[1]
        QT = Q.transpose(0, 2, 1)
        B = QT[None] @ G[:, None] @ Q[None]  # (nz, n, r, r)
        M = np.eye(r) + g * lam[None, :, :, None] * B
        Lam = lam[:, :, None] * np.eye(r)  # (n, r, r)
        Km = _solve_lin(M, np.broadcast_to(Lam, M.shape))
        T = Q[None] @ Km @ QT[None]  # (nz, n, K, K)
        ET = np.einsum("n,znij->zij", w, T)
        if not jac:
            return ET, None
        Y = T.reshape(nz, -1, K * K)
        P = (Y.transpose(0, 2, 1) * w) @ Y  # P[(a,c),(b,d)] = E T_ac T_bd
        J = P.reshape(nz, K, K, K, K).transpose(0, 1, 3, 2, 4).reshape(nz, K * K, K * K)
        return ET, J


# ---------------------------------------------------------------------------------- Newton
def _solve_lin(M, B):
    """Batched ``M^{-1} B``; an exactly singular ``M`` (possible on the real axis for signed
    atoms) gets the pseudo-inverse instead: Newton then rejects or damps that iterate."""
    with np.errstate(all="ignore"):
        try:
            return np.linalg.solve(M, B)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(M) @ B


def _imag_min(G):
    """Smallest and largest eigenvalue of ``Im G = (G - G^*)/2i`` per point, relative to
    ``max |G|`` (``-inf, inf`` for a non-finite ``G``: never accepted)."""
    ok = np.isfinite(G).all(axis=(1, 2))
    H = (G - np.conj(G.transpose(0, 2, 1))) / 2j
    ev = np.linalg.eigvalsh(np.where(ok[:, None, None], H, 0.0))
    with np.errstate(all="ignore"):
        nrm = np.abs(np.where(ok[:, None, None], G, 0.0)).max(axis=(1, 2)) + 1e-300
    return np.where(ok, ev[:, 0] / nrm, -np.inf), np.where(ok, ev[:, -1] / nrm, np.inf)


def _newton(fac, z, G, maxit=60, tol=1e-10):
    """Damped Newton for (MGMP) at points ``z`` (nz,) from ``G`` (nz, K, K), vectorised;
    each step is halved until ``Im G`` stays positive semidefinite.

    Converged: a full step of relative size ``<= tol``, then one more step (quadratic
    convergence takes a ``1e-10`` step to round-off), and the residual ``|Phi(G) G|`` is
    below ``1e-8``. Returns ``(G, converged, J)``; ``J`` the last Jacobian (for
    ``dG/dx``). Non-finite iterates are rejected (not converged), not warned about."""
    K, g = fac.K, fac.gamma
    eye = np.eye(K)
    G = G.copy()
    done = np.zeros(z.size, bool)
    extra = np.zeros(z.size, bool)  # one more step after the tolerance is met
    Jlast = np.zeros((z.size, K * K, K * K), complex)
    with np.errstate(all="ignore"):
        for _ in range(maxit):
            act = ~done
            if not act.any():
                break
            Ga = G[act]
            Ginv = _solve_lin(Ga, np.broadcast_to(eye, Ga.shape))
            ET, Js = fac.expect_T(Ga, True)
            Phi = -z[act, None, None] * eye + ET - Ginv
            J = np.einsum("zac,zbd->zabcd", Ginv, Ginv).reshape(-1, K * K, K * K) - g * Js
            Jlast[act] = J
            D = _solve_lin(J, -Phi.reshape(-1, K * K, 1)).reshape(-1, K, K)
            D = 0.5 * (D + D.transpose(0, 2, 1))
            D[~np.isfinite(D)] = 0.0
            step = np.ones(Ga.shape[0])
            for _h in range(30):
                lo, _ = _imag_min(Ga + step[:, None, None] * D)
                bad = lo < -1e-13
                if not bad.any():
                    break
                step[bad] *= 0.5
            Gn = Ga + step[:, None, None] * D
            rel = np.abs(step[:, None, None] * D).max(axis=(1, 2)) / np.abs(Gn).max(axis=(1, 2))
            G[act] = Gn
            idx = np.flatnonzero(act)
            small = (rel <= tol) & (step == 1.0)
            done[idx[small & extra[idx]]] = True
            extra[idx[small]] = True
        if done.any():  # a small step is not enough (a diverging G makes every step small)
            ET, _ = fac.expect_T(G[done], False)
            res = (-z[done, None, None] * eye + ET) @ G[done] - eye  # Phi G, dimensionless
            bad = np.flatnonzero(done)[~(np.abs(res).max(axis=(1, 2)) <= 1e-8)]
            done[bad] = False
    return G, done, Jlast


def _eta0(gamma):
    return 4.0 * (1.0 + gamma)


def _ladder(fac, x, eta_end):
    """Certified ``G(x + i eta_end)`` by an eta ladder, vectorised over ``x`` (rescaled
    units; ``eta_end`` a scalar or one value per point)."""
    eta_end = np.broadcast_to(np.asarray(eta_end, float), x.shape)
    eta = np.maximum(_eta0(fac.gamma) * (1.0 + np.abs(x)), eta_end)
    z = x + 1j * eta
    G = -np.eye(fac.K)[None] / z[:, None, None]
    ok = np.ones(x.size, bool)
    while True:
        G, conv, _ = _newton(fac, z, G)
        ok &= conv
        if np.all(eta <= eta_end):
            return G, ok
        eta = np.maximum(eta * 0.2, eta_end)
        z = x + 1j * eta


def _real_ok(G, J, K):
    """Classify ``G(x + i0)``: ``(accepted, outside)``.

    Both need the spectral radius of ``L = gamma (G (x) G) E[T (x) T] = I - (G (x) G) J``
    (the derivative of the fixed-point map at ``G``) to be ``<= 1``: for ``Im z > 0`` the
    map is a strict contraction of the Caratheodory metric, so ``rho(L) < 1`` on the
    certified branch and ``<= 1`` in its limit; continuation onto another root of (MGMP)
    with ``Im G >= 0`` gave ``rho(L) = 34`` and ``1177`` in the tests. Inside: ``Im G >= 0``
    with a part above ``1e-7 |G|`` (at ``1e-14`` relative from a square-root edge ``Im G`` is
    still ``~3e-7 |G|``). Outside: ``G`` real to ``1e-7 |G|`` with ``dG/dx = J^{-1} vec I``
    PSD (then the imaginary round-off is dropped: the density is exactly 0 there)."""
    n = G.shape[0]
    finite = np.isfinite(G).all(axis=(1, 2)) & np.isfinite(J).all(axis=(1, 2))
    if not finite.all():
        G, J = np.where(finite[:, None, None], G, 1.0), np.where(finite[:, None, None], J, 1.0)
    lo, hi = _imag_min(G)
    with np.errstate(all="ignore"):
        L = np.eye(K * K) - np.einsum("zac,zbd->zabcd", G, G).reshape(n, K * K, K * K) @ J
        finite &= np.isfinite(L).all(axis=(1, 2))
        L = np.where(finite[:, None, None], L, 0.0)
        rho = np.where(finite, np.abs(np.linalg.eigvals(L)).max(axis=1), np.inf)
    branch = rho <= 1.0 + 1e-6
    inside = (lo >= -1e-10) & (hi > 1e-7) & branch
    with np.errstate(all="ignore"):
        try:
            dG = np.linalg.solve(J, np.eye(K).reshape(1, K * K, 1).repeat(n, 0))
        except np.linalg.LinAlgError:
            return inside, np.zeros_like(inside)
    dG = dG.reshape(-1, K, K).real
    dG = 0.5 * (dG + dG.transpose(0, 2, 1))
    okd = np.isfinite(dG).all(axis=(1, 2))
    ev = np.linalg.eigvalsh(np.where(okd[:, None, None], dG, 0.0))
    ev[~okd] = -np.inf
    outside = (hi <= 1e-7) & (lo >= -1e-7) & (ev[:, 0] >= -1e-8 * np.abs(ev).max(1)) & branch
    return inside | outside, outside & ~inside


def _solve_real(fac, x):
    """``G(x + i0)`` (rescaled units) for sorted real ``x``; flags 0/1/2 as documented."""
    K = fac.K
    n = x.size
    G = np.empty((n, K, K), complex)
    flags = np.zeros(n, np.int64)
    hist = []  # accepted solutions of the last points (for the predictor)
    for i in range(n):
        zi = np.array([x[i] + 0j])
        ok = False
        if hist:
            G0 = hist[-1][1]
            if len(hist) == 2:  # linear extrapolation in x from the last two points
                (x1, G1), (x2, G2) = hist
                G0 = G2 + (G2 - G1) * ((x[i] - x2) / (x2 - x1)) if x2 > x1 else G2
            if _imag_min(G0[None])[1][0] <= 1e-9:  # real predictor: kick it into C+
                G0 = G0 + 1e-3j * np.abs(G0).max() * np.eye(K)
            Gi, conv, J = _newton(fac, zi, G0[None], maxit=30)
            acc, out = _real_ok(Gi, J, K)
            ok = bool(conv[0] and acc[0])
        if not ok:
            Gl, _ = _ladder(fac, np.array([x[i]]), 1e-10)
            Gi, conv, J = _newton(fac, zi, Gl, maxit=30)
            acc, out = _real_ok(Gi, J, K)
            ok = bool(conv[0] and acc[0])
            flags[i] = 1 if ok else 2
            if not ok:
                Gi = Gl
        if ok and out[0]:
            Gi = Gi.real + 0j
        G[i] = Gi[0]
        hist = (hist + [(x[i], Gi[0])])[-2:] if ok else []
    return G, flags


def _solve_real_each(fac, x):
    """``G(x + i0)`` (original units) and flags (1 certified, 2 not) for real ``x`` (1-D),
    each point by its own eta ladder and Newton at ``eta = 0`` (no continuation), vectorised
    over the points: for scattered points (the bisection of several support edges at once)
    where continuation along a grid does not apply."""
    xs = x / fac.scale
    xs = np.where(xs == 0.0, 1e-9, xs)
    Gl, _ = _ladder(fac, xs, 1e-10)
    Gi, conv, J = _newton(fac, xs + 0j, Gl, maxit=30)
    acc, out = _real_ok(Gi, J, fac.K)
    ok = conv & acc
    Gi = np.where(out[:, None, None], Gi.real + 0j, Gi)
    G = np.where(ok[:, None, None], Gi, Gl)
    return G / fac.scale, np.where(ok, 1, 2).astype(np.int64)


def _chunks(n_points, fac):
    per = max(1, _CHUNK // max(1, fac.lam.shape[0] * fac.K * fac.K))
    return range(0, n_points, per), per


def _solve(fac, z):
    """``G(z)`` (original units) and flags for a 1-D complex array ``z``."""
    out = np.empty((z.size, fac.K, fac.K), complex)
    flags = np.zeros(z.size, np.int64)
    zn = z / fac.scale
    real = zn.imag == 0.0
    if np.any(real):
        idx = np.flatnonzero(real)
        order = idx[np.argsort(zn.real[idx], kind="stable")]
        xs = zn.real[order].copy()
        xs[xs == 0.0] = 1e-9  # the atom at 0: evaluate the continuous part at 0+
        G, f = _solve_real(fac, xs)
        out[order], flags[order] = G, f
    for sign in (1.0, -1.0):
        sel = np.flatnonzero(~real & (sign * zn.imag > 0))
        starts, per = _chunks(sel.size, fac)
        for s0 in starts:
            part = sel[s0 : s0 + per]
            zp = zn[part]
            eta = np.abs(zp.imag)
            Gl, ok = _ladder(fac, zp.real, eta)
            out[part] = Gl if sign > 0 else np.conj(Gl)
            flags[part] = np.where(ok, 1, 2)
    return out / fac.scale, flags


# ---------------------------------------------------------------------------------- public
def matrix_gmp_zero_mass(atoms: ArrayLike, weights: ArrayLike, gamma: float) -> float:
    """Mass of the layer law at 0: ``max(k0/K, 1 - E[rank A] / (gamma K))``.

    ``k0`` is the dimension of the common kernel of all atoms (e.g. 1 for the softmax
    Hessian ``diag p - p p^T``: the all-ones vector). Derivation (docs/theory.md 9.1.2):
    ``H`` is a sum of ``N E[rank A]`` rank-one terms ``(q (x) x_i)(q (x) x_i)^T``, all in
    ``ker^perp (x) R^d`` of dimension ``(K - k0) d``; for atoms in general position their
    span has the largest dimension allowed. Exact for ``K = 1`` (the scalar formula) and for
    the layer laws of rmthess; checked against ``eta Im s(i eta)`` as ``eta -> 0``.
    """
    a, w, gamma = check_matrix_law(atoms, weights, gamma)
    fac = _Factored(a, w, gamma)
    K = a.shape[1]
    return max(fac.k0 / K, 1.0 - fac.mean_rank / (gamma * K), 0.0)


def matrix_gmp_stieltjes(
    z: ArrayLike,
    atoms: ArrayLike,
    weights: ArrayLike,
    gamma: float,
    *,
    return_matrix: bool = False,
    return_flags: bool = False,
) -> Any:
    """Stieltjes transform ``s(z) = tr G(z) / K`` of the whole-layer law (or ``G`` itself).

    Parameters
    ----------
    z : complex array_like
        ``Im z > 0``: the unique solution with ``Im G > 0``; ``Im z == 0``: the boundary
        value ``G(x + i0)``; ``Im z < 0``: ``conj(G(conj z))``.
    atoms : real array ``(n, K, K)`` of symmetric matrices (any sign), weights ``(n,)``.
    gamma : ``d/N`` in ``GAMMA_RANGE``.
    return_matrix : also return ``G(z)`` with shape ``z.shape + (K, K)``.
    return_flags : also return flags: 0 continued and certified, 1 certified after an eta
        ladder, 2 not certified (small-eta value returned).

    Diagonal atoms are delegated to the scalar solver per diagonal entry (exact reduction:
    ``G = diag(s_1, ..., s_K)`` with ``s_k`` the scalar GMP transform of ``law(A_kk)``).

    >>> import numpy as np
    >>> A = np.array([[[1.0, 0.0], [0.0, 2.0]]])           # K = 2, one diagonal atom
    >>> s = matrix_gmp_stieltjes(1j, A, [1.0], 0.5)
    >>> from rmthess.theory.gmp import gmp_stieltjes
    >>> s2 = (gmp_stieltjes(1j, [1.0], [1.0], 0.5) + gmp_stieltjes(1j, [2.0], [1.0], 0.5)) / 2
    >>> bool(abs(s - s2) < 1e-14)
    True
    """
    a, w, gamma = check_matrix_law(atoms, weights, gamma)
    zz = _as_array("z", z, np.complex128, "complex")
    zf = np.atleast_1d(zz).ravel()
    if not (np.all(np.isfinite(zf.real)) and np.all(np.isfinite(zf.imag))):
        raise ValueError("z must be finite complex numbers (no NaN or inf)")
    K = a.shape[1]
    zero_law = not np.any(a[w > 0])
    if zero_law:  # all atoms zero: the law is delta_0, G = -I/z exactly
        with np.errstate(divide="ignore", invalid="ignore"):
            g0 = np.where(zf == 0, complex(-np.inf, 0.0), -1.0 / np.where(zf == 0, 1.0, zf))
        G = np.zeros((zf.size, K, K), complex)
        G[:, np.arange(K), np.arange(K)] = g0[:, None]
        flags = np.zeros(zf.size, np.int64)
    elif _is_diagonal(a):
        G = np.zeros((zf.size, K, K), complex)
        flags = np.zeros(zf.size, np.int64)
        for k in range(K):
            s, f = gmp_stieltjes(zf, a[:, k, k], w, gamma, return_flags=True)
            G[:, k, k] = s
            flags = np.maximum(flags, f)
    else:
        G, flags = _solve(_Factored(a, w, gamma), zf)
    s = g0 if zero_law else np.trace(G, axis1=1, axis2=2) / K
    out = [s.reshape(zz.shape)]
    if return_matrix:
        out.append(G.reshape(zz.shape + (K, K)))
    if return_flags:
        out.append(flags.reshape(zz.shape))
    return out[0] if len(out) == 1 else tuple(out)


def matrix_gmp_density(
    x: ArrayLike, atoms: ArrayLike, weights: ArrayLike, gamma: float, *, return_flags: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Density ``Im s(x + i0) / pi`` of the continuous part of the whole-layer law.

    The atom at 0 (:func:`matrix_gmp_zero_mass`) is not included. ``x`` real, any shape.
    Where the solver cannot certify its solution (flag 2 of :func:`matrix_gmp_stieltjes`,
    e.g. at ``0 < |x| < 1e-10`` of the atom scale) the density is ``nan``, never a number
    that looks trusted; ``return_flags=True`` also returns the flags. A law of all-zero
    atoms is ``delta_0``: density 0 everywhere (0 included).
    """
    xx = _as_array("x", x, np.float64, "real")
    if not np.all(np.isfinite(xx)):
        raise ValueError("x must be finite real numbers (no NaN or inf)")
    s, flags = matrix_gmp_stieltjes(xx.astype(complex), atoms, weights, gamma, return_flags=True)
    dens = np.where(flags == 2, np.nan, np.maximum(np.asarray(s).imag, 0.0) / math.pi)
    return (dens, flags) if return_flags else dens
