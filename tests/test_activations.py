"""The activation table (rmthess.activations) against independent routes: derivatives by
mpmath differentiation of an mpmath implementation of phi, Gaussian moments by mpmath
quadrature (split at the kink), closed forms of the piecewise-linear ones."""

import math

import mpmath as mp
import numpy as np
import pytest

from rmthess.activations import ACTIVATIONS, LEAKY_SLOPE, get_activation

# independent mpmath implementations of phi
MP_PHI = {
    "relu": lambda x: mp.mpf(x) if x > 0 else mp.mpf(0),
    "leaky-relu": lambda x: mp.mpf(x) if x > 0 else LEAKY_SLOPE * mp.mpf(x),
    "linear": lambda x: mp.mpf(x),
    "tanh": mp.tanh,
    "sigmoid": lambda x: 1 / (1 + mp.exp(-x)),
    "softplus": lambda x: mp.log1p(mp.exp(x)),
    "gelu": lambda x: x * mp.ncdf(x),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivatives_match_mpmath(name):
    a = ACTIVATIONS[name]
    for x in (-2.3, -0.7, 0.4, 1.9):
        ref = [float(mp.diff(MP_PHI[name], x, n)) for n in (0, 1, 2)]
        got = [float(a.phi(np.array(x))), float(a.dphi(np.array(x))), float(a.d2phi(np.array(x)))]
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def _sig(x):
    return 1 / (1 + mp.exp(-x))


# phi', phi'' in closed form for the moment test (test_derivatives_match_mpmath checks the
# package's derivatives against mpmath differentiation; this checks its quadrature)
MP_DERIV = {
    "tanh": (lambda x: mp.sech(x) ** 2, lambda x: -2 * mp.tanh(x) * mp.sech(x) ** 2),
    "sigmoid": (
        lambda x: _sig(x) * (1 - _sig(x)),
        lambda x: _sig(x) * (1 - _sig(x)) * (1 - 2 * _sig(x)),
    ),
    "softplus": (_sig, lambda x: _sig(x) * (1 - _sig(x))),
    "gelu": (lambda x: mp.ncdf(x) + x * mp.npdf(x), lambda x: mp.npdf(x) * (2 - x * x)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kind,n", [("phi", 0), ("dphi", 1), ("d2phi", 2)])
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_gaussian_moments_match_mpmath_quadrature(name, kind, n, k, scale):
    a = ACTIVATIONS[name]
    f = MP_PHI[name]

    if n:
        f = MP_DERIV.get(name, (None, None))[n - 1]

    def integrand(t):
        return f(scale * t) ** k * mp.npdf(t)

    if a.homogeneous and n > 0:
        # derivatives of the kinked ones: piecewise constant / zero, integrate each side
        left = (0 if n == 2 else (a.neg_slope**k)) * 0.5
        right = (0 if n == 2 else 1.0) * 0.5
        ref = left + right
    else:
        with mp.workdps(25):
            ref = float(mp.quad(integrand, [-mp.inf, 0, mp.inf]))
    got = a.gaussian_moment(kind, k, scale)
    assert got == pytest.approx(ref, rel=1e-11, abs=1e-13)


def test_relu_closed_forms():
    relu = get_activation("relu")
    # E[relu(g)] = 1/sqrt(2 pi), E[relu(g)^2] = 1/2, E[relu(s g)^4] = 3 s^4 / 2
    assert relu.gaussian_moment("phi", 1) == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-15)
    assert relu.gaussian_moment("phi", 2) == pytest.approx(0.5, rel=1e-15)
    assert relu.gaussian_moment("phi", 4, 2.0) == pytest.approx(1.5 * 16, rel=1e-14)
    assert relu.gaussian_moment("d2phi", 2) == 0.0


def test_smooth_moments_scale_with_s_for_small_s():
    """phi(s g) ~ phi(0) + s phi'(0) g: tanh E[phi(s g)^2] / s^2 -> 1 as s -> 0."""
    t = get_activation("tanh")
    assert t.gaussian_moment("phi", 2, 1e-3) / 1e-6 == pytest.approx(1.0, rel=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        get_activation("swish")
    relu = get_activation("relu")
    with pytest.raises(ValueError, match="kind"):
        relu.gaussian_moment("d3phi")
    with pytest.raises(ValueError, match="scale"):
        relu.gaussian_moment("phi", 2, 0.0)
    with pytest.raises(ValueError, match="k"):
        relu.gaussian_moment("phi", -1)
    assert get_activation(relu) is relu


def test_cli_help_names_are_the_table():
    """``--activation``'s help (rmthess._cli.ACTIVATION_NAMES, no numpy on --help) lists
    exactly the activations of the table."""
    from rmthess._cli import ACTIVATION_NAMES
    from rmthess.activations import ACTIVATIONS

    assert ACTIVATION_NAMES.split(", ") == list(ACTIVATIONS)
