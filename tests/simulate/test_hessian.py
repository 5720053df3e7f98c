"""Closed-form Hessians (rmthess.simulate.hessian) vs torch.func.hessian of the real model.

Reference route: torch.func.hessian of rmthess.simulate.models.loss (float64), a direct
second derivative of the model + loss with no shared formula. Agreement is to round-off:
entries are O(1) and sums of N = 9..13 terms, so |difference| <= 1e-13 is ~500 ulp slack.
"""

import itertools

import numpy as np
import pytest
import torch

from rmthess.simulate import models
from rmthess.simulate.hessian import (
    autograd_hessian,
    full_hessian,
    hessian_blocks,
    hessian_parts,
    random_labels,
)
from rmthess.simulate.sampling import sample_instance

SIZES = [  # (C, d, N, m)
    (3, 5, 9, 3),
    (4, 7, 13, 4),
    (4, 6, 10, 3),
]
ATOL = 1e-13


def _close(a, b, atol=ATOL):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=atol)


def _layer_matrix(Hb):
    K, _, p, _ = Hb.shape
    return Hb.permute(0, 2, 1, 3).reshape(K * p, K * p)


@pytest.mark.parametrize(("size", "loss"), list(itertools.product(SIZES, ["mse", "ce"])))
def test_linear_full_hessian_matches_autograd(size, loss):
    C, d, N, _ = size
    inst = sample_instance("linear", C, d, N, trials=2, seed=11, device="cpu")
    for t in range(2):
        Ha = autograd_hessian("linear", loss, inst, trial=t)
        Hc = full_hessian("linear", loss, inst, trial=t)
        assert Hc.shape == (C * d, C * d)
        _close(Hc, Ha)
        # the linear-* layer blocks are the whole Hessian
        _close(_layer_matrix(hessian_blocks(f"linear-{loss}", inst, t)), Ha)


@pytest.mark.parametrize(("size", "loss"), list(itertools.product(SIZES, ["mse", "ce"])))
def test_hidden_full_hessian_and_every_part_match_autograd(size, loss):
    C, d, N, m = size
    inst = sample_instance("hidden", C, d, N, m=m, trials=2, seed=5, device="cpu")
    Y = random_labels(C, N, seed=9)
    for t in range(2):
        Ha = autograd_hessian("hidden", loss, inst, Y, trial=t)
        parts = hessian_parts(loss, inst, Y, trial=t)
        md = m * d
        assert Ha.shape == (md + C * m, md + C * m)
        _close(full_hessian("hidden", loss, inst, Y, trial=t), Ha)
        _close(parts.ww, Ha[:md, :md])
        _close(parts.vv, Ha[md:, md:])
        _close(parts.wv, Ha[:md, md:])  # cross-layer block, residual term included
        # the six-case layer blocks
        _close(_layer_matrix(hessian_blocks(f"hidden-{loss}", inst, t)), Ha[:md, :md])
        _close(_layer_matrix(hessian_blocks(f"output-{loss}", inst, t)), Ha[md:, md:])


