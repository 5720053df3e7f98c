"""Generalized Marchenko-Pastur (GMP) Stieltjes solver.

The limiting spectral law ``mu`` of ``H = (1/N) sum_i a_i x_i x_i^T`` (``d x d``,
``x_i ~ N(0, I_d)``, ``a_i ~ nu`` independent of ``x_i``, ``gamma = d/N``) has Stieltjes
transform ``s(z) = int dmu(t) / (t - z)``, the unique solution with ``Im s > 0`` on
``Im z > 0`` of

    s = 1 / ( -z + E_nu[ tau / (1 + gamma tau s) ] ),                       (GMP)

equivalently ``z = Z(s) := -1/s + E_nu[ tau / (1 + gamma tau s) ]`` (the inverse function).
``nu`` is given by atoms (real, possibly negative or zero) and weights (>= 0, sum 1).

Method
------
* Uniqueness on ``C+`` (holds for any real atoms): if ``s1, s2`` both solve (GMP) at
  ``Im z > 0`` with ``Im s_k > 0`` then ``1 = s1 s2 gamma E[tau^2 / ((1+g tau s1)(1+g tau s2))]``
  while Cauchy-Schwarz and ``Im s = |s|^2 (Im z + gamma Im s E[tau^2/|1+g tau s|^2])`` bound
  the right side by ``< 1``. Hence *any* root in ``C+`` found by Newton is the right one.
* Off the real axis (``Im z > 0``): Newton on ``Z(s) - z`` with continuation in ``eta`` from
  ``Im z = eta0`` (where ``s ~ -1/z``) down to the requested ``Im z`` (geometric ladder),
  damped so that iterates stay in ``C+``.
* On the real axis (``z = x + i0``): points are sorted and solved by Newton at ``eta = 0``,
  continuing along the grid (predictor: previous solution kicked into ``C+``). A root is
  accepted only if (a) ``Im s > 0`` (inside the support: at ``eta = 0`` the bound above is
  ``<= 1`` instead of ``< 1``, so this is the boundary value of the certified ``eta > 0``
  branch; verified against the ``eta`` ladder and mpmath in the tests), or (b) ``s`` is real
  with ``Z'(s) > 0`` (outside the support: the Silverstein-Choi characterisation, proved for
  ``tau > 0``; the same argument is used for signed atoms and checked numerically against
  the support of :func:`gmp_support` and quadrature of the mass). Otherwise the point is
  re-solved by the ``eta`` ladder down to ``eta ~ 1e-13 * scale`` followed by Newton at
  ``eta = 0`` from there; this fallback is also used for the first point of every chunk.
* Support (:func:`gmp_support`): edges are the critical values of the inverse function in
  ``u = 1/s`` (as in SPECTRODE, Dobriban 2015), one gap per pole interval by convexity.
* Atoms are rescaled by ``scale = max |tau|`` (so ``s`` is O(1)), equal atoms are merged and
  atoms at zero are dropped (they contribute nothing to ``Z`` but count in the atom at zero,
  see :func:`gmp_zero_mass`). Inner loops are numba (``cache=True``); problems with at least
  ``2e5`` points x atoms run in parallel over chunks of the grid, smaller ones serially (a
  thread-pool launch can cost ~10 ms on a loaded machine, more than the whole solve).

Accuracy: Newton stops at a relative step ``<= 1e-13`` and takes one more step, or, when
ill-conditioned (near an edge, ``Z'(s) ~ 0``), once the residual is at round-off level
followed by two polishing steps. Checked against certified mpmath solutions: density errors
``<~ 2e-13`` including points at ``1e-9`` (relative) from an edge; at a distance ``delta``
from a square-root edge the conditioning limit is ``~ eps / sqrt(delta)``. Outside the exact
support (:func:`gmp_support`) the density is exactly 0.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from rmthess._checks import check_positive_float

__all__ = [
    "check_law",
    "gmp_density",
    "gmp_stieltjes",
    "gmp_support",
    "gmp_zero_mass",
    "support_bound",
]

_WEIGHT_TOL = 1e-9
_EPS = 2.220446049250313e-16
_STEP_TOL = 1e-13  # Newton stops at a relative step below this (then one more step)


# ----------------------------------------------------------------------------- input checks
def check_law(atoms, weights, gamma):
    """Validate ``(atoms, weights, gamma)``; return float64 arrays and float gamma.

    atoms: 1-D finite reals (any sign); weights: same length, ``>= 0``, summing to 1 within
    ``1e-9``; gamma: finite ``> 0``. Raises ``ValueError``/``TypeError`` naming the parameter.
    """
    gamma = check_positive_float("gamma", gamma)
    try:
        a = np.asarray(atoms, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"atoms must be a 1-D array of real numbers, got {atoms!r}") from None
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"weights must be a 1-D array of real numbers, got {weights!r}") from None
    a = np.atleast_1d(a)
    w = np.atleast_1d(w)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"atoms must be a non-empty 1-D array, got shape {a.shape}")
    if w.ndim != 1 or w.shape != a.shape:
        raise ValueError(
            f"atoms and weights must have the same length, got {a.size} atoms and "
            f"weights of shape {w.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError("atoms must all be finite real numbers")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    total = float(w.sum())
    if abs(total - 1.0) > _WEIGHT_TOL:
        raise ValueError(f"weights must sum to 1 (within {_WEIGHT_TOL:g}), got sum {total!r}")
    return a, w / total, gamma


def _as_array(name, value, dtype, kind):
    """``np.asarray(value, dtype)`` with a TypeError naming the parameter on failure."""
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of {kind} numbers, got {value!r}") from None


def _reduce(a, w):
    """Merge equal atoms, drop zero atoms/weights. Returns (tau, w, w0) with w0 = nu({0})."""
    w0 = float(w[a == 0.0].sum())
    keep = (a != 0.0) & (w > 0.0)
    a, w = a[keep], w[keep]
    if a.size:
        u, inv = np.unique(a, return_inverse=True)
        ww = np.zeros(u.size)
        np.add.at(ww, inv, w)
        a, w = u, ww
    return a, w, w0


def gmp_zero_mass(atoms, weights, gamma) -> float:
    """Mass of the limiting spectral law at 0: ``max(0, 1 - (1 - nu({0})) / gamma)``.

    ``H`` has rank ``min(d, #{i: a_i != 0})`` almost surely, and ``#{a_i != 0} / d ->
    (1 - nu({0})) / gamma``. Examples: MP (``nu = delta_1``) gives ``1 - 1/gamma`` for
    ``gamma > 1``; ``nu = delta_0`` gives 1. Exact (no numerics).
    """
    a, w, gamma = check_law(atoms, weights, gamma)
    w0 = float(w[a == 0.0].sum())
    return max(0.0, 1.0 - (1.0 - w0) / gamma)


def support_bound(atoms, weights, gamma) -> tuple[float, float]:
    """An interval ``[lo, hi]`` containing the support of the limiting law.

    ``H = H+ - H-`` with ``H+-`` PSD built from the positive/negative weights, and
    ``||(1/N) sum_{i in S} x_i x_i^T|| -> (1 + sqrt(gamma))^2`` at most, so
    ``lo = -(1+sqrt g)^2 max(tau_-)``, ``hi = (1+sqrt g)^2 max(tau_+)`` (both 0 if absent).
    """
    a, w, gamma = check_law(atoms, weights, gamma)
    a = a[w > 0]
    f = (1.0 + math.sqrt(gamma)) ** 2
    return f * min(0.0, float(a.min())), f * max(0.0, float(a.max()))


# ----------------------------------------------------------------------------- numba kernels
@njit(cache=True, inline="always")
def _zfun(s, tau, w, gamma):
    """Z(s) = -1/s + sum w tau/(1 + gamma tau s) and Z'(s) = 1/s^2 - gamma sum w tau^2/(.)^2."""
    acc_r = 0.0
    acc_i = 0.0
    dac_r = 0.0
    dac_i = 0.0
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
        wt = w[j] * t
        acc_r += wt * rr
        acc_i += wt * ri
        # w t^2 r^2
        wtt = wt * t
        dac_r += wtt * (rr * rr - ri * ri)
        dac_i += wtt * (2.0 * rr * ri)
    inv = 1.0 / s
    zz = complex(acc_r, acc_i) - inv
    dz = inv * inv - gamma * complex(dac_r, dac_i)
    return zz, dz


@njit(cache=True)
def _zmag(s, z, tau, w, gamma):
    """Round-off scale of Z(s) - z: |1/s| + sum w |tau / (1 + gamma tau s)| + |z|."""
    acc = 0.0
    for j in range(tau.size):
        t = tau[j]
        acc += w[j] * abs(t) / abs(1.0 + gamma * t * s)
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
    """Fallback for one real point: eta ladder to eta_min, then Newton at eta = 0."""
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
# than what launching the thread pool can cost on a loaded machine (~10 ms per call).
_PARALLEL_WORK = 200_000


def _solve_complex_any(zs, tau, w, gamma, eta0):
    # the eta ladder costs ~20 Newton solves per point
    if 20 * zs.size * tau.size < _PARALLEL_WORK or numba.get_num_threads() == 1:
        return _solve_complex_serial(zs, tau, w, gamma, eta0)
    return _solve_complex(zs, tau, w, gamma, eta0)


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


def gmp_support(atoms, weights, gamma) -> list[tuple[float, float]]:
    """Support of the absolutely continuous part of the limiting law: sorted disjoint intervals.

    Method (Silverstein-Choi / SPECTRODE in the variable ``u = 1/s``): ``x`` is outside the
    support iff ``x = Z(u) = -u + E[tau u/(u + gamma tau)]`` for a real ``u`` with
    ``phi(u) := Z'(u) = gamma E[tau^2/(u + gamma tau)^2] - 1 < 0``. ``phi`` is convex between
    consecutive poles ``-gamma tau_j`` (any sign of ``tau``), so every pole interval holds at
    most one gap, found by safeguarded Newton/bisection; the unbounded outer intervals hold one
    edge each. Edges ``Z(u*)`` with ``phi(u*) = 0`` are accurate to round-off (``Z`` is
    stationary there). The atom at 0 (``u = 0`` in a gap) is not part of the result.
    """
    tau, w, w0, gamma, scale = _prepare(atoms, weights, gamma)
    return [(lo * scale, hi * scale) for lo, hi in _support_scaled(tau, w, gamma)]


def _support_scaled(tau, w, gamma):
    if tau.size == 0:
        return []
    m2 = float(np.dot(w, tau * tau))
    gaps = _gaps(tau, w, gamma, m2)
    gaps = gaps[np.argsort(gaps[:, 0])]
    out = []
    right = gaps[0, 1]
    for lo, hi in gaps[1:]:
        if lo > right:
            out.append((float(right), float(lo)))
        right = max(right, hi)
    return out


# ----------------------------------------------------------------------------- public API
def _prepare(atoms, weights, gamma):
    a, w, gamma = check_law(atoms, weights, gamma)
    tau, ww, w0 = _reduce(a, w)
    scale = float(np.abs(tau).max()) if tau.size else 1.0
    return tau / scale, ww, w0, gamma, scale


def _eta0(gamma):
    # in rescaled units (max |tau| = 1) the support lies in |x| <= (1 + sqrt(gamma))^2
    return 4.0 * (1.0 + math.sqrt(gamma)) ** 2


def _solve_real(x, tau, w, gamma, zm, return_flags=False):
    """s(x + i0) in rescaled units for a real array x (any shape)."""
    xf = np.ascontiguousarray(x, dtype=np.float64).ravel()
    if not np.all(np.isfinite(xf)):
        raise ValueError("x must be finite real numbers")
    order = np.argsort(xf, kind="stable")
    xs = xf[order].copy()
    if zm > 0:
        # atom at 0: s(0) is infinite; the absolutely continuous part is evaluated at 0+.
        xs[xs == 0.0] = 1e-13
    nchunks = max(1, min(numba.get_num_threads(), xs.size // 16 if xs.size >= 16 else 1))
    if xs.size * tau.size < _PARALLEL_WORK:
        nchunks = 1
    args = (xs, tau, w, gamma, _eta0(gamma), 1e-13 * (1.0 + gamma), 1e-13)
    if nchunks == 1:
        out, flag = _solve_real_grid_serial(*args)
    else:
        out, flag = _solve_real_grid(*args, nchunks)
    res = np.empty_like(out)
    res[order] = out
    fl = np.empty_like(flag)
    fl[order] = flag
    if return_flags:
        return res.reshape(np.shape(x)), fl.reshape(np.shape(x))
    return res.reshape(np.shape(x))


def gmp_stieltjes(z, atoms, weights, gamma, return_flags=False):
    """Stieltjes transform ``s(z) = int dmu(t)/(t - z)`` of the limiting GMP law.

    Parameters
    ----------
    z : complex array_like
        Evaluation points. ``Im z > 0``: the unique root of (GMP) with ``Im s > 0``.
        ``Im z == 0``: the boundary value ``s(x + i0) = lim_{eta->0+} s(x + i eta)``
        (``Im s = pi rho(x)``; real outside the support). ``Im z < 0``: ``conj(s(conj z))``.
        At ``z = 0`` with an atom at 0 the value at ``0+`` (``1e-13`` in units of
        ``max|tau|``) is returned.
    atoms, weights : array_like
        The weight law ``nu = sum_j weights_j delta_{atoms_j}`` (atoms of any sign).
    gamma : float
        Aspect ratio ``d/N > 0``.
    return_flags : bool
        Also return an int array: 0 = solved by continuation and certified, 1 = solved by the
        ``eta`` ladder and certified, 2 = not certified (small-``eta`` value returned).

    Returns
    -------
    complex ndarray of the shape of ``z``. Relative accuracy ~1e-14 away from the edges.
    """
    tau, w, w0, gamma, scale = _prepare(atoms, weights, gamma)
    zz = _as_array("z", z, np.complex128, "complex")
    shape = zz.shape
    zf = zz.ravel()
    if not (np.all(np.isfinite(zf.real)) and np.all(np.isfinite(zf.imag))):
        raise ValueError("z must be finite complex numbers")
    out = np.empty(zf.shape, dtype=np.complex128)
    flags = np.zeros(zf.shape, dtype=np.int64)
    if tau.size == 0:  # nu = delta_0: H = 0, mu = delta_0, s = -1/z
        with np.errstate(divide="ignore", invalid="ignore"):
            out = -1.0 / zf
        return (out.reshape(shape), flags.reshape(shape)) if return_flags else out.reshape(shape)
    zn = zf / scale
    zm = max(0.0, 1.0 - (1.0 - w0) / gamma)
    real = zn.imag == 0.0
    if np.any(real):
        xr = zn.real[real]
        s, f = _solve_real(xr, tau, w, gamma, zm, return_flags=True)
        # outside the exact support s(x + i0) is real (removes ~1e-9 noise within ~1e-12
        # of an edge, where the eta = 0 root is a near-double root)
        inside = np.zeros(xr.shape, dtype=bool)
        for lo_, hi_ in _support_scaled(tau, w, gamma):
            inside |= (xr > lo_) & (xr < hi_)
        out[real], flags[real] = np.where(inside, s, s.real + 0j), f
    up = zn.imag > 0.0
    if np.any(up):
        s, f = _solve_complex_any(np.ascontiguousarray(zn[up]), tau, w, gamma, _eta0(gamma))
        out[up], flags[up] = s, 2 * f
    lo = zn.imag < 0.0
    if np.any(lo):
        s, f = _solve_complex_any(np.ascontiguousarray(zn[lo].conj()), tau, w, gamma, _eta0(gamma))
        out[lo], flags[lo] = s.conj(), 2 * f
    out = out / scale
    if return_flags:
        return out.reshape(shape), flags.reshape(shape)
    return out.reshape(shape)


def gmp_density(x, atoms, weights, gamma):
    """Density ``rho(x) = Im s(x + i0) / pi`` of the absolutely continuous part of the law.

    The atom at 0 (:func:`gmp_zero_mass`) is *not* included. Real ``x`` of any shape; the
    result has the same shape, is ``>= 0`` and exactly 0 outside the support (where the
    certified root is real). Accuracy: ~1e-13 relative to ``max rho`` away from edges
    (see module docstring). At ``x = 0`` with an atom at 0, the value at ``0+``.
    """
    xx = _as_array("x", x, np.float64, "real")
    tau, w, w0, gamma, scale = _prepare(atoms, weights, gamma)
    if tau.size == 0:
        return np.zeros(xx.shape)
    zm = max(0.0, 1.0 - (1.0 - w0) / gamma)
    xn = xx / scale
    s = _solve_real(xn, tau, w, gamma, zm)
    rho = np.maximum(s.imag, 0.0) / (np.pi * scale)
    # Outside the exact support (gmp_support) the density is exactly 0. Within ~1e-12 of an
    # edge the eta = 0 root is ill-conditioned (double root): this removes the O(1e-9) noise.
    inside = np.zeros(xn.shape, dtype=bool)
    for lo, hi in _support_scaled(tau, w, gamma):
        inside |= (xn > lo) & (xn < hi)
    return np.where(inside, rho, 0.0)
