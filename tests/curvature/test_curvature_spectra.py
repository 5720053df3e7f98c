"""Spectral diagnostics of rmthess.curvature on dense symmetric matrices, where the truth is
known independently: numpy.linalg.eigvalsh / numpy.trace, or a spectrum built in
(``A = U diag(lam) U^T`` with a random orthogonal ``U``).

Honesty of the standard errors is checked over many seeds: the z-scores
``(estimate - truth) / se`` must have mean ~0 and std ~1 (Student-t-like for few probes:
std sqrt((n-1)/(n-3)) = 1.06 at n = 20) with almost no |z| > 4.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from rmthess.curvature.density import (
    Outliers,
    SpectralDensity,
    outliers,
    plot_density,
    spectral_density,
)
from rmthess.curvature.eigen import condition_number, top_eigenvalues
from rmthess.curvature.trace import _probes, hessian_trace


def goe(P: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((P, P))
    return (X + X.T) / 2


def with_spectrum(lam, seed: int) -> np.ndarray:
    lam = np.asarray(lam, dtype=float)
    U, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(lam), len(lam))))
    return (U * lam) @ U.T


def wishart(P: int, N: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((P, N))
    return X @ X.T / N


class Counting(LinearOperator):
    """A LinearOperator that counts the columns it is applied to (matrix-vector products)."""

    def __init__(self, M, dtype=np.float64):
        super().__init__(dtype, M.shape)
        self.M, self.count = M, 0

    def _matmat(self, X):
        self.count += X.shape[1]
        return self.M @ X

    def _matvec(self, x):
        self.count += 1
        return self.M @ x


def z_stats(z):
    z = np.asarray(z)
    return float(z.mean()), float(z.std()), float(np.mean(np.abs(z) > 4))


def assert_honest(z):
    """|mean z| < 4/sqrt(R), 0.7 < std z < 1.3, at most 1% beyond 4 (R >= 200 repeats)."""
    R = len(z)
    mean, std, tail = z_stats(z)
    assert R >= 200
    assert abs(mean) < 4 / math.sqrt(R), (mean, std, tail)
    assert 0.7 < std < 1.3, (mean, std, tail)
    assert tail <= 0.01, (mean, std, tail)


# ----------------------------------------------------------------------------- eigenvalues
def _expected(ev, which, k):
    if which == "LA":
        return np.sort(ev)[::-1][:k]
    if which == "SA":
        return np.sort(ev)[:k]
    return ev[np.argsort(-np.abs(ev))][:k]


@given(
    P=st.integers(3, 70),
    seed=st.integers(0, 10**6),
    which=st.sampled_from(["LA", "SA", "LM"]),
    k=st.integers(1, 6),
)
def test_top_eigenvalues_match_eigvalsh(P, seed, which, k):
    A = goe(P, seed)
    k = min(k, P)
    res = top_eigenvalues(A, k, which=which, seed=seed)
    ev = np.linalg.eigvalsh(A)
    want = _expected(ev, which, k)
    scale = np.abs(ev).max()
    assert np.allclose(res.eigenvalues, want, rtol=0, atol=1e-8 * scale)
    assert res.residuals.max() < 1e-8
    dense = k >= P - 1 or P <= 32
    assert res.method == "dense" if dense else res.method in ("lanczos", "arpack")


def test_inputs_numpy_torch_linear_operator_sparse():
    import torch

    A = goe(60, 3)
    want = np.sort(np.linalg.eigvalsh(A))[::-1][:4]
    op = Counting(A)
    for inp in (A, torch.from_numpy(A), torch.from_numpy(A).float(), op, csr_matrix(A)):
        res = top_eigenvalues(inp, 4, seed=1)
        tol = 1e-5 if getattr(inp, "dtype", None) == torch.float32 else 1e-9  # float32 copy
        assert np.allclose(res.eigenvalues, want, rtol=tol), type(inp)
        assert res.method == "lanczos"
    assert res.n_matvecs > 0
    assert op.count == top_eigenvalues(op, 4, seed=1).n_matvecs  # every product counted
    assert aslinearoperator(A).shape == (60, 60)


def test_vectors_seed_and_result_records():
    A = goe(50, 7)
    r1 = top_eigenvalues(A, 3, seed=5, return_vectors=True)
    r2 = top_eigenvalues(A, 3, seed=5)
    assert np.array_equal(r1.eigenvalues, r2.eigenvalues)  # v0 from the seed: reproducible
    V = r1.vectors
    assert V.shape == (50, 3) and np.allclose(V.T @ V, np.eye(3), atol=1e-10)
    assert np.allclose(A @ V, V * r1.eigenvalues, atol=1e-9)
    assert r2.vectors is None
    rec = json.loads(json.dumps(r1.to_dict(), allow_nan=False))
    assert rec["k"] == 3 and rec["max_residual"] == pytest.approx(r1.residuals.max())
    assert list(r1.to_frame().columns[:3]) == ["rank", "eigenvalue", "residual"]
    assert np.array_equal(r1.to_frame().eigenvalue, r1.eigenvalues)
    dense = top_eigenvalues(A, 49)  # k >= P - 1: dense
    assert dense.method == "dense" and dense.k == 49


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(k=0), "k must"),
        (dict(k=51), "k must"),
        (dict(which="BE"), "which"),
        (dict(tol=-1.0), "tol"),
        (dict(maxiter=0), "maxiter"),
        (dict(seed=-1), "seed"),
    ],
)
def test_top_eigenvalues_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        top_eigenvalues(goe(50, 0), **kwargs)


@pytest.mark.parametrize(
    "A,err,match",
    [
        (np.ones((3, 4)), ValueError, "square"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), ValueError, "symmetric"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), ValueError, "NaN"),
        ([[1.0, 0.0], [0.0, 1.0]], TypeError, "A must be"),
        (np.eye(2, dtype=complex), TypeError, "real"),
        (aslinearoperator(np.eye(2, dtype=complex)), TypeError, "real"),
        (aslinearoperator(np.ones((2, 3))), ValueError, "square"),
    ],
)
def test_bad_operators(A, err, match):
    with pytest.raises(err, match=match):
        top_eigenvalues(A, 1)


def test_symmetry_tolerance_follows_precision():
    """float32 sources may be asymmetric at float32 round-off; float64 ones may not."""
    import torch

    A = with_spectrum(np.linspace(1.0, 2.0, 40), 0)
    B = A.copy()
    B[0, 1] += 1e-5 * np.abs(A).max()
    with pytest.raises(ValueError, match="symmetric"):
        top_eigenvalues(B, 1)
    with pytest.raises(ValueError, match="symmetric"):
        condition_number(Counting(B))
    assert top_eigenvalues(torch.from_numpy(B).float(), 1).eigenvalues[0] == pytest.approx(2.0)
    assert condition_number(Counting(B, np.float32)).condition == pytest.approx(2.0, rel=1e-4)


# ----------------------------------------------------------------------------- condition number
def test_condition_number_restricted_to_range():
    lam = np.r_[np.geomspace(1e-3, 50.0, 7), np.zeros(33)]  # PSD, rank 7
    A = with_spectrum(lam, 1)
    ev = np.linalg.eigvalsh(A)
    rng_ev = ev[ev > 1e-6 * ev[-1]]
    for inp in (A, Counting(A)):
        c = condition_number(inp)
        assert c.rank_estimate == 7 == len(rng_ev)
        assert c.condition == pytest.approx(rng_ev[-1] / rng_ev[0], rel=1e-10)
        assert c.condition == pytest.approx(50.0 / 1e-3, rel=1e-8)  # built-in spectrum
    assert c.n_matvecs == 40  # the operator was materialised from 40 unit vectors
    json.dumps(c.to_dict(), allow_nan=False)
    c3 = condition_number(A, rtol=1e-3)  # threshold 0.05: 4 of the 7 are above
    assert c3.rank_estimate == np.sum(lam > 0.05) == 4
    assert c3.condition == pytest.approx(50.0 / lam[lam > 0.05].min(), rel=1e-8)


def test_condition_number_refusals():
    with pytest.raises(ValueError, match="top_eigenvalues"):
        condition_number(goe(20, 0))  # indefinite
    with pytest.raises(ValueError, match="not meaningful"):
        condition_number(np.eye(3), psd=False)
    op = Counting(np.eye(50))
    with pytest.raises(ValueError, match="max_dense"):
        condition_number(op, max_dense=40)
    assert op.count == 0  # refused before any product
    with pytest.raises(ValueError, match="rtol"):
        condition_number(np.eye(3), rtol=2.0)


# ----------------------------------------------------------------------------- trace
def test_trace_exact_when_matvecs_reach_P():
    A = goe(30, 2)
    op = Counting(A)
    t = hessian_trace(op, matvecs=30)
    assert t.method == "exact" and t.trace_se == 0 and t.n_matvecs == 30 == op.count
    assert t.trace == pytest.approx(np.trace(A), abs=1e-12)
    rec = json.loads(json.dumps(t.to_dict(), allow_nan=False))
    assert rec["trace_ci_low"] == rec["trace_ci_high"] == rec["trace"]  # exact: a point
    assert t.to_frame().empty  # no probes


def test_trace_counts_products_and_low_rank_is_exact():
    A = with_spectrum(np.r_[np.arange(1.0, 6.0), np.zeros(95)], 4)  # rank 5 <= n_Q = 10
    op = Counting(A)
    t = hessian_trace(op, matvecs=30, seed=1)
    assert t.n_matvecs == 30 == op.count and (t.n_deflation, t.n_probes) == (10, 10)
    assert t.trace == pytest.approx(15.0, abs=1e-9) and t.trace_se < 1e-9
    h = hessian_trace(A, matvecs=30, method="hutchinson", seed=1)
    assert h.n_probes == 30 and h.trace_se > 0.1
    f = h.to_frame()  # one row per probe; their mean is the estimate
    assert list(f.probe) == list(range(30)) and f.trace_trial.mean() == pytest.approx(h.trace)


@pytest.mark.parametrize("method", ["hutch++", "hutchinson"])
@pytest.mark.parametrize("distribution", ["rademacher", "normal"])
def test_trace_standard_error_is_honest(method, distribution):
    rng = np.random.default_rng(11)
    lam = rng.choice([-1.0, 1.0], 100) / np.arange(1, 101) ** 0.5 + 0.2  # indefinite
    A, tr = with_spectrum(lam, 5), lam.sum()
    z = []
    for s in range(200):
        t = hessian_trace(A, matvecs=60, method=method, distribution=distribution, seed=s)
        z.append((t.trace - tr) / t.trace_se)
    assert_honest(z)


def test_hutchpp_beats_hutchinson_on_decaying_spectrum():
    lam = 1.0 / np.arange(1, 301) ** 2
    A, tr = with_spectrum(lam, 3), lam.sum()
    err = {m: [] for m in ("hutch++", "hutchinson")}
    for s in range(20):
        for m in err:
            err[m].append(hessian_trace(A, matvecs=99, method=m, seed=s).trace - tr)
    rms = {m: math.sqrt(np.mean(np.square(e))) for m, e in err.items()}
    assert rms["hutch++"] < 0.05 * rms["hutchinson"], rms  # measured ratio ~0.01


def test_trace_rtol_mode():
    lam = np.r_[np.linspace(1.0, 2.0, 150), -np.linspace(0.1, 0.5, 50)]
    A, tr = with_spectrum(lam, 8), lam.sum()
    t = hessian_trace(A, matvecs=12, rtol=0.01, max_matvecs=190, seed=2)
    assert t.target_reached and t.trace_se <= 0.01 * abs(t.trace)
    assert t.n_matvecs <= 190 and t.n_probes >= 30  # MIN_ADAPTIVE_PROBES
    assert abs(t.trace - tr) < 4 * t.trace_se
    short = hessian_trace(A, matvecs=12, rtol=1e-4, max_matvecs=40, seed=2)
    assert short.target_reached is False and short.n_matvecs == 40
    lo, hi = short.trace_ci
    assert lo < short.trace < hi


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(matvecs=5), "matvecs must"),
        (dict(matvecs=1, method="hutchinson"), "matvecs must"),
        (dict(method="xtrace"), "method"),
        (dict(distribution="gauss"), "distribution"),
        (dict(max_matvecs=300), "max_matvecs"),
        (dict(rtol=0.1, max_matvecs=20), "max_matvecs"),  # below the first batch (30)
        (dict(rtol=-0.1), "rtol"),
    ],
)
def test_trace_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hessian_trace(goe(200, 0), **kwargs)


# ----------------------------------------------------------------------------- density
def test_density_normalised_and_consistent():
    A = wishart(200, 400, 1)
    sd = spectral_density(A, probes=4, steps=30, seed=3)
    assert isinstance(sd, SpectralDensity) and sd.nodes.shape == (4, 30)
    assert np.trapezoid(sd.density, sd.grid) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(sd.pdf(sd.grid), sd.density)
    assert np.allclose(sd.weights.sum(axis=1), 1.0)
    c = sd.cdf(sd.grid)
    assert c[0] == 0 and c[-1] == pytest.approx(1.0) and np.all(np.diff(c) >= 0)
    ev = np.linalg.eigvalsh(A)
    assert ev[0] - 1e-9 <= sd.support[0] and sd.support[1] <= ev[-1] + 1e-9  # Ritz inside
    assert sd.n_matvecs == 4 * 30
    rec = json.loads(json.dumps(sd.to_dict(), allow_nan=False))
    assert rec["n_grid"] == len(sd.grid) and rec["support_hi"] == sd.support[1]
    assert list(sd.to_frame().columns) == ["x", "density", "density_se"]


def test_quadrature_moments_are_hutchinson_samples():
    """Gauss quadrature with m steps is exact for degree <= 2m - 1: per probe the k-th
    moment is v^T A^k v with v = z / sqrt(P) (z: the Rademacher probe), i.e. the Hutchinson
    sample z^T A^k z / P."""
    A = goe(80, 9) / math.sqrt(80)
    sd = spectral_density(A, probes=5, steps=10, seed=4)
    Z = _probes(np.random.default_rng(4), 80, 5, "rademacher")  # the documented probes
    AkZ = Z.copy()
    for k in range(1, 8):
        AkZ = A @ AkZ
        hutch = np.einsum("ij,ij->j", Z, AkZ) / 80
        assert np.allclose(sd.moment_trials(k), hutch, rtol=1e-10, atol=1e-12), k
    assert sd.mean == pytest.approx(np.mean(np.einsum("ij,ij->j", Z, A @ Z)) / 80, rel=1e-12)


def test_full_krylov_space_gives_the_probe_law_exactly():
    """With steps = P (and no breakdown) the quadrature IS the law of the probe: nodes = all
    eigenvalues, weights = (u_i . v)^2. Needs full reorthogonalisation: plain Lanczos in
    floating point loses orthogonality and repeats converged eigenvalues ("ghosts")."""
    A = with_spectrum(np.r_[np.geomspace(1e-3, 1.0, 59), 50.0], 6)
    ev, U = np.linalg.eigh(A)
    sd = spectral_density(A, probes=2, steps=60, seed=1)
    v = _probes(np.random.default_rng(1), 60, 2, "rademacher") / math.sqrt(60)
    assert np.all(sd.n_steps == 60)
    assert np.allclose(sd.nodes, np.tile(ev, (2, 1)), rtol=0, atol=1e-10)
    assert np.allclose(sd.weights, (U.T @ v).T ** 2, rtol=1e-6, atol=1e-14)


def test_density_moments_honest_over_seeds():
    A = wishart(60, 120, 2)
    ev = np.linalg.eigvalsh(A)
    z = {k: [] for k in (1, 2, 3)}
    for s in range(200):
        sd = spectral_density(A, probes=20, steps=4, n_grid=2, seed=s)
        for k in z:
            z[k].append((sd.moment(k) - np.mean(ev**k)) / sd.moment_se(k))
    for k in z:
        assert_honest(z[k])


def test_density_cdf_close_to_wishart_eigenvalues():
    A = wishart(400, 800, 0)
    ev = np.linalg.eigvalsh(A)
    sd = spectral_density(A, seed=1)  # 8 probes, 80 steps
    x = np.sort(np.r_[ev, sd.nodes.ravel()])
    ks = np.abs(sd.cdf(x) - np.searchsorted(ev, x, side="right") / 400).max()
    # probe noise ~ sqrt(2 F(1-F) / P / probes) ~ 0.013 plus quadrature steps (max node
    # weight ~ 1/80): measured 0.023
    assert ks < 0.05
    assert sd.support == pytest.approx((ev[0], ev[-1]), rel=1e-6)  # extreme Ritz converged


def test_density_low_rank_breakdown():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((100, 3))
    A = U @ U.T  # rank 3: the Krylov space of a probe has dimension 4
    sd = spectral_density(A, probes=3, steps=50, seed=0)
    assert np.all(sd.n_steps == 4) and sd.n_matvecs == 12
    assert np.isnan(sd.nodes[:, 4:]).all() and (sd.weights[:, 4:] == 0).all()
    assert np.trapezoid(sd.density, sd.grid) == pytest.approx(1.0, abs=1e-5)
    Z = _probes(np.random.default_rng(0), 100, 3, "rademacher")
    hutch = np.einsum("ij,ij->j", Z, np.linalg.matrix_power(A, 9) @ Z) / 100
    assert np.allclose(sd.moment_trials(9), hutch, rtol=1e-9)  # exact for every degree
    one = spectral_density(3.0 * np.eye(20), probes=2, steps=10)
    assert np.all(one.n_steps == 1) and np.allclose(one.nodes[:, 0], 3.0)
    assert one.moment(2) == pytest.approx(9.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(probes=0), "probes"),
        (dict(steps=0), "steps"),
        (dict(sigma=0.0), "sigma"),
        (dict(grid=[1.0]), "grid"),
        (dict(grid=[2.0, 1.0]), "grid"),
        (dict(n_grid=1), "n_grid"),
    ],
)
def test_density_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spectral_density(np.eye(5), **kwargs)


# ----------------------------------------------------------------------------- outliers
def spiked(C: int, seed: int = 0, P: int = 400) -> np.ndarray:
    """Wishart bulk (edge (1 + sqrt(1/2))^2 = 2.91) plus C orthogonal rank-one spikes of
    strengths 8, 10, ... (outliers near the strengths, far above the edge)."""
    W = wishart(P, 2 * P, seed)
    U, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((P, max(C, 1))))
    return W + (U[:, :C] * (8.0 + 2.0 * np.arange(C))) @ U[:, :C].T


@pytest.mark.parametrize("C", [0, 1, 3, 10])
def test_outliers_count_spikes(C):
    A = spiked(C)
    o = outliers(A)
    assert isinstance(o, Outliers) and o.n_outliers == C and o.method == "lanczos"
    ev = np.linalg.eigvalsh(A)[::-1]
    assert o.bulk_edge == pytest.approx(ev[C], rel=1e-8)
    assert o.bulk_edge < 3.1 and np.all(o.outlier_eigenvalues > 7.0)
    assert o.gap_ratio > 3 if C else o.gap_ratio < 0.5
    s = outliers(spectral_density(A, probes=4, seed=1))
    assert s.n_outliers == C and s.method == "slq" and np.all(s.n_outliers_trials == C)
    rec = json.loads(json.dumps(o.to_dict(), allow_nan=False))
    assert rec["n_outliers"] == C and rec["k"] == len(o.eigenvalues)
    assert s.to_dict()["n_outliers_min"] == s.to_dict()["n_outliers_max"] == C
    assert o.to_frame()["is_outlier"].sum() == C


def test_outliers_rule_edge_cases():
    # outliers of very different sizes count as one group; an exact null space is a bulk
    lam = np.r_[1000.0, 10.0, np.linspace(0.5, 1.0, 60)]
    assert outliers(with_spectrum(lam, 0)).n_outliers == 2
    low = with_spectrum(np.r_[4.0, 3.0, 2.0, 1.0, np.zeros(56)], 1)
    o = outliers(low, k=20)
    assert o.n_outliers == 4 and o.gap_ratio == math.inf
    with pytest.raises(ValueError, match="k must"):
        outliers(low, k=2)
    with pytest.raises(ValueError, match="threshold"):
        outliers(low, threshold=0)


def test_plot_density():
    import matplotlib.pyplot as plt

    A = spiked(2)
    sd = spectral_density(A, probes=3, steps=40)
    ax = plot_density(sd, eigenvalues=top_eigenvalues(A, 5))
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    ax2 = plot_density(sd, log=False)
    assert ax2.get_yscale() == "linear"
    plt.close("all")
    with pytest.raises(TypeError, match="SpectralDensity"):
        plot_density(A)


def test_adaptive_trace_starts_from_a_small_first_batch():
    """``rtol`` without ``matvecs``: a first batch of 30 products (not 99), the budget 990;
    a loose target stops at the minimum number of probes (50 products for Hutch++)."""
    from rmthess.curvature.trace import ADAPTIVE_FIRST, DEFAULT_MATVECS

    A = np.diag(np.linspace(1.0, 2.0, 400))  # flat spectrum: relative SE ~1 % per 30 probes
    t = hessian_trace(A, rtol=0.2, seed=0)
    assert t.target_reached and t.n_matvecs == 50 and t.max_matvecs == 10 * DEFAULT_MATVECS
    assert hessian_trace(A, seed=0).n_matvecs == DEFAULT_MATVECS and ADAPTIVE_FIRST == 30
    assert abs(t.trace - 600.0) <= 4 * t.trace_se
