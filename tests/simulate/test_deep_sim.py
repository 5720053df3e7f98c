"""Deep-MLP blocks in rmthess.simulate (issue 20): the closed-form pre-activation Hessians
against torch.func.hessian, the Gram-route block norms against
rmthess.curvature.layer_block_maps (autograd on an nn.Sequential with the same weights) and
the simulated maps against the theory's depth_frobenius.
"""

import numpy as np
import pytest
import torch

from rmthess.simulate.deep import depth_block_frobenius, pre_activation_hessians
from rmthess.simulate.torch_activations import torch_activation

TORCH_NN = {
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "gelu": torch.nn.GELU,
    "sigmoid": torch.nn.Sigmoid,
    "softplus": lambda: torch.nn.Softplus(threshold=1e30),
}


@pytest.mark.parametrize("name", list(TORCH_NN))
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_pre_activation_hessians_are_autograds(name, loss):
    """H_k of a 3-hidden-layer net = torch.func.hessian of the per-sample loss in g_k (with
    torch.nn's activation modules), every layer, and A = the Hessian in the logits: 1e-12."""
    gen = torch.Generator().manual_seed(0)
    C, ws, N = 4, (5, 4, 3), 6
    G1 = torch.randn(N, ws[0], generator=gen, dtype=torch.float64)
    Ws = [torch.randn(ws[k + 1], ws[k], generator=gen, dtype=torch.float64) / 2 for k in range(2)]
    V = torch.randn(C, ws[-1], generator=gen, dtype=torch.float64) / 2
    Y = torch.randint(0, C, (N,), generator=gen)
    H, A, _ = pre_activation_hessians(G1, Y, Ws, V, loss, torch_activation(name))
    phi = TORCH_NN[name]()
    onehot = torch.nn.functional.one_hot(Y, C).to(torch.float64)

    def from_layer(k):
        def f(g, yi):
            h = phi(g)
            for W in Ws[k:]:
                h = phi(W @ h)
            return per_logit(V @ h, yi)

        return f

    def per_logit(z, yi):
        if loss == "ce":
            return -(torch.log_softmax(z, 0) * yi).sum()
        return 0.5 * ((z - yi) ** 2).sum()

    g = [G1]
    for W in Ws:
        g.append(phi(g[-1]) @ W.T)
    for k in range(3):
        ref = torch.func.vmap(torch.func.hessian(from_layer(k)))(g[k], onehot)
        np.testing.assert_allclose(H[k].numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)
    Z = phi(g[-1]) @ V.T
    refA = torch.func.vmap(torch.func.hessian(per_logit))(Z, onehot)
    np.testing.assert_allclose(A.numpy(), refA.numpy(), rtol=1e-10, atol=1e-12)


def test_block_norms_equal_layer_block_maps():
    """Per-layer F_diag, F_off of one trial = those of layer_block_maps (autograd per-sample
    Hessians of an nn.Sequential holding the same weights, CE, tanh), 1e-10."""
    from rmthess.curvature import layer_block_maps
    from rmthess.inits import resolve_init
    from rmthess.simulate.sampling import gaussian, init_weights, make_generator, trial_seeds

    C, d, N, ws = 5, 12, 40, (6, 4)
    res = depth_block_frobenius("ce", C, d, N, ws, "tanh", trials=2, seed=3, device="cpu")
    s = trial_seeds(3, 1, key=(C, 3))[0]
    gen = make_generator(s, torch.device("cpu"))
    ini = resolve_init("lecun")
    X = gaussian((N, d), gen, "cpu", torch.float64)
    W1 = init_weights((6, d), d, ini, gen, "cpu", torch.float64)
    W2 = init_weights((4, 6), 6, ini, gen, "cpu", torch.float64)
    V = init_weights((C, 4), 4, ini, gen, "cpu", torch.float64)
    Y = torch.randint(0, C, (N,), generator=gen)
    net = torch.nn.Sequential(
        torch.nn.Linear(d, 6, bias=False), torch.nn.Tanh(),
        torch.nn.Linear(6, 4, bias=False), torch.nn.Tanh(),
        torch.nn.Linear(4, C, bias=False),
    ).double()  # fmt: skip
    for lin, w in zip((net[0], net[2], net[4]), (W1, W2, V), strict=True):
        lin.weight.data.copy_(w)
    maps = layer_block_maps(net, "ce", (X, Y), progress=False)
    for i, bm in enumerate(maps.values()):
        sq = bm.sq_norm / (d if i == 0 else 1)
        off = ~np.eye(len(sq), dtype=bool)
        np.testing.assert_allclose(res.per_trial[0, i], [np.diag(sq).mean(), sq[off].mean()],
                                   rtol=1e-10)  # fmt: skip


