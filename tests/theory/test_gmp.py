"""GMP Stieltjes solver: closed forms, independent quadrature, branch and input checks."""

import numpy as np
import pytest
from _quadrature import adaptive_gauss
from hypothesis import given
from hypothesis import strategies as st

from rmthess.theory.gmp import (
    gmp_density,
    gmp_stieltjes,
    gmp_support,
    gmp_zero_mass,
    support_bound,
)


# ----------------------------------------------------------------------------- references
def mp_density(x, g):
    """Closed-form Marchenko-Pastur density, ratio g = d/N, scale 1."""
    a, b = (1 - np.sqrt(g)) ** 2, (1 + np.sqrt(g)) ** 2
    x = np.asarray(x, float)
    out = np.zeros_like(x)
    m = (x > a) & (x < b)
    out[m] = np.sqrt((b - x[m]) * (x[m] - a)) / (2 * np.pi * g * x[m])
    return out


def mp_stieltjes(z, g):
    """Root with Im s > 0 of g z s^2 + (z + g - 1) s + 1 = 0 (Im z > 0)."""
    z = np.asarray(z, complex)
    A, B = g * z, z + g - 1
    disc = np.sqrt(B * B - 4 * A)
    r1, r2 = (-B + disc) / (2 * A), (-B - disc) / (2 * A)
    return np.where(r1.imag > 0, r1, r2)


def fixed_point_reference(z, atoms, weights, g, iters=20000):
    """Plain damped fixed-point iteration of (GMP) at Im z >= 0.5 (numpy, independent)."""
    a = np.asarray(atoms, float)[:, None]
    w = np.asarray(weights, float)[:, None]
    s = -1.0 / np.asarray(z, complex)
    for _ in range(iters):
        s_new = 1.0 / (-z + (w * a / (1 + g * a * s)).sum(0))
        if np.max(np.abs(s_new - s)) < 1e-15:
            break
        s = 0.5 * s + 0.5 * s_new
    return s_new


signed_laws = st.integers(1, 6).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.floats(-3, 3).filter(lambda v: abs(v) > 0.05), min_size=n, max_size=n, unique=True
        ),
        st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n),
        st.floats(0.1, 5.0),
    )
)


# ----------------------------------------------------------------------------- MP special case
@given(g=st.floats(0.02, 30.0))
def test_mp_density_closed_form(g):
    b = (1 + np.sqrt(g)) ** 2
    x = np.linspace(-0.5, b + 0.5, 1000)
    # observed <= 5e-14 (absolute, and relative where rho is large) over 300 hypothesis
    # examples; a grid point at distance delta from a square-root edge can carry
    # ~eps / sqrt(delta) (both the solver and the closed form), so atol allows delta ~ 1e-9
    np.testing.assert_allclose(
        gmp_density(x, [1.0], [1.0], g), mp_density(x, g), rtol=1e-12, atol=1e-11
    )


@given(g=st.floats(0.05, 10.0), c=st.floats(0.1, 10.0))
def test_mp_stieltjes_off_axis_closed_form(g, c):
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 2 * (1 + np.sqrt(g)) ** 2, 50) + 1j * 10 ** rng.uniform(-8, 1, 50)
    s = gmp_stieltjes(z * c, [c], [1.0], g)
    np.testing.assert_allclose(s * c, mp_stieltjes(z, g), rtol=1e-10)
    # lower half plane: conjugate symmetry
    np.testing.assert_allclose(gmp_stieltjes(np.conj(z) * c, [c], [1.0], g), np.conj(s), rtol=1e-12)


def test_mp_support_and_zero_mass():
    for g in (0.25, 1.0, 4.0):
        ((lo, hi),) = gmp_support([1.0], [1.0], g)
        assert lo == pytest.approx((1 - np.sqrt(g)) ** 2, abs=1e-14)
        assert hi == pytest.approx((1 + np.sqrt(g)) ** 2, rel=1e-14)
        assert gmp_zero_mass([1.0], [1.0], g) == pytest.approx(max(0.0, 1 - 1 / g), abs=1e-15)


def test_mp_near_edges_and_zero():
    g = 0.5
    a, b = (1 - np.sqrt(g)) ** 2, (1 + np.sqrt(g)) ** 2
    d = np.array([1e-12, 1e-9, 1e-6, 1e-3])
    x = np.concatenate([a - d, a + d, b - d, b + d])
    # Square-root edge: rho ~ sqrt(delta), so an input rounding of one ulp of x (~1e-17)
    # moves rho by ~ulp / sqrt(delta) ~ 1e-11 at delta = 1e-12 (the closed form suffers the
    # same cancellation in x - a). Away from delta < 1e-9 the agreement is ~1e-14.
    np.testing.assert_allclose(
        gmp_density(x, [1.0], [1.0], g), mp_density(x, g), rtol=1e-6, atol=1e-9
    )
    # gamma > 1: the atom at 0 is not in the density; x = 0 exactly gives the (zero) ac part
    assert gmp_density([0.0, 1e-300], [1.0], [1.0], 3.0).tolist() == [0.0, 0.0]


