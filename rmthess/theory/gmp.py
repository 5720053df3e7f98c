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
  thread-pool launch can cost ~10 ms on a loaded machine, more than the whole solve). The
  kernels live in :mod:`rmthess.theory.gmp_kernels`.
* Hard edge at 0 (``gamma = 1 - nu({0})``, density ``~ x^(-1/2)``): where ``-1/s`` and
  ``E[tau/(1 + gamma tau s)]`` cancel to more than 3 digits (``|Z s| < 1e-3``) and
  ``gamma |s| >= 1``, the kernels recompute
  ``Z(s) = ((W - gamma) - E'[1/(1 + gamma tau s)]) / (gamma s)`` (``W``, ``E'``: mass and
  sum over the nonzero atoms), which has no cancellation at the hard edge; the density keeps
  full relative accuracy down to ``x ~ 1e-150 max|tau|`` (checked against the MP closed
  form at ``gamma = 1``; the old form lost all digits below ``x ~ 1e-21``).

Accuracy: Newton stops at a relative step ``<= 1e-13`` and takes one more step, or, when
ill-conditioned (near an edge, ``Z'(s) ~ 0``), once the residual is at round-off level
followed by two polishing steps. Checked against certified mpmath solutions: density errors
``<~ 2e-13`` including points at ``1e-9`` (relative) from an edge; at a distance ``delta``
from a square-root edge the conditioning limit is ``~ eps / sqrt(delta)``. Outside the exact
support (:func:`gmp_support`) the density is exactly 0.

Domain: ``gamma`` in ``[1e-12, 1e12]`` for the numerical routines (each bulk of the law is
``~ sqrt(gamma)`` (``1/sqrt(gamma)`` for large ``gamma``) wide relative to its position,
so outside that range it is not resolved by float64 ``x``: :func:`gmp_zero_mass`,
:func:`support_bound` and ``gmp_moments`` are exact and accept any ``gamma > 0``);
``max |atom|`` in ``[1e-150, 1e150]`` (or all atoms 0).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numba
import numpy as np
from numpy.typing import ArrayLike

from rmthess._checks import check_positive_float
from rmthess.theory.gmp_kernels import (
    _gaps,
    _solve_complex,
    _solve_complex_serial,
    _solve_real_grid,
    _solve_real_grid_serial,
)

__all__ = [
    "GAMMA_RANGE",
    "check_law",
    "gmp_density",
    "gmp_stieltjes",
    "gmp_support",
    "gmp_zero_mass",
    "support_bound",
]

_WEIGHT_TOL = 1e-9
#: Range of ``gamma`` accepted by the numerical routines (see the module docstring).
GAMMA_RANGE = (1e-12, 1e12)
_ATOM_MAX = 1e150  # supported range of max |atom| (nonzero laws): [1/_ATOM_MAX, _ATOM_MAX]
_FAR = 1e100  # |x| / max|tau| beyond this: s = -1/z - m1/z^2 to round-off, density 0
# Work (points x atoms) below which the serial kernels are used: ~1 ms of serial work, less
# than what launching the thread pool can cost on a loaded machine (~10 ms per call).
_PARALLEL_WORK = 200_000


# ----------------------------------------------------------------------------- input checks
def _as_array(name, value, dtype, kind):
    """``np.asarray(value, dtype)`` for real (``kind="real"``) or complex numbers only.

    Strings, bytes, booleans and other non-numbers raise a ``TypeError`` naming ``name``
    (``np.asarray("1", float)`` would silently parse the string)."""
    allowed = "iuf" if kind == "real" else "iufc"
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raw = None
    ok = raw is not None and raw.dtype.kind in allowed
    if raw is not None and raw.dtype.kind == "O":  # e.g. a list mixing ints and Fractions
        ok = all(
            isinstance(v, numbers.Number) and not isinstance(v, bool) for v in raw.ravel().tolist()
        )
        ok = ok and (kind != "real" or all(isinstance(v, numbers.Real) for v in raw.ravel()))
    if ok:
        try:
            return np.asarray(raw, dtype=dtype)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"{name} must be an array of {kind} numbers, got {value!r}")


