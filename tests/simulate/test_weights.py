"""Block weights a_i^{kl} and vectors u_i of docs/theory.md form (*) (rmthess.simulate.weights).

The independent route is a naive per-sample numpy computation that forms the output
Hessian A_i = diag p_i - p_i p_i^T (or I) explicitly, straight from the model definition.
"""

import numpy as np
import pytest
import torch

from rmthess import CASES
from rmthess.cases import get_case
from rmthess.simulate.sampling import sample_instance
from rmthess.simulate.weights import all_pairs, block_vectors, block_weights, n_blocks


def _inst(case, C=4, d=6, N=11, m=3, trials=2, seed=3, dtype="float64"):
    return sample_instance(
        get_case(case).model, C, d, N, m=m, trials=trials, seed=seed, device="cpu", dtype=dtype
    )


def _naive_weights(case, inst, t):
    """a_i^{kl} for all k, l of trial t, by explicit per-sample loops (numpy)."""
    X = inst.X[t].numpy()
    W = inst.W[t].numpy()
    c = get_case(case)
    loss = c.loss
    if c.model == "linear":
        Z = W @ X
        C = W.shape[0]
        K = C
    else:
        V = inst.V[t].numpy()
        G = W @ X
        Z = V @ np.maximum(G, 0)
        C, m = V.shape
        K = C if c.layer == "output" else m
    N = X.shape[1]
    out = np.zeros((N, K, K))
    for i in range(N):
        if loss == "ce":
            z = Z[:, i] - Z[:, i].max()
            p = np.exp(z) / np.exp(z).sum()
            A = np.diag(p) - np.outer(p, p)
        else:
            A = np.eye(C)
        if c.layer == "hidden":
            mask = (G[:, i] > 0).astype(float)
            out[i] = (V.T @ A @ V) * np.outer(mask, mask)
        else:
            out[i] = A
    return out


@pytest.mark.parametrize("case", CASES)
def test_weights_match_naive_per_sample_formula(case):
    inst = _inst(case)
    K = n_blocks(case, 4, 3)
    r, c = all_pairs(K)
    A = block_weights(case, inst, r, c)
    assert A.shape == (2, 11, K * K)
    for t in range(2):
        ref = _naive_weights(case, inst, t).reshape(11, K * K)
        np.testing.assert_allclose(A[t].numpy(), ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", ["linear-ce", "hidden-ce", "output-ce", "hidden-mse"])
def test_weights_arbitrary_pairs_and_symmetry(case):
    inst = _inst(case)
    K = n_blocks(case, 4, 3)
    rows = [2, 0, 1, K - 1]
    cols = [0, 2, 1, 0]
    A = block_weights(case, inst, rows, cols)
    full = _naive_weights(case, inst, 1)
    for q, (k, l) in enumerate(zip(rows, cols, strict=True)):
        np.testing.assert_allclose(A[1, :, q].numpy(), full[:, k, l], rtol=1e-12, atol=1e-15)
    # a^{kl} = a^{lk}
    np.testing.assert_allclose(A[..., 0].numpy(), A[..., 1].numpy(), rtol=0, atol=1e-15)
    # tensors and ints give the same answer
    A2 = block_weights(case, inst, torch.tensor(rows), torch.tensor(cols))
    assert torch.equal(A, A2)


@pytest.mark.parametrize("case", CASES)
def test_vectors(case):
    inst = _inst(case)
    U = block_vectors(case, inst)
    if get_case(case).layer == "output":
        assert torch.equal(U, torch.relu(inst.W @ inst.X))
        assert U.shape == (2, 3, 11)
    else:
        assert U is inst.X


def test_ce_weights_row_sums_vanish():
    # sum_l (delta_kl p_k - p_k p_l) = 0 exactly (softmax Hessian has the all-ones null vector)
    inst = _inst("linear-ce", C=5)
    r, c = all_pairs(5)
    A = block_weights("linear-ce", inst, r, c).reshape(2, 11, 5, 5)
    assert A.sum(-1).abs().max() < 1e-15


def test_reproducible_same_seed_same_numbers():
    a = block_weights("hidden-ce", _inst("hidden-ce", seed=7), [0, 1], [1, 2])
    b = block_weights("hidden-ce", _inst("hidden-ce", seed=7), [0, 1], [1, 2])
    c = block_weights("hidden-ce", _inst("hidden-ce", seed=8), [0, 1], [1, 2])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_float32_close_to_float64():
    from rmthess.simulate.sampling import Instance

    i64 = _inst("hidden-ce")
    i32 = Instance(X=i64.X.float(), W=i64.W.float(), V=i64.V.float())
    a64 = block_weights("hidden-ce", i64, [0, 1], [1, 1])
    a32 = block_weights("hidden-ce", i32, [0, 1], [1, 1])
    assert a32.dtype == torch.float32
    # float32 round-off on O(1) logits: ~1e-7 relative; the ReLU masks agree here since
    # no pre-activation of this instance lies within float32 round-off of 0.
    np.testing.assert_allclose(a32.double().numpy(), a64.numpy(), rtol=1e-5, atol=1e-6)


def test_large_C_no_quadratic_memory():
    # C = 3000 would need a 3000^2 * N tensor if (T, N, C, C) were formed; here it is cheap.
    inst = sample_instance("hidden", 3000, 5, 7, m=3, seed=0, device="cpu")
    A = block_weights("hidden-ce", inst, [0, 1], [0, 2])
    assert A.shape == (1, 7, 2)
    assert torch.isfinite(A).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    inst = _inst("hidden-ce")
    cpu = block_weights("hidden-ce", inst, [0, 1, 2], [0, 1, 0])
    from rmthess.simulate.sampling import Instance

    g = Instance(X=inst.X.cuda(), W=inst.W.cuda(), V=inst.V.cuda())
    gpu = block_weights("hidden-ce", g, [0, 1, 2], [0, 1, 0]).cpu()
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=1e-12, atol=1e-14)


def test_n_blocks():
    assert n_blocks("linear-ce", 7) == 7
    assert n_blocks("output-mse", 7, 3) == 7
    assert n_blocks("hidden-ce", 7, 3) == 3
    with pytest.raises(ValueError, match="m"):
        n_blocks("hidden-mse", 7)
    with pytest.raises(ValueError, match="C"):
        n_blocks("linear-ce", 0)
    with pytest.raises(TypeError, match="C"):
        n_blocks("linear-ce", 2.5 + 0j)


def test_bad_inputs():
    inst = _inst("hidden-ce")
    lin = _inst("linear-ce")
    with pytest.raises(ValueError, match="case"):
        block_weights("hidden-xx", inst, [0], [0])
    with pytest.raises(ValueError, match="rows"):
        block_weights("hidden-ce", inst, [3], [0])  # m = 3 -> indices 0..2
    with pytest.raises(ValueError, match="cols"):
        block_weights("output-ce", inst, [0], [-1])
    with pytest.raises(ValueError, match="same length"):
        block_weights("output-ce", inst, [0, 1], [0])
    with pytest.raises(TypeError, match="integer"):
        block_weights("output-ce", inst, torch.tensor([0.0]), [0])
    with pytest.raises(ValueError, match="linear"):
        block_weights("linear-ce", inst, [0], [0])
    with pytest.raises(ValueError, match="hidden"):
        block_weights("hidden-ce", lin, [0], [0])
    with pytest.raises(TypeError, match="Instance"):
        block_vectors("linear-ce", (lin.X, lin.W))
