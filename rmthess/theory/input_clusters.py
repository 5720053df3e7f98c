"""Class statistics for :func:`rmthess.theory.input_stats` (per-class weights, means,
covariances), and finer class mixtures: each class split into
``per_class`` Gaussian components by k-means (issue 19; docs/theory.md section 9.4).

One Gaussian per class leaves the off-diagonal Hessian blocks of real data low (standardised
digits: F_off 14 % low at C = 10 for the linear model, 8-10 % for the hidden layer), because a
class of real images is not one ellipsoid but a few clouds (ways of writing a digit): samples
of one cloud are more aligned than a single Gaussian with the class covariance makes them,
and the pair terms ``E[a a' (x . x')^2]`` of the blocks grow with that alignment. A mixture
whose components are the k-means clusters within each class keeps the labels (a component
belongs to one class: :attr:`InputStats.component_class`) and every theory route of the
class mixture applies unchanged (the components enter only through their weights, means and
covariances). ``per_class = n_k`` would be the data set itself (point masses); the number of
components is a modelling choice, reported with the result.

k-means: :class:`sklearn.cluster.KMeans` (``n_init=4``, ``random_state`` from ``seed``), on
the class's samples as given; a class with fewer than ``2 per_class`` samples gets
``n_k // 2`` components (at least one), so that every component has at least 2 samples.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from rmthess._random import seed_int
from rmthess.theory.inputs import _taus

if TYPE_CHECKING:
    from rmthess.theory.inputs import InputStats

__all__ = ["attach_classes", "split_classes", "with_classes"]


def split_classes(
    X: np.ndarray, y: np.ndarray, K: int, per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(component labels (N,), component_class (K'))``: the samples of class ``k``
    relabelled into its k-means clusters, components numbered class by class; empty classes
    keep one (empty) component, so that class ``k``'s components follow class ``k - 1``'s."""
    from sklearn.cluster import KMeans

    comp = np.empty(y.size, dtype=np.int64)
    owner: list[int] = []
    for k in range(K):
        idx = np.flatnonzero(y == k)
        q = max(1, min(per_class, idx.size // 2))
        if q == 1:
            lab = np.zeros(idx.size, dtype=np.int64)
        else:
            km = KMeans(q, n_init=4, random_state=seed_int(seed, "input-clusters", k) % 2**31)
            _, lab = np.unique(km.fit_predict(X[idx]), return_inverse=True)
            q = int(lab.max()) + 1
        comp[idx] = len(owner) + lab
        owner.extend([k] * q)
    return comp, np.asarray(owner, dtype=np.int64)


def with_classes(stats: InputStats, X: np.ndarray, labels, shift, keep: bool) -> InputStats:
    """``stats`` with the per-class fields of the data ``X`` under ``labels = (y, K)``: weights,
    means (minus ``shift`` when given), within-class ``tau``'s and, when ``keep``, the
    covariances (``ddof=0``)."""
    y, K = labels
    d = X.shape[1]
    w = np.bincount(y, minlength=K) / y.size
    means = np.full((K, d), np.nan)
    covs = np.full((K, d, d) if keep else (0, d, d), np.nan)
    tau = np.full((K, 4), np.nan)
    for k in range(K):
        Xk = X[y == k]
        if Xk.shape[0] == 0:
            continue
        means[k] = Xk.mean(axis=0)
        Z = Xk - means[k]
        cov = Z.T @ Z / Xk.shape[0]
        tau[k] = _taus(np.maximum(np.linalg.eigvalsh(cov), 0.0))[:4]
        if keep:
            covs[k] = cov
    if shift is not None:
        means -= shift
    return attach_classes(stats, w, means, covs if keep else None, tau)


def attach_classes(stats: InputStats, w, means, covs, tau=None) -> InputStats:
    """``stats`` with the class fields set (read-only arrays); ``tau`` and ``d_eff`` from the
    covariances when ``tau`` is not given."""
    K = w.size
    if tau is None:
        tau = np.full((K, 4), np.nan)
        for k in range(K):
            if w[k] > 0:
                tau[k] = _taus(np.maximum(np.linalg.eigvalsh(covs[k]), 0.0))[:4]
    with np.errstate(divide="ignore", invalid="ignore"):  # as _taus: 0 where tau_2 = 0
        d_eff = np.where(tau[:, 1] == 0, 0.0, stats.d * tau[:, 0] ** 2 / tau[:, 1])
    w, means = (np.array(a, dtype=np.float64) for a in (w, means))
    if covs is not None:
        covs = np.array(covs, dtype=np.float64)
        covs.flags.writeable = False
    for a in (w, means, tau, d_eff):
        a.flags.writeable = False
    return replace(
        stats,
        class_weights=w,
        class_means=means,
        class_tau=tau,
        class_d_eff=d_eff,
        class_covariances=covs,
    )