# ----------------------------------------------------------------------------- general signed nu
@given(law=signed_laws)
def test_signed_law_properties(law):
    atoms, w, g = law
    w = np.asarray(w) / np.sum(w)
    atoms = np.asarray(atoms)
    lo, hi = support_bound(atoms, w, g)
    # Im s > 0 on C+
    rng = np.random.default_rng(1)
    z = rng.uniform(lo - 1, hi + 1, 64) + 1j * 10 ** rng.uniform(-10, 1, 64)
    s = gmp_stieltjes(z, atoms, w, g)
    assert np.all(s.imag > 0)
    # density >= 0, zero outside the bound
    x = np.linspace(lo - 1, hi + 1, 500)
    rho = gmp_density(x, atoms, w, g)
    assert np.all(rho >= 0)
    assert np.all(rho[(x < lo - 1e-9) | (x > hi + 1e-9)] == 0)
    # mass + zero mass = 1; first two moments (independent quadrature, not the recursion)
    sup = gmp_support(atoms, w, g)
    zm = gmp_zero_mass(atoms, w, g)

    def f(k):
        return lambda t: t**k * gmp_density(t, atoms, w, g)

    m1, m2 = np.dot(w, atoms), np.dot(w, atoms**2)
    # adaptive quadrature to 1e-12 per panel; near-cusps (two bulks about to separate) and
    # the ~1e-11 density accuracy near edges leave the sums accurate to ~1e-9
    scale = max(1.0, abs(atoms).max())
    assert adaptive_gauss(sup, f(0)) + zm == pytest.approx(1.0, abs=1e-8)
    assert adaptive_gauss(sup, f(1)) == pytest.approx(m1, abs=1e-8 * scale)
    assert adaptive_gauss(sup, f(2)) == pytest.approx(g * m2 + m1**2, rel=1e-8)


@given(law=signed_laws)
def test_support_consistent_with_density(law):
    atoms, w, g = law
    w = np.asarray(w) / np.sum(w)
    sup = gmp_support(atoms, w, g)
    assert all(a < b for a, b in sup)
    assert all(sup[i][1] < sup[i + 1][0] for i in range(len(sup) - 1))
    mids = np.array([(a + b) / 2 for a, b in sup])
    assert np.all(gmp_density(mids, atoms, w, g) > 0)
    gaps = np.array([(sup[i][1] + sup[i + 1][0]) / 2 for i in range(len(sup) - 1)])
    gaps = gaps[np.abs(gaps) > 0]  # x = 0 may carry the atom at 0
    if gaps.size:
        assert np.all(gmp_density(gaps, atoms, w, g) == 0)


@given(law=signed_laws, c=st.floats(0.2, 5.0), sign=st.sampled_from([-1.0, 1.0]))
def test_scaling(law, c, sign):
    """The law of c*nu is the law of nu scaled by c (mirrored if c < 0)."""
    atoms, w, g = law
    w = np.asarray(w) / np.sum(w)
    atoms = np.asarray(atoms)
    lo, hi = support_bound(atoms, w, g)
    x = np.linspace(lo - 0.5, hi + 0.5, 301)
    c = sign * c
    r1 = gmp_density(c * x, c * atoms, w, g) * abs(c)
    r0 = gmp_density(x, atoms, w, g)
    # the rescaled problem is the same up to rounding of c * x: observed <= 4e-14 of max rho
    # over 300 examples; the margin covers grid points within ~1e-8 of an edge, where the
    # density is ill-conditioned (error ~ eps / sqrt(distance))
    np.testing.assert_allclose(r1, r0, rtol=1e-10, atol=1e-10 * max(r0.max(), 1.0))


@given(law=signed_laws)
def test_against_fixed_point_reference(law):
    """Off the axis (Im z >= 0.5) the damped fixed-point iteration converges: independent."""
    atoms, w, g = law
    w = np.asarray(w) / np.sum(w)
    rng = np.random.default_rng(2)
    z = rng.uniform(-8, 8, 20) + 1j * rng.uniform(0.5, 3, 20)
    ref = fixed_point_reference(z, atoms, w, g)
    np.testing.assert_allclose(gmp_stieltjes(z, atoms, w, g), ref, rtol=1e-11)


