"""Theory on data, hidden layer: predicted vs measured Hessian blocks of a one-hidden-layer
ReLU net on scikit-learn's digits.

Claim (issue 19, docs/theory.md section 9.4 "Hidden layer"): for ``f(x) = V relu(W x)``
(``m = 16``, no bias, LeCun init) the first layer's block norms ``F_diag = mean_k
(1/d)||H_kk||_F^2``, ``F_off = mean_{k != l} (1/d)||H_kl||_F^2`` (the ``m x m`` map of ``d x
d`` row blocks) and ``r = sqrt(F_off / F_diag)`` on a real data set are predicted by

- ``isotropic``: ``frobenius_limits("hidden-ce", C, d/N, m)`` (``x ~ N(0, I_d)``);
- ``gaussian``: the conditional route (:mod:`rmthess.theory.aniso_hidden`) for one Gaussian
  with the data's mean and covariance, exact at finite d;
- ``mixture``: the same for the class-conditional Gaussian mixture (the data's class
  counts, means and covariances);
- ``clusters``: the same for the finer mixture whose components are 4 k-means clusters per
  class (``input_stats(X, y, per_class=4)``).

The exact levels are evaluated on the measured networks' own ``(W, V)``
(:func:`rmthess.curvature.theory_on_data` with ``hidden=(m,)``), so theory and measurement
are paired and the relative error has a jackknife SE over networks far below the spread of
the networks themselves.

Data: digits (d = 64), classes 0..C-1 for C = 5 and 10, ``std`` (standardised per feature)
and ``raw`` (pixels in [0, 1]). Checks:

- the measured blocks (``rmthess.curvature.block_norms``, exact) equal a numpy Gram oracle
  ``a^T (X X^T)^2 a / (d N^2)`` (relative 1e-9);
- the Gaussian route vs a Gaussian surrogate (fresh ``N(mu, Sigma)`` samples with the data's
  moments, numpy oracle; same networks): 4 jackknife SE, i.e. exact on its assumptions;
- every exact level removes at least half of the isotropic error on ``F_diag`` and ``F_off``;
- measured vs the clusters level: 4 SE + 5 % on ``F_diag``, ``F_off`` and ``r`` (the issue's
  target) on every data set; measured vs the mixture level the same where met, else N/A
  with the size of the gap (standardised digits: a class is a few clouds, not one Gaussian).

``--out FILE.csv`` writes the table (one row per data set, loss and level).
"""

from __future__ import annotations

import math
import sys
import time
import warnings

import numpy as np
from _common import entry, finish, gram_means, parser

from rmthess.report.checks import check_close, check_lower, check_na, check_upper

SECTION = "theory-on-data-hidden"
M = 16
QUANTITIES = ("F_diag", "F_off", "ratio")


def _data(prep: str, C: int):
    from rmthess.data import Dataset, digits

    ds = digits()
    keep = ds.y < C
    sub = Dataset(ds.X[keep], ds.y[keep], C, f"digits-{C}")
    return sub.standardize() if prep == "std" else sub


def _weights(V, g, loss):
    """Hidden-layer block weights, written out from docs/theory.md section 2.1 (numpy)."""
    C, m = V.shape
    on = (g > 0).astype(float)
    if loss == "mse":
        A = np.broadcast_to(np.eye(C), (g.shape[0], C, C))
    else:
        z = np.maximum(g, 0) @ V.T
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        A = np.eye(C)[None] * p[:, :, None] - p[:, :, None] * p[:, None, :]
    a = np.einsum("ck,ncd,dl->nkl", V, A, V) * on[:, :, None] * on[:, None, :]
    return a.reshape(g.shape[0], m * m)


def _oracle(X, W, V, loss):
    """(F_diag, F_off) of the hidden blocks by the Gram route in numpy."""
    m = W.shape[0]
    return gram_means(X, _weights(V, X @ W.T, loss), np.eye(m, dtype=bool).ravel())


def _cross_check(ds, C, seed):
    from rmthess.curvature import block_norms, mlp

    X = np.asarray(ds.X)[:300]
    data = ds.tensors()
    net = mlp(ds.d, C, hidden=(M,), bias=False, seed=seed)
    W, V = (p.detach().double().numpy() for p in (net.hidden1.weight, net.output.weight))
    sub = (data[0][:300], data[1][:300])
    bm = block_norms(net, "ce", sub, blocks="hidden-rows", exact=True, progress=False)
    F = bm.sq_norm / ds.d
    got = np.array([np.mean(np.diag(F)), np.mean(F[~np.eye(M, dtype=bool)])])
    want = np.array(_oracle(X, W, V, "ce"))
    return float(np.max(np.abs(got / want - 1)))


