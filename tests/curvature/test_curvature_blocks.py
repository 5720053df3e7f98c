"""Block maps by masked random probes (rmthess.curvature.blocks / block_specs / plots) and
the block-map benchmark.

References are independent of the code under test: the dense torch.func matrix
(``dense_hessian``), exact enumeration of all sign vectors, the closed-form Gram route of
rmthess.simulate, and parameter positions read back through torch's
``vector_to_parameters``.
"""

import argparse
import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from rmthess.cases import get_case
from rmthess.curvature.block_specs import resolve_blocks
from rmthess.curvature.blocks import BlockMap, _estimate, block_norms, probe_variance
from rmthess.curvature.models import mlp
from rmthess.curvature.operators import curvature_operator, dense_hessian

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def _data(d, C, N, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N, d, generator=gen, dtype=torch.float64), torch.randint(
        0, C, (N,), generator=gen
    )


def _dense_map(H, blocks):
    return np.array([[np.sum(H[np.ix_(a, b)] ** 2) for _, b in blocks] for _, a in blocks])


def _flat_positions(model):
    """Each parameter entry's flat index, read back through torch (independent route)."""
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        nn.utils.vector_to_parameters(torch.arange(n, dtype=torch.float64), params)
        out = {name: p.detach().clone().long().numpy() for name, p in model.named_parameters()}
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return out


# ------------------------------------------------------------------------------ block specs
def _assert_blocks(got, want: dict):
    assert [n for n, _ in got] == list(want)
    for name, idx in got:
        np.testing.assert_array_equal(idx, want[name], err_msg=name)


@pytest.mark.parametrize("bias", [True, False])
def test_resolve_string_specs(bias):
    net = mlp(4, 3, (5,), bias=bias)
    pos = _flat_positions(net)
    W, V = pos["hidden1.weight"], pos["output.weight"]
    bh, bo = (pos["hidden1.bias"], pos["output.bias"]) if bias else (np.zeros((5, 0)),) * 2
    _assert_blocks(resolve_blocks(net, "params"), {n: p.ravel() for n, p in pos.items()})
    hidden1 = np.concatenate([W.ravel(), bh.ravel()])
    _assert_blocks(
        resolve_blocks(net, "layers"),
        {"hidden1": hidden1, "output": np.concatenate([V.ravel(), bo.ravel()])},
    )
    # rows of the last / first Linear (+ bias entry): sizes m (+1) and d (+1)
    want = {f"output[{k}]": np.concatenate([V[k], bo[k : k + 1].ravel()]) for k in range(3)}
    _assert_blocks(resolve_blocks(net, "output-rows"), want)
    want = {f"hidden1[{j}]": np.concatenate([W[j], bh[j : j + 1].ravel()]) for j in range(5)}
    _assert_blocks(resolve_blocks(net, "hidden-rows"), want)
    # the operator and the model give the same blocks, without a product
    op = curvature_operator(net, "ce", _data(4, 3, 10))
    for spec in ("layers", "params", "output-rows", "hidden-rows"):
        _assert_blocks(resolve_blocks(op, spec), dict(resolve_blocks(net, spec)))
    assert op.n_matvecs == 0


def test_resolve_linear_model_rows():
    net = mlp(4, 3, (), bias=False)  # z = W x: the only Linear is "output"
    W = _flat_positions(net)["output.weight"]
    for spec in ("output-rows", "hidden-rows"):
        _assert_blocks(resolve_blocks(net, spec), {f"output[{k}]": W[k] for k in range(3)})


def test_resolve_mapping_specs():
    net = mlp(4, 3, (5,), bias=True)
    pos = _flat_positions(net)
    W, b, V = pos["hidden1.weight"], pos["hidden1.bias"], pos["output.weight"]
    spec = {
        "whole": "output.bias",
        "row": ("hidden1.weight", 1),
        "slice": ("hidden1.weight", slice(2, 4)),
        "column": ("output.weight", (slice(None), 0)),
        "union": [("hidden1.weight", 0), ("hidden1.bias", [0, 1])],
        "flat": np.array(V[:, 1:].ravel()),
        "tensor": torch.as_tensor(b[2:]),
        "ints": [int(W[4, 0]), int(W[4, 1])],
    }
    want = {
        "whole": pos["output.bias"],
        "row": W[1],
        "slice": W[2:4].ravel(),
        "column": V[:, 0],
        "union": np.concatenate([W[0], b[:2]]),
        "flat": V[:, 1:].ravel(),
        "tensor": b[2:],
        "ints": W[4, :2],
    }
    _assert_blocks(resolve_blocks(net, spec), want)