def test_real_axis_is_limit_of_small_eta():
    """Boundary value = limit of the (uniquely certified) C+ solution: O(eta) agreement."""
    rng = np.random.default_rng(3)
    atoms = rng.normal(size=300)
    w = np.full(300, 1 / 300)
    g = 0.7
    x = np.linspace(-5, 5, 400)
    s0 = gmp_stieltjes(x + 0j, atoms, w, g)
    for eta in (1e-6, 1e-8):
        s = gmp_stieltjes(x + 1j * eta, atoms, w, g)
        sup = gmp_support(atoms, w, g)
        dist = np.min([np.minimum(abs(x - a), abs(x - b)) for a, b in sup], axis=0)
        far = dist > 1e-2
        # |s'(x)| <~ C / sqrt(dist) near square-root edges: error <~ eta / dist^1.5 there
        assert np.max(np.abs(s - s0)[far]) < 1e3 * eta


def test_serial_and_parallel_kernels_agree():
    """700 points x 300 atoms takes the parallel (chunked) kernels, one point at a time the
    serial ones: the same certified roots, up to round-off from the chunk boundaries."""
    rng = np.random.default_rng(5)
    atoms = rng.normal(size=300)
    w = np.full(300, 1 / 300)
    g = 0.6
    x = np.linspace(-4, 5, 700)
    rho = gmp_density(x, atoms, w, g)
    one = np.array([gmp_density(xi, atoms, w, g) for xi in x[::14]])
    np.testing.assert_allclose(one, rho[::14], rtol=1e-12, atol=1e-14 * rho.max())
    z = x[:200] + 0.1j
    s = gmp_stieltjes(z, atoms, w, g)
    s1 = np.array([gmp_stieltjes(zi, atoms, w, g) for zi in z[::10]])
    np.testing.assert_allclose(s1, s[::10], rtol=1e-12)


def test_zero_atoms_and_degenerate_laws():
    # atoms at 0 only enlarge the atom at 0: nu = 0.5 delta_0 + 0.5 delta_1 at gamma is
    # MP with ratio 2 gamma on half the samples: mu = (1 - 1/(2g))^+ delta_0 + ...
    g = 0.8
    assert gmp_zero_mass([0.0, 1.0], [0.5, 0.5], g) == pytest.approx(1 - 0.5 / g)
    x = np.linspace(0.01, 6, 200)
    # rank-N/2 sum of x x^T / N = (1/2) * MP(ratio 2g) with N/2 samples
    np.testing.assert_allclose(
        gmp_density(x, [0.0, 1.0], [0.5, 0.5], g), 2 * mp_density(2 * x, 2 * g), atol=1e-9
    )
    assert gmp_zero_mass([0.0], [1.0], g) == 1.0
    assert np.all(gmp_density(x, [0.0], [1.0], g) == 0)
    assert gmp_support([0.0], [1.0], g) == []
    # duplicate atoms are merged
    np.testing.assert_allclose(
        gmp_density(x, [1.0, 1.0], [0.5, 0.5], g), gmp_density(x, [1.0], [1.0], g), atol=1e-13
    )


def test_shapes():
    x = np.linspace(0, 3, 12).reshape(3, 4)
    assert gmp_density(x, [1.0], [1.0], 0.5).shape == (3, 4)
    assert gmp_stieltjes(x + 1j, [1.0], [1.0], 0.5).shape == (3, 4)
    assert np.ndim(gmp_density(1.0, [1.0], [1.0], 0.5)) == 0


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "atoms, weights, gamma, match",
    [
        ([1.0], [1.0], 0.0, "gamma"),
        ([1.0], [1.0], -1.0, "gamma"),
        ([1.0], [1.0], float("nan"), "gamma"),
        ([1.0], [1.0], float("inf"), "gamma"),
        ([1.0, 2.0], [1.0], 0.5, "same length"),
        ([1.0, 2.0], [1.5, -0.5], 0.5, "weights"),
        ([1.0, 2.0], [0.4, 0.4], 0.5, "sum to 1"),
        ([], [], 0.5, "non-empty"),
        ([np.nan], [1.0], 0.5, "atoms"),
    ],
)
def test_bad_input(atoms, weights, gamma, match):
    with pytest.raises(ValueError, match=match):
        gmp_density([0.0], atoms, weights, gamma)
    with pytest.raises(ValueError, match=match):
        gmp_zero_mass(atoms, weights, gamma)


def test_bad_types():
    with pytest.raises(TypeError, match="gamma"):
        gmp_density([0.0], [1.0], [1.0], "a")
    with pytest.raises(ValueError, match="x"):
        gmp_density([np.inf], [1.0], [1.0], 0.5)
    with pytest.raises(TypeError, match="x must be an array of real"):
        gmp_density(["a"], [1.0], [1.0], 0.5)
    with pytest.raises(TypeError, match="z must be an array of complex"):
        gmp_stieltjes("a", [1.0], [1.0], 0.5)
