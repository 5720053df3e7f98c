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
# Open as a notebook with ``jupytext --to ipynb notebooks/quickstart.py``.

# %%
import matplotlib.pyplot as plt

from rmthess.theory import frobenius_limits

Cs = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 10_000]
plt.loglog(Cs, [frobenius_limits("linear-ce", C, gamma=0.5).ratio for C in Cs], "o-")
plt.gca().set(xlabel="number of classes C", ylabel="r(C) = ||H_off||_F / ||H_diag||_F")
