"""GMPLaw: exact moments vs closed forms and quadrature, cdf, support."""

from math import comb

import numpy as np
import pytest
from _quadrature import adaptive_gauss
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from rmthess.theory.law import GMPLaw, gmp_moments


def narayana_moment(k, g):
    """Marchenko-Pastur moments: sum_r g^r/(r+1) C(k,r) C(k-1,r)."""
    if k == 0:
        return 1.0
    return sum(g**r / (r + 1) * comb(k, r) * comb(k - 1, r) for r in range(k))


@given(g=st.floats(0.05, 10.0), c=st.floats(-3.0, 3.0).filter(lambda v: abs(v) > 0.1))
def test_moments_mp_narayana(g, c):
    M = gmp_moments([c], [1.0], g, 8)
    for k in range(9):
        assert M[k] == pytest.approx(c**k * narayana_moment(k, g), rel=1e-12)


def test_moments_low_order_formulas():
    rng = np.random.default_rng(0)
    a = rng.normal(size=7)
    w = rng.uniform(size=7)
    w /= w.sum()
    g = 0.37
    m1, m2, m3 = (np.dot(w, a**k) for k in (1, 2, 3))
    law = GMPLaw(a, w, g)
    assert law.mean() == pytest.approx(m1, rel=1e-14)
    assert law.moment(2) == pytest.approx(g * m2 + m1**2, rel=1e-14)
    assert law.var() == pytest.approx(g * m2, rel=1e-12)
    assert law.moment(3) == pytest.approx(g**2 * m3 + 3 * g * m1 * m2 + m1**3, rel=1e-12)


signed_laws = st.integers(1, 5).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.floats(-2, 2).filter(lambda v: abs(v) > 0.05), min_size=n, max_size=n, unique=True
        ),
        st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n),
        st.floats(0.1, 4.0),
    )
)


@settings(max_examples=15)  # each example: 4 adaptive quadratures of the solved density
@given(law=signed_laws)
def test_recursion_moments_match_density(law):
    """Moments 0..3 from the recursion == quadrature of the solved density (+ atom at 0)."""
    atoms, w, g = law
    w = np.asarray(w) / np.sum(w)
    L = GMPLaw(atoms, w, g)
    M = gmp_moments(atoms, w, g, 3)
    for k in range(4):
        q = adaptive_gauss(L.support(), lambda x, k=k: x**k * L.pdf(x))
        if k == 0:
            q += L.zero_mass
        # quadrature to 1e-12 per panel of a density accurate to ~1e-13 (~1e-11 within 1e-9
        # of an edge, and near-cusps where two bulks are about to separate): ~1e-9 in the
        # sum; scale = the size of the support (max|tau| (1 + g)) to the power k
        scale = max(1.0, np.max(np.abs(atoms))) ** k * (1 + g) ** k
        assert q == pytest.approx(M[k], abs=1e-8 * scale)


@given(law=signed_laws)
def test_cdf_properties(law):
    atoms, w, g = law
    w = np.asarray(w) / np.sum(w)
    L = GMPLaw(atoms, w, g)
    sup = L.support()
    lo, hi = sup[0][0], sup[-1][1]
    x = np.linspace(min(lo, 0.0) - 1, max(hi, 0.0) + 1, 400)
    F = L.cdf(x)
    assert np.all(np.diff(F) >= -1e-12)
    assert F[0] == 0.0
    assert F[-1] == pytest.approx(1.0, abs=1e-10)
    assert L.ac_mass() + L.zero_mass == pytest.approx(1.0, abs=1e-10)
    # jump at 0 equals the atom at 0 (the ac mass in [-1e-24, 0] is <~ sqrt(1e-24) even when
    # the density has an x^(-1/2) singularity at 0, at gamma = 1 - nu({0}))
    jump = L.cdf(0.0) - L.cdf(-1e-24)
    assert jump == pytest.approx(L.zero_mass, abs=1e-10)


def test_cdf_against_scipy_quad():
    L = GMPLaw([-1.0, 0.5, 2.0], [0.3, 0.3, 0.4], 0.7)
    ((a, b),) = L.support()
    for x in (-1.0, -0.2, 0.3, 2.0, 4.0):
        ref = 0.0
        for lo, hi in ((a, min(x, 0.0)), (0.0, x)):  # split at the kink at 0
            if hi > lo:
                ref += quad(lambda t: L.pdf(np.array([t]))[0], lo, hi, epsabs=1e-14, limit=400)[0]
        assert L.cdf(x) == pytest.approx(ref, abs=1e-11)


def test_mp_law_object():
    g = 3.0
    L = GMPLaw([1.0], [1.0], g)
    assert L.zero_mass == pytest.approx(1 - 1 / g)
    ((lo, hi),) = L.support()
    assert lo == pytest.approx((1 - np.sqrt(g)) ** 2, rel=1e-13)
    assert hi == pytest.approx((1 + np.sqrt(g)) ** 2, rel=1e-13)
    assert L.cdf(0.0) == pytest.approx(1 - 1 / g, abs=1e-13)
    assert L.cdf(hi + 1) == pytest.approx(1.0, abs=1e-12)
    # stieltjes at large |z|: -1/z - M1/z^2 - M2/z^3 ...
    z = 1e3j  # truncation after M_3: M_4 / |z|^5 ~ 1e-13, relative 1e-10
    ref = -1 / z - 1 / z**2 - (1 + g) / z**3 - narayana_moment(3, g) / z**4
    assert L.stieltjes(z) == pytest.approx(ref, rel=1e-9)
    assert "GMPLaw" in repr(L)
    assert L.std() == pytest.approx(np.sqrt(g))


def test_degenerate_law():
    L = GMPLaw([0.0], [1.0], 0.5)
    assert L.zero_mass == 1.0
    assert L.support() == []
    assert L.cdf(-1.0) == 0.0 and L.cdf(0.0) == 1.0
    assert L.moment(2) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        GMPLaw([1.0], [1.0], 0)
    with pytest.raises(ValueError, match="k"):
        GMPLaw([1.0], [1.0], 1.0).moment(-1)
    with pytest.raises(TypeError, match="k"):
        GMPLaw([1.0], [1.0], 1.0).moment(1.5j)
    with pytest.raises(ValueError, match="NaN"):
        GMPLaw([1.0], [1.0], 1.0).cdf([0.5, np.nan])
    with pytest.raises(TypeError, match="x must be an array of real"):
        GMPLaw([1.0], [1.0], 1.0).cdf("a")
    assert GMPLaw([1.0], [1.0], 1.0).cdf([-np.inf, np.inf]).tolist() == [0.0, 1.0]


def test_tiny_gamma_refused():
    """Support width 4e-15 (below the resolution of x near 1): refused with the range
    (the old code returned a silently wrong total mass, 0.97)."""
    with pytest.raises(ValueError, match=r"gamma must be in \[1e-12"):
        GMPLaw([1.0], [1.0], 1e-30)