@pytest.mark.parametrize(
    "blocks, match",
    [
        ("rows", "unknown blocks 'rows'; allowed: layers, params, output-rows, hidden-rows"),
        ({"a": "hidden1.weigth"}, "unknown parameter 'hidden1.weigth'; known.*'output.bias'"),
        ({"a": ("nope", 0)}, "unknown parameter 'nope'"),
        ({"a": ("hidden1.weight", slice(0, 0))}, "block 'a' is empty"),
        ({"a": "hidden1.weight", "b": ("hidden1.weight", 2)}, "blocks 'a' and 'b' overlap"),
        ({"a": ("hidden1.weight", 9)}, "index 9 does not fit parameter 'hidden1.weight'"),
        ({"a": np.array([0, 43])}, r"must lie in \[0, 42\]"),
        ({"a": [0, -1]}, r"must lie in \[0, 42\]"),
        ({"a": np.array([0.5])}, "1-D integer array"),
        ({"a": [1, 1]}, "lists flat index 1 more than once"),
        ({"a": ("hidden1.weight", "x")}, "must be \\(parameter_name, index\\)"),
        ({}, "mapping is empty"),
    ],
)
def test_resolve_errors(blocks, match):
    net = mlp(4, 3, (5,), bias=True)  # P = 43
    with pytest.raises(ValueError, match=match):
        resolve_blocks(net, blocks)


def test_resolve_type_errors_and_no_linear():
    net = mlp(4, 3, (5,))
    with pytest.raises(TypeError, match="blocks must be one of"):
        resolve_blocks(net, 3)
    with pytest.raises(TypeError, match="block names must be strings"):
        resolve_blocks(net, {1: "output.bias"})
    with pytest.raises(TypeError, match="a spec must be"):
        resolve_blocks(net, {"a": 1.5})
    with pytest.raises(TypeError, match="op_or_problem"):
        resolve_blocks("model", "layers")
    conv = nn.Sequential(nn.Conv1d(1, 2, 3)).double()
    with pytest.raises(ValueError, match="'output-rows' needs an nn.Linear"):
        resolve_blocks(conv, "output-rows")


