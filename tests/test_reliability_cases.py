"""Reliability fixes of the cases area (issue 17): fit_decay's theory init, sample_weights'
arguments, one bootstrap slope helper."""

import json
import math

import numpy as np
import pytest

from rmthess._stats import ols_slope
from rmthess.simulate.fits import fit_decay

SMALL = dict(d=8, N=16, trials=2, n_boot=10, device="cpu")


def _gauss_hermite_linear_ce(C, gamma, sigma, n=24):
    """Independent product Gauss-Hermite quadrature of F_diag = gamma E a^2 + (E a)^2 and
    F_off of linear-ce, z ~ N(0, sigma^2 I_C) (a = p_0 (1 - p_0) diag, -p_0 p_1 off)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * C), indexing="ij")
    wt = np.ones_like(grids[0])
    for g in np.meshgrid(*([w] * C), indexing="ij"):
        wt = wt * g
    z = sigma * np.stack(grids, axis=-1)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    ad, ao = p[..., 0] * (1 - p[..., 0]), -p[..., 0] * p[..., 1]
    Fd = gamma * (wt * ad**2).sum() + (wt * ad).sum() ** 2
    Fo = gamma * (wt * ao**2).sum() + (wt * ao).sum() ** 2
    return math.sqrt(Fo / Fd)


def test_fit_decay_theory_uses_the_simulated_init_hidden_mse():
    # hidden-mse closed form (docs/theory.md 4): r(C)^2 proportional to 1/(C + kappa - 1)
    # with kappa = E v^4 / (E v^2)^2 of a V entry: 3 (normal), 9/5 (uniform, torch-default).
    Cs = np.array([4, 16, 64])
    fit = fit_decay("hidden-mse", Cs, m=4, seed=1, init="torch-default", **SMALL)
    exact = ols_slope(np.log(Cs), -0.5 * np.log(Cs + 9 / 5 - 1))[0]
    lecun = ols_slope(np.log(Cs), -0.5 * np.log(Cs + 3 - 1))[0]
    assert abs(exact - lecun) > 1e-3  # the test can tell the two inits apart
    assert fit.theory_slope == pytest.approx(exact, rel=1e-12)
    assert fit.init == "torch-default" and fit.results[0].init == "torch-default"
    rec = fit.to_dict()
    assert rec["init"] == "torch-default" and rec["theory_method"] == "closed-form"
    assert rec["theory_samples"] is None and rec["theory_inner"] is None
    json.dumps(rec, allow_nan=False)


def test_fit_decay_theory_uses_the_simulated_init_linear_ce():
    Cs = (3, 4)
    fit = fit_decay("linear-ce", Cs, seed=1, init=0.5, **SMALL)
    r = [_gauss_hermite_linear_ce(C, 0.5, 0.5) for C in Cs]
    exact = ols_slope(np.log(Cs), np.log(r))[0]
    assert fit.theory_slope == pytest.approx(exact, rel=1e-8)
    assert fit.init == "sigma=0.5"
    np.testing.assert_allclose(fit.to_frame()["ratio_theory"], r, rtol=1e-9)


def test_fit_decay_records_monte_carlo_theory_settings():
    fit = fit_decay(
        "output-ce", (4, 8), m=3, theory_samples=30, theory_inner=4, theory_seed=5, **SMALL
    )
    rec = fit.to_dict()
    assert (rec["theory_samples"], rec["theory_inner"], rec["theory_seed"]) == (30, 4, 5)
    assert rec["theory_method"] == "monte-carlo" and rec["init"] == "lecun"
    df = fit.to_frame()
    assert list(df["theory_n_samples"]) == [30, 30] and np.all(df["ratio_theory_se"] > 0)
    json.dumps(rec, allow_nan=False)


def test_fit_decay_refuses_mc_settings_for_exact_theory():
    with pytest.raises(ValueError, match="theory_samples"):
        fit_decay("linear-ce", (4, 8), theory_samples=100, **SMALL)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(fan_in=0), ValueError, "fan_in must be an integer >= 1"),
        (dict(fan_in=-3), ValueError, "fan_in must be an integer >= 1"),
        (dict(fan_in=2.5), ValueError, "fan_in must be an integer"),
        (dict(fan_in="3"), TypeError, "fan_in must be an integer"),
        (dict(shape=(-1, 2)), ValueError, "shape entry must be an integer >= 0"),
        (dict(shape="ab"), TypeError, "shape must be an integer >= 0 or a tuple"),
        (dict(shape=None), TypeError, "shape must be an integer >= 0 or a tuple"),
        (dict(rng=-1), ValueError, "rng must be an integer in"),
        (dict(rng=1.5), TypeError, "rng must be a non-negative integer"),
        (dict(init=0.0), ValueError, "init sigma must be a number in \\(0, 1e\\+06\\]"),
        (dict(init=float("nan")), ValueError, "init sigma"),
    ],
)
def test_sample_weights_bad_arguments_one_clear_error(kwargs, exc, match):
    from rmthess.inits import sample_weights

    with pytest.raises(exc, match=match):
        sample_weights(**{"shape": (2, 2), "fan_in": 3, **kwargs})


def test_sample_weights_numbers_unchanged():
    # same stream as before the checks: numpy.random.default_rng(seed)
    from rmthess.inits import sample_weights

    a = sample_weights((3, 4), 5, "torch-default", rng=7)
    b = (1 / np.sqrt(3.0)) / np.sqrt(5.0) * np.sqrt(3.0)  # sigma / sqrt(fan_in) * sqrt(3)
    np.testing.assert_array_equal(a, np.random.default_rng(7).uniform(-b, b, size=(3, 4)))
    assert sample_weights(4, 2, rng=1).shape == (4,)


def test_every_registry_case_has_its_theory_object():
    from rmthess.cases import REGISTRY
    from rmthess.theory.case_theory import THEORY, theory_for

    assert list(THEORY) == list(REGISTRY)
    for name, case in REGISTRY.items():
        th = theory_for(name)
        assert th.case is case and th.name == name and theory_for(case) is th
        # the object's facts agree with the registry's
        assert th.uses_qmc == (case.loss == "ce")
        assert hasattr(th, "kernel") == case.mc_route


def test_bootstrap_slope_se_matches_the_delta_method():
    # Independent golden: with R i.i.d. units per point, y_j = log(mean_j), the OLS slope
    # has var = sum_j (xc_j / Sxx)^2 var(y_j), var(y_j) ~ s_j^2 / (R mu_j^2) (delta method).
    from rmthess._stats import bootstrap_slope

    gen = np.random.default_rng(5)
    x = np.log([2.0, 4, 8, 16, 32])
    R = 400
    mu = np.exp(-x)
    groups = [gen.gamma(4.0, m / 4.0, size=(R, 1)) for m in mu]  # cv = 1/2
    xc = x - x.mean()
    se_delta = math.sqrt(np.sum((xc / (xc @ xc)) ** 2 * 0.25 / R))
    fit = bootstrap_slope(x, groups, n_boot=4000, rng=0)
    # 4000 replicates: the SE estimate itself is within ~2% of its expectation; 10% leaves
    # room for the delta method's O(1/R) error
    assert fit.se == pytest.approx(se_delta, rel=0.1)
    assert fit.ci[0] < fit.slope < fit.ci[1]
    assert fit.slope == pytest.approx(ols_slope(x, np.log([g.mean() for g in groups]))[0])
    assert abs(fit.slope + 1) < 4 * se_delta
    # the chunk size does not change the resampling (only round-off of the matmul)
    small = bootstrap_slope(x, groups, n_boot=4000, rng=0, chunk_elems=50)
    np.testing.assert_allclose(small.boot, fit.boot, rtol=1e-13)  # BLAS blocking round-off


@pytest.mark.slow
def test_notebook_finite_size_bias_is_order_one_over_d():
    """What notebooks/theory_vs_simulation.py says about its z-scores (issue 17): the
    simulated linear-ce F_diag is biased by O(1/d) (d x relative bias about constant when
    d doubles at fixed gamma), visible as many SE at C = 256, and the Richardson
    extrapolation 2 F(2d) - F(d) agrees with the exact quadrature within 3 SE."""
    from rmthess.simulate import frobenius_sweep
    from rmthess.theory import frobenius_limits

    Cs = (64, 256)
    th = np.array([frobenius_limits("linear-ce", C, 0.5).F_diag for C in Cs])
    a = frobenius_sweep("linear-ce", Cs, 64, 128, trials=16, seed=0, device="cpu")
    b = frobenius_sweep("linear-ce", Cs, 128, 256, trials=16, seed=100, device="cpu")
    r1, r2 = a.F_diag.values / th - 1, b.F_diag.values / th - 1
    assert (a.F_diag.values[1] - th[1]) / a.F_diag_se.values[1] > 3  # the bias is visible
    # measured d x bias at seeds 0-2: 1.9-2.7 (C = 64), 3.4-4.0 (C = 256) at both sizes
    ratio = (64 * r1) / (128 * r2)
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    z_ex = (2 * b.F_diag.values - a.F_diag.values - th) / np.hypot(
        2 * b.F_diag_se.values, a.F_diag_se.values
    )
    assert np.all(np.abs(z_ex) < 3)
