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
# # Whole-layer Hessian spectra vs their block-diagonal part
#
# The first-layer Hessian of a linear model with cross-entropy loss is the ``C d x C d``
# matrix ``H = (1/N) sum_i A_i (x) x_i x_i^T`` with ``A_i = diag p_i - p_i p_i^T``
# (``p_i`` the softmax of the logits). Its limiting eigenvalue law solves a matrix-valued
# generalized Marchenko-Pastur equation, which for this exchangeable case reduces exactly to
# ``delta_0 / C + (1 - 1/C) GMP(nu')``, with ``nu'`` the law of a nonzero eigenvalue of
# ``A`` (`rmthess.theory.layer_law`; docs/theory.md 9.1). The atom ``1/C`` at 0 comes from
# the all-ones direction in class space, which every ``A_i`` annihilates.
#
# How much does the block-diagonal approximation (only the ``C`` diagonal ``d x d`` blocks)
# miss? Here: the two laws against the real simulated eigenvalues, their distance against
# C, and the effect of the initialisation.
# Set ``RMTHESS_NOTEBOOK_SMALL=1`` for the tiny sizes the test suite uses.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from rmthess.simulate.layer import layer_eigenvalues
from rmthess.theory import block_diagonal_law, frobenius_limits, gap_vs_C, layer_law

SMALL = os.environ.get("RMTHESS_NOTEBOOK_SMALL") == "1"
gamma = 0.5
Cs = (2, 5, 20)
ds = (60, 60, 30) if SMALL else (300, 300, 150)  # C d x C d dense eigensolver: O((C d)^3)
n_atoms = 256 if SMALL else 4096

# %% [markdown]
# ## The whole-layer law, its block-diagonal part and simulation
#
# The histogram shows the nonzero eigenvalues, normalised by all of them, so that its area
# is the nonzero fraction, as for the continuous part of the law. Exact zeros are counted
# apart: there are exactly ``d`` of them (the kernel ``1 (x) R^d``).

# %%
fig, axes = plt.subplots(1, len(Cs), figsize=(5 * len(Cs), 3.8))
for ax, C, d in zip(axes, Cs, ds, strict=True):
    N = int(d / gamma)
    ev = layer_eigenvalues("linear-ce", C, d, N, seed=0, device="cpu").eigenvalues[0]
    zero = np.abs(ev) <= 1e-9 * np.abs(ev).max()
    law = layer_law("linear-ce", C, gamma, n_atoms=n_atoms)
    bd = block_diagonal_law("linear-ce", C, gamma, n_atoms=n_atoms)
    x = np.linspace(0, 1.05 * max(law.edges()[1], ev.max()), 800)[1:]
    bins = np.linspace(0, x.max(), 60)
    w = np.full((~zero).sum(), 1.0 / (ev.size * (bins[1] - bins[0])))
    ax.hist(ev[~zero], bins=bins, weights=w, color="0.8", label=f"simulated, d={d}")
    ax.plot(x, law.pdf(x), "-", label="whole-layer law")
    ax.plot(x, bd.pdf(x), "--", label="block-diagonal law")
    ax.set_title(f"C={C}: atom {law.zero_mass:.3g} at 0, zeros {zero.mean():.3g}")
    ax.set_xlabel("eigenvalue")
    ax.legend(fontsize=8)
    print(
        f"C={C}: zero fraction {zero.mean():.4f} (law {law.zero_mass:.4f}); top eigenvalue "
        f"{ev.max():.4f}, law's top edge {law.edges()[1]:.4f}, block-diagonal edge "
        f"{bd.edges()[1]:.4f}"
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# The second moment of the layer law is ``F_diag + (C - 1) F_off``, the exact Frobenius
# limits of the blocks (a check of the law against an independent computation):

# %%
for C in Cs:
    fro = frobenius_limits("linear-ce", C, gamma)
    M2 = layer_law("linear-ce", C, gamma, n_atoms=n_atoms).moment(2)
    ref = fro.F_diag + (C - 1) * fro.F_off
    print(f"C={C}: M2 = {M2:.6g}, F_diag + (C-1) F_off = {ref:.6g} (rel diff {M2 / ref - 1:+.1e})")

# %% [markdown]
# ## The gap to the block-diagonal part against C
#
# Wasserstein-1 distance relative to the mean (``W1_rel``), Kolmogorov-Smirnov distance
# (exactly the atom ``1/C``, which the blocks do not have) and the relative gap between the
# top edges, with least-squares slopes in log-log. Both distances fall like ``1/C``.

# %%
gap_Cs = (2, 4, 8) if SMALL else (2, 3, 5, 8, 12, 20, 35, 50)
curve = gap_vs_C("linear-ce", gap_Cs, gamma, n_atoms=256 if SMALL else 1024)
df = curve.to_frame()
fig, ax = plt.subplots(figsize=(5.5, 4))
for key in ("W1_rel", "KS", "edge_gap_rel"):
    label = f"{key} (slope {curve.slope[key]:.3f} +- {curve.slope_se[key]:.2g})"
    ax.loglog(df["C"], df[key].abs(), "o-", label=label)
ax.loglog(df["C"], df["W1_rel"].iloc[0] * df["C"].iloc[0] / df["C"], ":", c="0.4", label="1/C")
ax.set_xlabel("C")
ax.legend(fontsize=8)
plt.show()
df[["C", "W1", "W1_rel", "KS", "top_edge", "top_edge_bd", "edge_gap_rel"]]

# %% [markdown]
# ## Initialisation: LeCun normal vs PyTorch's default
#
# ``nn.Linear``'s default draws weights from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``:
# variance ``1/(3 fan_in)``, so the logits have variance ``1/3`` instead of 1. Less spread
# logits make the softmax flatter: ``A = diag p - p p^T`` is closer to ``(I - 11^T/C)/C``,
# whose nonzero eigenvalues are all ``1/C``. The layer law moves up (larger mean ``M1``) and
# its relative spread ``var / M1^2`` shrinks towards that of a scaled Marchenko-Pastur law.

# %%
C = 5
fig, ax = plt.subplots(figsize=(5.5, 4))
for init in ("lecun", "torch-default"):
    law = layer_law("linear-ce", C, gamma, init=init, n_atoms=n_atoms)
    x = np.linspace(0, 1.05 * law.edges()[1], 800)[1:]
    ax.plot(x, law.pdf(x), label=f"{init}: top edge {law.edges()[1]:.3f}")
    fro = frobenius_limits("linear-ce", C, gamma, init=init)
    M1, M2 = law.moment(1), law.moment(2)
    print(
        f"{init}: M1 = {M1:.5g}, var/M1^2 = {(M2 - M1**2) / M1**2:.4f}, M2 = {M2:.5g} "
        f"(F_diag + (C-1) F_off = {fro.F_diag + (C - 1) * fro.F_off:.5g}), "
        f"support {[tuple(round(v, 4) for v in iv) for iv in law.support()]}"
    )
ax.set_title(f"linear-ce whole layer, C={C}, gamma={gamma:g}")
ax.set_xlabel("eigenvalue")
ax.legend(fontsize=8)
plt.show()