# ------------------------------------------------------------------------------ exact mode
@pytest.mark.parametrize("kind", ["hessian", "ggn", "residual"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_exact_equals_dense_blocks(kind, loss):
    net = mlp(4, 3, (5,), activation="tanh", bias=True, seed=3)
    data = _data(4, 3, 30, seed=1)
    H = dense_hessian(net, loss, data, kind)
    for spec in ("params", "output-rows", "hidden-rows"):
        op = curvature_operator(net, loss, data, kind)
        bm = block_norms(op=op, blocks=spec, exact=True)
        D = _dense_map(H, resolve_blocks(op, spec))
        # atol: round-off of a block norm is ~ eps ||H_block|| max|H| <= eps ||H||_F^2 (zero
        # blocks: the residual's output-output blocks, exactly 0 here, ~1e-32 by torch.func)
        np.testing.assert_allclose(bm.sq_norm, D, rtol=1e-10, atol=1e-12 * np.sum(H**2))
        assert (bm.sq_norm_se == 0).all() and bm.exact.all()
        assert bm.n_matvecs == op.n_matvecs == bm.sizes.sum()  # cost = sum of block sizes


def test_auto_exact_and_mixed_cost():
    net = mlp(6, 3, (4,), bias=True)
    data = _data(6, 3, 20)
    op = curvature_operator(net, "ce", data)
    bm = block_norms(op=op, blocks="params", probes=5)  # sizes 24, 4, 12, 3
    np.testing.assert_array_equal(bm.exact, [False, True, False, True])
    assert bm.n_matvecs == op.n_matvecs == 5 + 4 + 5 + 3
    assert np.isnan(bm.sq_norm_trials[:, 1]).all() and np.isfinite(bm.sq_norm_trials[:, 0]).all()
    D = _dense_map(dense_hessian(net, "ce", data), resolve_blocks(op, "params"))
    np.testing.assert_allclose(bm.sq_norm[:, 1], D[:, 1], rtol=1e-10)


# --------------------------------------------------------------------- variance of one probe
def test_probe_variance_by_enumeration():
    """Rademacher: the population variance over ALL 2^n sign vectors equals the formula."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((5, 8))
    V = np.array(list(itertools.product([-1.0, 1.0], repeat=8))).T  # (8, 256)
    vals = np.sum((M @ V) ** 2, axis=0)
    assert np.isclose(vals.mean(), np.sum(M**2), rtol=1e-12)  # unbiased
    assert np.isclose(vals.var(), probe_variance(M), rtol=1e-12)
    # a single row: Gaussian 2|m|^4, Rademacher 2(|m|^4 - sum m_i^4)
    m = M[:1]
    assert np.isclose(probe_variance(m, "normal"), 2 * np.sum(m**2) ** 2, rtol=1e-12)


@pytest.mark.parametrize("distribution", ["rademacher", "normal"])
def test_estimator_variance_matches_formula(distribution):
    """Per-probe values of the estimator on a dense matrix: sample variance against the
    formula within 4 standard errors of a sample variance (from the 4th central moment)."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((30, 30))
    H = torch.as_tensor(A + A.T)
    blocks = [("a", np.arange(0, 10)), ("b", np.arange(10, 22)), ("c", np.arange(22, 30))]
    k = 4000
    kw = dict(exact=False, seed=7, progress=False, device="cpu", dtype=torch.float64)
    bm = _estimate(lambda V: H @ V, 30, blocks, probes=k, distribution=distribution, **kw, kind="")
    Hn = H.numpy()
    for r, (_, a) in enumerate(blocks):
        for c, (_, b) in enumerate(blocks):
            s = bm.sq_norm_trials[r, c]
            want = probe_variance(Hn[np.ix_(a, b)], distribution)
            m4 = np.mean((s - s.mean()) ** 4)
            se_var = np.sqrt((m4 - s.var() ** 2) / k)
            assert abs(s.var(ddof=1) - want) < 4 * se_var, (r, c)
            # and the reported SE is the sample sd over sqrt(k)
            assert np.isclose(bm.sq_norm_se[r, c], s.std(ddof=1) / np.sqrt(k), rtol=1e-12)


# ---------------------------------------------------------------------- honesty over seeds
SPEC4 = {
    "W0": ("hidden1.weight", slice(0, 4)),  # 40 entries
    "W1": ("hidden1.weight", slice(4, 8)),
    "V0": ("output.weight", slice(0, 2)),  # 16 entries
    "V1": ("output.weight", slice(2, 4)),
}


def _boot_se(x: np.ndarray, stat, n_boot: int = 400) -> float:
    """Standard error of ``stat(x)`` by a bootstrap over seeds (rows of ``x``, i.i.d.)."""
    rng, n = np.random.default_rng(0), len(x)
    return float(np.std([stat(x[rng.integers(0, n, n)]) for _ in range(n_boot)]))


@pytest.fixture(scope="module")
def seed_runs():
    net = mlp(10, 4, (8,), activation="tanh", bias=False, seed=1)
    data = _data(10, 4, 40, seed=2)
    op = curvature_operator(net, "ce", data)
    H = dense_hessian(net, "ce", data)
    blocks = resolve_blocks(op, SPEC4)
    k, n_seeds, L = 20, 200, len(blocks)
    runs = []
    for s in range(n_seeds):
        n0 = op.n_matvecs
        bm = block_norms(op=op, blocks=SPEC4, probes=k, seed=s, exact=False)
        assert bm.n_matvecs == op.n_matvecs - n0 == L * k  # exactly L * probes products
        assert not bm.exact.any()
        runs.append(bm)
    return H, blocks, runs, k


def test_block_norm_z_scores(seed_runs):
    H, blocks, runs, k = seed_runs
    D = _dense_map(H, blocks)
    var = np.array([[probe_variance(H[np.ix_(a, b)]) for _, b in blocks] for _, a in blocks])
    est = np.array([bm.sq_norm.ravel() for bm in runs])  # (seeds, L^2)
    se = np.array([bm.sq_norm_se.ravel() for bm in runs])

    # (1) unbiased, with the exact standard deviation sqrt(Var/k): z ~ mean 0, sd 1
    zt = (est - D.ravel()) / np.sqrt(var.ravel() / k)
    assert abs(zt.mean()) < 4 * _boot_se(zt, np.mean)
    assert abs(zt.std() - 1) < 4 * _boot_se(zt, np.std)

    # (2) the reported SE^2 is unbiased for Var/k (sample variance is unbiased)
    q = se**2 / (var.ravel() / k)
    assert abs(q.mean() - 1) < 4 * _boot_se(q, np.mean)

    # (3) z with the reported SE: a studentized mean of k skewed values. To first order in
    # 1/sqrt(k) (Hall 1987, Edgeworth expansion of Student's t) E z = -g/(2 sqrt k) and
    # Var z = 1 + (2 + 7 g^2 / 4)/k for per-probe skewness g; measured g is 0.1..1.4 here.
    z = (est - D.ravel()) / se
    pooled = np.concatenate([bm.sq_norm_trials.reshape(len(blocks) ** 2, -1) for bm in runs], 1)
    c = pooled - pooled.mean(1, keepdims=True)
    g = np.mean(c**3, 1) / np.mean(c**2, 1) ** 1.5
    mean_pred = float(np.mean(-g / (2 * np.sqrt(k))))
    sd_pred = float(np.sqrt(np.mean(1 + (2 + 1.75 * g**2) / k)))
    slack = 2.0 / k**1.5  # next order of the expansion, O(k^-3/2)
    assert abs(z.mean() - mean_pred) < 4 * _boot_se(z, np.mean) + slack
    assert abs(z.std() - sd_pred) < 4 * _boot_se(z, np.std) + slack
    assert abs(z.mean()) < 0.25 and 0.9 < z.std() < 1.25, (z.mean(), z.std())


def test_ratio_z_scores(seed_runs):
    H, blocks, runs, k = seed_runs
    D = _dense_map(H, blocks)
    sizes = np.array([len(b) for _, b in blocks])
    rms2 = D / np.outer(sizes, sizes)
    off = ~np.eye(len(blocks), dtype=bool)
    r_true = np.sqrt(rms2[off].mean() / rms2[~off].mean())
    L = len(blocks)
    # exact delta-method variance of the ratio from the dense matrix: for Rademacher v and
    # symmetric A, B: Cov(v'Av, v'Bv) = 2 sum_{i != j} A_ij B_ij; column blocks independent
    w_d = np.where(~off, 1 / np.outer(sizes, sizes), 0) / L
    w_o = np.where(off, 1 / np.outer(sizes, sizes), 0) / (L * (L - 1))
    vd = vo = cv = 0.0
    for c, (_, b) in enumerate(blocks):
        Bs = [H[np.ix_(a, b)].T @ H[np.ix_(a, b)] for _, a in blocks]
        Ad = sum(w_d[r, c] * Bs[r] for r in range(L))
        Ao = sum(w_o[r, c] * Bs[r] for r in range(L))
        nd = ~np.eye(len(b), dtype=bool)
        vd += 2 * np.sum(Ad[nd] ** 2) / k
        vo += 2 * np.sum(Ao[nd] ** 2) / k
        cv += 2 * np.sum(Ad[nd] * Ao[nd]) / k
    dd, oo = (w_d * D).sum(), (w_o * D).sum()
    var_r = r_true**2 * 0.25 * (vo / oo**2 + vd / dd**2 - 2 * cv / (oo * dd))
    se2 = np.array([bm.ratio_se**2 for bm in runs])
    assert abs(se2.mean() / var_r - 1) < 4 * _boot_se(se2, np.mean) / var_r + 2 / k
    ratios = np.array([bm.ratio for bm in runs])
    assert abs(ratios.var(ddof=1) / var_r - 1) < 4 * _boot_se(ratios, np.var) / var_r + 2 / k

    z = np.array([(bm.ratio - r_true) / bm.ratio_se for bm in runs])
    se_mean, se_sd = _boot_se(z, np.mean), _boot_se(z, np.std)
    assert abs(z.mean()) < 4 * se_mean, z.mean()
    # studentized: sd inflated by O(1/k) (see test_block_norm_z_scores), <= 0.1 at k = 20
    assert 1 - 4 * se_sd < z.std() < 1 + 4 * se_sd + 0.1, z.std()


# ------------------------------------------------------------- the paper's cases (simulate)
@pytest.mark.parametrize(
    "case", ["linear-ce", "linear-mse", "hidden-ce", "hidden-mse", "output-ce", "output-mse"]
)
def test_matches_simulate_gram_route(case):
    from rmthess.simulate.gram import instance_sq_norms
    from rmthess.simulate.hessian import random_labels
    from rmthess.simulate.sampling import sample_instance
    from rmthess.simulate.weights import all_pairs

    c = get_case(case)
    C, d, N, m = 3, 7, 25, 5
    inst = sample_instance(c.model, C, d, N, m if c.needs_m else None, seed=4, device="cpu")
    net = mlp(d, C, (m,) if c.needs_m else (), bias=False)
    with torch.no_grad():
        if c.needs_m:
            net.hidden1.weight.copy_(inst.W[0])
            net.output.weight.copy_(inst.V[0])
        else:
            net.output.weight.copy_(inst.W[0])
    X = inst.X[0].T.contiguous()  # simulate: columns are samples; torch: rows
    y = random_labels(C, N, seed=5)
    if c.loss == "ce":
        loss, scale = nn.CrossEntropyLoss(), 1.0
    else:  # simulate: (1/(2N)) sum ||z - y||^2; torch sum: sum ||z - y||^2 = 2N x that
        loss, scale = nn.MSELoss(reduction="sum"), (2.0 * N) ** 2
    spec = "hidden-rows" if c.layer == "hidden" else "output-rows"
    bm = block_norms(net, loss, (X, y), blocks=spec, exact=True)
    K = c.n_blocks(C, m)
    assert bm.n_blocks == K and (bm.sizes == c.block_size(d, m)).all()
    rows, cols = all_pairs(K)
    want = instance_sq_norms(case, inst, rows, cols)[0][0].reshape(K, K).numpy()
    got = bm.sq_norm / scale / (d if c.normalization == "1/d" else 1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * want.max())
    if c.zero_off:
        assert np.abs(got[~np.eye(K, dtype=bool)]).max() < 1e-12 * want.max()


# ------------------------------------------------------------------------ BlockMap output
def test_blockmap_outputs_and_paper_ratio():
    net = mlp(6, 4, (5,), bias=False)
    data = _data(6, 4, 30)
    bm = block_norms(net, "ce", data, blocks="output-rows", exact=True)  # 4 blocks of 5
    assert isinstance(bm, BlockMap) and bm.kind == "hessian"
    S = bm.sq_norm
    off = ~np.eye(4, dtype=bool)
    F_diag, F_off = np.diag(S).mean(), S[off].mean()
    assert np.isclose(bm.F_diag, F_diag) and np.isclose(bm.F_off, F_off)
    assert np.isclose(bm.ratio, np.sqrt(F_off / F_diag), rtol=1e-12)  # one block size
    assert bm.ratio_se == 0 and bm.F_diag_se == 0 and bm.F_off_se == 0
    df = bm.to_frame()
    assert list(df.columns) == [
        "row", "col", "sq_norm", "sq_norm_se", "size_row", "size_col", "rms", "rms_se",
    ]  # fmt: skip
    assert len(df) == 16 and df.loc[1, "row"] == "output[0]" and df.loc[1, "col"] == "output[1]"
    np.testing.assert_allclose(df["rms"], np.sqrt(S.ravel() / 25))
    rec = json.loads(json.dumps(bm.to_dict(), allow_nan=False))
    assert rec["n_blocks"] == 4 and rec["n_matvecs"] == 20 and rec["ratio"] == bm.ratio
    one = block_norms(net, "ce", data, blocks={"all": "output.weight"}, exact=True)
    rec1 = json.loads(json.dumps(one.to_dict(), allow_nan=False))
    assert rec1["F_off"] is None and rec1["ratio"] is None  # no off-diagonal block
    assert "BlockMap(kind='hessian'" in repr(bm)


def test_rms_se_delta_method():
    net = mlp(10, 3, (4,), bias=False)
    bm = block_norms(net, "ce", _data(10, 3, 20), blocks="hidden-rows", probes=4, seed=1)
    want = bm.sq_norm_se / (2 * np.sqrt(bm.sq_norm * 100))  # rms = sqrt(S / 100)
    np.testing.assert_allclose(bm.rms_se, want, rtol=1e-12)


def test_progress_bar(capsys, monkeypatch):
    import rmthess.curvature.blocks as B

    net, data = mlp(4, 3, (5,)), _data(4, 3, 10)
    assert block_norms(net, "ce", data, progress=True, probes=3).n_matvecs == 3 + 3
    assert "block map" in capsys.readouterr().err
    monkeypatch.setattr(B, "_PROGRESS_AFTER_S", -1.0)  # "predicted > 5 s" now always true
    block_norms(net, "ce", data, progress=False, probes=3)
    assert "block map" not in capsys.readouterr().err
    block_norms(net, "ce", data, probes=3)  # progress=None: stderr is not a terminal here
    assert "block map" not in capsys.readouterr().err
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    block_norms(net, "ce", data, probes=3)  # on a terminal: shown after the first block
    assert "block map" in capsys.readouterr().err


# ------------------------------------------------------------------------ input checking
@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(probes=1), ValueError, "probes must be an integer >= 2"),
        (dict(probes=2.5), ValueError, "probes must be an integer"),
        (dict(exact="yes"), TypeError, "exact must be True, False or None"),
        (dict(seed=-1), ValueError, r"seed must be an integer in \[0, 2\*\*128\)"),
        (dict(distribution="gauss"), ValueError, "allowed: rademacher, normal"),
        (dict(progress=1), TypeError, "progress must be True, False or None"),
        (dict(kind="ggn"), ValueError, "kind 'ggn' disagrees with op.kind 'hessian'"),
        (dict(kind="fisher"), ValueError, "unknown kind 'fisher'"),
        (dict(blocks="rows"), ValueError, "unknown blocks 'rows'"),
        (dict(blocks={"a": "x"}), ValueError, "unknown parameter 'x'"),
    ],
)
def test_block_norms_bad_input_before_products(kw, err, match):
    op = curvature_operator(mlp(4, 3, (5,)), "ce", _data(4, 3, 10))
    with pytest.raises(err, match=match):
        block_norms(op=op, **kw)
    assert op.n_matvecs == 0


