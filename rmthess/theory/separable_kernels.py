"""Numba kernels of the separable GMP solver (private; math in :mod:`rmthess.theory.separable_gmp`).

Rescaled units (``max l = 1``, ``max |tau| = 1``, zero atoms dropped, equal atoms merged):
``l, h`` are the nonzero eigenvalues of ``Sigma`` and their weights, ``tau, w`` the nonzero
atoms of ``nu`` and theirs. The unknown is ``e(z) = int l dH(l) / (l t(e) - z)`` with
``t(e) = E_nu[tau / (1 + gamma tau e)]``; Newton runs on

    Phi = 1/F(t(e), z) - 1/e  (|e| >= 1/2),    Psi = e - F(t(e), z)  (|e| < 1/2),

``F(t, z) = sum_j h_j l_j / (l_j t - z)``. ``Phi = Psi / (F e)``: the same roots, and at a
real root (``F = e``) the same sign of the derivative (``Phi' = Psi' / e^2``). ``Phi`` is the
scalar solver's form (``Z(e) - z`` at ``Sigma = I``, :mod:`rmthess.theory.gmp_kernels`),
well scaled where ``|e|`` is large (narrow pieces near 0: ``Psi`` alone failed to certify
points there); ``Psi`` has no singularity at ``e = 0``, which ``e(x)`` (increasing off the
support) crosses in gaps between separated pieces (``Phi`` alone failed to certify ~500 of
2e5 gap points of a 200-level power-law Sigma). Nothing here validates input.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_EPS = 2.220446049250313e-16
_STEP_TOL = 1e-13  # Newton stops at a relative step below this (then one more step)


@njit(cache=True)
def _tfun(e, tau, w, gamma):
    """``t = sum w tau / (1 + g tau e)``, ``t' = -g sum w tau^2 / (1 + g tau e)^2`` and the
    round-off scale ``sum w |tau / (1 + g tau e)|``."""
    t = 0j
    dt = 0j
    mag = 0.0
    for k in range(tau.size):
        r = 1.0 / (1.0 + gamma * tau[k] * e)
        q = w[k] * tau[k] * r
        t += q
        dt -= gamma * q * tau[k] * r
        mag += abs(q)
    return t, dt, mag


@njit(cache=True)
def _ffun(t, z, l, h):
    """``F = sum h l / (l t - z)``, ``dF/dt``, ``dF/dz``, ``S = sum h / (l t - z)`` and the
    round-off scale ``sum h l / |l t - z|``."""
    f = 0j
    ft = 0j
    fz = 0j
    s = 0j
    mag = 0.0
    for j in range(l.size):
        r = 1.0 / (l[j] * t - z)
        q = h[j] * r
        s += q
        ql = q * l[j]
        f += ql
        ft -= ql * l[j] * r
        fz += ql * r
        mag += abs(ql)
    return f, ft, fz, s, mag


@njit(cache=True)
def _phi(e, z, l, h, tau, w, gamma, small):
    """``(Phi, dPhi/de, round-off scale of Phi)``: ``Phi = 1/F(t(e), z) - 1/e`` (the scalar
    form, ``Z(e) - z`` at ``Sigma = I``), or with ``small`` ``Psi = e - F`` (module
    docstring). One Newton run keeps one form, chosen from its start (:func:`_small`)."""
    t, dt, tmag = _tfun(e, tau, w, gamma)
    f, ft, _fz, _s, fmag = _ffun(t, z, l, h)
    if small:
        return e - f, 1.0 - ft * dt, abs(e) + fmag + abs(ft) * tmag
    inv = 1.0 / f
    ie = 1.0 / e
    mag = abs(ie) + (fmag + abs(ft) * tmag) * abs(inv) * abs(inv)
    return inv - ie, ie * ie - ft * dt * inv * inv, mag


@njit(cache=True, inline="always")
def _small(e):
    """Form of a Newton run started at ``e``: ``Psi`` below ``|e| = 1/2``, else ``Phi``."""
    return abs(e) < 0.5


@njit(cache=True)
def _psi(e, z, l, h, tau, w, gamma):
    """``(Psi, dPsi/de)`` with ``Psi = e - F(t(e), z)`` everywhere (the fold search)."""
    t, dt, _tmag = _tfun(e, tau, w, gamma)
    f, ft, _fz, _s, _fmag = _ffun(t, z, l, h)
    return e - f, 1.0 - ft * dt


@njit(cache=True)
def _s_of_e(e, z, l, h, tau, w, gamma):
    """``s = sum h / (l t(e) - z)`` over the nonzero eigenvalues (the zero ones add
    ``-h0/z`` outside)."""
    t, _dt, _m = _tfun(e, tau, w, gamma)
    return _ffun(t, z, l, h)[3]


@njit(cache=True)
def _newton_upper(z, e, l, h, tau, w, gamma, maxit):
    """Newton for Phi(e; z) = 0 with Im z > 0, iterates kept in C+ by step halving (a
    halved step never counts as convergence)."""
    small = _small(e)
    for it in range(maxit):
        val, der, mag = _phi(e, z, l, h, tau, w, gamma, small)
        if der == 0.0 or not (math.isfinite(val.real) and math.isfinite(val.imag)):
            return e, False
        if it >= 6 and abs(val) <= 16.0 * _EPS * mag:
            return e, True
        step = val / der
        enew = e - step
        k = 0
        while enew.imag <= 0.0 and k < 60:
            step *= 0.5
            enew = e - step
            k += 1
        if enew.imag <= 0.0:
            return e, False
        e = enew
        if k == 0 and abs(step) <= _STEP_TOL * abs(e):
            return e, True
    return e, False


@njit(cache=True)
def _newton_real(x, e, l, h, tau, w, gamma, maxit):
    """Newton for Phi(e; x) = 0 (real x), reflected into the closed upper half plane
    (Phi has real coefficients: Newton commutes with conjugation)."""
    z = complex(x, 0.0)
    small = _small(e)
    for it in range(maxit):
        val, der, mag = _phi(e, z, l, h, tau, w, gamma, small)
        if der == 0.0 or not (math.isfinite(val.real) and math.isfinite(val.imag)):
            return e, False
        if it >= 6 and abs(val) <= 16.0 * _EPS * mag:
            for _k in range(2):  # polish an ill-conditioned (near-edge) root
                val, der, mag = _phi(e, z, l, h, tau, w, gamma, small)
                if der == 0.0:
                    break
                enew = e - val / der
                if enew.imag < 0.0:
                    enew = enew.conjugate()
                if math.isfinite(enew.real) and math.isfinite(enew.imag):
                    e = enew
            if e.imag <= 16.0 * _EPS * abs(e):
                e = complex(e.real, 0.0)
            return e, True
        step = val / der
        enew = e - step
        if enew.imag < 0.0:
            enew = enew.conjugate()
        if not (math.isfinite(enew.real) and math.isfinite(enew.imag)):
            return e, False
        e = enew
        if abs(step) <= _STEP_TOL * abs(e):
            val, der, mag = _phi(e, z, l, h, tau, w, gamma, small)
            if der != 0.0:
                enew = e - val / der
                if enew.imag < 0.0:
                    enew = enew.conjugate()
                if abs(enew - e) <= _STEP_TOL * abs(e):
                    e = enew
            return e, True
    return e, False


@njit(cache=True)
def _fixed_point(z, e, l, h, tau, w, gamma, n, damp):
    """``n`` damped steps of ``e <- F(t(e), z)`` (a contraction for large Im z)."""
    for _ in range(n):
        t, _dt, _m = _tfun(e, tau, w, gamma)
        en = _ffun(t, z, l, h)[0]
        e = damp * e + (1.0 - damp) * en
    return e


@njit(cache=True)
def _ladder(x, eta_target, eta0, l, h, tau, w, gamma, m1):
    """Continuation in eta from eta0 down to eta_target (> 0) at Re z = x; ``m1 = sum h l``
    (``e ~ -m1 / z`` at large ``|z|``)."""
    eta = max(eta0, eta_target)
    e = -m1 / complex(x, eta)
    e = _fixed_point(complex(x, eta), e, l, h, tau, w, gamma, 3, 0.0)
    ok = True
    while True:
        z = complex(x, eta)
        e_try, conv = _newton_upper(z, e, l, h, tau, w, gamma, 60)
        if not conv:
            t0 = _fixed_point(z, e, l, h, tau, w, gamma, 2000, 0.5)
            e_try, conv = _newton_upper(z, t0, l, h, tau, w, gamma, 60)
            ok = ok and conv
        e = e_try
        if eta <= eta_target:
            break
        eta = max(eta * 0.25, eta_target)
    return e, ok


@njit(cache=True)
def _accept_real(e, x, l, h, tau, w, gamma, tol_im):
    """Branch check at eta = 0: ``Im e > 0`` (inside the support), or ``e`` real with
    ``dPsi/de > 0`` (outside the support ``e(x) = lim (1/d) tr Sigma (H - x)^{-1}`` is
    increasing, and ``de/dx = (dF/dx) / Psi'`` with ``dF/dx > 0``; ``Phi'`` and ``Psi'`` have
    one sign at a real root). Returns (accepted, e)."""
    if e.imag > tol_im * abs(e):
        return True, e
    er = complex(e.real, 0.0)
    _v, der = _psi(er, complex(x, 0.0), l, h, tau, w, gamma)
    if der.real > 0.0:
        return True, er
    return False, e


@njit(cache=True)
def _solve_point_real(x, l, h, tau, w, gamma, eta0, eta_min, tol_im, m1):
    """Fallback for one real point: eta ladder to ``eta_min`` (times ``|x|`` below 1), then
    Newton at eta = 0. Returns (e, flag): 0 certified, 1 the small-eta value."""
    if x != 0.0:
        eta_min = eta_min * min(1.0, max(abs(x), 1e-200))
    e, ok = _ladder(x, eta_min, eta0, l, h, tau, w, gamma, m1)
    e1, conv = _newton_real(x, e, l, h, tau, w, gamma, 100)
    if conv:
        acc, e2 = _accept_real(e1, x, l, h, tau, w, gamma, tol_im)
        if acc:
            return e2, 0
    return e, 1


@njit(cache=True)
def _solve_point_from(x, e0, l, h, tau, w, gamma, eta0, eta_min, tol_im, m1):
    """One real point from a nearby solution ``e0``: Newton at eta = 0 from ``e0`` kicked
    into ``C+`` (as the grid continuation), the ladder (:func:`_solve_point_real`) where the
    root is not certified. Returns (e, flag)."""
    s0 = complex(e0.real, max(e0.imag, 1e-3 * abs(e0)))
    e1, conv = _newton_real(x, s0, l, h, tau, w, gamma, 40)
    if conv:
        acc, e2 = _accept_real(e1, x, l, h, tau, w, gamma, tol_im)
        if acc:
            return e2, 0
    return _solve_point_real(x, l, h, tau, w, gamma, eta0, eta_min, tol_im, m1)


@njit(cache=True)
def _solve_real_grid(xs, l, h, tau, w, gamma, eta0, eta_min, tol_im, m1):
    """Sorted real points: Newton continuation along the grid at eta = 0 (as the scalar
    kernel), the eta ladder where the continued root is not certified. Returns
    ``(e, s, flag)``; flag 0: continued and certified, 1: ladder and certified, 2: not
    certified (small-eta value)."""
    n = xs.size
    out = np.empty(n, dtype=np.complex128)
    sv = np.empty(n, dtype=np.complex128)
    flag = np.zeros(n, dtype=np.int64)
    ep = 0j
    epp = 0j
    for i in range(n):
        x = xs[i]
        done = False
        if i >= 1:
            if i >= 2 and epp.imag > 0.0 and ep.imag > 0.0:
                e0 = 2.0 * ep - epp
                if e0.imag <= 0.0:
                    e0 = ep
            else:
                e0 = ep
            kick = max(e0.imag, 0.25 * abs(ep - epp) if i >= 2 else 0.0)
            kick = max(kick, 1e-3 * abs(e0))
            e0 = complex(e0.real, kick)
            e1, conv = _newton_real(x, e0, l, h, tau, w, gamma, 40)
            if conv:
                acc, e2 = _accept_real(e1, x, l, h, tau, w, gamma, tol_im)
                if acc:
                    out[i] = e2
                    done = True
        if not done:
            e2, f = _solve_point_real(x, l, h, tau, w, gamma, eta0, eta_min, tol_im, m1)
            out[i] = e2
            flag[i] = 1 + f
        sv[i] = _s_of_e(out[i], complex(x, 0.0), l, h, tau, w, gamma)
        epp = ep
        ep = out[i]
    return out, sv, flag


@njit(cache=True)
def _solve_complex(zs, l, h, tau, w, gamma, eta0, m1):
    """Points with Im z > 0: the eta ladder at each. Returns (e, s, flag)."""
    n = zs.size
    out = np.empty(n, dtype=np.complex128)
    sv = np.empty(n, dtype=np.complex128)
    flag = np.zeros(n, dtype=np.int64)
    for i in range(n):
        e, ok = _ladder(zs[i].real, zs[i].imag, eta0, l, h, tau, w, gamma, m1)
        out[i] = e
        sv[i] = _s_of_e(e, zs[i], l, h, tau, w, gamma)
        flag[i] = 0 if ok else 1
    return out, sv, flag


@njit(cache=True)
def _edge_newton(e, x, l, h, tau, w, gamma, xlo, xhi):
    """Newton on ``(Psi, Psi_e) = 0`` in real ``(e, x)``: a fold of the real solution curve,
    i.e. a support edge (``x`` is stationary along the curve there, so it is accurate to
    round-off even where ``e`` is only ~sqrt(eps) accurate). ``Psi_ee``, ``Psi_ex`` by
    central differences; steps are halved to keep ``x`` in ``[xlo, xhi]`` (the scan cell:
    a full step can land on another fold). Returns (x, e, converged)."""
    for _ in range(60):
        z = complex(x, 0.0)
        ec = complex(e, 0.0)
        v, d = _psi(ec, z, l, h, tau, w, gamma)
        he = 1e-6 * max(abs(e), 1e-300)
        hx = 1e-6 * max(abs(x), 1e-300)
        dp = _psi(complex(e + he, 0.0), z, l, h, tau, w, gamma)[1].real
        dm = _psi(complex(e - he, 0.0), z, l, h, tau, w, gamma)[1].real
        d_ee = (dp - dm) / (2.0 * he)
        vp = _psi(ec, complex(x + hx, 0.0), l, h, tau, w, gamma)
        vm = _psi(ec, complex(x - hx, 0.0), l, h, tau, w, gamma)
        v_x = (vp[0].real - vm[0].real) / (2.0 * hx)
        d_ex = (vp[1].real - vm[1].real) / (2.0 * hx)
        a11, a12, a21, a22 = d.real, v_x, d_ee, d_ex
        det = a11 * a22 - a12 * a21
        if det == 0.0 or not math.isfinite(det):
            return x, e, False
        r1, r2 = v.real, d.real
        de = (a22 * r1 - a12 * r2) / det
        dx = (-a21 * r1 + a11 * r2) / det
        k = 0
        while not (xlo <= x - dx <= xhi) and k < 60:
            de *= 0.5
            dx *= 0.5
            k += 1
        e -= de
        x -= dx
        if not (math.isfinite(e) and math.isfinite(x)):
            return x, e, False
        if abs(dx) <= 1e-15 * max(abs(x), 1e-300) and abs(de) <= 1e-7 * abs(e):
            return x, e, True
    return x, e, False
