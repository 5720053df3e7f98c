"""layer_block_maps: every Linear layer's row-block map of an MLP by the per-sample Gram route,
against block_norms(exact=True) (Hessian-vector products through curvlinops: an independent
route), over the variants users pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rmthess.curvature import block_norms, layer_block_maps, mlp


def _reference(model, loss, data, name, rows):
    spec = {f"{name}[{j}]": (f"{name}.weight", j) for j in range(rows)}
    if getattr(model, name).bias is not None:
        spec = {k: [v, (f"{name}.bias", [j])] for j, (k, v) in enumerate(spec.items())}
    return block_norms(model, loss, data, blocks=spec, exact=True, progress=False)


def _data(d, C, N, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, d, generator=g, dtype=dtype), torch.randint(0, C, (N,), generator=g)


@pytest.mark.parametrize(
    ("act", "bias", "loss"),
    [
        ("relu", False, "ce"),
        ("tanh", True, "ce"),
        ("gelu", False, "mse"),
        ("sigmoid", True, "mse"),
    ],
)
def test_every_layer_equals_block_norms(act, bias, loss):
    d, ws, C = 5, (4, 3), 3
    model = mlp(d, C, ws, activation=act, bias=bias, seed=1)
    data = _data(d, C, 30)
    maps = layer_block_maps(model, loss, data, progress=False)
    assert list(maps) == ["hidden1", "hidden2", "output"]
    for name, rows in zip(maps, (*ws, C), strict=True):
        ref = _reference(model, loss, data, name, rows)
        np.testing.assert_allclose(maps[name].sq_norm, ref.sq_norm, rtol=1e-9, atol=1e-14)
        assert maps[name].names == ref.names
        assert list(maps[name].sizes) == list(ref.sizes)


def test_weighted_ce_batches_and_float32():
    d, ws, C = 4, (5,), 3
    model = mlp(d, C, ws, activation="tanh", bias=True, seed=2)
    X, y = _data(d, C, 24, seed=3)
    loss = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64))
    batches = [(X[:10], y[:10]), (X[10:], y[10:])]
    maps = layer_block_maps(model, loss, batches, progress=False)
    for name, rows in (("hidden1", 5), ("output", C)):
        ref = _reference(model, loss, (X, y), name, rows)
        np.testing.assert_allclose(maps[name].sq_norm, ref.sq_norm, rtol=1e-9, atol=1e-14)
    m32 = mlp(d, C, ws, activation="tanh", bias=True, seed=2, dtype="float32")
    got = layer_block_maps(m32, "ce", (X.float(), y), progress=False)["hidden1"].sq_norm
    m64 = copy.deepcopy(m32).double()
    ref = layer_block_maps(m64, "ce", (X.float().double(), y), progress=False)["hidden1"].sq_norm
    np.testing.assert_allclose(got, ref, rtol=2e-4)


def test_refusals():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x)

    data = _data(3, 2, 10)
    with pytest.raises(TypeError, match="nn.Sequential"):
        layer_block_maps(Net(), "ce", data)
    bad = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.1), torch.nn.Linear(4, 2))
    with pytest.raises(TypeError, match="Dropout"):
        layer_block_maps(bad.double(), "ce", data)
    with pytest.raises(TypeError, match="end in an nn.Linear"):
        layer_block_maps(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()), "ce", data)