def test_block_norms_op_or_problem():
    net = mlp(4, 3, (5,))
    data = _data(4, 3, 10)
    op = curvature_operator(net, "ce", data, "ggn")
    with pytest.raises(ValueError, match="either op or"):
        block_norms(net, "ce", data, op=op)
    with pytest.raises(ValueError, match="required when op is not given"):
        block_norms(net, "ce")
    with pytest.raises(TypeError, match="op must be a CurvatureOperator"):
        block_norms(op=np.eye(3))
    assert block_norms(op=op, probes=3).kind == "ggn"  # kind taken from op
    assert op.n_matvecs == 6


# ---------------------------------------------------------------------------------- plots
def test_plots():
    import matplotlib.pyplot as plt  # Agg backend: conftest.py

    from rmthess.curvature import plots as plot

    net = mlp(4, 3, (5,), bias=False)
    data = _data(4, 3, 20)
    op = curvature_operator(net, "ce", data)
    bm = block_norms(op=op, blocks="hidden-rows", exact=True)
    ax = plot.plot_block_map(bm)
    assert ax.figure is not None and ax.get_xticklabels()[0].get_text() == "hidden1[0]"
    assert plot.plot_block_map(bm, value="sq_norm", log=False).images
    H = dense_hessian(net, "ce", data)
    ax3 = plot.plot_hessian(H, op, parts="layers")
    assert {t.get_text() for t in ax3.texts} == {"hidden1", "output", "cross"}
    parts = {"hidden": ("hidden1.weight", "hidden1.weight"), "x": (slice(0, 20), "output.weight")}
    ax4 = plot.plot_hessian(torch.as_tensor(H), op.offsets, parts=parts, log=False)
    assert len(ax4.patches) == 2
    with pytest.raises(ValueError, match="allowed: rms, sq_norm"):
        plot.plot_block_map(bm, value="abs")
    with pytest.raises(ValueError, match="unknown group"):
        plot.plot_hessian(H, op, parts={"a": ("nope", "output.weight")})
    with pytest.raises(ValueError, match="must tile"):
        plot.plot_hessian(H[:10, :10], op)
    plt.close("all")


