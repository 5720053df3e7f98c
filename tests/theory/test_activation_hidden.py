"""Hidden-layer blocks for any activation (rmthess.theory.activation_hidden): the weight
formula (with its phi'' residual term) against autograd's Hessian of real torch nets, the
Monte-Carlo limit against the ReLU closed form / quadrature, and against a simulation of the
blocks on Gaussian data with random labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmthess.activations import get_activation
from rmthess.theory import activation_frobenius, frobenius_limits
from rmthess.theory.activation_hidden import activation_weights


def _gram(X, y, W, V, loss, act):
    """(m, m) map of (1/d)||H_jl||_F^2 by the Gram route, blocks from activation_weights."""
    N, d = X.shape
    m = W.shape[0]
    rows, cols = np.triu_indices(m)
    a = activation_weights(X @ W.T, y, V, loss, get_activation(act), rows, cols)
    vals = np.sum(a * (((X @ X.T) ** 2) @ a), 0) / (d * N * N)
    F = np.empty((m, m))
    F[rows, cols] = vals
    F[cols, rows] = vals
    return F


@pytest.mark.parametrize("act", ["tanh", "gelu", "sigmoid", "relu"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_weights_are_autograds_hessian(act, loss):
    """torch's exact hidden-row blocks of mlp(activation=act) = the formula's, 1e-9."""
    import torch

    from rmthess.curvature import block_norms, mlp

    C, d, m, N = 4, 7, 5, 30
    gen = np.random.default_rng(0)
    X = gen.standard_normal((N, d))
    y = gen.integers(0, C, N)
    net = mlp(d, C, hidden=(m,), activation=act, bias=False, seed=3)
    W, V = (p.detach().double().numpy() for p in (net.hidden1.weight, net.output.weight))
    bm = block_norms(
        net, loss, (torch.tensor(X), torch.tensor(y)), blocks="hidden-rows", exact=True,
        progress=False,
    )  # fmt: skip
    scale = (C / 2.0) ** 2 if loss == "mse" else 1.0  # torch's MSELoss mean -> (1/2N) sum
    np.testing.assert_allclose(bm.sq_norm * scale / d, _gram(X, y, W, V, loss, act), rtol=1e-9)


@pytest.mark.parametrize("case", ["hidden-mse", "hidden-ce"])
def test_relu_reproduces_the_paper_cases(case):
    got = activation_frobenius(case, 5, 0.5, 8, "relu", samples=800, inner=128, seed=4)
    ref = frobenius_limits(case, 5, 0.5, 8)
    for q in ("F_diag", "F_off"):
        se = getattr(got, f"{q}_se")
        assert abs(getattr(got, q) - getattr(ref, q)) <= 4 * se, (q, getattr(got, q), se)
    assert got.activation == "relu" and got.method == "monte-carlo"


def test_linear_activation_has_no_residual_and_tanh_does():
    """phi = identity: phi'' = 0, so the labels do not matter; tanh: the phi'' term makes the
    diagonal blocks label dependent."""
    gen = np.random.default_rng(1)
    g, V = gen.standard_normal((50, 4)), gen.standard_normal((3, 4))
    rows, cols = np.triu_indices(4)
    y0, y1 = np.zeros(50, int), np.full(50, 2)
    lin = get_activation("linear")
    a0 = activation_weights(g, y0, V, "ce", lin, rows, cols)
    np.testing.assert_array_equal(a0, activation_weights(g, y1, V, "ce", lin, rows, cols))
    th = get_activation("tanh")
    b0 = activation_weights(g, y0, V, "ce", th, rows, cols)
    b1 = activation_weights(g, y1, V, "ce", th, rows, cols)
    off = rows != cols
    np.testing.assert_array_equal(b0[:, off], b1[:, off])
    assert np.abs(b0[:, ~off] - b1[:, ~off]).max() > 1e-3


@pytest.mark.parametrize("act", ["tanh", "gelu"])
def test_limit_matches_simulation(act):
    """Gaussian inputs, random labels, d = 300, N = 600: the blocks by the Gram route (its
    weights are autograd's, above) averaged over networks vs the limit, 3 SE + 5 %."""
    C, d, m, N, nets = 4, 300, 6, 600, 150
    gen = np.random.default_rng(5)
    vals = []
    for _ in range(nets):
        X = gen.standard_normal((N, d))
        y = gen.integers(0, C, N)
        W = gen.standard_normal((m, d)) / math.sqrt(d)
        V = gen.standard_normal((C, m)) / math.sqrt(m)
        F = _gram(X, y, W, V, "ce", act)
        vals.append((np.mean(np.diag(F)), np.mean(F[~np.eye(m, dtype=bool)])))
    vals = np.array(vals)
    mean, se = vals.mean(0), vals.std(0, ddof=1) / math.sqrt(nets)
    lim = activation_frobenius("hidden-ce", C, d / N, m, act, samples=1500, inner=256, seed=6)
    for i, q in enumerate(("F_diag", "F_off")):
        tol = 3 * math.hypot(se[i], getattr(lim, f"{q}_se")) + 0.05 * getattr(lim, q)
        assert abs(mean[i] - getattr(lim, q)) <= tol, (q, mean[i], se[i], getattr(lim, q))


def test_arguments():
    with pytest.raises(ValueError, match="activation"):
        activation_frobenius("hidden-ce", 3, 0.5, 4, "swish")
    with pytest.raises(ValueError, match="case"):
        activation_frobenius("linear-ce", 3, 0.5, 4)
    with pytest.raises(ValueError, match="inner"):
        activation_frobenius("hidden-ce", 3, 0.5, 4, inner=7)
    with pytest.raises(ValueError, match="init"):
        activation_frobenius("hidden-ce", 3, 0.5, 4, init="torch-default")


def test_cli_matches_the_python_api(capsys):
    import json

    from rmthess.cli import main

    args = ["theory", "--case", "hidden-ce", "--C", "5", "--gamma", "0.5", "--m", "4"]
    assert main([*args, "--activation", "gelu", "--samples", "50", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    want = activation_frobenius("hidden-ce", 5, 0.5, 4, "gelu", samples=50).to_dict()
    assert rec == pytest.approx(want) and rec["activation"] == "gelu"
    assert main([*args, "--activation", "gelu", "--samples", "50", "--asymptotic", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    from rmthess.theory import asymptotic_constants

    asym = asymptotic_constants("hidden-ce", 0.5, 4, activation="gelu")
    assert rec["A_off"] == asym.A_off and rec["p_diag"] == 0.0
    lin_case = ["theory", "--case", "linear-ce", "--C", "5", "--gamma", "0.5"]
    assert main([*lin_case, "--activation", "tanh"]) == 2
    assert "hidden-* and output-*" in capsys.readouterr().err
    out_case = ["theory", "--case", "output-mse", "--C", "5", "--gamma", "0.5", "--m", "4"]
    assert main([*out_case, "--activation", "tanh", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["F_diag"] == frobenius_limits("output-mse", 5, 0.5, 4, activation="tanh").F_diag


# ------------------------------------------------------------------ two hidden layers
@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_deep_weights_are_autograds_hessian(act, loss):
    """First-layer blocks of mlp(hidden=(m1, m2)): torch's exact Hessian = the formula's
    (Gauss-Newton, second-layer curvature and phi'' terms), 1e-9."""
    import torch

    from rmthess.curvature import block_norms, mlp
    from rmthess.theory.deep_hidden import deep_weights

    C, d, m1, m2, N = 4, 7, 5, 3, 30
    gen = np.random.default_rng(0)
    X, y = gen.standard_normal((N, d)), gen.integers(0, C, N)
    net = mlp(d, C, hidden=(m1, m2), activation=act, bias=False, seed=3)
    W1, W2, V = (
        p.detach().double().numpy()
        for p in (net.hidden1.weight, net.hidden2.weight, net.output.weight)
    )
    data = (torch.tensor(X), torch.tensor(y))
    bm = block_norms(net, loss, data, blocks="hidden-rows", exact=True, progress=False)
    rows, cols = np.triu_indices(m1)
    a = deep_weights(X @ W1.T, y, W2, V, loss, get_activation(act), rows, cols)
    vals = np.sum(a * (((X @ X.T) ** 2) @ a), 0) / (d * N * N)
    F = np.empty((m1, m1))
    F[rows, cols] = vals
    F[cols, rows] = vals
    scale = (C / 2.0) ** 2 if loss == "mse" else 1.0
    np.testing.assert_allclose(bm.sq_norm * scale / d, F, rtol=1e-9)


def test_deep_limit_matches_simulation():
    """Two ReLU layers, first-layer blocks: simulation (Gram route, d = 300) vs the limit."""
    from rmthess.theory import deep_frobenius
    from rmthess.theory.deep_hidden import deep_weights

    C, d, m, N, nets = 4, 300, 6, 600, 150
    gen = np.random.default_rng(8)
    relu = get_activation("relu")
    rows, cols = np.triu_indices(m)
    vals = []
    for _ in range(nets):
        X, y = gen.standard_normal((N, d)), gen.integers(0, C, N)
        W1 = gen.standard_normal((m, d)) / math.sqrt(d)
        W2 = gen.standard_normal((m, m)) / math.sqrt(m)
        V = gen.standard_normal((C, m)) / math.sqrt(m)
        a = deep_weights(X @ W1.T, y, W2, V, "ce", relu, rows, cols)
        v = np.sum(a * (((X @ X.T) ** 2) @ a), 0) / (d * N * N)
        vals.append((v[rows == cols].mean(), v[rows != cols].mean()))
    vals = np.array(vals)
    mean, se = vals.mean(0), vals.std(0, ddof=1) / math.sqrt(nets)
    lim = deep_frobenius("hidden-ce", C, d / N, (m, m), samples=1500, seed=9)
    assert lim.widths == (m, m) and lim.m == m
    for i, q in enumerate(("F_diag", "F_off")):
        tol = 3 * math.hypot(se[i], getattr(lim, f"{q}_se")) + 0.05 * getattr(lim, q)
        assert abs(mean[i] - getattr(lim, q)) <= tol, (q, mean[i], se[i], getattr(lim, q))


def test_deep_arguments():
    from rmthess.theory import deep_frobenius

    with pytest.raises(ValueError, match="widths"):
        deep_frobenius("hidden-ce", 3, 0.5, (4,))
    with pytest.raises(ValueError, match="widths"):
        deep_frobenius("hidden-ce", 3, 0.5, (4, 1))
    with pytest.raises(ValueError, match="activation"):
        deep_frobenius("hidden-ce", 3, 0.5, (4, 4), "swish")
