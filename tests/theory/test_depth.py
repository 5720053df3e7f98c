"""depth_frobenius / layer_weights: the block maps of every layer of an L-layer MLP at init
(rmthess.theory.depth), against independent routes: torch's exact per-sample Hessian for the
weights (every layer, smooth and ReLU activations, CE and MSE), the one-hidden-layer limits
(L = 1: hidden-* and output-*), deep_frobenius (L = 2, first layer), and a numpy simulation
of every layer's blocks at finite d and N."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rmthess.activations import get_activation
from rmthess.theory import deep_frobenius, depth_frobenius, frobenius_limits
from rmthess.theory.depth import layer_weights

TORCH_ACT = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": torch.nn.functional.gelu,
    "sigmoid": torch.sigmoid,
}


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu", "sigmoid"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_weights_are_the_autograd_hessian(act, loss):
    """Per sample, block (j, l) of layer k of torch's Hessian of the loss in W_k equals
    a_jl h h^T (h the layer's input), for every pair and every layer, output included."""
    gen = np.random.default_rng(1)
    d, ws, C = 5, (4, 3, 3), 4
    Wall = [
        gen.standard_normal((m, n)) / math.sqrt(n) for n, m in zip((d, *ws), (*ws, C), strict=True)
    ]
    x = gen.standard_normal(d)
    y = 2
    phi = TORCH_ACT[act]

    def lossfn(*W):
        h = torch.from_numpy(x)
        for Wk in W[:-1]:
            h = phi(Wk @ h)
        z = W[-1] @ h
        if loss == "ce":
            return torch.nn.functional.cross_entropy(z[None], torch.tensor([y]))
        return 0.5 * torch.sum((z - torch.nn.functional.one_hot(torch.tensor(y), C)) ** 2)

    Wt = [torch.from_numpy(W) for W in Wall]
    hess = torch.autograd.functional.hessian(lossfn, tuple(Wt))
    sizes = (*ws, C)
    pairs = [np.triu_indices(n) for n in sizes]
    g1 = (Wall[0] @ x)[None]
    a, hs = layer_weights(g1, np.array([y]), Wall[1:-1], Wall[-1], loss, get_activation(act), pairs)
    inputs = [x, *(h[0] for h in hs)]
    for k, (rows, cols) in enumerate(pairs):
        Hk = hess[k][k].numpy()  # (m, n_in, m, n_in)
        for b, (j, l) in enumerate(zip(rows, cols, strict=True)):
            want = Hk[j, :, l, :]
            got = a[k][0, b] * np.outer(inputs[k], inputs[k])
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_one_hidden_layer_gives_the_hidden_and_output_limits(loss):
    r = depth_frobenius(loss, 6, 0.5, (6,), samples=1500, seed=2)
    for i, case in enumerate((f"hidden-{loss}", f"output-{loss}")):
        ref = frobenius_limits(case, 6, 0.5, 6)
        assert abs(r.F_diag[i] - ref.F_diag) <= 4 * r.F_diag_se[i], (case, r, ref)
        if ref.F_off > 0:
            assert abs(r.F_off[i] - ref.F_off) <= 4 * r.F_off_se[i], (case, r, ref)
        else:
            assert r.F_off[i] == 0.0


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_two_layers_first_layer_is_deep_frobenius(act):
    r = depth_frobenius("ce", 6, 0.5, (6, 5), act, samples=1500, seed=2)
    ref = deep_frobenius("hidden-ce", 6, 0.5, (6, 5), act, samples=1500, seed=3)
    for q in ("F_diag", "F_off"):
        se = math.hypot(getattr(r, f"{q}_se")[0], getattr(ref, f"{q}_se"))
        assert abs(getattr(r, q)[0] - getattr(ref, q)) <= 4 * se, (q, r, ref)


def _simulate(ws, C, d, N, nets, act, gen):
    """Per-layer (F_diag, F_off) means and SEs of simulated networks on N(0, I_d) inputs: the
    blocks formed from per-sample Hessians written out independently (numpy, full matrices,
    the Gram route a^T (h h^T)^2 a / N^2), CE, ReLU or tanh."""
    phi = {"relu": lambda t: np.maximum(t, 0), "tanh": np.tanh}[act]
    dphi = {"relu": lambda t: (t > 0) * 1.0, "tanh": lambda t: 1 - np.tanh(t) ** 2}[act]
    d2phi = {"relu": lambda t: 0 * t, "tanh": lambda t: -2 * np.tanh(t) * (1 - np.tanh(t) ** 2)}[
        act
    ]
    out = []
    for _ in range(nets):
        W = [
            gen.standard_normal((m, n)) / np.sqrt(n)
            for n, m in zip((d, *ws), (*ws, C), strict=True)
        ]
        X = gen.standard_normal((N, d))
        y = gen.integers(0, C, N)
        gs, hs = [], [X]
        for Wk in W[:-1]:
            gs.append(hs[-1] @ Wk.T)
            hs.append(phi(gs[-1]))
        z = hs[-1] @ W[-1].T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        H = p[:, :, None] * np.eye(C) - p[:, :, None] * p[:, None, :]  # d2l/dz2
        delta = p - np.eye(C)[y]  # dl/dz
        Hs = [H]
        for k in range(len(ws) - 1, -1, -1):  # d2l/dg_k2 from d2l/d(next)2
            Wn = W[k + 1]
            b = delta @ Wn
            D = dphi(gs[k])
            H = D[:, :, None] * np.einsum("ia,nab,bj->nij", Wn.T, H, Wn) * D[:, None, :]
            H = H + np.einsum("ni,ij->nij", d2phi(gs[k]) * b, np.eye(D.shape[1]))
            delta = b * D
            Hs.append(H)
        Hs = Hs[::-1]  # layer 1 .. L, output
        row = []
        for k, Hk in enumerate(Hs):
            K = (hs[k] @ hs[k].T) ** 2
            m = Hk.shape[1]
            A = Hk.reshape(N, m * m)
            F = (np.einsum("ib,ij,jb->b", A, K, A) / N**2).reshape(m, m)
            if k == 0:
                F = F / d
            off = ~np.eye(m, dtype=bool)
            row.append((np.mean(np.diag(F)), np.mean(F[off])))
        out.append(row)
    out = np.array(out)
    return out.mean(0), out.std(0, ddof=1) / math.sqrt(nets)


@pytest.mark.parametrize(
    ("act", "nets"),
    [("tanh", 80), pytest.param("relu", 300, marks=pytest.mark.slow)],
)
def test_every_layer_matches_simulation(act, nets):
    """Three hidden layers, every layer's F_diag and F_off within 4 SE + 5 % of simulated
    networks at d = 300, N = 600 (the later layers with the finite-N term; m/d = 2 %). ReLU
    nets this narrow have heavy-tailed block norms (a network's F is a product of squared
    weights over the layers): 300 networks for an SE of 15-30 % (measured within 1.7 SE)."""
    gen = np.random.default_rng(7)
    ws, C, d, N = (6, 5, 4), 4, 300, 600
    mean, se = _simulate(ws, C, d, N, nets, act, gen)
    r = depth_frobenius("ce", C, d / N, ws, act, N=N, samples=1500, seed=4)
    for k in range(len(ws) + 1):
        for i, q in enumerate(("F_diag", "F_off")):
            th, th_se = getattr(r, q)[k], getattr(r, f"{q}_se")[k]
            tol = 4 * math.hypot(se[k, i], th_se) + 0.05 * th
            assert abs(mean[k, i] - th) <= tol, (r.layers[k], q, mean[k, i], se[k, i], th)


def test_record_and_refusals():
    r = depth_frobenius("ce", 3, 0.5, (4, 4), samples=20, seed=0)
    frame = r.to_frame()
    assert list(frame["layer"]) == ["hidden1", "hidden2", "output"]
    assert list(frame["rows"]) == [4, 4, 3]
    assert r.to_dict()["ratio_se_hidden2"] >= 0
    with pytest.raises(ValueError, match="widths"):
        depth_frobenius("ce", 3, 0.5, ())
    with pytest.raises(ValueError, match="widths"):
        depth_frobenius("ce", 3, 0.5, (4,) * 9)
    with pytest.raises(ValueError, match="loss"):
        depth_frobenius("hinge", 3, 0.5, (4,))
    with pytest.raises(ValueError, match="init"):
        depth_frobenius("ce", 3, 0.5, (4,), init="torch-default")
    with pytest.raises(ValueError, match="inner"):
        depth_frobenius("ce", 3, 0.5, (4,), inner=5)


def test_cli_widths(capsys):
    from rmthess.cli import main

    args = ["theory", "--case", "hidden-ce", "--C", "5", "--gamma", "0.5", "--widths", "6,4"]
    assert main([*args, "--activation", "tanh", "--samples", "40", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    ref = depth_frobenius("ce", 5, 0.5, (6, 4), "tanh", samples=40)
    assert [r["layer"] for r in recs] == ["hidden1", "hidden2", "output"]
    assert [r["ratio"] for r in recs] == pytest.approx(list(ref.ratio), rel=1e-12)
    assert main([*args, "--samples", "40"]) == 0
    text = capsys.readouterr().out
    assert "widths=6x4" in text and "hidden2" in text and "+-" in text
    assert main([*args, "--m", "4"]) == 2
    assert "--m does not apply" in capsys.readouterr().err
    assert (
        main(["theory", "--case", "linear-ce", "--C", "5", "--gamma", "0.5", "--widths", "6"]) == 2
    )
