"""Randomised curvature estimators report honest standard errors (rmthess.curvature).

Claims, each checked on dense symmetric matrices whose truth is known independently
(``numpy.linalg.eigvalsh``, ``numpy.trace`` or a spectrum built in as
``A = U diag(lam) U^T`` with a random orthogonal ``U``):

1. Trace (Hutch++ and Hutchinson, ``hessian_trace``): over R independent seeds the
   z-scores ``(estimate - tr A) / trace_se`` have mean 0 (|mean| < 4 / sqrt(R)), standard
   deviation 1 (within 0.15: Student-t with n_G = 33 probes has 1.03), fewer than 0.5%
   beyond 4, and the 95% t-intervals cover tr A in 95% of the runs (binomial: within
   4 sqrt(0.05 * 0.95 / R)); on three matrices: indefinite with a decaying spectrum,
   a spiked Wishart (PSD, skewed quadratic forms) and a GOE matrix.
2. Hutch++ beats Hutchinson on a decaying spectrum (lambda_i = i^-2): RMS error ratio < 0.05
   at 99 products; the adaptive mode (``rtol``) reaches its target and stays honest.
3. SLQ moments (``spectral_density``): z-scores of ``(1/P) tr A^k``, k = 1, 2, 3, as in 1
   (30 probes: t_29, std 1.04, band 0.85 .. 1.2); the SLQ cdf of a Wishart matrix is
   within KS distance 0.05 of its eigenvalue cdf; the density integrates to 1.
4. Eigenvalues (``top_eigenvalues``): LA/SA/LM agree with eigvalsh to 1e-8 ||A||;
   ``condition_number`` equals the built-in ratio on the range.
5. Outliers (``outliers``): a Wishart bulk plus C rank-one spikes gives C, for
   C = 0, 1, 2, 5, 10, from the top eigenvalues and from SLQ; pure Wishart matrices
   (C = 0) over many seeds never give a false outlier.

Run: ``PYTHONPATH=. python validation/curvature_estimators.py [--quick] [--seed S]`` (about
a minute on one core; ``--quick``: R = 200 repeats, seconds). Everything runs on the CPU
in float64 numpy (``--device`` is accepted for uniformity and ignored).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from _common import entry, finish, parser

from rmthess.report.checks import check_abs, check_upper


def with_spectrum(lam, seed: int) -> np.ndarray:
    lam = np.asarray(lam, dtype=float)
    U, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(lam), len(lam))))
    return (U * lam) @ U.T


def wishart(P: int, N: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((P, N))
    return X @ X.T / N


def spiked(P: int, C: int, seed: int) -> np.ndarray:
    U, _ = np.linalg.qr(np.random.default_rng([seed, 1]).standard_normal((P, max(C, 1))))
    return wishart(P, 2 * P, seed) + (U[:, :C] * (8.0 + 2.0 * np.arange(C))) @ U[:, :C].T


def z_checks(section, name, z, covered, std_band, checks, rows):
    """mean, std, tail and coverage checks of one list of z-scores."""
    z, R = np.asarray(z), len(z)
    mean, std, tail = float(z.mean()), float(z.std()), float(np.mean(np.abs(z) > 4))
    cov = math.nan if covered is None else float(np.mean(covered))
    rows.append((section, name, R, mean, std, tail, cov))
    checks.append(check_abs(section, f"{name}: mean z", mean, 0.0, 4 / math.sqrt(R), f"R={R}"))
    lo, hi = std_band
    checks.append(
        check_abs(section, f"{name}: std z", std, (lo + hi) / 2, (hi - lo) / 2, f"[{lo}, {hi}]")
    )
    checks.append(check_upper(section, f"{name}: P(|z| > 4)", tail, 0.005, f"R={R}"))
    if covered is not None:
        tol = 4 * math.sqrt(0.05 * 0.95 / R)
        checks.append(check_abs(section, f"{name}: 95% CI coverage", cov, 0.95, tol))


def trace_section(R, seed, checks, rows):
    from rmthess.curvature.trace import hessian_trace

    rng = np.random.default_rng([seed, 7])
    P = 300
    lam = rng.choice([-1.0, 1.0], P) / np.arange(1, P + 1) ** 0.5 + 0.2
    X = rng.standard_normal((P, P))
    mats = {
        "decaying indefinite": (with_spectrum(lam, seed), lam.sum()),
        "spiked Wishart": (spiked(P, 5, seed), None),
        "GOE": ((X + X.T) / 2, None),
    }
    mats = {k: (A, np.trace(A) if tr is None else tr) for k, (A, tr) in mats.items()}
    runs = [("hutch++", "rademacher"), ("hutchinson", "rademacher"), ("hutch++", "gaussian")]
    for mname, (A, tr) in mats.items():
        for method, dist in runs:
            z, cov = [], []
            for s in range(R):
                t = hessian_trace(A, matvecs=99, method=method, distribution=dist, seed=seed + s)
                z.append((t.trace - tr) / t.trace_se)
                lo, hi = t.trace_ci
                cov.append(lo <= tr <= hi)
            z_checks("trace", f"{method} {dist}, {mname}", z, cov, (0.85, 1.15), checks, rows)
    # Hutch++ advantage on lambda_i = i^-2
    lam2 = 1.0 / np.arange(1, P + 1) ** 2
    A2 = with_spectrum(lam2, seed + 1)
    err = {m: [] for m in ("hutch++", "hutchinson")}
    for s in range(min(R, 100)):
        for m in err:
            err[m].append(hessian_trace(A2, matvecs=99, method=m, seed=seed + s).trace - lam2.sum())
    rms = {m: math.sqrt(np.mean(np.square(e))) for m, e in err.items()}
    checks.append(
        check_upper(
            "trace",
            "RMS error hutch++ / hutchinson, lambda_i = i^-2",
            rms["hutch++"] / rms["hutchinson"],
            0.05,
            f"RMS {rms['hutch++']:.2e} vs {rms['hutchinson']:.2e} at 99 products",
        )
    )
    # adaptive mode
    A, tr = mats["decaying indefinite"]
    z, reached = [], []
    for s in range(1000):  # cheap; one |z| > 4 in 200 would move std z by 0.08
        t = hessian_trace(A, matvecs=30, rtol=0.01, max_matvecs=3000, seed=seed + s)
        z.append((t.trace - tr) / t.trace_se)
        reached.append(t.target_reached and t.trace_se <= 0.01 * abs(t.trace))
    checks.append(
        check_abs(
            "trace",
            "rtol=0.01: fraction reaching the target",
            np.mean(reached),
            1.0,
            0.0,
            "max_matvecs=3000",
        )
    )
    z_checks("trace", "hutch++ adaptive rtol=0.01", z, None, (0.85, 1.15), checks, rows)


def slq_section(R, seed, quick, checks, rows):
    from rmthess.curvature.density import spectral_density

    A = wishart(100, 200, seed)
    ev = np.linalg.eigvalsh(A)
    z = {k: [] for k in (1, 2, 3)}
    for s in range(R):
        sd = spectral_density(A, probes=30, steps=6, n_grid=2, seed=seed + s)
        for k in z:
            z[k].append((sd.moment(k) - np.mean(ev**k)) / sd.moment_se(k))
    for k in z:
        z_checks("slq", f"moment {k}, Wishart P=100", z[k], None, (0.85, 1.2), checks, rows)
    P = 400 if quick else 1000
    W = wishart(P, 2 * P, seed + 1)
    ev = np.linalg.eigvalsh(W)
    sd = spectral_density(W, seed=seed)
    x = np.sort(np.r_[ev, sd.nodes.ravel()])
    ks = np.abs(sd.cdf(x) - np.searchsorted(ev, x, side="right") / P).max()
    checks.append(
        check_upper(
            "slq", f"KS(SLQ cdf, eigenvalues), Wishart P={P}", ks, 0.05, "8 probes, 80 steps"
        )
    )
    integral = float(np.trapezoid(sd.density, sd.grid))
    checks.append(check_abs("slq", "integral of the density", integral, 1.0, 1e-5))


def eigen_section(seed, checks):
    from rmthess.curvature.eigen import condition_number, top_eigenvalues

    X = np.random.default_rng([seed, 3]).standard_normal((500, 500))
    A = (X + X.T) / 2
    ev = np.linalg.eigvalsh(A)
    want = {"LA": ev[::-1][:10], "SA": ev[:10], "LM": ev[np.argsort(-np.abs(ev))][:10]}
    for which, w in want.items():
        r = top_eigenvalues(A, 10, which=which, seed=seed)
        err = float(np.abs(r.eigenvalues - w).max() / np.abs(ev).max())
        checks.append(
            check_upper(
                "eigen",
                f"top_eigenvalues {which} vs eigvalsh (rel)",
                err,
                1e-8,
                f"P=500, k=10, {r.n_matvecs} products",
            )
        )
        checks.append(
            check_upper("eigen", f"top_eigenvalues {which} max residual", r.max_residual, 1e-8)
        )
    lam = np.r_[np.geomspace(1e-4, 10.0, 20), np.zeros(180)]
    c = condition_number(with_spectrum(lam, seed))
    checks.append(
        check_abs(
            "eigen",
            "condition_number on the range (rel. error)",
            c.condition / 1e5 - 1,
            0.0,
            1e-8,
            f"rank {c.rank_estimate} of 20",
        )
    )


def outlier_section(R, seed, checks):
    from rmthess.curvature.density import outliers, spectral_density

    for C in (0, 1, 2, 5, 10):
        A = spiked(400, C, seed)
        o, s = outliers(A, seed=seed), outliers(spectral_density(A, seed=seed))
        detail = f"edge {o.bulk_edge:.3f}, gap ratio {o.gap_ratio:.3g}"
        checks.append(
            check_abs(
                "outliers", f"spiked Wishart C={C}: count (Lanczos)", o.n_outliers, C, 0, detail
            )
        )
        checks.append(
            check_abs(
                "outliers",
                f"spiked Wishart C={C}: count (SLQ)",
                s.n_outliers,
                C,
                0,
                f"per probe {s.n_outliers_trials.tolist()}",
            )
        )
    n = min(R, 50)
    res = [outliers(wishart(400, 800, seed + 100 + s)) for s in range(n)]
    false = sum(r.n_outliers > 0 for r in res)
    worst = max(r.gap_ratio for r in res)
    checks.append(
        check_abs(
            "outliers",
            f"pure Wishart, {n} seeds: false outliers",
            false,
            0,
            0,
            f"largest r_i {worst:.3f} (threshold 1)",
        )
    )


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    R = 200 if args.quick else 1000
    checks, rows = [], []
    trace_section(R, args.seed, checks, rows)
    slq_section(R, args.seed, args.quick, checks, rows)
    eigen_section(args.seed, checks)
    outlier_section(R, args.seed, checks)
    print(
        f"{'section':8} {'estimator':46} {'R':>5} {'mean z':>7} {'std z':>6} "
        f"{'|z|>4':>6} {'cover':>6}"
    )
    for sec, name, n, mean, std, tail, cov in rows:
        print(f"{sec:8} {name:46} {n:5d} {mean:7.3f} {std:6.3f} {tail:6.3f} {cov:6.3f}")
    print()
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
