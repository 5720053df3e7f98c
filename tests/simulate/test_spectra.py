"""Empirical block spectra (rmthess.simulate.spectra)."""

import numpy as np
import pytest

from rmthess.cases import get_case
from rmthess.simulate.gram import instance_sq_norms
from rmthess.simulate.sampling import sample_instance
from rmthess.simulate.spectra import block_eigenvalues, block_matrix


@pytest.mark.parametrize("case", ["linear-ce", "hidden-ce", "output-ce", "hidden-mse"])
@pytest.mark.parametrize("block", ["diag", "off"])
def test_eigenvalue_moments_match_gram_route_and_trace(case, block):
    # sum(ev^2) = ||H||_F^2 (eigvalsh vs the Gram route); sum(ev) = tr H = (1/N) sum a_i |u_i|^2
    C, d, N, seed = 5, 30, 50, 3
    c = get_case(case)
    m = 4 if c.needs_m else None
    ev = block_eigenvalues(case, block, C, d, N, m, seed=seed, device="cpu")
    p = c.block_size(d, m)
    assert ev.shape == (p,)
    inst = sample_instance(c.model, C, d, N, m, trials=1, seed=seed, device="cpu")
    k, l_ = (0, 0) if block == "diag" else (0, 1)
    sq, _ = instance_sq_norms(case, inst, [k], [l_])
    norm = d if c.normalization == "1/d" else 1.0
    np.testing.assert_allclose(np.sum(ev**2) / norm, sq[0, 0].item(), rtol=1e-10)
    H = block_matrix(case, inst, k, l_)
    np.testing.assert_allclose(np.sum(ev), H.trace().item(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(H, H.T, atol=1e-15)


def test_linear_mse_is_marchenko_pastur():
    # a_i = 1: H = X X^T / N, MP law with ratio gamma = d/N: mean 1, support
    # [(1-sqrt g)^2, (1+sqrt g)^2]; edges fluctuate by O(N^{-2/3}) ~ 0.02 here.
    d, N = 300, 1200
    ev = block_eigenvalues("linear-mse", "diag", 3, d, N, seed=1, device="cpu")
    g = d / N
    assert abs(ev.mean() - 1) < 0.02
    assert ev.min() > (1 - g**0.5) ** 2 - 0.05 and ev.max() < (1 + g**0.5) ** 2 + 0.05
    assert np.all(block_eigenvalues("linear-mse", "off", 3, 20, 40, seed=1, device="cpu") == 0)


def test_trials_are_pooled():
    ev = block_eigenvalues("linear-ce", "diag", 4, 10, 20, trials=3, seed=0, device="cpu")
    assert ev.shape == (30,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(case="linear-ce", block="middle"), "block"),
        (dict(case="hidden-ce", block="diag"), "m "),
        (dict(case="linear-ce", block="diag", C=1), "C must be"),
        (dict(case="linear-ce", block="diag", d=0), "d must be"),
        (dict(case="nope", block="diag"), "case"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        block_eigenvalues(**{"d": 8, "N": 8, **kwargs})
