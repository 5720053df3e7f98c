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
# # Block spectra: limiting density vs sampled eigenvalues
#
# A block ``H = (1/N) sum_i a_i x_i x_i^T`` has a limiting eigenvalue law given by the
# generalized Marchenko-Pastur equation ``s = 1/(-z + E[tau/(1 + gamma tau s)])``, with
# ``tau`` distributed as the block's weight ``a``. Here: a diagonal and an off-diagonal
# block of a linear model with cross-entropy loss.
# Set ``RMTHESS_NOTEBOOK_SMALL=1`` for the tiny sizes the test suite uses.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from rmthess.simulate.spectra import block_eigenvalues
from rmthess.theory import GMPLaw, block_weight_law

SMALL = os.environ.get("RMTHESS_NOTEBOOK_SMALL") == "1"
C = 5
d, N = (100, 200) if SMALL else (1000, 2000)
gamma = d / N

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for ax, block in zip(axes, ("diag", "off"), strict=True):
    ev = block_eigenvalues("linear-ce", block, C, d, N, seed=0, device="auto")
    law = GMPLaw(*block_weight_law("linear-ce", block, C, gamma, seed=0), gamma)
    x = np.linspace(ev.min() - 0.1 * np.ptp(ev), ev.max() + 0.1 * np.ptp(ev), 800)
    ax.hist(ev, bins=50, density=True, color="0.8", label=f"eigenvalues, d={d}")
    ax.plot(x, law.pdf(x), "r-", label="limiting density")
    ax.set_title(f"linear-ce {block} block, C={C}, gamma={gamma:g}")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    print(
        f"{block}: mean eigenvalue {ev.mean():.4g} vs law {law.moment(1):.4g}; "
        f"second moment {np.mean(ev**2):.4g} vs {law.moment(2):.4g}"
    )
plt.tight_layout()
plt.show()
