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
# # rmthess quickstart: one theory curve
#
# The structure measure ``r(C) = ||H_off||_F / ||H_diag||_F`` of a linear model with
# cross-entropy loss (Theorem 1), exact at every C, decays like ``1/C``.
# Open as a notebook with ``jupytext --to ipynb notebooks/quickstart.py``; run as a script
# (``python notebooks/quickstart.py``) it prints the table (the figure needs the notebook).

# %%
import matplotlib.pyplot as plt

from rmthess.theory import frobenius_limits

r = {C: frobenius_limits("linear-ce", C, gamma=0.5).ratio for C in [2, 8, 32, 128, 1024, 10_000]}
print(*(f"C = {C:>5}: r(C) = {x:.5f}, C r(C) = {C * x:.4f}" for C, x in r.items()), sep="\n")
plt.loglog([*r], [*r.values()], "o-")[0].axes.set(xlabel="number of classes C", ylabel="r(C)")
