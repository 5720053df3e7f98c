"""Spectral density by stochastic Lanczos quadrature (SLQ), and outlier counting.

The empirical spectral law of a symmetric ``P x P`` operator ``A`` (any input of
:mod:`rmthess.curvature.eigen`) is ``mu = (1/P) sum_i delta_{lambda_i}``; for a
function ``f``, ``int f dmu = (1/P) tr f(A) = E[v^T f(A) v]`` for ``v = z / sqrt(P)``
with ``z`` Rademacher (``|z|^2 = P`` exactly). SLQ (Golub & Meurant; Lin, Saad & Yang 2016;
Ghorbani, Krishnan & Xiao 2019; Papyan 2020) estimates this per probe by Gauss quadrature:
``m`` Lanczos steps from ``v`` give the tridiagonal ``T_m``; its eigenvalues ``theta_j``
(nodes, the Ritz values) and the squared first components ``w_j`` of its unit eigenvectors
(weights, ``sum_j w_j = 1``) satisfy

    v^T f(A) v = sum_j w_j f(theta_j)   exactly for polynomials f of degree <= 2m - 1

(and for every ``f`` once Lanczos breaks down: ``v`` then lies in an invariant subspace of
dimension ``m`` and the quadrature is the exact law of ``v``). So per probe the k-th moment
``sum_j w_j theta_j^k`` IS the Hutchinson sample ``v^T A^k v`` (k < 2m), and over probes
the moments are unbiased with standard error ``std / sqrt(probes)``.

The density of ``mu`` is estimated by the probe average of ``sum_j w_j N(x; theta_j,
sigma^2)`` (integrates to 1); its standard error at each ``x`` is the standard deviation
over probes / ``sqrt(probes)`` (the probes are independent), which covers the randomness
of the probes but not the smoothing bias (the density of ``mu * N(0, sigma^2)`` is what is
estimated without bias). The cdf is the probe average of the quadrature step functions.

Lanczos runs all probes together with FULL reorthogonalisation (classical Gram-Schmidt
twice against all previous vectors, so no ghost eigenvalues): memory ``8 probes (steps + 1)
P`` bytes, work ``probes steps`` products plus ``O(probes steps^2 P)`` flops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_int, check_memory, check_positive_float, progress_bar
from rmthess._random import check_seed, rng
from rmthess._stats import json_safe
from rmthess.curvature._operand import _as_operator, _record
from rmthess.curvature.eigen import top_eigenvalues
from rmthess.curvature.trace import _probes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

    from rmthess.curvature._types import Operator
    from rmthess.curvature.eigen import TopEigen

__all__ = ["Outliers", "SpectralDensity", "outliers", "plot_density", "spectral_density"]

BREAKDOWN = 1e-10
"""Lanczos stops for a probe when ``beta_j <= BREAKDOWN * max(|alpha|, beta)`` so far: the
Krylov space is invariant (full reorthogonalisation leaves ``~1e-15`` there)."""
KAPPA = 3.0
"""Default smoothing (Papyan 2020, App. D.2): ``sigma = width / ((steps - 1) sqrt(8 ln
KAPPA))`` with ``width`` the Ritz range padded by 5% each side: a Gaussian per node whose
value falls to ``1/KAPPA`` of its peak half a mean node spacing away."""


@dataclass
class SpectralDensity:
    """Result of :func:`spectral_density`.

    Attributes
    ----------
    grid, density, density_se : (n_grid,) smoothed density, integrating to 1, and its SE.
    nodes, weights : (probes, steps) Gauss nodes (Ritz values, ascending) and weights of
        every probe; a probe that broke down after ``n_steps[p] < steps`` steps is padded
        with nan nodes and 0 weights.
    n_steps : (probes,) Lanczos steps done per probe.
    mean, mean_se : ``(1/P) tr A`` and its SE; second_moment(_se): ``(1/P) tr A^2``.
    support : (lo, hi) smallest and largest Ritz value (inside the spectrum, converging to
        its ends). sigma : kernel width. n_matvecs : products with ``A``.
    """

    grid: np.ndarray
    density: np.ndarray
    density_se: np.ndarray
    nodes: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    n_steps: np.ndarray
    mean: float
    mean_se: float
    second_moment: float
    second_moment_se: float
    support: tuple
    sigma: float
    n_matvecs: int
    P: int
    probes: int
    steps: int
    seed: int

    def moment_trials(self, k: int) -> np.ndarray:
        """(probes,) ``sum_j w_j theta_j^k``: exactly ``v^T A^k v`` for ``k <= 2 n_steps - 1``
        (every ``k`` after a breakdown); a quadrature approximation beyond."""
        k = check_int("k", k, 0)
        return np.sum(self.weights * np.nan_to_num(self.nodes) ** k, axis=1)

    def moment(self, k: int) -> float:
        """Estimate of ``(1/P) tr A^k`` (mean over probes; unbiased for exact degrees)."""
        return float(self.moment_trials(k).mean())

    def moment_se(self, k: int) -> float:
        """Standard error of :meth:`moment` (std over probes / sqrt(probes); nan for 1)."""
        t = self.moment_trials(k)
        return float(t.std(ddof=1) / math.sqrt(len(t))) if len(t) > 1 else math.nan

    def pdf(self, x: ArrayLike) -> np.ndarray:
        """Smoothed density at ``x``: the Gaussian mixture evaluated exactly (no grid)."""
        return _mixture(np.asarray(x, dtype=float), self.nodes, self.weights, self.sigma)[0]

    def cdf(self, x: ArrayLike) -> np.ndarray:
        """Quadrature cdf ``mean_p sum_j w_pj 1[theta_pj <= x]`` (unsmoothed step function)."""
        x = np.asarray(x, dtype=float)
        ok = self.weights > 0
        nodes, w = self.nodes[ok], self.weights[ok] / self.probes
        order = np.argsort(nodes)
        cum = np.concatenate([[0.0], np.cumsum(w[order])])
        return np.minimum(cum[np.searchsorted(nodes[order], x, side="right")], 1.0)

    def to_dict(self) -> dict:
        """JSON-safe scalars (nan as None): the moments, ``support_lo``/``support_hi``,
        ``sigma``, ``n_grid``, ``n_steps_min`` (fewest Lanczos steps of a probe) and the
        settings. The density on the grid is :meth:`to_frame`; ``nodes``, ``weights`` and
        ``n_steps`` stay attributes."""
        extra = {
            "support_lo": self.support[0],
            "support_hi": self.support[1],
            "n_grid": len(self.grid),
            "n_steps_min": int(np.min(self.n_steps)),
        }
        return {**_record(self), **json_safe(extra)}

    def to_frame(self) -> pd.DataFrame:
        """Tidy table of the smoothed density: one row per grid point (x, density, se)."""
        import pandas as pd

        return pd.DataFrame(dict(x=self.grid, density=self.density, density_se=self.density_se))


def _mixture(x, nodes, weights, sigma):
    """Probe-average of ``sum_j w_j N(x; theta_j, sigma^2)`` at ``x`` and its SE."""
    ok = weights > 0
    per = np.zeros((nodes.shape[0],) + x.shape)
    for p in range(nodes.shape[0]):
        th, w = nodes[p, ok[p]], weights[p, ok[p]]
        u = (x[..., None] - th) / sigma
        per[p] = np.exp(-0.5 * u**2) @ w / (sigma * math.sqrt(2 * math.pi))
    se = per.std(axis=0, ddof=1) / math.sqrt(len(per)) if len(per) > 1 else np.full(x.shape, np.nan)
    return per.mean(axis=0), se


def _lanczos(op, Z: np.ndarray, steps: int, bar=None):
    """Lanczos with full reorthogonalisation for every column of ``Z`` (P, b) at once.

    Returns ``alpha`` (b, steps), ``beta`` (b, steps) (``beta[:, j]`` couples steps j and j+1)
    and ``n`` (b,) the steps done (fewer after a breakdown).
    """
    P, b = Z.shape
    V = np.zeros((b, steps + 1, P))
    V[:, 0] = (Z / np.linalg.norm(Z, axis=0)).T
    alpha, beta = np.zeros((b, steps)), np.zeros((b, steps))
    n, scale = np.full(b, steps), np.zeros(b)
    act = np.arange(b)
    for j in range(steps):
        W = op.matmat(V[act, j].T).T  # (a, P)
        a = np.einsum("ap,ap->a", W, V[act, j])
        W -= a[:, None] * V[act, j]
        if j > 0:
            W -= beta[act, j - 1][:, None] * V[act, j - 1]
        Vj = V[act, : j + 1]
        for _ in range(2):  # "twice is enough" (Kahan, Parlett)
            W -= np.einsum("ajp,aj->ap", Vj, np.einsum("ajp,ap->aj", Vj, W))
        bt = np.linalg.norm(W, axis=1)
        alpha[act, j] = a
        scale[act] = np.maximum(scale[act], np.maximum(np.abs(a), bt))
        stop = (bt <= BREAKDOWN * scale[act]) | (j == steps - 1)
        n[act[stop & (j < steps - 1)]] = j + 1
        go = ~stop
        beta[act[go], j] = bt[go]
        V[act[go], j + 1] = W[go] / bt[go, None]
        act = act[go]
        if bar is not None:
            bar.update()
        if not len(act):
            break
    return alpha, beta, n


def _quadrature(alpha, beta, n, steps):
    from scipy.linalg import eigh_tridiagonal

    b = len(n)
    nodes, weights = np.full((b, steps), np.nan), np.zeros((b, steps))
    for p in range(b):
        m = n[p]
        if m == 1:
            th, S = alpha[p, :1], np.ones((1, 1))
        else:
            th, S = eigh_tridiagonal(alpha[p, :m], beta[p, : m - 1])
        nodes[p, :m], weights[p, :m] = th, S[0] ** 2
    return nodes, weights


def spectral_density(
    A: Operator,
    *,
    probes: int = 8,
    steps: int = 80,
    grid: ArrayLike | None = None,
    n_grid: int = 400,
    sigma: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature estimate of the eigenvalue density of ``A``.

    Parameters
    ----------
    A : symmetric operator (LinearOperator, numpy array, torch tensor).
    probes : independent Rademacher start vectors (>= 1; SEs need >= 2), drawn from
        ``rmthess._random.rng(seed)`` as a (P, probes) +-1 matrix, normalised.
    steps : Lanczos steps per probe (>= 1; capped at P). Moments up to degree
        ``2 steps - 1`` are exact per probe.
    grid : increasing 1-D points for the density (default ``n_grid`` points over the Ritz
        range widened by 5 sigma each side, so the density integrates to 1 to ~1e-6).
    sigma : Gaussian kernel width > 0 (default: see :data:`KAPPA`).
    seed : an integer in ``[0, 2**128)`` (``rmthess._random.rng(seed)``: for an int the stream
        of ``numpy.random.default_rng(seed)``).
    progress : a tqdm bar of the Lanczos steps (None: when stderr is a terminal).

    Memory ``8 probes (steps + 1) P`` bytes of Lanczos vectors and ``8 n_grid (probes +
    steps)`` for the density on the grid (both checked against the machine's RAM first).
    Accuracy: for ``P`` large the weights of one probe fluctuate by ``O(1/sqrt(P))`` around
    the spectral law (``density_se`` measures it); the quadrature cdf is within about the
    largest node weight of the probe's law (Chebyshev-Markov-Stieltjes).
    """
    op = _as_operator(A)
    probes = check_int("probes", probes, 1)
    steps = min(check_int("steps", steps, 1), op.P)
    seed = check_seed(seed)
    if sigma is not None:
        sigma = check_positive_float("sigma", sigma)
    if grid is None:
        n_grid = check_int("n_grid", n_grid, 2)
    else:
        grid = np.asarray(grid, dtype=float)
        if grid.ndim != 1 or len(grid) < 2 or not np.isfinite(grid).all():
            raise ValueError("grid must be a 1-D array of at least 2 finite points")
        if np.any(np.diff(grid) <= 0):
            raise ValueError("grid must be strictly increasing")
    check_memory(
        8.0 * probes * (steps + 1) * op.P,
        f"spectral_density: the Lanczos vectors of probes={probes}, steps={steps}, P={op.P}",
        "lower probes or steps",
    )
    n_points = n_grid if grid is None else len(grid)
    check_memory(
        8.0 * n_points * (probes + steps + 2),
        f"spectral_density: the density at {n_points} grid points (n_grid)",
        "lower n_grid (or pass a shorter grid)",
    )
    Z = _probes(rng(seed), op.P, probes, "rademacher")
    bar = progress_bar(progress, total=steps, desc="SLQ density", unit="step")
    try:
        nodes, weights = _quadrature(*_lanczos(op, Z, steps, bar), steps)
    finally:
        bar.close()
    n_steps = np.isfinite(nodes).sum(axis=1)
    lo, hi = float(np.nanmin(nodes)), float(np.nanmax(nodes))
    if sigma is None:
        width = (hi - lo) * 1.1
        if width <= 0:
            width = 1e-3 * max(abs(lo), abs(hi), 1.0)
        sigma = width / (max(steps - 1, 1) * math.sqrt(8 * math.log(KAPPA)))
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid)
    dens, dens_se = _mixture(grid, nodes, weights, sigma)
    sd = SpectralDensity(
        grid=grid, density=dens, density_se=dens_se, nodes=nodes, weights=weights,
        n_steps=n_steps, mean=math.nan, mean_se=math.nan, second_moment=math.nan,
        second_moment_se=math.nan, support=(lo, hi), sigma=float(sigma),
        n_matvecs=op.n_matvecs, P=op.P, probes=probes, steps=steps, seed=seed,
    )  # fmt: skip
    sd.mean, sd.mean_se = sd.moment(1), sd.moment_se(1)
    sd.second_moment, sd.second_moment_se = sd.moment(2), sd.moment_se(2)
    return sd


