"""InputStats / input_stats (issue 19): statistics of the inputs against direct numpy
computations, zero-variance features, per-class statistics and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rmthess.theory import InputStats, input_stats


def _data(N=400, d=16, seed=0):
    rg = np.random.default_rng(seed)
    A = np.eye(d) + 0.1 * rg.standard_normal((d, d))
    X = rg.standard_normal((N, d)) @ A + rg.standard_normal(d)
    y = rg.integers(0, 3, N)
    return X, y


def _direct(X, centred=False):
    """tau_k, mean statistics from the covariance matrix by matrix powers (no eigenbasis)."""
    N, d = X.shape
    mu = X.mean(0)
    S = (X - mu).T @ (X - mu) / N
    tau = [np.trace(np.linalg.matrix_power(S, k)) / d for k in (1, 2, 3, 4)]
    if centred:
        mu = np.zeros(d)
    return tau, mu @ mu / d, mu @ S @ mu / d, (mu @ mu) ** 2 / d


@pytest.mark.parametrize("centred", [False, True])
def test_taus_and_mean_against_direct(centred):
    X, _ = _data()
    s = input_stats(X, centred=centred)
    tau, msq, mcov, spike = _direct(X, centred)
    got = [s.tau1, s.tau2, s.tau3, s.tau4]
    np.testing.assert_allclose(got, tau, rtol=1e-10)
    assert s.d_eff == pytest.approx(X.shape[1] * tau[0] ** 2 / tau[1], rel=1e-10)
    assert s.mean_sq == pytest.approx(msq, rel=1e-10, abs=1e-300)
    assert s.mean_cov == pytest.approx(mcov, rel=1e-10, abs=1e-300)
    assert s.mean_spike == pytest.approx(spike, rel=1e-10, abs=1e-300)
    assert s.level == ("anisotropic" if centred else "mean-aware")
    assert s.pair_moment == pytest.approx(tau[1] + 2 * mcov + spike, rel=1e-10)


def test_from_spectrum_equals_data_route():
    X, _ = _data()
    s = input_stats(X)
    t = InputStats.from_spectrum(s.eigenvalues[::-1], s.mean_coords[::-1])
    for k in ("tau1", "tau2", "tau3", "tau4", "d_eff", "mean_sq", "mean_cov", "mean_spike"):
        assert getattr(t, k) == pytest.approx(getattr(s, k), rel=1e-12), k
    assert t.source == "spectrum" and t.n == 0
    iso = InputStats.from_spectrum(np.ones(50))
    assert iso.level == "isotropic" and iso.d_eff == pytest.approx(50)
    assert InputStats.from_spectrum(2 * np.ones(50)).level == "anisotropic"  # Sigma = 2 I


def test_scaling():
    X, _ = _data()
    s, t = input_stats(X), input_stats(3.0 * X)
    for k, p in (("tau1", 1), ("tau2", 2), ("tau3", 3), ("tau4", 4), ("mean_sq", 1)):
        assert getattr(t, k) == pytest.approx(3.0 ** (2 * p) * getattr(s, k), rel=1e-10)
    assert t.mean_spike == pytest.approx(81 * s.mean_spike, rel=1e-10)
    assert t.d_eff == pytest.approx(s.d_eff, rel=1e-10)


def test_zero_variance_features_are_counted_and_kept():
    X, _ = _data()
    X = np.column_stack([X, np.full(len(X), 5.0), np.zeros(len(X))])
    s = input_stats(X)
    assert (s.d, s.n_constant, s.rank) == (18, 2, 16)
    tau, msq, _, _ = _direct(X)
    assert s.tau1 == pytest.approx(tau[0], rel=1e-10)  # zeros count in d
    assert s.mean_sq == pytest.approx(msq, rel=1e-10)  # the constant 5 is part of the mean


def test_class_statistics():
    X, y = _data()
    s = input_stats(X, y)
    assert s.n_classes == 3
    np.testing.assert_allclose(s.class_weights, np.bincount(y) / len(y))
    for k in range(3):
        np.testing.assert_allclose(s.class_means[k], X[y == k].mean(0), rtol=1e-12)
        tau, _, _, _ = _direct(X[y == k])
        np.testing.assert_allclose(s.class_tau[k], tau, rtol=1e-9)
    df = s.to_frame()
    assert list(df["class"]) == [0, 1, 2] and df["weight"].sum() == pytest.approx(1.0)
    # a Dataset-like object brings its labels and n_classes
    ds = type("DS", (), {"X": X, "y": y, "n_classes": 5})()
    t = input_stats(ds)
    assert t.n_classes == 5 and np.isnan(t.class_tau[4]).all() and t.class_weights[4] == 0
    # shuffled labels: the global statistics are unchanged
    u = input_stats(X, np.random.default_rng(1).permutation(y))
    assert u.to_dict() == s.to_dict()


def test_digits_loader():
    from rmthess.data import digits

    s = input_stats(digits())
    assert (s.d, s.n, s.n_classes, s.n_constant) == (64, 1797, 10, 3)
    assert s.has_mean and 10 < s.d_eff < 20


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: input_stats(np.array([[1.0, np.nan], [0.0, 1.0]])), "X"),
        (lambda: input_stats(np.ones(5)), "X"),
        (lambda: input_stats(np.random.default_rng(0).random((5, 2)), np.arange(4)), "y"),
        (
            lambda: input_stats(np.random.default_rng(0).random((5, 2)), np.arange(5), n_classes=3),
            "y",
        ),
        (lambda: InputStats.from_spectrum([1.0, -0.5, 2.0]), "eigenvalues"),
        (lambda: InputStats.from_spectrum([0.0, 0.0]), "eigenvalues"),
        (lambda: InputStats.from_spectrum([1.0, np.inf]), "eigenvalues"),
        (lambda: InputStats.from_spectrum(np.ones(3), np.ones(4)), "mean"),
        (lambda: input_stats(np.ones((5, 3))), "X"),
    ],
)
def test_bad_input_one_clear_error(call, name):
    with pytest.raises(ValueError) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            call()
    msg = str(info.value)
    assert name in msg and "\n" not in msg


def test_small_d_eff_warns_with_the_number():
    with pytest.warns(RuntimeWarning, match=r"d_eff .* = 1\.2"):
        InputStats.from_spectrum([10.0, 1.0, 0.0, 0.0])  # d_eff = 121/101
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InputStats.from_spectrum(np.ones(20))