def check_law(atoms, weights, gamma):
    """Validate ``(atoms, weights, gamma)``; return float64 arrays and float gamma.

    atoms: non-empty 1-D reals (any sign) with ``max |atom|`` in ``[1e-150, 1e150]`` or all
    0; weights: same length, finite, ``>= 0``, summing to 1 within ``1e-9``; gamma: finite
    ``> 0``. Raises ``TypeError`` (not numbers: strings are refused) or ``ValueError``, naming
    the parameter and the allowed range.
    """
    gamma = check_positive_float("gamma", gamma)
    a = np.atleast_1d(_as_array("atoms", atoms, np.float64, "real"))
    w = np.atleast_1d(_as_array("weights", weights, np.float64, "real"))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"atoms must be a non-empty 1-D array, got shape {a.shape}")
    if w.ndim != 1 or w.shape != a.shape:
        raise ValueError(
            f"atoms and weights must have the same length, got {a.size} atoms and "
            f"weights of shape {w.shape}"
        )
    bad = ~np.isfinite(a)
    if np.any(bad):
        i = int(np.argmax(bad))
        what = "NaN" if np.isnan(a[i]) else "infinite (an overflow upstream?)"
        raise ValueError(
            f"atoms must be finite real numbers with max |atom| <= {_ATOM_MAX:g}; "
            f"atoms[{i}] is {what}"
        )
    amax = float(np.abs(a).max())
    if amax > _ATOM_MAX or 0.0 < amax < 1.0 / _ATOM_MAX:
        raise ValueError(
            f"max |atom| must be in [{1.0 / _ATOM_MAX:g}, {_ATOM_MAX:g}] (or all atoms 0), got "
            f"{amax:g}; rescale: the law of c*nu is the law of nu scaled by c"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    total = float(w.sum())
    if abs(total - 1.0) > _WEIGHT_TOL:
        raise ValueError(f"weights must sum to 1 (within {_WEIGHT_TOL:g}), got sum {total!r}")
    return a, w / total, gamma


def check_gamma_range(gamma: float) -> float:
    """``gamma`` (already a finite float > 0) must lie in :data:`GAMMA_RANGE`."""
    lo, hi = GAMMA_RANGE
    if not lo <= gamma <= hi:
        raise ValueError(
            f"gamma must be in [{lo:g}, {hi:g}] for the numerical GMP solver, got {gamma!r} "
            "(the bulk is ~sqrt(gamma) wide relative to its position, below float64 "
            "resolution outside that range; as gamma -> 0 the law tends to delta_{E tau} "
            "with variance gamma E[tau^2])"
        )
    return gamma


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


def _prepare(atoms, weights, gamma):
    """Checked, reduced and rescaled law: ``(tau / scale, w, w0, gamma, scale)``."""
    a, w, gamma = check_law(atoms, weights, gamma)
    check_gamma_range(gamma)
    tau, ww, w0 = _reduce(a, w)
    scale = float(np.abs(tau).max()) if tau.size else 1.0
    return tau / scale, ww, w0, gamma, scale


def _check_support(support, scale):
    """A user-given support (``gmp_support`` output) in rescaled units, as an (k, 2) array."""
    try:
        arr = np.asarray(_as_array("support", support, np.float64, "real"), dtype=np.float64)
    except TypeError:
        raise TypeError(
            f"support must be a list of (lo, hi) pairs as returned by gmp_support, got {support!r}"
        ) from None
    arr = arr.reshape(-1, 2) if arr.size == 0 else arr
    if (
        arr.ndim != 2
        or arr.shape[1] != 2
        or not np.all(np.isfinite(arr))
        or np.any(arr[:, 0] >= arr[:, 1])
        or np.any(arr[1:, 0] <= arr[:-1, 1])
    ):
        raise ValueError(
            "support must be sorted disjoint finite (lo, hi) pairs with lo < hi, as returned "
            f"by gmp_support(atoms, weights, gamma), got {support!r}"
        )
    return arr / scale


def gmp_zero_mass(atoms: ArrayLike, weights: ArrayLike, gamma: float) -> float:
    """Mass of the limiting spectral law at 0: ``max(0, 1 - (1 - nu({0})) / gamma)``.

    ``H`` has rank ``min(d, #{i: a_i != 0})`` almost surely, and ``#{a_i != 0} / d ->
    (1 - nu({0})) / gamma``. Examples: MP (``nu = delta_1``) gives ``1 - 1/gamma`` for
    ``gamma > 1``; ``nu = delta_0`` gives 1. Exact (no numerics), any ``gamma > 0``.

    >>> gmp_zero_mass([1.0], [1.0], 4.0)
    0.75
    """
    a, w, gamma = check_law(atoms, weights, gamma)
    w0 = float(w[a == 0.0].sum())
    return max(0.0, 1.0 - (1.0 - w0) / gamma)


def support_bound(atoms: ArrayLike, weights: ArrayLike, gamma: float) -> tuple[float, float]:
    """An interval ``[lo, hi]`` containing the support of the limiting law.

    ``H = H+ - H-`` with ``H+-`` PSD built from the positive/negative weights, and
    ``||(1/N) sum_{i in S} x_i x_i^T|| -> (1 + sqrt(gamma))^2`` at most, so
    ``lo = -(1+sqrt g)^2 max(tau_-)``, ``hi = (1+sqrt g)^2 max(tau_+)`` (both 0 if absent).
    """
    a, w, gamma = check_law(atoms, weights, gamma)
    a = a[w > 0]
    f = (1.0 + math.sqrt(gamma)) ** 2
    return f * min(0.0, float(a.min())), f * max(0.0, float(a.max()))


# ----------------------------------------------------------------------------- support
def gmp_support(atoms: ArrayLike, weights: ArrayLike, gamma: float) -> list[tuple[float, float]]:
    """Support of the absolutely continuous part of the limiting law: sorted disjoint intervals.

    Method (Silverstein-Choi / SPECTRODE in the variable ``u = 1/s``): ``x`` is outside the
    support iff ``x = Z(u) = -u + E[tau u/(u + gamma tau)]`` for a real ``u`` with
    ``phi(u) := Z'(u) = gamma E[tau^2/(u + gamma tau)^2] - 1 < 0``. ``phi`` is convex between
    consecutive poles ``-gamma tau_j`` (any sign of ``tau``), so every pole interval holds at
    most one gap, found by safeguarded Newton/bisection; the unbounded outer intervals hold one
    edge each. Edges ``Z(u*)`` with ``phi(u*) = 0`` are accurate to round-off (``Z`` is
    stationary there); a hard edge (``gamma = 1 - nu({0})``, ``u* = 0``) is exactly 0. The
    atom at 0 is not part of the result. Cost ``O(n_atoms^2)`` at worst: cache it
    (:class:`rmthess.theory.law.GMPLaw` does) and pass it to :func:`gmp_density`.

    >>> gmp_support([1.0], [1.0], 0.25)           # MP: [(1 - sqrt g)^2, (1 + sqrt g)^2]
    [(0.25, 2.25)]
    """
    tau, w, w0, gamma, scale = _prepare(atoms, weights, gamma)
    return [(float(lo * scale), float(hi * scale)) for lo, hi in _support_scaled(tau, w, gamma)]


def _hard_edge(w: np.ndarray, gamma: float) -> bool:
    """``gamma == 1 - nu({0})`` to round-off: the support has a hard edge at 0."""
    wsum = float(w.sum())
    return bool(abs(wsum - gamma) <= 8 * np.finfo(float).eps * max(wsum, gamma))


def _support_scaled(tau, w, gamma):
    """Support intervals in rescaled units as an (k, 2) float array."""
    if tau.size == 0:
        return np.empty((0, 2))
    m2 = float(np.dot(w, tau * tau))
    gaps = _gaps(tau, w, gamma, m2)
    gaps = gaps[np.argsort(gaps[:, 0])]
    out = []
    right = gaps[0, 1]
    for lo, hi in gaps[1:]:
        if lo > right:
            out.append((float(right), float(lo)))
        right = max(right, hi)
    out = np.array(out, dtype=np.float64).reshape(-1, 2)
    if _hard_edge(w, gamma):
        # hard edge: u* = 0 is a root of phi and Z(0) = 0 exactly; the computed root is
        # O(eps) off and Z(u*) ~ -u*^2 E'[1/(gamma^2 tau)] ~ 1e-32: snap it to 0
        out[np.abs(out) <= 1e-20] = 0.0
    return out


# ----------------------------------------------------------------------------- solvers
def _eta0(gamma):
    # in rescaled units (max |tau| = 1) the support lies in |x| <= (1 + sqrt(gamma))^2
    return 4.0 * (1.0 + math.sqrt(gamma)) ** 2


def _solve_complex_any(zs, tau, w, gamma, eta0):
    # the eta ladder costs ~20 Newton solves per point
    if 20 * zs.size * tau.size < _PARALLEL_WORK or numba.get_num_threads() == 1:
        return _solve_complex_serial(zs, tau, w, gamma, eta0)
    return _solve_complex(zs, tau, w, gamma, eta0)


def _solve_real(xf, tau, w, gamma, zm):
    """s(x + i0) and flags in rescaled units for a finite 1-D real array xf."""
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
    return res, fl


def _inside(xn, sup):
    """``xn`` in one of the open intervals of ``sup`` (sorted, disjoint, rescaled)."""
    if len(sup) == 0:
        return np.zeros(xn.shape, dtype=bool)
    idx = np.searchsorted(sup[:, 0], xn, side="right") - 1
    j = np.maximum(idx, 0)
    return (idx >= 0) & (xn > sup[j, 0]) & (xn < sup[j, 1])


def _stieltjes(zf, tau, w, w0, gamma, scale, sup):
    """s(z) and flags for a finite 1-D complex array (original units); sup rescaled or None."""
    out = np.empty(zf.shape, dtype=np.complex128)
    flags = np.zeros(zf.shape, dtype=np.int64)
    zm = max(0.0, 1.0 - (1.0 - w0) / gamma)
    with np.errstate(over="ignore"):
        zn = zf / scale
    real = zn.imag == 0.0
    at_atom = real & (zn.real == 0.0)
    hard = tau.size > 0 and _hard_edge(w, gamma)
    far = (np.abs(zf) > _FAR * scale) & ~at_atom
    if tau.size == 0:  # nu = delta_0: H = 0, mu = delta_0, s = -1/z
        far = ~at_atom
    if np.any(far):  # s = -1/z - m1/z^2 - M2/z^3 ..., M2/|z|^2 < 1e-176: round-off
        zfar = zf[far]
        out[far] = -(1.0 + float(np.dot(w, tau)) * scale / zfar) / zfar
    if np.any(at_atom):
        # an atom at 0 (or the x^(-1/2) hard edge): Im s(i eta) -> +inf, Re s undefined
        infinite = zm > 0 or hard or tau.size == 0
        if infinite:
            out[at_atom] = np.nan + 1j * np.inf  # (not a complex product: nan*j = nan+nanj)
    else:
        infinite = False
    rest = ~far & ~(at_atom & infinite)
    real = real & rest
    if np.any(real):
        xr = zn.real[real]
        s, f = _solve_real(xr, tau, w, gamma, zm)
        if sup is None:
            sup = _support_scaled(tau, w, gamma)
        # outside the exact support s(x + i0) is real (removes ~1e-9 noise within ~1e-12
        # of an edge, where the eta = 0 root is a near-double root)
        out[real], flags[real] = np.where(_inside(xr, sup), s, s.real + 0j) / scale, f
    for sign in (1.0, -1.0):
        sel = rest & (sign * zn.imag > 0.0)
        if np.any(sel):
            zs = np.ascontiguousarray(zn[sel].real + 1j * np.abs(zn[sel].imag))
            s, f = _solve_complex_any(zs, tau, w, gamma, _eta0(gamma))
            out[sel], flags[sel] = (s if sign > 0 else s.conj()) / scale, 2 * f
    return out, flags


def gmp_stieltjes(
    z: ArrayLike,
    atoms: ArrayLike,
    weights: ArrayLike,
    gamma: float,
    return_flags: bool = False,
    *,
    support: list[tuple[float, float]] | None = None,
) -> Any:
    """Stieltjes transform ``s(z) = int dmu(t)/(t - z)`` of the limiting GMP law.

    Parameters
    ----------
    z : complex array_like
        Evaluation points. ``Im z > 0``: the unique root of (GMP) with ``Im s > 0``.
        ``Im z == 0``: the boundary value ``s(x + i0) = lim_{eta->0+} s(x + i eta)``
        (``Im s = pi rho(x)``; real outside the support). ``Im z < 0``: ``conj(s(conj z))``.
        At ``z = 0`` when the law has an atom at 0 (:func:`gmp_zero_mass` ``> 0``, e.g.
        ``nu = delta_0``) or a hard edge there (``gamma = 1 - nu({0})``, density
        ``~ x^(-1/2)``), ``Im s(i eta) -> +inf`` and the real part has no limit in general:
        ``complex(nan, inf)`` is returned.
    atoms, weights : array_like
        The weight law ``nu = sum_j weights_j delta_{atoms_j}`` (atoms of any sign).
    gamma : float
        Aspect ratio ``d/N``, in :data:`GAMMA_RANGE`.
    return_flags : bool
        Also return an int array: 0 = solved by continuation and certified, 1 = solved by the
        ``eta`` ladder and certified, 2 = not certified (small-``eta`` value returned).
    support : list of (lo, hi), keyword-only
        ``gmp_support(atoms, weights, gamma)`` if already known (skips recomputing it).

    Returns
    -------
    complex ndarray of the shape of ``z``. Relative accuracy ~1e-14 away from the edges.

    >>> s = gmp_stieltjes(1j, [1.0], [1.0], 1.0)   # MP at gamma = 1: z s^2 + z s + 1 = 0
    >>> bool(abs(1j * s**2 + 1j * s + 1) < 1e-14 and s.imag > 0)
    True
    """
    tau, w, w0, gamma, scale = _prepare(atoms, weights, gamma)
    zz = _as_array("z", z, np.complex128, "complex")
    zf = zz.ravel()
    if not (np.all(np.isfinite(zf.real)) and np.all(np.isfinite(zf.imag))):
        raise ValueError("z must be finite complex numbers (no NaN or inf)")
    sup = None if support is None else _check_support(support, scale)
    out, flags = _stieltjes(zf, tau, w, w0, gamma, scale, sup)
    if return_flags:
        return out.reshape(zz.shape), flags.reshape(zz.shape)
    return out.reshape(zz.shape)


def _density(xx, tau, w, w0, gamma, scale, sup):
    """Density for a finite real array xx (original units); sup rescaled or None."""
    if tau.size == 0:
        return np.zeros(xx.shape)
    if sup is None:
        sup = _support_scaled(tau, w, gamma)
    zm = max(0.0, 1.0 - (1.0 - w0) / gamma)
    with np.errstate(over="ignore"):
        xn = np.clip(xx.ravel() / scale, -_FAR, _FAR)  # |x| > _FAR: far outside, density 0
    inside = _inside(xn, sup)
    rho = np.zeros(xn.shape)
    if np.any(inside):  # outside the exact support the density is exactly 0: no solve
        s, _ = _solve_real(np.ascontiguousarray(xn[inside]), tau, w, gamma, zm)
        rho[inside] = np.maximum(s.imag, 0.0) / (np.pi * scale)
    return rho.reshape(xx.shape)


def gmp_density(
    x: ArrayLike,
    atoms: ArrayLike,
    weights: ArrayLike,
    gamma: float,
    *,
    support: list[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Density ``rho(x) = Im s(x + i0) / pi`` of the absolutely continuous part of the law.

    The atom at 0 (:func:`gmp_zero_mass`) is *not* included. Real ``x`` of any shape (NaN
    and inf refused); the result has the same shape, is ``>= 0`` and exactly 0 outside the
    open support intervals (:func:`gmp_support`). Accuracy: ~1e-13 relative to ``max rho``
    away from edges (see module docstring); full relative accuracy at a hard edge at 0 for
    ``|x| >= 1e-150 max|tau|``. At ``x = 0`` with an atom at 0, the value at ``0+``. For
    ``nu = delta_0`` (``H = 0``) the density is 0 everywhere (``gmp_zero_mass = 1``).

    ``support`` (keyword-only): ``gmp_support(atoms, weights, gamma)`` if already known;
    computing it costs ``O(n_atoms^2)`` at worst (seconds for thousands of atoms).

    >>> import numpy as np
    >>> g, x = 0.5, np.array([0.2, 1.0, 2.5])     # Marchenko-Pastur, nu = delta_1
    >>> a, b = (1 - np.sqrt(g)) ** 2, (1 + np.sqrt(g)) ** 2
    >>> mp = np.sqrt(np.clip((b - x) * (x - a), 0, None)) / (2 * np.pi * g * x)
    >>> bool(np.allclose(gmp_density(x, [1.0], [1.0], g), mp, rtol=1e-12, atol=0))
    True
    """
    xx = _as_array("x", x, np.float64, "real")
    tau, w, w0, gamma, scale = _prepare(atoms, weights, gamma)
    if not np.all(np.isfinite(xx)):
        raise ValueError("x must be finite real numbers (no NaN or inf)")
    sup = None if support is None else _check_support(support, scale)
    return _density(xx, tau, w, w0, gamma, scale, sup)