def _surrogate(res, X, loss, seed):
    """The oracle on fresh Gaussian samples with the data's mean and covariance, on the
    measured networks (paired with the ``gaussian`` level's per-network values)."""
    from rmthess.curvature.models import mlp
    from rmthess.curvature.on_data import network_seed

    N, d = X.shape
    mu = X.mean(0)
    cov = np.cov(X, rowvar=False, bias=True)
    lam, U = np.linalg.eigh(cov)
    L = U * np.sqrt(np.clip(lam, 0, None))
    gen = np.random.default_rng(seed)
    out = np.empty((res.networks, 2))
    for t in range(res.networks):
        net = mlp(d, res.C, hidden=(M,), bias=False, seed=network_seed(res.seed, t))
        W, V = (p.detach().double().numpy() for p in (net.hidden1.weight, net.output.weight))
        Xs = mu + gen.standard_normal((N, d)) @ L.T
        out[t] = _oracle(Xs, W, V, loss)
    return out


def _jack(T, S, q):
    from rmthess.curvature.on_data import _jackknife_rel, _rel_of_means

    return _rel_of_means(T, S, q), _jackknife_rel(T, S, q)


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--networks", type=int, default=None, help="networks at init (default 60)")
    p.add_argument("--out", default=None, help="write the table to this CSV file")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.curvature import theory_on_data

    nets = args.networks or (6 if args.quick else 60)
    settings = (
        [("raw", 5, "ce")]
        if args.quick
        else [(prep, C, loss) for loss in ("ce", "mse") for prep in ("std", "raw") for C in (5, 10)]
    )
    checks, rows = [], []
    diff = _cross_check(_data("std", 5), 5, args.seed)
    checks.append(
        check_upper(SECTION, "block_norms = numpy Gram oracle (max rel diff)", diff, 1e-9)
    )
    for prep, C, loss in settings:
        ds = _data(prep, C)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = theory_on_data(ds, loss, hidden=(M,), networks=nets, seed=args.seed)
        tag = f"{prep} C={C} {loss}"
        print(f"\n{tag}: N={res.N}, d={res.d}, d_eff={res.d_eff:.1f}, {res.seconds}")
        print(res.to_frame().drop(columns=["description"]).to_string(float_format="{:.4g}".format))
        surr = _surrogate(res, np.asarray(ds.X), loss, args.seed + 1000)
        for q in ("F_diag", "F_off", "ratio"):
            err, se = _jack(res.per_network["gaussian"], surr, q)
            checks.append(
                check_close(
                    SECTION,
                    f"{tag} {q}: gaussian route / Gaussian surrogate",
                    1.0 + err,
                    1.0,
                    se,
                    0.0,
                    k=4.0,
                    rel_allowance=0.0,
                    detail="paired over networks, jackknife SE; exact on its assumptions",
                )
            )
        for level in ("gaussian", "mixture", "clusters"):
            for q in ("F_diag", "F_off"):
                iso = abs(res.rel_err("isotropic", q))
                removed = 1.0 - abs(res.rel_err(level, q)) / iso if iso > 0 else math.nan
                checks.append(
                    check_lower(
                        SECTION,
                        f"{tag} {level}: share of the isotropic {q} error removed",
                        removed,
                        0.5,
                    )
                )
        for level, q in ((lv, q) for lv in ("mixture", "clusters") for q in QUANTITIES):
            err, se = res.rel_err(level, q), res.err_se(level, q)
            name = f"{tag} {q}: {level} theory / measured"
            if level == "mixture" and abs(err) > 4 * se + 0.05:
                reason = (
                    f"{100 * err:+.1f} % +- {100 * se:.1f} % (target 5 %): one Gaussian per "
                    "class misses the classes' sub-clusters; the clusters level is checked"
                )
                checks.append(check_na(SECTION, name, 1.0 + err, reason, 1.0))
                continue
            checks.append(
                check_close(
                    SECTION,
                    name,
                    1.0 + err,
                    1.0,
                    se,
                    0.0,
                    k=4.0,
                    rel_allowance=0.05,
                    detail="paired over networks, jackknife SE; issue 19 target 5 %",
                )
            )
        for level, lim in res.levels.items():
            row = dict(data=prep, C=C, loss=loss, level=level, networks=nets)
            for q in ("F_diag", "F_off", "ratio"):
                row[q] = float(getattr(lim, q))
                row[f"err_{q}"] = res.rel_err(level, q)
                row[f"err_{q}_se"] = res.err_se(level, q)
            rows.append(row)
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
