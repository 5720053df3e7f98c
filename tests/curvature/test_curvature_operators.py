"""Curvature operators (curvlinops) against independent dense routes (torch.func, J^T A J)."""

import numpy as np
import pytest
import torch
from torch import nn

from rmthess.curvature import curvature_operator, dense_hessian, mlp

F64 = torch.float64


class TinyConv(nn.Module):
    """A model of another shape: 1-D convolution, pooling, linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3, dtype=F64)
        self.head = nn.Linear(2 * 4, 3, dtype=F64)

    def forward(self, x):
        return self.head(torch.tanh(self.conv(x[:, None, :])).flatten(1))


def _models():
    torch.manual_seed(1)
    return {
        "linear": mlp(6, 3, (), bias=False, seed=1),
        "relu-1h": mlp(6, 3, (5,), seed=2),
        "tanh-2h": mlp(6, 3, (4, 3), activation="tanh", init="torch-default", seed=3),
        "conv": TinyConv(),
    }


def _data(n=23, d=6, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randint(0, C, (n,), generator=g)


LOSSES = {
    "ce-mean": lambda: nn.CrossEntropyLoss(),
    "ce-sum": lambda: nn.CrossEntropyLoss(reduction="sum"),
    "mse-mean": lambda: nn.MSELoss(),
}


def _rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("name", ["linear", "relu-1h", "tanh-2h", "conv"])
@pytest.mark.parametrize("kind", ["hessian", "ggn", "residual"])
def test_operator_matches_dense_torch_func(name, loss, kind):
    model = _models()[name]
    X, y = _data()
    batches = [(X[:7], y[:7]), (X[7:9], y[7:9]), (X[9:], y[9:])]  # uneven batches
    op = curvature_operator(model, LOSSES[loss](), batches, kind)
    M = op @ np.eye(op.shape[0])
    D = dense_hessian(model, LOSSES[loss](), (X, y), kind)
    # round-off relative to the Hessian's scale (the residual of a linear model is ~0)
    scale = np.abs(dense_hessian(model, LOSSES[loss](), (X, y))).max()
    assert np.abs(M - D).max() < 1e-12 * scale
    assert op.n_matvecs == op.shape[0]


def test_dense_hessian_is_torch_func_hessian_of_the_loss():
    """The reference itself against torch.func.hessian of the loss written by hand."""
    model = _models()["tanh-2h"]
    X, y = _data()
    W1, b1, W2, b2, W3, b3 = (p.detach() for p in model.parameters())
    shapes = [p.shape for p in (W1, b1, W2, b2, W3, b3)]
    sizes = [int(np.prod(s)) for s in shapes]

    def loss(theta):
        w1, c1, w2, c2, w3, c3 = (
            t.reshape(s) for t, s in zip(theta.split(sizes), shapes, strict=True)
        )
        z = torch.tanh(torch.tanh(X @ w1.T + c1) @ w2.T + c2) @ w3.T + c3
        return nn.functional.cross_entropy(z, y)

    theta = torch.cat([p.flatten() for p in (W1, b1, W2, b2, W3, b3)])
    ref = torch.func.hessian(loss)(theta).numpy()
    assert _rel(dense_hessian(model, "ce", (X, y)), ref) < 1e-12


def test_ggn_is_explicit_JT_A_J_for_cross_entropy():
    """G = (1/N) sum_n J_n^T (diag p_n - p_n p_n^T) J_n with J from torch.autograd."""
    model = _models()["relu-1h"]
    X, y = _data()
    params = list(model.parameters())
    J = []
    for n in range(len(X)):
        rows = []
        for k in range(3):
            g = torch.autograd.grad(model(X[n : n + 1])[0, k], params)
            rows.append(torch.cat([t.flatten() for t in g]))
        J.append(torch.stack(rows))
    J = torch.stack(J).detach()  # (N, C, P)
    p = torch.softmax(model(X), 1).detach()
    A = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    G = torch.einsum("ncp,ncd,ndq->pq", J, A, J).numpy() / len(X)
    op = curvature_operator(model, "ce", (X, y), "ggn")
    assert _rel(op @ np.eye(op.shape[0]), G) < 1e-12
    assert _rel(dense_hessian(model, "ce", (X, y), "ggn"), G) < 1e-12


def test_residual_vanishes_for_a_model_linear_in_its_parameters():
    model = _models()["linear"]
    X, y = _data()
    op = curvature_operator(model, "ce", (X, y), "residual")
    H = dense_hessian(model, "ce", (X, y))
    assert np.abs(op @ np.eye(op.shape[0])).max() < 1e-14 * np.abs(H).max()


def test_batching_and_label_formats_give_the_same_operator():
    model = _models()["relu-1h"]
    X, y = _data()
    v = np.random.default_rng(0).standard_normal(sum(p.numel() for p in model.parameters()))
    a = curvature_operator(model, "mse", (X, y)) @ v  # integer labels, one-hot inside
    onehot = nn.functional.one_hot(y, 3).to(F64)
    b = curvature_operator(model, nn.MSELoss(), (X.numpy(), onehot.numpy()), batch_size=5) @ v
    assert _rel(a, b) < 1e-13


def test_operator_facts_and_torch_products():
    model = mlp(4, 2, (3,), seed=0)
    X, y = _data(10, 4, 2)
    op = curvature_operator(model, "ce", (X, y))
    assert op.names == ("hidden1.weight", "hidden1.bias", "output.weight", "output.bias")
    assert op.offsets["output.weight"] == slice(15, 21)
    assert op.shape == (23, 23) and op.n_data == 10
    v = torch.randn(23, dtype=F64)
    assert op.matmat_torch(v).shape == (23,)
    assert op.matmat_torch(torch.randn(23, 40, dtype=F64)).shape == (23, 40)  # chunked
    assert op.n_matvecs == 41
    assert "hessian" in repr(op)


# --- bad input: one clear error naming the argument, before any product ----------------------
def _bad(**kw):
    model = kw.pop("model", mlp(4, 2, (3,), seed=0))
    loss = kw.pop("loss", "ce")
    data = kw.pop("data", _data(10, 4, 2))
    return lambda: curvature_operator(model, loss, data, **kw)


@pytest.mark.parametrize(
    "make,err,match",
    [
        (lambda: _bad(kind="fisher"), ValueError, "kind"),
        (lambda: _bad(loss=nn.CrossEntropyLoss(reduction="none")), ValueError, "reduction"),
        (lambda: _bad(loss=lambda z, y: z.sum()), TypeError, "loss_fn"),
        (lambda: _bad(loss="hinge"), ValueError, "loss_fn"),
        (lambda: _bad(data=(torch.randn(10, 4), torch.zeros(9).long())), ValueError, "X and y"),
        (lambda: _bad(data=(torch.randn(10, 5), torch.zeros(10).long())), ValueError, "shape"),
        (
            lambda: _bad(data=(torch.full((10, 4), np.nan), torch.zeros(10).long())),
            ValueError,
            "NaN",
        ),  # noqa: E501
        (lambda: _bad(data=(torch.randn(10, 4), torch.full((10,), 7))), ValueError, r"\[0, 1\]"),
        (lambda: _bad(data=42), TypeError, "data"),
        (lambda: _bad(data=[]), ValueError, "empty"),
        (lambda: _bad(model="net"), TypeError, "model"),
        (lambda: _bad(max_columns=0), ValueError, "max_columns"),
    ],
)
def test_bad_input(make, err, match):
    with pytest.raises(err, match=match):
        make()()


def test_frozen_model_and_training_mode_dropout_are_refused():
    model = mlp(4, 2, (3,), seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters that require grad"):
        curvature_operator(model, "ce", _data(10, 4, 2))
    drop = nn.Sequential(nn.Linear(4, 2, dtype=F64), nn.Dropout(0.5))
    with pytest.raises(ValueError, match="eval"):
        curvature_operator(drop, "ce", _data(10, 4, 2))
    drop.eval()
    assert curvature_operator(drop, "ce", _data(10, 4, 2)).shape == (10, 10)