# ----------------------------------------------------------------------------- outliers
@dataclass
class Outliers:
    """Result of :func:`outliers`.

    Attributes
    ----------
    n_outliers : eigenvalues separated from the bulk (the rule of :func:`outliers`).
    eigenvalues : (k,) the top eigenvalues used, descending (Ritz values of one probe of
        median count for an SLQ input). bulk_edge : the largest eigenvalue not counted.
    ratios : (k // 2,) ``r_i`` of the rule; gap_ratio : ``r`` at the split (the largest
        ``r_i`` when ``n_outliers == 0``, to show how close a split came).
    n_outliers_trials : per-probe counts (SLQ input) or the single count (eigenvalues).
    method : ``"lanczos"`` (:func:`top_eigenvalues`) or ``"slq"`` (Ritz values).
    """

    n_outliers: int
    eigenvalues: np.ndarray
    bulk_edge: float
    gap_ratio: float
    ratios: np.ndarray = field(repr=False)
    threshold: float = 1.0
    method: str = "lanczos"
    n_matvecs: int = 0
    n_outliers_trials: np.ndarray = field(default_factory=lambda: np.empty(0, int), repr=False)

    @property
    def outlier_eigenvalues(self) -> np.ndarray:
        return self.eigenvalues[: self.n_outliers]

    def to_dict(self) -> dict:
        """JSON-safe scalars: ``n_outliers``, ``bulk_edge``, ``gap_ratio``, ``threshold``,
        ``method``, ``n_matvecs``, ``k`` (eigenvalues examined) and ``n_outliers_min`` /
        ``n_outliers_max`` over the probes (SLQ; the count itself for Lanczos). The
        eigenvalues and ratios are :meth:`to_frame`'s rows; ``n_outliers_trials`` stays an
        attribute."""
        trials = self.n_outliers_trials
        extra = {
            "k": len(self.eigenvalues),
            "n_outliers_min": int(trials.min()) if len(trials) else None,
            "n_outliers_max": int(trials.max()) if len(trials) else None,
        }
        return {**_record(self), **extra}

    def to_frame(self) -> pd.DataFrame:
        """One row per eigenvalue used: rank, eigenvalue, is_outlier, ratio r_i (or nan)."""
        import pandas as pd

        k = len(self.eigenvalues)
        r = np.full(k, np.nan)
        r[: len(self.ratios)] = self.ratios
        return pd.DataFrame(
            dict(
                rank=np.arange(1, k + 1),
                eigenvalue=self.eigenvalues,
                is_outlier=np.arange(k) < self.n_outliers,
                ratio=r,
            )
        )


