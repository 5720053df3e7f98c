"""Numba kernels of the GMP solver (private; see :mod:`rmthess.theory.gmp` for the math).

All kernels work in rescaled units (``max |tau| = 1``, zero atoms dropped, equal atoms
merged): ``tau``/``w`` are the reduced atoms and weights, ``wsum = sum(w) = 1 - nu({0})``.
Compiled with ``cache=True``; nothing here validates input (the public edge does).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_EPS = 2.220446049250313e-16
_STEP_TOL = 1e-13  # Newton stops at a relative step below this (then one more step)


@njit(cache=True, inline="always")
def _zfun_sums(s, tau, w, gamma, hard):
    """Sums over the atoms of ``r = 1/(1 + gamma tau s)``: ``(sum w tau r, sum w tau^2 r^2)``,
    or with ``hard``: ``(sum w r, sum w tau r^2, sum w)``."""
    acc_r = 0.0
    acc_i = 0.0
    dac_r = 0.0
    dac_i = 0.0
    wsum = 0.0
    sr = s.real
    si = s.imag
    for j in range(tau.size):
        t = tau[j]
        gt = gamma * t
        dr = 1.0 + gt * sr
        di = gt * si
        den = 1.0 / (dr * dr + di * di)
        rr = dr * den
        ri = -di * den
        wj = w[j]
        wt = wj * t
        if hard:
            wsum += wj
            acc_r += wj * rr
            acc_i += wj * ri
            dac_r += wt * (rr * rr - ri * ri)
            dac_i += wt * (2.0 * rr * ri)
        else:
            acc_r += wt * rr
            acc_i += wt * ri
            wtt = wt * t
            dac_r += wtt * (rr * rr - ri * ri)
            dac_i += wtt * (2.0 * rr * ri)
    return complex(acc_r, acc_i), complex(dac_r, dac_i), wsum


@njit(cache=True, inline="always")
def _zfun(s, tau, w, gamma):
    """Z(s) = -1/s + sum w tau r and Z'(s) = 1/s^2 - gamma sum w tau^2 r^2, r = 1/(1 + g tau s).

    Near the hard edge at 0 (``|s| -> inf``) the terms ``-1/s`` and ``sum w tau r ~
    W/(gamma s)`` (``W = sum w``) cancel. Where that costs more than 3 digits
    (``|Z s| < 1e-3``) and ``gamma |s| >= 1``, Z is recomputed from the exact rearrangement
    ``Z = ((W - gamma) - sum w r) / (gamma s)``, ``Z' = (sum w tau r^2 - Z) / s``, whose
    terms do not cancel when ``W = gamma`` (e.g. MP at ``gamma = 1``: ``Z = -1/(s (1 + s))``
    to round-off instead of ``-1/s + 1/(1 + s)``)."""
    acc, dac, _w = _zfun_sums(s, tau, w, gamma, False)
    inv = 1.0 / s
    zz = acc - inv
    if _use_hard_form(s, zz, gamma):
        acc, dac, wsum = _zfun_sums(s, tau, w, gamma, True)
        zz = ((wsum - gamma) - acc) / (gamma * s)
        return zz, (dac - zz) / s
    return zz, inv * inv - gamma * dac


@njit(cache=True, inline="always")
def _use_hard_form(s, z, gamma):
    return gamma * abs(s) >= 1.0 and abs(z) * abs(s) < 1e-3


@njit(cache=True)
def _zmag(s, z, tau, w, gamma):
    """Round-off scale of Z(s) - z in the form used by :func:`_zfun`: ``|1/s| + sum w |tau r|
    + |z|``, or ``(|W - gamma| + sum w |r|) / (gamma |s|) + |z|`` in the hard-edge form."""
    acc = 0.0
    wsum = 0.0
    hard = _use_hard_form(s, z, gamma)
    for j in range(tau.size):
        t = tau[j]
        if hard:
            wsum += w[j]
            acc += w[j] / abs(1.0 + gamma * t * s)
        else:
            acc += w[j] * abs(t) / abs(1.0 + gamma * t * s)
    if hard:
        return (abs(wsum - gamma) + acc) / (gamma * abs(s)) + abs(z)
    return abs(1.0 / s) + acc + abs(z)


@njit(cache=True)
def _newton_upper(z, s, tau, w, gamma, maxit):
    """Newton for Z(s) = z with Im z > 0, iterates kept in C+ by step halving.

    Returns (s, converged)."""
    mag = -1.0
    for it in range(maxit):
        zz, dz = _zfun(s, tau, w, gamma)
        if dz == 0.0:
            return s, False
        if it >= 6:  # ill-conditioned (near an edge): stop once the residual is round-off
            if mag < 0.0:
                mag = _zmag(s, z, tau, w, gamma)
            if abs(zz - z) <= 16.0 * _EPS * mag:
                return s, True
        step = (zz - z) / dz
        snew = s - step
        k = 0
        while snew.imag <= 0.0 and k < 60:
            step *= 0.5
            snew = s - step
            k += 1
        if snew.imag <= 0.0:
            return s, False
        s = snew
        if abs(step) <= _STEP_TOL * abs(s):
            return s, True
    return s, False


@njit(cache=True)
def _newton_real(x, s, tau, w, gamma, maxit):
    """Newton for Z(s) = x (real x), reflecting into the closed upper half plane.

    Z has real coefficients, so Newton commutes with conjugation and the reflection is free.
    Returns (s, converged)."""
    mag = -1.0
    for it in range(maxit):
        if s == 0.0:
            return s, False
        zz, dz = _zfun(s, tau, w, gamma)
        if dz == 0.0:
            return s, False
        if it >= 6:  # ill-conditioned (near an edge): stop once the residual is round-off
            if mag < 0.0:
                mag = _zmag(s, complex(x, 0.0), tau, w, gamma)
            if abs(zz - x) <= 16.0 * _EPS * mag:
                # two more steps: the root is simple but ill-conditioned, polish to round-off
                for _k in range(2):
                    zz, dz = _zfun(s, tau, w, gamma)
                    if dz == 0.0:
                        break
                    snew = s - (zz - x) / dz
                    if snew.imag < 0.0:
                        snew = snew.conjugate()
                    if math.isfinite(snew.real) and math.isfinite(snew.imag):
                        s = snew
                if s.imag <= 16.0 * _EPS * abs(s):
                    s = complex(s.real, 0.0)
                return s, True
        step = (zz - x) / dz
        snew = s - step
        if snew.imag < 0.0:
            snew = snew.conjugate()
        if not (math.isfinite(snew.real) and math.isfinite(snew.imag)):
            return s, False
        s = snew
        if abs(step) <= _STEP_TOL * abs(s):
            # one more step: quadratic convergence makes it exact to round-off
            zz, dz = _zfun(s, tau, w, gamma)
            if dz != 0.0:
                snew = s - (zz - x) / dz
                if snew.imag < 0.0:
                    snew = snew.conjugate()
                if abs(snew - s) <= _STEP_TOL * abs(s):
                    s = snew
            return s, True
    return s, False


@njit(cache=True)
def _ladder(x, eta_target, eta0, tau, w, gamma):
    """Continuation in eta from eta0 down to eta_target (> 0) at Re z = x."""
    eta = max(eta0, eta_target)
    z = complex(x, eta)
    s = -1.0 / z
    # a few fixed-point steps at large eta (a contraction there) before Newton
    for _ in range(3):
        zz, dz = _zfun(s, tau, w, gamma)
        s = 1.0 / (-z + (zz + 1.0 / s))
    ok = True
    while True:
        z = complex(x, eta)
        s_try, conv = _newton_upper(z, s, tau, w, gamma, 60)
        if not conv:
            # fall back to damped fixed-point iteration, then Newton again
            t = s
            for _ in range(2000):
                zz, dz = _zfun(t, tau, w, gamma)
                tn = 1.0 / (-z + (zz + 1.0 / t))
                t = 0.5 * t + 0.5 * tn
            s_try, conv = _newton_upper(z, t, tau, w, gamma, 60)
            ok = ok and conv
        s = s_try
        if eta <= eta_target:
            break
        eta = max(eta * 0.25, eta_target)
    return s, ok


@njit(cache=True)
def _accept_real(s, tau, w, gamma, tol_im):
    """Branch check at eta = 0. Returns (accepted, s_cleaned)."""
    if s.imag > tol_im * abs(s):
        return True, s
    sr = complex(s.real, 0.0)
    zz, dz = _zfun(sr, tau, w, gamma)
    if dz.real > 0.0:
        return True, sr
    return False, s


@njit(cache=True)
def _solve_point_real(x, tau, w, gamma, eta0, eta_min, tol_im):
    """Fallback for one real point: eta ladder to eta_min, then Newton at eta = 0.

    For ``0 < |x| < 1`` the ladder goes down to ``eta_min |x|`` (floor ``1e-200``): near a
    hard edge at 0 (``|s| ~ |x|^(-1/2)``) Newton at ``eta = 0`` grows ``|s|`` only by ~1.5
    per step, so it must start from a point with ``eta << |x|``."""
    if x != 0.0:
        eta_min = eta_min * min(1.0, max(abs(x), 1e-200))
    s, ok = _ladder(x, eta_min, eta0, tau, w, gamma)
    s1, conv = _newton_real(x, s, tau, w, gamma, 100)
    if conv:
        acc, s2 = _accept_real(s1, tau, w, gamma, tol_im)
        if acc:
            return s2, 0
    # could not certify the eta = 0 root: return the small-eta value (density error O(eta_min))
    return s, 1


@njit(cache=True)
def _solve_real_chunk(xs, i0, i1, tau, w, gamma, eta0, eta_min, tol_im, out, flag):
    """Sorted real points xs[i0:i1]: Newton continuation along the grid at eta = 0."""
    sp = 0j
    spp = 0j
    have = 0
    for i in range(i0, i1):
        x = xs[i]
        done = False
        if have >= 1:
            if have >= 2 and spp.imag > 0.0 and sp.imag > 0.0:
                s0 = 2.0 * sp - spp  # linear predictor inside the bulk
                if s0.imag <= 0.0:
                    s0 = sp
            else:
                s0 = sp
            kick = max(s0.imag, 0.25 * abs(sp - spp) if have >= 2 else 0.0)
            kick = max(kick, 1e-3 * abs(s0))
            s0 = complex(s0.real, kick)
            s1, conv = _newton_real(x, s0, tau, w, gamma, 40)
            if conv:
                acc, s2 = _accept_real(s1, tau, w, gamma, tol_im)
                if acc:
                    out[i] = s2
                    done = True
        if not done:
            s2, f = _solve_point_real(x, tau, w, gamma, eta0, eta_min, tol_im)
            out[i] = s2
            flag[i] = 1 + f
        spp = sp
        sp = out[i]
        have += 1


@njit(cache=True, parallel=True)
def _solve_real_grid(xs, tau, w, gamma, eta0, eta_min, tol_im, nchunks):
    """Sorted real grid xs: per chunk (in parallel), Newton continuation along the grid."""
    n = xs.size
    out = np.empty(n, dtype=np.complex128)
    flag = np.zeros(n, dtype=np.int64)
    for c in prange(nchunks):
        i0 = (c * n) // nchunks
        i1 = ((c + 1) * n) // nchunks
        _solve_real_chunk(xs, i0, i1, tau, w, gamma, eta0, eta_min, tol_im, out, flag)
    return out, flag


@njit(cache=True)
def _solve_real_grid_serial(xs, tau, w, gamma, eta0, eta_min, tol_im):
    """One chunk, no thread-pool launch: the same result as ``_solve_real_grid(..., 1)``.

    Launching the parallel region costs ~10 ms per call on a loaded machine (measured: 2000
    scalar ``gmp_density`` calls, as in ``scipy.integrate.quad``, took 19 s vs 0.16 s)."""
    n = xs.size
    out = np.empty(n, dtype=np.complex128)
    flag = np.zeros(n, dtype=np.int64)
    _solve_real_chunk(xs, 0, n, tau, w, gamma, eta0, eta_min, tol_im, out, flag)
    return out, flag


@njit(cache=True)
def _solve_complex_point(z, tau, w, gamma, eta0):
    s, ok = _ladder(z.real, z.imag, eta0, tau, w, gamma)
    return s, 0 if ok else 1


@njit(cache=True, parallel=True)
def _solve_complex(zs, tau, w, gamma, eta0):
    n = zs.size
    out = np.empty(n, dtype=np.complex128)
    flag = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        out[i], flag[i] = _solve_complex_point(zs[i], tau, w, gamma, eta0)
    return out, flag


@njit(cache=True)
def _solve_complex_serial(zs, tau, w, gamma, eta0):
    """Serial twin of ``_solve_complex`` for small inputs (no thread-pool launch)."""
    n = zs.size
    out = np.empty(n, dtype=np.complex128)
    flag = np.zeros(n, dtype=np.int64)
    for i in range(n):
        out[i], flag[i] = _solve_complex_point(zs[i], tau, w, gamma, eta0)
    return out, flag


# Work (points x atoms) below which the serial kernels are used: ~1 ms of serial work, less


@njit(cache=True)
def _phi(u, tau, w, gamma):
    """In u = 1/s: Z(u) = -u + sum w tau u / (u + gamma tau), phi(u) = dZ/du
    = gamma sum w tau^2 / (u + gamma tau)^2 - 1 and phi'(u). Returns (phi, phi', Z)."""
    acc = 0.0
    dacc = 0.0
    zacc = 0.0
    for j in range(tau.size):
        t = tau[j]
        q = 1.0 / (u + gamma * t)
        g2 = gamma * w[j] * t * t * q * q
        acc += g2
        dacc -= 2.0 * g2 * q
        zacc += w[j] * t * u * q
    return acc - 1.0, dacc, zacc - u


@njit(cache=True)
def _root_monotone(lo, hi, which, inc, tau, w, gamma):
    """Root in (lo, hi) of phi (which=0) or phi' (which=1), increasing (inc) or decreasing
    on the bracket: bisection safeguarding Newton steps, to relative width ~1e-16."""
    x = 0.5 * (lo + hi)
    for _ in range(200):
        f, df, _z = _phi(x, tau, w, gamma)
        if which == 1:
            # phi'' = 6 gamma sum w tau^2 / (u + g tau)^4 > 0; crude: use secant-free bisection
            val = df
            der = 0.0
        else:
            val = f
            der = df
        if val == 0.0:
            return x
        if (val < 0.0) == inc:
            lo = x
        else:
            hi = x
        xn = x - val / der if der != 0.0 else 0.5 * (lo + hi)
        if not (lo < xn < hi) or abs(xn - x) > 0.5 * (hi - lo):
            xn = 0.5 * (lo + hi)
        if abs(hi - lo) <= 4e-16 * max(abs(lo), abs(hi)) or xn == x:
            return xn
        x = xn
    return x


@njit(cache=True)
def _gaps(tau, w, gamma, m2):
    """x-gaps of the support (including the two unbounded ones) as an (k, 2) array.

    Poles p_j = -gamma tau_j (sorted); phi is convex between poles (sum of convex terms), so
    each inner pole interval holds at most one gap {phi < 0}; its two ends are edges.
    Intervals where the two neighbouring poles alone force phi > 0 (the minimum of
    a/(u-p)^2 + b/(q-u)^2 is (a^(1/3) + b^(1/3))^3 / (q-p)^2) are skipped."""
    order = np.argsort(tau)[::-1]  # poles -gamma tau ascending
    p = -gamma * tau[order]
    ww = w[order]
    tt = tau[order]
    n = p.size
    out = np.empty((n + 1, 2))
    k = 0
    big = 2.0 * math.sqrt(gamma * m2) + 1.0
    # outer left (-inf, p_0): phi increasing from -1 to +inf
    lo = p[0] - big
    while _phi(lo, tau, w, gamma)[0] >= 0.0:
        big *= 2.0
        lo = p[0] - big
    uL = _root_monotone(lo, p[0], 0, True, tau, w, gamma)
    # outer right (p_{n-1}, inf): phi decreasing from +inf to -1
    big = 2.0 * math.sqrt(gamma * m2) + 1.0
    hi = p[n - 1] + big
    while _phi(hi, tau, w, gamma)[0] >= 0.0:
        big *= 2.0
        hi = p[n - 1] + big
    uR = _root_monotone(p[n - 1], hi, 0, False, tau, w, gamma)
    out[k, 0] = _phi(uL, tau, w, gamma)[2]
    out[k, 1] = np.inf
    k += 1
    out[k, 0] = -np.inf
    out[k, 1] = _phi(uR, tau, w, gamma)[2]
    k += 1
    for i in range(n - 1):
        a = gamma * ww[i] * tt[i] * tt[i]
        b = gamma * ww[i + 1] * tt[i + 1] * tt[i + 1]
        width = p[i + 1] - p[i]
        if (a ** (1.0 / 3.0) + b ** (1.0 / 3.0)) ** 3 > width * width:
            continue
        # minimum of the convex phi on (p_i, p_{i+1}): root of the increasing phi'
        eps = 1e-15 * max(abs(p[i]), abs(p[i + 1]), width)
        um = _root_monotone(p[i] + eps, p[i + 1] - eps, 1, True, tau, w, gamma)
        if _phi(um, tau, w, gamma)[0] >= 0.0:
            continue
        u1 = _root_monotone(p[i] + eps, um, 0, False, tau, w, gamma)
        u2 = _root_monotone(um, p[i + 1] - eps, 0, True, tau, w, gamma)
        # Z decreases on the gap (dZ/du = phi < 0): x-gap (Z(u2), Z(u1))
        out[k, 0] = _phi(u2, tau, w, gamma)[2]
        out[k, 1] = _phi(u1, tau, w, gamma)[2]
        k += 1
    return out[:k]