CELLS = [("ce", "tanh", (16, 8), 10), ("mse", "relu", (8, 8, 8), 4)]


@pytest.mark.parametrize(("loss", "act", "widths", "C"), CELLS)
def test_simulation_matches_depth_frobenius(loss, act, widths, C):
    """Every layer's F_diag, F_off (d = 300, N = 600, 16 trials) vs depth_frobenius(N=N):
    within 4 SE (both) + 5 % (finite d, docs/theory.md 9.5)."""
    from rmthess.theory import depth_frobenius

    sim = depth_block_frobenius(loss, C, 300, 600, widths, act, trials=16, seed=1, device="cpu")
    th = depth_frobenius(loss, C, 0.5, widths, act, N=600, samples=300, inner=256, seed=2)
    assert sim.layers == th.layers
    for q in ("F_diag", "F_off"):
        s, t = getattr(sim, q), getattr(th, q)
        se = np.hypot(getattr(sim, q + "_se"), getattr(th, q + "_se"))
        assert np.all(np.abs(s - t) <= 4 * se + 0.05 * np.abs(t)), (q, s, t, se)
    frame = sim.to_frame()
    assert list(frame["layer"]) == list(sim.layers) and frame["trials"].iloc[0] == 16
    assert sim.to_dict()["gamma"] == 0.5


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="widths"):
        depth_block_frobenius("ce", 3, 10, 20, (4, 1))
    with pytest.raises(ValueError, match="trials"):
        depth_block_frobenius("ce", 3, 10, 20, (4,), trials=1)
    with pytest.raises(ValueError, match="activation"):
        depth_block_frobenius("ce", 3, 10, 20, (4,), "swish")
    with pytest.raises(ValueError, match="loss"):
        depth_block_frobenius("hinge", 3, 10, 20, (4,))
    with pytest.raises(ValueError, match="N"):
        depth_block_frobenius("ce", 3, 10, 1, (4,))


def test_cli_matches_the_python_api(capsys):
    """``rmthess simulate --widths`` = depth_block_frobenius; ``rmthess theory --widths --N``
    = depth_frobenius(N=...); flags that do not apply are refused."""
    import json

    from rmthess.cli import main
    from rmthess.theory import depth_frobenius

    args = ["simulate", "--case", "hidden-ce", "--C", "3", "--d", "10", "--N", "20", "--widths",
            "4,3", "--trials", "2", "--activation", "tanh", "--device", "cpu"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    want = depth_block_frobenius("ce", 3, 10, 20, (4, 3), "tanh", trials=2, device="cpu")
    assert [r["F_diag"] for r in recs] == pytest.approx(list(want.F_diag))
    assert main(args) == 0 and "hidden2" in capsys.readouterr().out
    assert main([*args, "--m", "4"]) == 2
    assert "--m does not apply" in capsys.readouterr().err
    th = ["theory", "--case", "hidden-mse", "--C", "3", "--gamma", "0.5", "--widths", "4,3",
          "--samples", "20", "--inner", "8", "--N", "50", "--json"]  # fmt: skip
    assert main(th) == 0
    recs = json.loads(capsys.readouterr().out)
    ref = depth_frobenius("mse", 3, 0.5, (4, 3), samples=20, inner=8, N=50)
    assert [r["F_diag"] for r in recs] == pytest.approx(list(ref.F_diag))