def _split(ev: np.ndarray, threshold: float):
    """Outlier count of a descending sequence ``ev`` (k values): see :func:`outliers`."""
    k = len(ev)
    m = k // 2
    gap, spread = ev[:m] - ev[1 : m + 1], ev[1 : m + 1] - ev[-1]
    atol = 1e-8 * float(np.abs(ev).max()) if k else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(gap <= atol, 0.0, np.where(spread <= atol, np.inf, gap / spread))
    hit = np.flatnonzero(r >= threshold)
    n = int(hit[-1]) + 1 if len(hit) else 0
    ratio = float(r[n - 1]) if n else (float(r.max()) if m else math.nan)
    return n, r, (float(ev[n]) if k else math.nan), ratio


def outliers(
    A_or_density: Operator | SpectralDensity,
    *,
    k: int = 30,
    threshold: float = 1.0,
    seed: int = 0,
    maxiter: int | None = None,
) -> Outliers:
    """Count the eigenvalues of ``A`` separated from the bulk at the top of the spectrum.

    Rule. With the top eigenvalues ``l_1 >= ... >= l_k``, for ``i <= k // 2`` let

        r_i = (l_i - l_{i+1}) / (l_{i+1} - l_k)

    the gap below ``l_i`` against the whole spread of the eigenvalues below it down to
    ``l_k``. Then ``n_outliers = max{i : r_i >= threshold}`` (0 if none) and the bulk edge
    is ``l_{n+1}``. Taking the LAST such ``i`` counts a group of outliers of very different
    sizes as a whole (``1000, 10 | bulk`` gives 2). Inside a continuous bulk one gap is much
    smaller than the spread of the next ~k/2 eigenvalues (for a Marchenko-Pastur edge the
    spacings grow only like ``i^{-1/3}`` towards the edge; measured for Wishart matrices
    with P = 400, N = 800, k = 30 over 50 seeds: max_i r_i has median 0.16 and maximum
    0.26, while spikes 2x above the edge give r ~ 10), so ``threshold = 1`` (a gap wider
    than everything below it) has a wide margin; an exact null space (spread 0 below a gap)
    gives ``r = inf``: the nonzero eigenvalues of a low-rank operator all count. Gaps or
    spreads below ``1e-8 max |l|`` count as 0. Hence ``k`` must be at least twice the
    largest count expected (default 30: up to 15 outliers).

    Input: an operator (the top ``k`` eigenvalues by :func:`top_eigenvalues`, ``LA``,
    ``method="lanczos"``), or a :class:`SpectralDensity`: then the rule runs on each
    probe's top Ritz values (converged for isolated outliers, since Lanczos finds the
    extreme eigenvalues first) and ``n_outliers`` is the median count over probes
    (``method="slq"``, no extra products).

    Number of classes. For a network trained on ``C`` classes, Papyan (2019, 2020) and
    Sagun et al. (2017) observe about ``C`` outliers in the Hessian/GGN spectrum, carried by
    the class means of the per-sample gradients; the between-class covariance of the means
    has rank ``C - 1`` once the global mean is removed, so ``C - 1`` outliers (plus one
    for the global mean, when it is large) is also seen. Compare the count with ``C`` and
    ``C - 1``, and look at ``gap_ratio`` for how sharp the split is.

    Parameters
    ----------
    k : eigenvalues examined (>= 3, <= P; capped at each probe's steps for SLQ).
    threshold : > 0, see the rule. seed, maxiter : for :func:`top_eigenvalues`.
    """
    threshold = check_positive_float("threshold", threshold)
    seed = check_seed(seed)  # used for an operator only, checked for both
    if maxiter is not None:
        maxiter = check_int("maxiter", maxiter, 1)
    if isinstance(A_or_density, SpectralDensity):
        k = check_int("k", k, 3)
        sd = A_or_density
        fits = []
        for p in range(sd.probes):
            ev = sd.nodes[p, : sd.n_steps[p]][::-1][:k]
            fits.append((_split(ev, threshold), ev))
        counts = np.array([f[0][0] for f in fits])
        n = int(np.median(counts))
        near = int(np.argmin(np.abs(counts - n)))
        (_, r, _, ratio), ev = fits[near]
        n = min(n, len(r))
        edge = float(ev[n]) if len(ev) > n else math.nan
        return Outliers(n, ev, edge, ratio, r, threshold, "slq", 0, counts)
    op = _as_operator(A_or_density, "A_or_density")
    k = check_int("k", k, 3, op.P)
    top = top_eigenvalues(op, k, seed=seed, maxiter=maxiter)
    n, r, edge, ratio = _split(top.eigenvalues, threshold)
    return Outliers(n, top.eigenvalues, edge, ratio, r, threshold, "lanczos", top.n_matvecs,
                    np.array([n]))  # fmt: skip