# ----------------------------------------------------------------------------------- bench
def test_bench_tiny_counts():
    from rmthess.bench.curvature import ROUTES, bench_block_map

    df = bench_block_map(C=3, d=6, N=32, hidden=(4,), probes=3)
    assert list(df["route"]) == list(ROUTES)
    by = df.set_index("route")
    L, P, k = 4, 4 * 7 + 3 * 5, 3
    assert (df["L"] == L).all() and (df["P"] == P).all()
    assert list(by["hvps"]) == [P, L * L * k, L * k]
    assert by.loc["curvlinops-pairs", "hvp_ratio"] == L
    assert by.loc["dense", "max_rel_err"] == 0
    # same probes per pair, square blocks: the same expected accuracy for both estimators
    assert np.isclose(
        by.loc["curvlinops-pairs", "mean_rel_sd"], by.loc["rmthess-columns", "mean_rel_sd"]
    )
    assert (df["seconds"] > 0).all()


def test_bench_cli_functions(capsys):
    from rmthess.bench import curvature as bc

    parser = argparse.ArgumentParser()
    bc.add_arguments(parser)
    assert bc.run(parser.parse_args(["--quick", "--json"])) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["route"] for r in recs] == list(bc.ROUTES)
    assert bc.run(parser.parse_args(["--quick"])) == 0 and "HVP ratio" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["--probes", "1"])
