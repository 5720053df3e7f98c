# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Theory on the data you have: digits, linear model at initialization
#
# The paper's theory assumes isotropic Gaussian inputs. `rmthess.theory.input_stats`
# summarises a real data set (covariance spectrum moments `tau_k`, effective dimension
# `d_eff`, mean spike, per-class statistics), and `frobenius_limits(..., inputs=)` /
# `conditional_frobenius` predict the Hessian block norms for Gaussian inputs with those
# statistics (docs/theory.md section 9.4). Here they are held against the exact block norms
# of linear networks on scikit-learn's digits (`rmthess.curvature.block_norms`), raw and
# standardised pixels.
#
# Open as a notebook with `jupytext --to ipynb notebooks/theory_on_data.py`.
# `RMTHESS_NOTEBOOK_SMALL=1` (the test suite) shrinks every size.

# %%
import os
import warnings

import numpy as np
import pandas as pd
import torch

from rmthess.curvature import block_norms, mlp, theory_on_data
from rmthess.data import Dataset, digits
from rmthess.theory import conditional_frobenius, frobenius_limits, input_stats

SMALL = os.environ.get("RMTHESS_NOTEBOOK_SMALL") == "1"
NETWORKS = 4 if SMALL else 30
C = 5

# %% [markdown]
# ## 1. What the theory needs from the data
# Classes 0..4 of digits (d = 64). Standardised pixels are centred with unit variances but
# far from isotropic (`d_eff` about 10); raw pixels in [0, 1] carry a large mean.

# %%
full = digits()
keep = full.y < C
raw = Dataset(full.X[keep], full.y[keep], C, "digits-5")
sets = {"raw": raw, "std": raw.standardize()}
with warnings.catch_warnings():  # d_eff is small: the warning says so; it is the point
    warnings.simplefilter("ignore", RuntimeWarning)
    stats = {name: input_stats(ds.X, ds.y) for name, ds in sets.items()}
summary = pd.DataFrame(
    {
        name: {k: getattr(s, k) for k in ("d", "n", "tau1", "tau2", "d_eff", "mean_sq", "level")}
        for name, s in stats.items()
    }
)
print(summary.to_string())

# %% [markdown]
# ## 2. Predicted next to measured
# Measured: the exact block norms `(1/d)||H_kl||_F^2` of the CE Hessian of `NETWORKS` LeCun
# linear networks (`mlp(d, C, hidden=())`), mean and standard error over networks.
# Predicted: the isotropic limit; one Gaussian with the data's mean and covariance (exact
# at finite d, `stats.pooled()`); the class mixture (each class a Gaussian with its own
# mean and covariance; `input_stats(X, y)` selects it), as a limit and exact at finite d,
# the latter also with the i = j terms taken from the data's own sample norms
# (`self_term="data"`).


# %%
def measured(ds: Dataset, networks: int) -> dict:
    data = ds.tensors()
    F = []
    for seed in range(networks):
        net = mlp(ds.d, C, hidden=(), bias=False, init="lecun", seed=seed)
        bm = block_norms(net, torch.nn.CrossEntropyLoss(), data, blocks="output-rows", exact=True)
        sq = bm.sq_norm / ds.d
        off = ~np.eye(C, dtype=bool)
        F.append((np.diag(sq).mean(), sq[off].mean()))
    F = np.array(F)
    mean, se = F.mean(axis=0), F.std(axis=0, ddof=1) / np.sqrt(len(F))
    return {"F_diag": mean[0], "F_diag_se": se[0], "F_off": mean[1], "F_off_se": se[1]}


rows = []
for name, ds in sets.items():
    gamma = ds.d / ds.n
    m = measured(ds, NETWORKS)
    rows.append({"data": name, "level": "measured", **m})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        st = stats[name]
        draws = 512 if SMALL else 4096
        levels = {
            "isotropic": frobenius_limits("linear-ce", C, gamma),
            "one Gaussian (exact)": conditional_frobenius(
                "linear-ce", C, st.pooled(), ds.n, networks=NETWORKS, draws=draws
            ),
            "mixture (limit)": frobenius_limits("linear-ce", C, gamma, inputs=st),
            "mixture (exact)": conditional_frobenius(
                "linear-ce", C, st, ds.n, networks=NETWORKS, draws=draws
            ),
            "mixture + data norms": conditional_frobenius(
                "linear-ce", C, st, ds.n, networks=NETWORKS, draws=draws, self_term="data"
            ),
        }
    for level, r in levels.items():
        rows.append(
            {
                "data": name,
                "level": level,
                "F_diag": r.F_diag,
                "F_off": r.F_off,
                "err F_diag %": 100 * (r.F_diag / m["F_diag"] - 1),
                "err F_off %": 100 * (r.F_off / m["F_off"] - 1),
            }
        )
table = pd.DataFrame(rows)
print(table.to_string(float_format=lambda x: f"{x:.4g}"))

# %% [markdown]
# On raw pixels the mean spike dominates and every level with the data's moments lands
# within a few percent of the measurement, where the isotropic theory is about 55 % low.
# On standardised pixels one Gaussian recovers `F_diag` but leaves `F_off` about 15 % low:
# the rest is class structure, which the mixture (with the data's own sample norms, which
# are heavy-tailed on digits) recovers (docs/theory.md 9.4;
# `validation/theory_on_data_linear.py` for C = 5 and 10 with 50 networks).

# %% [markdown]
# ## The hidden layer of a ReLU net
#
# The first layer of `f(x) = V relu(W x)` has one `d x d` block per pair of hidden units, with
# a weight that depends on `x` only through `W x`: the same exact route applies
# (`conditional_frobenius("hidden-ce", C, stats, N, m=m)`). `theory_on_data(..., hidden=(m,))`
# measures the block map and runs the exact levels on the measured networks' own weights, so
# each relative error comes with a paired (jackknife) standard error.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    hid = theory_on_data(
        sets["raw"], hidden=(16,), networks=4 if SMALL else 12, draws=512 if SMALL else 2048
    )
cols = ["level", "F_diag", "F_off", "ratio", "err_F_diag", "err_F_off", "err_F_off_se"]
print(hid.to_frame()[cols].to_string(float_format=lambda x: f"{x:.4g}"))

# %% [markdown]
# On raw digits the class mixture matches the measured hidden-layer blocks to well under
# 1 % (60 networks, `validation/theory_on_data_hidden.py`), where the isotropic theory is
# 60-76 % low; on standardised digits `F_off` stays 7.6-9.6 % low (heavy-tailed sample norms).
