"""Synthetic data sets of the block-structure paper (seed 001): Gaussian and K-clustered."""

from __future__ import annotations

import math

import numpy as np

from rmthess._checks import check_bool, check_float, check_int, check_memory
from rmthess._random import check_seed, rng
from rmthess.data.dataset import MAX_CLASSES, Dataset

__all__ = ["clustered", "gaussian"]


def gaussian(C: int, d: int, N: int, *, seed: int = 0, balanced: bool = False) -> Dataset:
    """Gaussian inputs with random labels: the paper's Assumption 1 (docs/theory.md Sec. 1).

    ``X`` is (N, d) with entries i.i.d. ``N(0, 1)``. Labels are independent of ``X``:

    - ``balanced=False`` (default): ``y_i`` i.i.d. uniform on ``{0, ..., C-1}`` (what the
      authors' script does; a class may be empty when N is not >> C);
    - ``balanced=True``: ``y`` is a uniformly random permutation of ``N // C`` copies of
      each class (the paper's ``n_samples_per_class = N / C``); needs ``N % C == 0``.

    One generator ``numpy.random.default_rng(seed)`` draws ``X`` first (row-major) and the
    labels second, so ``X`` does not depend on ``balanced``. ``2 <= C <= MAX_CLASSES``, ``d >= 1``,
    ``N >= 1``, ``seed >= 0``; ``meta`` records source, seed, C, d, N, balanced.
    """
    C = check_int("C", C, 2, MAX_CLASSES)
    d = check_int("d", d, 1)
    N = check_int("N", N, 1)
    seed = check_seed(seed)
    check_bool("balanced", balanced)
    if balanced and N % C:
        raise ValueError(f"balanced=True needs N divisible by C, got N={N}, C={C}")
    _check_memory(N, d, copies=1)
    gen = rng(seed)  # the stream of numpy.random.default_rng(seed)
    X = gen.standard_normal((N, d))
    if balanced:
        y = gen.permutation(np.repeat(np.arange(C), N // C))
    else:
        y = gen.integers(0, C, size=N)
    meta = {"source": "gaussian", "seed": seed, "C": C, "d": d, "N": N, "balanced": balanced}
    return Dataset(X, y, C, "gaussian", meta)


def clustered(
    C: int, d: int, N: int, *, clusters: int = 2, noise: float = 0.1, seed: int = 0
) -> Dataset:
    """K-clustered inputs (paper's Appendix B.2, after Li, Soltanolkotabi & Oymak 2020a).

    What the paper says: "the input come from K clusters which are located on the unit
    Euclidean ball; our dataset consists of C classes where each class can be composed of
    multiple clusters". What this function draws (choices where the text is silent):

    - ``K = clusters * C`` centers ``mu_1..mu_K`` i.i.d. uniform on the unit sphere
      ``S^{d-1}`` (normalized standard Gaussian vectors, as in the authors' script below);
    - class ``c`` owns the ``clusters`` consecutive centers ``c*clusters .. (c+1)*clusters-1``
      (cluster ``k`` has class ``k // clusters``);
    - balanced cluster sizes: every cluster gets ``N // K`` points, and ``N mod K`` clusters
      chosen at random get one more (so ``N >= K`` is required); the order of the points is
      a uniformly random permutation;
    - point ``i`` of cluster ``k_i``: ``x_i = mu_{k_i} + noise * g_i / sqrt(d)``,
      ``g_i ~ N(0, I_d)``, so the root-mean-square distance of a point to its center is
      exactly ``noise`` (mean distance ``noise * sqrt(2/d) Gamma((d+1)/2) / Gamma(d/2)``,
      ``noise (1 - 1/(4d))`` to first order). The authors' released script
      (github.com/zyushun/Hessian-structure, ``train_gaussian.py``) uses per-coordinate
      standard deviation 0.05 (distance ``0.05 sqrt(d)``, larger than the distance
      between centers once d > ~800); ``noise = 0.05 * sqrt(d)`` reproduces it.

    Randomness: one ``numpy.random.default_rng(seed)`` draws the centers, the extra-point
    clusters, the order, then the noise. ``2 <= C <= MAX_CLASSES``, ``d >= 1``, ``clusters >= 1``,
    ``N >= K``, ``noise`` finite ``>= 0``. ``meta`` records source, seed, C, d, N,
    clusters, K, noise, ``centers`` ((K, d) ndarray) and ``cluster_ids`` ((N,) int64
    ndarray, the cluster of each point; it follows ``subset``/``split``).
    """
    C = check_int("C", C, 2, MAX_CLASSES)
    d = check_int("d", d, 1)
    N = check_int("N", N, 1)
    clusters = check_int("clusters", clusters, 1)
    seed = check_seed(seed)
    noise = check_float("noise", noise, 0, None)
    K = clusters * C
    if N < K:
        raise ValueError(
            f"N must be >= K = clusters * C = {K} (one point per cluster at least), got N={N}"
        )
    _check_memory(N, d, copies=2)
    gen = rng(seed)  # the stream of numpy.random.default_rng(seed)
    centers = gen.standard_normal((K, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    extra = gen.choice(K, size=N % K, replace=False)
    cluster_ids = gen.permutation(np.concatenate([np.repeat(np.arange(K), N // K), extra]))
    X = gen.standard_normal((N, d))
    X *= noise / math.sqrt(d)
    X += centers[cluster_ids]
    meta = {
        "source": "clustered",
        "seed": seed,
        "C": C,
        "d": d,
        "N": N,
        "clusters": clusters,
        "K": K,
        "noise": noise,
        "centers": centers,
        "cluster_ids": cluster_ids.astype(np.int64),
    }
    return Dataset(X, cluster_ids // clusters, C, "clustered", meta)


def _check_memory(N: int, d: int, copies: int) -> None:
    """Refuse (ValueError naming N and d) an (N, d) float64 draw over half the RAM."""
    check_memory(
        8.0 * N * d * (copies + 1),  # the draw, the temporaries, the finite check
        f"N * d = {N} * {d} float64 entries ({copies + 1} copies)",
        "lower N or d",
    )