def plot_density(
    sd: SpectralDensity,
    ax: Axes | None = None,
    *,
    log: bool = True,
    eigenvalues: ArrayLike | TopEigen | Outliers | None = None,
) -> Axes:
    """Plot the smoothed density with a +-1 SE band; ``eigenvalues`` (array, TopEigen or
    Outliers) as ticks along the bottom. ``log``: logarithmic density axis (the bulk and
    the tiny outlier bumps together). Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if not isinstance(sd, SpectralDensity):
        raise TypeError(f"sd must be a SpectralDensity, got {type(sd).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    d, se = sd.density, np.nan_to_num(sd.density_se)
    floor = max(float(d.max()) * 1e-8, np.finfo(float).tiny) if log else 0.0
    ax.plot(sd.grid, np.maximum(d, floor), lw=1.2, label=f"SLQ ({sd.probes} probes)")
    ax.fill_between(sd.grid, np.maximum(d - se, floor), np.maximum(d + se, floor), alpha=0.3,
                    label="+-1 SE")  # fmt: skip
    if log:
        ax.set_yscale("log")
    if eigenvalues is not None:
        ev = np.asarray(getattr(eigenvalues, "eigenvalues", eigenvalues), dtype=float)
        ax.plot(ev, np.full(len(ev), 0.02), "|", color="C3", ms=12,
                transform=ax.get_xaxis_transform(), label="top eigenvalues")  # fmt: skip
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax
