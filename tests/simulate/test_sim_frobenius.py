"""Gram-route block Frobenius norms (rmthess.simulate.frobenius).

Independent routes: torch.func.hessian of the real model + loss (full Hessian, sliced),
direct materialization of each block, and the exact finite-N expectation for linear-mse.
"""

import json
import math

import numpy as np
import pytest
import torch

from rmthess.cases import get_case
from rmthess.simulate.frobenius import BlockFrobenius, block_frobenius, select_blocks
from rmthess.simulate.gram import direct_sq_norms, gram_flops, gram_sq_norms, instance_sq_norms
from rmthess.simulate.hessian import autograd_hessian
from rmthess.simulate.sampling import sample_instance

CASES = ["linear-mse", "linear-ce", "hidden-mse", "hidden-ce", "output-mse", "output-ce"]


def _autograd_block_sq(case, inst, C, d, m):
    """All K x K block squared norms from the autograd Hessian (normalized like F)."""
    c = get_case(case)
    H = autograd_hessian(c.model, c.loss, inst, trial=0)
    if c.layer == "linear":
        B = H.reshape(C, d, C, d)
        return B.square().sum(dim=(1, 3)) / d
    if c.layer == "hidden":
        B = H[: m * d, : m * d].reshape(m, d, m, d)
        return B.square().sum(dim=(1, 3)) / d
    B = H[m * d :, m * d :].reshape(C, m, C, m)
    return B.square().sum(dim=(1, 3))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["gram", "direct"])
def test_block_norms_match_autograd(case, method):
    C, d, N, m = 4, 6, 9, 3
    c = get_case(case)
    inst = sample_instance(c.model, C, d, N, m, trials=1, seed=3, device="cpu")
    K = c.n_blocks(C, m)
    rows, cols = np.divmod(np.arange(K * K), K)
    sq, used = instance_sq_norms(case, inst, rows, cols, method=method)
    assert used == method
    ref = _autograd_block_sq(case, inst, C, d, m).reshape(-1)
    torch.testing.assert_close(sq[0], ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("max_bytes", [None, 8 * 7, 8 * 23 * 2, 8 * 23 * 23 * 2])
def test_gram_equals_direct_with_chunking(max_bytes):
    gen = torch.Generator().manual_seed(0)
    T, p, N, P = 3, 5, 23, 7
    U = torch.randn(T, p, N, generator=gen, dtype=torch.float64)
    A = torch.randn(T, N, P, generator=gen, dtype=torch.float64)
    g = gram_sq_norms(U, A, max_bytes=max_bytes)
    ref = torch.stack(
        [
            torch.stack([((U[t] * A[t, :, q]) @ U[t].T / N).square().sum() for q in range(P)])
            for t in range(T)
        ]
    )
    torch.testing.assert_close(g, ref, rtol=1e-11, atol=0)
    torch.testing.assert_close(direct_sq_norms(U, A, max_bytes=max_bytes), ref, rtol=1e-11, atol=0)


def test_gram_float32_accuracy():
    gen = torch.Generator().manual_seed(1)
    U = torch.randn(2, 64, 256, generator=gen, dtype=torch.float64)
    A = torch.rand(2, 256, 5, generator=gen, dtype=torch.float64) - 0.3
    ref = gram_sq_norms(U, A)
    got = gram_sq_norms(U.float(), A.float()).double()
    # float32 sums of N^2 = 65536 positive-ish terms: relative error ~ 1e-7 sqrt(N^2) << 1e-4
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=0)


def test_select_blocks_all_and_sampled():
    rows, cols, nd = select_blocks(5)
    assert nd == 5
    assert np.array_equal(rows[:5], cols[:5])
    pairs = set(zip(rows[5:].tolist(), cols[5:].tolist(), strict=True))
    assert pairs == {(k, l) for k in range(5) for l in range(5) if k < l}
    rows, cols, nd = select_blocks(1000, max_diag=50, max_pairs=100, seed=1)
    assert nd == 50 and len(rows) == 150
    assert len(set(rows[:50].tolist())) == 50
    assert np.all(rows[50:] < cols[50:]) and cols.max() < 1000
    # uniform: the mean of the sampled smaller index is near its population mean (K-2)/3
    r, c, _ = select_blocks(300, max_pairs=20000, seed=2)
    assert abs(r[300:].mean() - (300 - 2) / 3) < 3.0


def test_linear_mse_exact_finite_size_expectation():
    # a_i = 1: E (1/d)||X X^T / N||_F^2 = (1/(d N^2)) [N (d^2 + 2d) + N (N-1) d]
    #         = 1 + (d + 1) / N  exactly (Gaussian fourth moments). F_off = 0 exactly.
    d, N, T = 20, 30, 200
    res = block_frobenius("linear-mse", 3, d, N, trials=T, seed=5, device="cpu")
    exact = 1 + (d + 1) / N
    assert abs(res.F_diag - exact) < 4 * res.F_diag_se
    assert np.all(res.F_off_trials == 0) and res.F_off == 0 and res.ratio == 0


def test_output_mse_exact_finite_size_expectation():
    # a_i = 1, u = h = relu(g), g ~ N(0, W W^T) given W. Averaged over W and X this is
    # not closed-form at finite d; at d = 2000 the rows of W are orthonormal to O(d^-1/2)
    # and ||E h h^T||^2 + (1/N) (E|h|^4 - ||E hh^T||^2) is the finite-N expectation with
    # E|h|^4 = m(m-1)/4 + 3m/2 (g ~ N(0, I_m)).
    m, d, N, T = 3, 2000, 50, 400
    res = block_frobenius("output-mse", 2, d, N, m, trials=T, seed=6, device="cpu")
    lim = m / 4 + m * (m - 1) / (4 * math.pi**2)
    e4 = m * (m - 1) / 4 + 1.5 * m
    exact = lim + (e4 - lim) / N
    # Allowance for the O(1/d) bias from W W^T != I: with Sigma = W W^T, E_W (Sigma_jj/2)^2
    # = (1 + 2/d)/4 and E_W (E[h_j h_l | W])^2 = 1/(4 pi^2) + (1/16 + 1/(4 pi^2))/d + O(d^-2)
    # (expand the arc-cosine kernel in rho = Sigma_jl ~ N(0, 1/d)), i.e.
    # (m/2 + m(m-1)(1/16 + 1/(4 pi^2))) / d = 1.0e-3 here (0.11%); 0.5% leaves 4x room.
    # The power of the test is set by the trial-to-trial spread (4 se ~ 8% here).
    assert abs(res.F_diag - exact) < 4 * res.F_diag_se + 0.005 * exact
    assert np.all(res.F_off_trials == 0)


def test_result_object_and_reproducibility():
    kw = dict(C=5, d=16, N=24, m=4, trials=3, seed=11, device="cpu")
    a = block_frobenius("hidden-ce", **kw)
    b = block_frobenius("hidden-ce", **kw)
    assert isinstance(a, BlockFrobenius)
    np.testing.assert_array_equal(a.F_diag_trials, b.F_diag_trials)
    np.testing.assert_array_equal(a.F_off_trials, b.F_off_trials)
    assert a.F_diag_trials.shape == (3,) and a.F_off_trials.shape == (3,)
    assert a.n_diag == 4 and a.n_off == 6
    assert isinstance(a.F_diag, float) and a.F_diag == pytest.approx(a.F_diag_trials.mean())
    assert a.F_off == pytest.approx(a.F_off_trials.mean())
    assert a.F_diag_se == pytest.approx(np.std(a.F_diag_trials, ddof=1) / math.sqrt(3))
    assert a.F_off_se == pytest.approx(np.std(a.F_off_trials, ddof=1) / math.sqrt(3))
    assert a.ratio == pytest.approx(math.sqrt(a.F_off_trials.mean() / a.F_diag_trials.mean()))
    rec = a.to_dict()
    assert list(rec) == [
        "case", "C", "d", "N", "m", "gamma", "trials", "seed", "F_diag", "F_diag_se", "F_off",
        "F_off_se", "ratio", "ratio_se", "n_diag", "n_off", "method", "unbiased", "init",
        "activation", "device", "dtype", "seconds", "flops",
    ]  # fmt: skip
    assert rec["F_diag"] == a.F_diag and rec["ratio_se"] == a.ratio_se and rec["seed"] == 11
    assert rec["gamma"] == 16 / 24 and rec["method"] == "gram" and rec["unbiased"] is False
    json.dumps(rec)  # JSON-safe
    df = a.to_frame()
    assert len(df) == 3 and {"trial", "F_diag", "F_off", "ratio", "gamma"} <= set(df.columns)
    np.testing.assert_array_equal(df["F_diag"], a.F_diag_trials)
    c = block_frobenius("hidden-ce", **{**kw, "seed": 12})
    assert not np.array_equal(a.F_diag_trials, c.F_diag_trials)


def test_to_dict_non_finite_is_none():
    res = block_frobenius("linear-mse", 3, 8, 12, trials=1, device="cpu")
    rec = res.to_dict()
    # one trial: no standard errors; F_off = 0: ratio 0 but its relative error undefined
    assert rec["F_diag_se"] is None and rec["F_off_se"] is None and rec["ratio_se"] is None
    assert rec["F_off"] == 0.0 and rec["ratio"] == 0.0
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec


def test_trial_batches_are_independent():
    # trial_batch=1 forces one sample_instance call per trial: batches must differ
    res = block_frobenius("linear-ce", 4, 8, 12, trials=4, seed=0, device="cpu", trial_batch=1)
    assert len(np.unique(res.F_diag_trials)) == 4


def test_single_trial_has_nan_se_and_null_json():
    res = block_frobenius("linear-ce", 3, 8, 12, trials=1, device="cpu")
    assert math.isnan(res.F_diag_se)
    assert res.to_dict()["F_diag_se"] is None


def test_sampled_pairs_for_large_C():
    res = block_frobenius("linear-ce", 40, 8, 16, trials=2, device="cpu", max_diag=10, max_pairs=7)
    assert res.n_diag == 10 and res.n_off == 7


def test_flop_count():
    g, tot = gram_flops(N=10, p=3, P=4, trials=2)
    assert g == 2 * 2 * 100 * 3
    assert tot == g + 2 * (100 + 2 * 100 * 4 + 2 * 10 * 4)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(case="nope", C=4, d=4, N=4), ValueError, "case"),
        (dict(case="linear-ce", C=1, d=4, N=4), ValueError, "C must be"),
        (dict(case="linear-ce", C=4, d=0, N=4), ValueError, "d must be"),
        (dict(case="linear-ce", C=4, d=4, N=-1), ValueError, "N must be"),
        (dict(case="linear-ce", C=4, d=4.5, N=4), ValueError, "d must be"),
        (dict(case="linear-ce", C=4, d="4", N=4), TypeError, "d must be"),
        (dict(case="linear-ce", C=4, d=4, N=4, trials=0), ValueError, "trials"),
        (dict(case="hidden-ce", C=4, d=4, N=4), ValueError, "m "),
        (dict(case="hidden-ce", C=4, d=4, N=4, m=1), ValueError, "m must be"),
        (dict(case="linear-ce", C=4, d=4, N=4, device="tpu"), ValueError, "device"),
        (dict(case="linear-ce", C=4, d=4, N=4, dtype="float16"), ValueError, "dtype"),
        (dict(case="linear-ce", C=4, d=4, N=4, method="fast"), ValueError, "method"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        block_frobenius(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_absent_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        block_frobenius("linear-ce", 4, 4, 4, device="cuda")


def test_frobenius_sweep_tidy_frame():
    from rmthess.simulate.frobenius import frobenius_sweep

    df = frobenius_sweep("output-ce", [3, 5], d=8, N=12, m=3, trials=2, seed=4, device="cpu")
    assert list(df["C"]) == [3, 5]
    one = block_frobenius("output-ce", 5, 8, 12, 3, trials=2, seed=4, device="cpu")
    assert list(df.columns) == list(one.to_dict())
    # row C is exactly block_frobenius(C, seed): the stream is derived from (seed, C)
    row = df.iloc[1].to_dict()
    for k in ("F_diag", "F_off", "F_diag_se", "F_off_se", "ratio", "ratio_se"):
        assert row[k] == pytest.approx(getattr(one, k), rel=1e-12)
    assert row["seed"] == 4


@pytest.mark.parametrize("case", ["output-ce", "output-mse"])
@pytest.mark.parametrize("method", ["gram", "direct"])
def test_unbiased_output_blocks_are_the_u_statistic(case, method):
    # Independent route: materialize M_i = a_i h_i h_i^T for every sample and form the
    # U-statistic sum_{i != j} <M_i, M_j> / (N (N-1)) explicitly.
    C, d, N, m = 4, 6, 9, 3
    inst = sample_instance("hidden", C, d, N, m, trials=2, seed=3, device="cpu")
    rows, cols = np.array([0, 1, 0, 2]), np.array([0, 1, 1, 3])
    sq, _ = instance_sq_norms(case, inst, rows, cols, method=method, unbiased=True)
    plain, _ = instance_sq_norms(case, inst, rows, cols, method=method)
    from rmthess.simulate.weights import block_weights

    A = block_weights(case, inst, rows, cols)  # (T, N, P)
    H = torch.relu(inst.W @ inst.X)  # (T, m, N)
    for t in range(2):
        for q in range(len(rows)):
            Mi = A[t, :, q, None, None] * H[t].T[:, :, None] * H[t].T[:, None, :]  # (N, m, m)
            S = Mi.sum(0)
            ref = ((S * S).sum() - (Mi * Mi).sum()) / (N * (N - 1))
            torch.testing.assert_close(sq[t, q], ref, rtol=1e-10, atol=1e-14)
            # and the plain value keeps the i = j terms: (1/N^2) ||sum_i M_i||^2
            torch.testing.assert_close(plain[t, q], (S * S).sum() / N**2, rtol=1e-10, atol=1e-14)
    res = block_frobenius(case, C, d, N, m, trials=2, seed=3, device="cpu", unbiased=True)
    assert res.unbiased and np.all(np.isfinite(res.F_diag_trials))


def test_unbiased_refused_for_d_by_d_blocks_and_single_sample():
    with pytest.raises(ValueError, match="output"):
        block_frobenius("hidden-ce", 4, 6, 9, 3, device="cpu", unbiased=True)
    with pytest.raises(ValueError, match="N >= 2"):
        block_frobenius("output-ce", 4, 6, 1, 3, device="cpu", unbiased=True)
    with pytest.raises(TypeError, match="unbiased"):
        block_frobenius("output-ce", 4, 6, 9, 3, device="cpu", unbiased="yes")
