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
# # Loss landscape vs sample size (seed 000), and the paper's Hessian bounds
#
# Kiselev & Grabovoy plot `Delta_k = |L_{k+1} - L_k|` against the number of samples `k`
# for ReLU MLPs of several widths and depths, and bound it through per-sample Hessian
# norms. rmthess reproduces the experiment on digits (no downloads), shows what the curve
# measures (its exact expectation depends only on the spread of the per-sample losses), and
# audits every bound against the exact norms. docs/theory.md section 9.3.
#
# Open as a notebook with `jupytext --to ipynb notebooks/landscape.py`.
# `RMTHESS_NOTEBOOK_SMALL=1` (the test suite) shrinks every size.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from rmthess.data import digits
from rmthess.landscape import (
    delta_curve,
    delta_expected,
    fit_rate,
    landscape_experiment,
    paper_pixels,
    per_sample_losses,
    plot_delta_panels,
    sample_size_for,
    train_mlp,
)

SMALL = os.environ.get("RMTHESS_NOTEBOOK_SMALL") == "1"
ds = paper_pixels(digits())  # pixels in [-1, 1], as in the paper

# %% [markdown]
# ## One network: the curve, its exact expectation, the EMA
# `E Delta_k^2 = S^2 / (k (k+1))` exactly over random orders (S^2: sample variance of the
# per-sample losses); at large k, `E|Delta_k| ~ MAD / (k+1)`.

# %%
model = train_mlp(ds, 16, 3, epochs=2 if SMALL else 10, seed=0)
losses = per_sample_losses(model, "ce", ds)
curve = delta_curve(losses, 30 if SMALL else 100, seed=0, ema=0.99)
exact = delta_expected(losses)
fit = fit_rate(curve, k_min=10, k_max=ds.n // 10)
print(f"slope {fit.slope:.3f}, 95% CI {fit.slope_ci}")
print("samples for E|Delta| < 1e-3:", sample_size_for(curve, 1e-3))
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(curve.k, curve.mean, label="Monte Carlo mean")
ax.loglog(exact.k, exact.rms, ":", label="exact sqrt(E Delta^2)")
ax.loglog(exact.k, exact.mean_abs, "-.", label="MAD/(k+1)")
ax.loglog(curve.k, curve.ema, "--", label="paper's EMA 0.99")
ax.set(xlabel="k", ylabel="Delta_k")
ax.legend()

# %% [markdown]
# ## The paper's two panels

# %%
res = landscape_experiment(
    ds,
    hidden=(4, 16) if SMALL else (4, 8, 16, 32, 64),
    layers=(1, 3) if SMALL else (1, 3, 5),
    orders=20 if SMALL else 100,
    epochs=1 if SMALL else 10,
    audit_samples=10 if SMALL else 200,
    progress=False,
)
plot_delta_panels(res)
res.to_frame()

# %% [markdown]
# ## The Hessian-bound audit
# bound / exact `||H_i||_2` per sample: where the paper's Theorem 1 and Lemma 1 hold, how
# loose they are, and the corrected bounds.

# %%
audit = res.audit_frame()
print(audit[["state", "bound", "target", "holds_fraction", "ratio_min", "ratio_median"]])
print("all finite:", bool(np.isfinite(audit["ratio_median"]).any()))
