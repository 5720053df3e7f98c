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
# # Curvature of real networks on real data
#
# Three reproductions with `rmthess.curvature` and `rmthess.data` (no downloads):
#
# 1. the block-structure paper's Figure 1 on digits: |H| of a one-hidden-layer ReLU net with
#    8 neurons, at initialization and after training, and its block ratios;
# 2. the clustered-data ablation (paper Appendix B.2): block ratio against the number of
#    classes for several cluster counts;
# 3. the spectrum of a trained digits MLP: SLQ density, top eigenvalues of H and of the
#    Gauss-Newton part G, outliers against the number of classes (seed 002, Papyan 2020).
#
# Open as a notebook with `jupytext --to ipynb notebooks/curvature_real_data.py`.
# `RMTHESS_NOTEBOOK_SMALL=1` (the test suite) shrinks every size.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from rmthess.curvature import curvature_operator, dense_hessian, mlp, train
from rmthess.curvature.blocks import block_norms
from rmthess.curvature.density import outliers, plot_density, spectral_density
from rmthess.curvature.eigen import top_eigenvalues
from rmthess.curvature.plots import plot_hessian
from rmthess.data import clustered, digits

SMALL = os.environ.get("RMTHESS_NOTEBOOK_SMALL") == "1"
STEPS = 30 if SMALL else 300

# %% [markdown]
# ## 1. Figure 1 on digits
# 128 images (the paper used 128 CIFAR-100 images), 8 hidden neurons, no biases, LeCun
# initialization. Parameters are ordered as the rows of `W` (hidden layer) then the rows of
# `V` (output layer).

# %%
ds = digits().subset(64 if SMALL else 128, seed=0)
data = ds.tensors()
net = mlp(ds.d, ds.n_classes, (8,), bias=False, seed=0)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, when in zip(axes, ("init", "trained"), strict=True):
    if when == "trained":
        train(net, "ce", data, steps=STEPS, lr=1e-2)
    H = dense_hessian(net, "ce", data)
    plot_hessian(H, curvature_operator(net, "ce", data), ax=ax)
    ax.set_title(f"|H| on digits, {when}")
    for blocks in ("hidden-rows", "output-rows"):
        bm = block_norms(net, "ce", data, blocks, probes=20, seed=0)
        print(f"{when:8s} {blocks:12s} r = {bm.ratio:.4f} +- {bm.ratio_se:.4f}")

# %% [markdown]
# ## 2. Clustered data: ratio vs number of classes
# Exact block norms (unit probes on each block) of the class blocks of the output layer.

# %%
Cs = (2, 4, 8) if SMALL else (2, 4, 8, 16, 32)
fig, ax = plt.subplots(figsize=(5.5, 4))
for K in (1, 2) if SMALL else (1, 2, 4):
    r = []
    for C in Cs:
        cd = clustered(C, 64, 20 * C, clusters=K, seed=0)
        model = mlp(cd.d, C, (8,), bias=False, seed=C)
        r.append(block_norms(model, "ce", cd.tensors(), "output-rows", exact=True).ratio)
    ax.loglog(Cs, r, "o-", label=f"{K} cluster(s) per class")
ax.set(xlabel="number of classes C", ylabel="off/diag ratio (class blocks)")
ax.legend()

# %% [markdown]
# ## 3. Spectrum of a trained digits MLP
# Top eigenvalues of H and G by Lanczos, SLQ density of H, and the outliers of G.

# %%
full = digits() if not SMALL else digits().subset(300, seed=0)
fd = full.tensors()
net = mlp(full.d, full.n_classes, (8 if SMALL else 32,), seed=1)
train(net, "ce", fd, steps=STEPS, lr=1e-2)
H = curvature_operator(net, "ce", fd, "hessian")
G = curvature_operator(net, "ce", fd, "ggn")
topH = top_eigenvalues(H, 20)
topG = top_eigenvalues(G, 20)
print("top eigenvalues of H:", np.round(topH.eigenvalues[:12], 4))
print("top eigenvalues of G:", np.round(topG.eigenvalues[:12], 4))
out = outliers(G, k=30)
print(f"outliers of G: {out.n_outliers} (classes: {full.n_classes})")
sd = spectral_density(H, probes=4 if SMALL else 8, steps=40 if SMALL else 80)
plot_density(sd, eigenvalues=topH.eigenvalues)
