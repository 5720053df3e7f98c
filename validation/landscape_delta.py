"""The Delta_k curve of seed 000 (Kiselev & Grabovoy) is the spread of the per-sample losses.

Claims (docs/theory.md section 9.3), each against a route independent of the code under test:

1. Over uniformly random orders of n fixed losses, E[Delta_k^2] = S^2 / (k (k+1)) exactly
   (S^2: sample variance, ddof=1), for every k = 1..n-1: exhaustive enumeration of all 7!
   orders (round-off), Monte Carlo over many orders for five loss sets (within 4 SE).
2. (n/(n-1)) MAD/(k+1) <= E|Delta_k| <= E_l sqrt(a_l^2 + v_k(l))/(k+1), with equality on the
   left for two-valued sets and at k = n-1; for a smooth loss density p the left side is
   missed by p(mu) v_k/(k+1) to leading order (uniform losses: within 4 SE + 20% of it).
3. The authors' EMA (factor 0.99, e_1 = x_1) turns the exact c/(k+1) into a plateau and a
   much steeper log-log slope; the Monte-Carlo EMA slope equals the EMA of the exact curve.
4. fit_rate's bootstrap over orders: 95% intervals cover the exact slope 95% of the time
   (uniform losses, rms; two-point losses, mean) within 4 binomial SE.
5. Neighbourhood (tanh MLP, trained): the closed-form E D and E D^2 agree with Monte Carlo
   at three sigmas (4 SE) and the Taylor gap of E D, relative to its sigma^2 term, shrinks at
   least 2x per halving of sigma. For the paper's ReLU MLP it is large (>= 30% of the
   sigma^2 term) at sigma = 1e-2: the kinks carry a term the Hessian misses; it vanishes
   (< 1%) at sigma = rho/10, rho = min |w_j . x_i| / |x_i| over the k+1 samples.
6. Timing: delta_curve (100 orders, 10^4 losses) against the authors' loop over orders
   (random.sample, cumsum, diff), with equal values on the same orders.

Run: ``PYTHONPATH=. python validation/landscape_delta.py [--quick] [--seed S]`` (about a
minute on one core; ``--quick``: seconds). CPU only (``--device`` accepted and ignored).
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import time

import numpy as np
import torch
from _common import entry, finish, parser

from rmthess.report.checks import check_abs, check_close, check_lower, check_upper


def population(name: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 11])
    return {
        "uniform": lambda: rng.random(n),
        "exponential": lambda: rng.exponential(size=n),
        "pareto2.5": lambda: rng.pareto(2.5, size=n),
        "lognormal": lambda: rng.lognormal(0.0, 1.0, size=n),
        "two-point": lambda: (rng.random(n) < 0.3) * 2.0 + 0.5,
    }[name]()


def expectation_section(quick, seed, checks, rows):
    from rmthess.landscape.delta import delta_curve, delta_expected

    # exhaustive enumeration, n = 7
    x = population("exponential", 7, seed)
    D = []
    for p in itertools.permutations(range(7)):
        v = x[list(p)]
        D.append(np.abs(v[1:] - np.cumsum(v)[:-1] / np.arange(1, 7)) / np.arange(2, 8))
    D, e = np.array(D), delta_expected(x)
    err = float(np.max(np.abs((D**2).mean(0) / e.mean_sq - 1)))
    checks.append(check_upper("E Delta^2", "all 7! orders: max rel. error", err, 1e-12))
    n, R = (300, 4000) if quick else (1000, 20000)
    for name in ("uniform", "exponential", "pareto2.5", "lognormal", "two-point"):
        x = population(name, n, seed)
        c, e = delta_curve(x, R, seed=seed), delta_expected(x)
        for k in (1, 3, 10, 30, 100, n // 2, n - 1):
            sq = c.delta_trials[:, k - 1] ** 2
            se = sq.std(ddof=1) / math.sqrt(R)
            checks.append(
                check_close("E Delta^2", f"{name} k={k}", sq.mean(), e.mean_sq[k - 1], se)
            )
            lo, hi = e.mean_abs[k - 1], e.mean_abs_upper[k - 1]
            m, mse = c.mean[k - 1], c.mean_se[k - 1]
            z_lo, z_hi = (m - lo) / mse, (hi - m) / mse
            rows.append((name, k, sq.mean() / e.mean_sq[k - 1], lo, m, hi))
            checks.append(check_lower("E|Delta|", f"{name} k={k}: (MC - lower)/SE", z_lo, -4.0))
            checks.append(check_lower("E|Delta|", f"{name} k={k}: (upper - MC)/SE", z_hi, -4.0))
            if name == "two-point":
                checks.append(check_close("E|Delta|", f"two-point k={k}: = lower", m, lo, mse))
    # the smooth-density correction, uniform losses (p = 1)
    n, R = 2000, 10000 if quick else 60000
    x = np.linspace(0.0, 1.0, n)
    c, e = delta_curve(x, R, seed=seed, k_max=32), delta_expected(x, k=np.arange(1, 33))
    for k in (4, 8, 16, 32):
        v = e.variance * (n - 1 - k) / (k * (n - 1))
        smooth = (n / (n - 1) * e.mad + v) / (k + 1)
        checks.append(
            check_close(
                "E|Delta|", f"uniform k={k}: MAD + p(mu) v_k", c.mean[k - 1], smooth,
                c.mean_se[k - 1], 0.0, rel_allowance=0.2 * v / (k + 1) / smooth,
                detail=f"correction {v / (k + 1) / smooth:.1%} of the value",
            )
        )  # fmt: skip


def ema_section(quick, seed, checks, rows):
    from rmthess.landscape.delta import PAPER_EMA, delta_curve, ema_filter, fit_rate

    k = np.arange(1, 10_000)
    ex = 1.0 / (k + 1)
    e = ema_filter(ex, PAPER_EMA)
    for kk in (10, 50, 100, 300, 1000):
        rows.append((f"EMA / exact at k={kk}", e[kk - 1] / ex[kk - 1]))
    local = np.diff(np.log(e)) / np.diff(np.log(k))
    for kk in (200, 500, 1000, 3000):
        rows.append((f"EMA local log-log slope at k={kk}", local[kk - 1]))
    checks.append(check_lower("EMA", "EMA/exact at k=100 (plateau)", e[99] / ex[99], 5.0))
    n = 10_000
    nb = 500 if quick else 2000
    ar = np.arange(1, n)
    exact_ema = ema_filter(1.0 / (ar + 1), PAPER_EMA)  # E|Delta_k| of a two-point set, over c
    for name in ("lognormal", "two-point"):
        c = delta_curve(population(name, n, seed), 100, seed=seed, ema=PAPER_EMA)
        for k_min in (10, 100, 1000):
            f = fit_rate(c, k_min=k_min, on="ema", n_boot=nb, seed=seed)
            g = fit_rate(c, k_min=k_min, on="mean", n_boot=nb, seed=seed)
            ks = np.unique(np.round(np.geomspace(k_min, n - 1, 50)).astype(int))
            exact = np.polyfit(np.log(ks), np.log(exact_ema[ks - 1]), 1)[0]
            label = f"{name}: fitted slope k={k_min}..{n - 1}: mean / EMA / EMA of c/(k+1)"
            rows.append((label, (g.slope, f.slope, exact)))
            if name == "two-point":  # E|Delta_k| = c/(k+1) exactly: the EMA slope is known
                checks.append(
                    check_close(
                        "EMA", f"two-point: MC EMA slope vs EMA of c/(k+1), k>={k_min}",
                        f.slope, exact, f.slope_se,
                    )
                )  # fmt: skip


def coverage_section(quick, seed, checks):
    from rmthess.landscape.delta import delta_curve, delta_expected, fit_rate

    R = 100 if quick else 400
    for name, on in (("uniform", "rms"), ("two-point", "mean")):
        x = population(name, 400, seed + 3)
        e = delta_expected(x)
        ks = np.unique(np.round(np.geomspace(5, 399, 50)).astype(int))
        y = e.rms if on == "rms" else e.mean_abs
        truth = np.polyfit(np.log(ks), np.log(y[ks - 1]), 1)[0]
        hits = 0
        for s in range(R):
            c = delta_curve(x, 100, seed=1000 * seed + s)
            f = fit_rate(c, k_min=5, on=on, n_boot=500, seed=s)
            hits += f.slope_ci[0] <= truth <= f.slope_ci[1]
        tol = 4 * math.sqrt(0.05 * 0.95 / R)
        checks.append(
            check_abs("coverage", f"95% CI, {name} losses, on={on}", hits / R, 0.95, tol, f"R={R}")
        )


def neighbourhood_section(quick, seed, checks, rows):
    from rmthess.curvature.models import mlp, train
    from rmthess.data.synthetic import gaussian
    from rmthess.landscape.neighbourhood import neighbourhood_delta

    ds = gaussian(3, 8, 256, seed=seed)
    draws = 1000 if quick else 4000
    for act in ("tanh", "relu"):
        net = mlp(8, 3, (8,), activation=act, bias=False, seed=seed + 1)
        train(net, "ce", (ds.X, ds.y), steps=300, lr=1e-2)
        sigmas = (0.04, 0.02, 0.01)
        if act == "relu":  # rho: smallest |w_j . x_i| / |x_i| over the k+1 samples
            o = neighbourhood_delta(net, "ce", (ds.X, ds.y), 100, 1.0, seed=seed).order
            X = torch.as_tensor(ds.X[o])
            rho = float(((X @ net.hidden1.weight.detach().T).abs() / X.norm(dim=1)[:, None]).min())
            sigmas = (1e-2, 1e-3, rho / 10)
        rel = []
        for s in sigmas:
            r = neighbourhood_delta(net, "ce", (ds.X, ds.y), 100, s, seed=seed)
            mc = r.monte_carlo(draws)
            so = abs(mc.second_order_mean)
            rel.append((mc.gap_mean / mc.second_order_mean, mc.gap_mean_se / so))
            share = s**2 * r.grad_sq / mc.second_order_sq
            rows.append((act, s, mc.mean, mc.mean_se, r.mean, r.mean_paper, rel[-1][0], share))
            if act == "tanh":
                sec, name = "neighbourhood", f"tanh sigma={s}"
                checks.append(check_close(sec, f"{name}: E D", mc.mean, r.mean, mc.mean_se))
                checks.append(
                    check_close(sec, f"{name}: E D^2", mc.mean_sq, r.mean_sq, mc.mean_sq_se)
                )
        sec = "neighbourhood"
        if act == "tanh":
            for (a, sa), (b, sb) in itertools.pairwise(rel):
                name = "tanh: |gap|/s^2 term at sigma/2, minus 4 SE, <= half of it at sigma"
                val = abs(b) - 4 * math.hypot(sb, sa / 2)
                checks.append(check_upper(sec, name, val, abs(a) / 2, f"{abs(b):.4f}"))
        else:
            name = "relu: |gap|/s^2 term"
            checks.append(check_lower(sec, f"{name}, sigma=1e-2 (kinks)", abs(rel[0][0]), 0.3))
            val = abs(rel[2][0]) + 4 * rel[2][1]
            detail = f"rho = {rho:.3g}: no pre-activation within 10 sigma |x| of its kink"
            checks.append(check_upper(sec, f"{name} + 4 SE, sigma=rho/10", val, 0.01, detail))


def timing_section(seed, checks, rows):
    from rmthess.landscape import delta as dmod

    x = population("exponential", 10_000, seed)
    t = time.perf_counter()
    c = dmod.delta_curve(x, 100, seed=seed)
    t_vec = time.perf_counter() - t
    lv = list(x)
    rnd = random.Random(seed)
    t = time.perf_counter()
    authors = []
    for _ in range(100):
        m = np.cumsum(rnd.sample(lv, len(lv))) / np.arange(1, len(lv) + 1)
        authors.append(np.abs(np.diff(m)))
    t_loop = time.perf_counter() - t
    ar = np.arange(1, x.size + 1)
    same = [np.abs(np.diff(np.cumsum(x[p]) / ar)) for p in dmod._orders(x.size, 100, seed)]
    err = float(np.max(np.abs(np.array(same) - c.delta_trials) / np.array(same).max()))
    rows.append(("delta_curve, 100 orders x 10^4 (s)", t_vec))
    rows.append(("authors' loop over orders (s)", t_loop))
    checks.append(check_upper("timing", "vectorised vs loop, same orders (rel.)", err, 1e-12))


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    checks, rows_e, rows_ema, rows_n, rows_t = [], [], [], [], []
    expectation_section(args.quick, args.seed, checks, rows_e)
    ema_section(args.quick, args.seed, checks, rows_ema)
    coverage_section(args.quick, args.seed, checks)
    neighbourhood_section(args.quick, args.seed, checks, rows_n)
    timing_section(args.seed, checks, rows_t)
    head = ("losses", "k", "MC/exact E D^2", "lower", "MC E|D|", "upper")
    print("{:12} {:>5} {:>15} {:>11} {:>11} {:>11}".format(*head))
    for name, k, r, lo, m, hi in rows_e:
        print(f"{name:12} {k:5d} {r:15.4f} {lo:11.4e} {m:11.4e} {hi:11.4e}")
    print()
    for name, v in rows_ema:
        vals = v if isinstance(v, tuple) else (v,)
        print(f"{name:60} " + " ".join(f"{u:9.4f}" for u in vals))
    print()
    head = ("act", "sigma", "MC E D", "SE", "closed form", "paper", "gap/s^2", "s^2|g|^2 share")
    print("{:5} {:>7} {:>13} {:>8} {:>13} {:>13} {:>9} {:>14}".format(*head))
    for act, s, m, se, th, pa, rel, share in rows_n:
        print(
            f"{act:5} {s:7.0e} {m:13.6e} {se:8.1e} {th:13.6e} {pa:13.6e} {rel:9.4f} {share:14.3f}"
        )
    print()
    for name, v in rows_t:
        print(f"{name:40} {v:8.3f}")
    print()
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
