"""input_stats(X, y, per_class=Q): each class split into k-means components
(rmthess.theory.input_clusters). Checked: the pooled moments are those of the data (the split
is exact bookkeeping), well-separated clusters are recovered as the components, Q = 1 is the
class mixture, and the argument checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rmthess.data import clustered
from rmthess.theory import input_stats


def _quiet(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return input_stats(*a, **k)


def test_the_pooled_moments_are_the_data_moments():
    gen = np.random.default_rng(0)
    X = gen.standard_normal((240, 12)) @ gen.standard_normal((12, 12)) + 0.3
    y = gen.integers(0, 3, 240)
    sub = _quiet(X, y, per_class=4, seed=1)
    plain = _quiet(X)
    assert sub.level == "mixture" and sub.n_classes == 3 and sub.n_components == 12
    np.testing.assert_allclose(sub.pooled().eigenvalues, plain.eigenvalues, rtol=1e-10, atol=1e-12)
    assert sub.tau1 == pytest.approx(plain.tau1, rel=1e-12)
    assert sub.mean_sq == pytest.approx(plain.mean_sq, rel=1e-12)
    # the components of class k carry class k's weight
    owner = sub.component_class
    for k in range(3):
        assert sub.class_weights[owner == k].sum() == pytest.approx(np.mean(y == k), rel=1e-12)
    frame = sub.to_frame()
    assert list(frame.columns[:2]) == ["component", "class"] and len(frame) == 12


def test_separated_clusters_are_recovered():
    ds = clustered(3, 20, 300, clusters=2, noise=0.05, seed=4)
    sub = _quiet(ds.X, ds.y, per_class=2, seed=0)
    truth = ds.meta["centers"]
    # every component mean is one of the true centres (to the noise / sqrt(n) level)
    dist = np.linalg.norm(sub.class_means[:, None, :] - truth[None], axis=2)
    assert np.all(dist.min(axis=1) < 0.02)
    assert sorted(dist.argmin(axis=1)) == list(range(6))
    np.testing.assert_array_equal(sub.component_class, [0, 0, 1, 1, 2, 2])
    assert np.all(sub.component_class == dist.argmin(axis=1) // 2)


def test_one_per_class_is_the_class_mixture():
    ds = clustered(3, 10, 90, seed=2)
    a, b = _quiet(ds.X, ds.y), _quiet(ds.X, ds.y, per_class=1)
    np.testing.assert_array_equal(a.class_covariances, b.class_covariances)
    assert b.component_class is None


def test_small_classes_get_fewer_components():
    X = np.random.default_rng(1).standard_normal((13, 4))
    y = np.r_[np.zeros(10, int), np.ones(3, int)]
    sub = _quiet(X, y, per_class=4)
    assert list(np.bincount(sub.component_class)) == [4, 1]


def test_refusals():
    X = np.random.default_rng(1).standard_normal((20, 4))
    with pytest.raises(ValueError, match="per_class.*labels"):
        input_stats(X, per_class=2)
    with pytest.raises(ValueError, match="per_class"):
        input_stats(X, np.zeros(20, int), per_class=0)
    with pytest.raises(ValueError, match="per_class"):
        input_stats(X, np.zeros(20, int), per_class=2.5)
    with pytest.raises(TypeError, match="per_class"):
        input_stats(X, np.zeros(20, int), per_class="4")