def test_mse_float_targets():
    C, d, N, m = 3, 5, 9, 3
    inst = sample_instance("hidden", C, d, N, m=m, seed=2, device="cpu")
    Yf = torch.randn(C, N, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _close(full_hessian("hidden", "mse", inst, Yf), autograd_hessian("hidden", "mse", inst, Yf))


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_cross_gauss_newton_part_is_JtAJ(loss):
    """Independent route for the split of H_wv: GN part = J^T A J (J = d logits/d theta)."""
    C, d, N, m = 4, 6, 10, 3
    inst = sample_instance("hidden", C, d, N, m=m, seed=4, device="cpu")
    Y = random_labels(C, N, seed=1)
    X, W, V = inst.X[0], inst.W[0], inst.V[0]
    theta = torch.cat([W.reshape(-1), V.reshape(-1)])

    def logits(th):
        return models.forward("hidden", (th[: m * d].view(m, d), th[m * d :].view(C, m)), X)

    J = torch.func.jacrev(logits)(theta)  # (C, N, n_params)
    Z = logits(theta)
    GN = torch.zeros(theta.numel(), theta.numel(), dtype=torch.float64)
    for i in range(N):
        p = torch.softmax(Z[:, i], 0)
        A = torch.diag(p) - torch.outer(p, p) if loss == "ce" else torch.eye(C).double()
        GN += J[:, i].T @ A @ J[:, i] / N
    parts = hessian_parts(loss, inst, Y)
    md = m * d
    _close(parts.wv - parts.wv_residual, GN[:md, md:])
    # residual (block-circulant) part lives only in column b = j of block (j, k)
    res = parts.wv_residual.view(m, d, C, m)
    for j, b in itertools.product(range(m), range(m)):
        if j != b:
            assert res[j, :, :, b].abs().max() == 0
    assert res.abs().max() > 1e-3


def test_within_layer_blocks_do_not_depend_on_labels_cross_does():
    C, d, N, m = 4, 6, 10, 3
    inst = sample_instance("hidden", C, d, N, m=m, seed=4, device="cpu")
    p1 = hessian_parts("ce", inst, random_labels(C, N, seed=1))
    p2 = hessian_parts("ce", inst, random_labels(C, N, seed=2))
    assert torch.equal(p1.ww, p2.ww) and torch.equal(p1.vv, p2.vv)
    assert (p1.wv - p2.wv).abs().max() > 1e-3


def test_default_labels_reproducible():
    C, d, N, m = 4, 6, 10, 3
    inst = sample_instance("hidden", C, d, N, m=m, seed=4, device="cpu")
    a = full_hessian("hidden", "ce", inst)
    b = full_hessian("hidden", "ce", inst)
    assert torch.equal(a, b)
    assert torch.equal(a, full_hessian("hidden", "ce", inst, random_labels(C, N, 0)))
    assert not torch.equal(a, full_hessian("hidden", "ce", inst, seed=1))


def test_hessian_is_symmetric():
    inst = sample_instance("hidden", 4, 6, 10, m=3, seed=8, device="cpu")
    H = full_hessian("hidden", "ce", inst)
    assert (H - H.T).abs().max() < 1e-15


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cpu = sample_instance("hidden", 4, 6, 10, m=3, seed=8, device="cpu")
    gpu = sample_instance("hidden", 4, 6, 10, m=3, seed=8, device="cuda")
    # different generators on different devices: compare on the same numbers instead
    gpu.X, gpu.W, gpu.V = cpu.X.cuda(), cpu.W.cuda(), cpu.V.cuda()
    Y = random_labels(4, 10, 0)
    _close(full_hessian("hidden", "ce", gpu, Y.cuda()).cpu(), full_hessian("hidden", "ce", cpu, Y))


def test_bad_inputs():
    inst = sample_instance("hidden", 4, 6, 10, m=3, trials=2, seed=8, device="cpu")
    lin = sample_instance("linear", 4, 6, 10, seed=8, device="cpu")
    with pytest.raises(ValueError, match="trial"):
        full_hessian("hidden", "ce", inst, trial=2)
    with pytest.raises(ValueError, match="model"):
        full_hessian("deep", "ce", inst)
    with pytest.raises(ValueError, match="loss"):
        full_hessian("hidden", "hinge", inst)
    with pytest.raises(ValueError, match="labels"):
        full_hessian("hidden", "ce", inst, torch.tensor([0] * 9 + [4]))
    with pytest.raises(ValueError, match="shape"):
        full_hessian("hidden", "mse", inst, torch.zeros(3, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="linear"):
        full_hessian("linear", "ce", inst)
    with pytest.raises(ValueError, match="hidden"):
        autograd_hessian("hidden", "ce", lin)
    with pytest.raises(ValueError, match="case"):
        hessian_blocks("hidden-hinge", inst)
    with pytest.raises(TypeError, match="Y"):
        full_hessian("hidden", "ce", inst, [0] * 10)
    with pytest.raises(ValueError, match="N"):
        random_labels(3, 0)
