"""rmthess.landscape: the paper's MLP, per-sample Hessian norms, and the bound audit.

References are independent of the code under test: ``torch.func.hessian`` of the
single-sample loss through ``functional_call`` (not the package's functional forward),
``torch.autograd.functional.jacobian`` for the GGN, numpy norms for the bound formulas, and
hand-derived closed forms for the counterexamples.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rmthess.data import gaussian
from rmthess.landscape.bounds import (
    corrected_bound,
    corrected_layer_bound,
    hessian_bound_audit,
    paper_theorem1,
)
from rmthess.landscape.models import check_relu_mlp, relu_mlp, train_mlp
from rmthess.landscape.per_sample import per_sample_curvature, per_sample_hessian_norms

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SQ2 = math.sqrt(2)


# ---------------------------------------------------------------------------- references
def _flat_matrix(blocks, sizes):
    n = len(sizes)
    return torch.cat(
        [
            torch.cat([blocks[a][b].reshape(sizes[a], sizes[b]) for b in range(n)], 1)
            for a in range(n)
        ]
    )


def ref_norms(model, X, y):
    """``(||H_i||, ||G_i||)`` per sample by torch.func / autograd, dense P x P."""
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach() for _, p in model.named_parameters())
    sizes = [p.numel() for p in params]
    H_out, G_out = [], []
    for x, t in zip(X, y, strict=True):

        def loss(*ps, x=x, t=t):
            out = torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (x[None],))
            return nn.functional.cross_entropy(out, t[None])

        def logits(*ps, x=x):
            return torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (x[None],))[
                0
            ]

        H = _flat_matrix(
            torch.func.hessian(loss, argnums=tuple(range(len(params))))(*params), sizes
        )
        J = torch.cat(
            [j.reshape(j.shape[0], -1) for j in torch.autograd.functional.jacobian(logits, params)],
            1,
        )
        p = torch.softmax(logits(*params), 0)
        G = J.T @ (torch.diag(p) - torch.outer(p, p)) @ J
        H_out.append(float(torch.linalg.eigvalsh(H).abs().max()))
        G_out.append(float(torch.linalg.eigvalsh(G).abs().max()))
    return np.array(H_out), np.array(G_out)


def _data(N, d, C, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, d, generator=g, dtype=torch.float64), torch.randint(
        0, C, (N,), generator=g
    )


# ---------------------------------------------------------------------------- per-sample norms
@pytest.mark.parametrize("L,h", [(1, 3), (2, 2), (3, 4), (4, 3)])
def test_per_sample_norms_match_torch_func(L, h):
    model = relu_mlp(4, 3, h, L, seed=L, dtype=torch.float64)
    X, y = _data(6, 4, 3, seed=h)
    H_ref, G_ref = ref_norms(model, X, y)
    for method in ("dense", "lanczos"):
        got = per_sample_curvature(model, (X, y), method=method, chunk=4)
        assert got.method == method
        np.testing.assert_allclose(got.norm, H_ref, rtol=1e-10, atol=1e-13)
        assert got.residual.max() <= 1e-10
    for method in ("kernel", "dense", "lanczos"):
        got = per_sample_hessian_norms(model, (X, y), kind="ggn", method=method)
        np.testing.assert_allclose(got, G_ref, rtol=1e-10, atol=1e-13)
    if L == 1:  # z is linear in theta: H_i = G_i
        np.testing.assert_allclose(H_ref, G_ref, rtol=1e-12)


def test_batched_lanczos_matches_dense_on_moderate_P():
    model = relu_mlp(30, 5, 20, 3, seed=3, dtype=torch.float64)  # P = 600 + 400 + 100
    X, y = _data(8, 30, 5, seed=1)
    dense = per_sample_curvature(model, (X, y), method="dense")
    lz = per_sample_curvature(model, (X, y), method="lanczos", chunk=3, seed=5)
    assert lz.n_params == 1100
    np.testing.assert_allclose(lz.norm, dense.norm, rtol=1e-8)
    np.testing.assert_allclose(lz.eigenvalue, dense.eigenvalue, rtol=1e-8)
    assert (lz.residual <= 1e-10).all() and (lz.steps < 200).all()
    frame = lz.to_frame()
    assert list(frame.columns[:5]) == ["sample", "norm", "eigenvalue", "residual", "steps"]
    assert lz.to_dict()["N"] == 8 and np.asarray(lz).shape == (8,)
    with pytest.warns(RuntimeWarning, match="raise steps"):
        short = per_sample_curvature(model, (X[:2], y[:2]), method="lanczos", steps=3)
    assert (short.residual > 1e-10).all() and (short.steps == 3).all()
    assert (short.norm <= dense.norm[:2] * (1 + 1e-12)).all()  # Ritz values from below


def test_float32_model_is_measured_in_float64():
    m32 = relu_mlp(4, 3, 3, 3, seed=0)  # float32 weights
    m64 = copy.deepcopy(m32).double()
    X, y = _data(4, 4, 3)
    np.testing.assert_allclose(
        per_sample_hessian_norms(m32, (X, y)), per_sample_hessian_norms(m64, (X, y)), rtol=1e-6
    )


# ---------------------------------------------------------------------------- audit formulas
def test_audit_formulas_recomputed_from_the_weights():
    model = relu_mlp(3, 3, 4, 3, seed=2, dtype=torch.float64)
    X, y = _data(10, 3, 3, seed=4)
    audit = hessian_bound_audit(model, (X, y), samples=np.arange(2, 9))
    Ws = [p.detach().numpy() for p in model.parameters()]
    s = np.array([np.linalg.svd(W, compute_uv=False)[0] for W in Ws])
    xn = np.sqrt((X.numpy() ** 2).sum(1))
    M_W, M_x, M, L, h = s.max(), xn.max(), max(np.abs(W).max() for W in Ws), 3, 4
    assert (audit.L, audit.h, audit.widths) == (3, 4, (3, 4, 4, 3))
    np.testing.assert_allclose([audit.M_W, audit.M_x, audit.M], [M_W, M_x, M], rtol=1e-13)

    def t1(mw, mx):  # the paper's closed form (M_W != 1 here)
        return L * SQ2 * mx**2 * mw ** (2 * L) + SQ2 * mw**2 * (mw ** (2 * L) - 1) / (mw**2 - 1)

    xi = xn[2:9]
    np.testing.assert_allclose(audit.theorem1, t1(M_W, M_x), rtol=1e-12)
    np.testing.assert_allclose(audit.theorem1_i, t1(M_W, xi), rtol=1e-12)
    np.testing.assert_allclose(audit.lemma1, t1(h * M, M_x), rtol=1e-12)
    lay = SQ2 * sum((xi**2 * np.prod(s[:p] ** 2) + 1) * np.prod(s[p:] ** 2) for p in range(L))
    np.testing.assert_allclose(audit.theorem1_layers, lay, rtol=1e-12)
    # corrected: (1/2)|x|^2 sum_p prod_{s != p} s^2 + sqrt2 |x| lambda_max(B)
    ggn = 0.5 * xi**2 * (s[1] ** 2 * s[2] ** 2 + s[0] ** 2 * s[2] ** 2 + s[0] ** 2 * s[1] ** 2)
    B = np.array([[0, s[2], s[1]], [s[2], 0, s[0]], [s[1], s[0], 0]])
    np.testing.assert_allclose(audit.corrected_ggn_i, ggn, rtol=1e-12)
    np.testing.assert_allclose(
        audit.corrected_i, ggn + SQ2 * xi * np.linalg.eigvalsh(B)[-1], rtol=1e-12
    )
    np.testing.assert_allclose(
        audit.corrected, 0.5 * L * M_x**2 * M_W**4 + SQ2 * 2 * M_x * M_W, rtol=1e-12
    )
    M_frob = M * 4.0  # largest sqrt(d_{p-1} d_p) over 3x4, 4x4, 4x3
    np.testing.assert_allclose(
        audit.corrected_lemma1, 0.5 * L * M_x**2 * M_frob**4 + SQ2 * 2 * M_x * M_frob, rtol=1e-12
    )
    H_ref, G_ref = ref_norms(model, X[2:9], y[2:9])
    np.testing.assert_allclose(audit.norm_H, H_ref, rtol=1e-10)
    np.testing.assert_allclose(audit.norm_G, G_ref, rtol=1e-10)
    np.testing.assert_array_equal(audit.holds_theorem1, audit.theorem1 >= (1 - 1e-8) * H_ref)
    np.testing.assert_array_equal(audit.holds_corrected_ggn_i, ggn >= (1 - 1e-8) * G_ref)
    frame = audit.to_frame()
    assert len(frame) == 7 * 11 and set(frame["target"]) == {"H", "G"}
    d = audit.to_dict()
    assert d["theorem1_H_holds_fraction"] == float(np.mean(audit.holds_theorem1))
    assert d["n_samples"] == 7 and d["L"] == 3


def test_theorem1_at_M_W_equal_one_is_the_limit():
    """The closed form is 0/0 at M_W = 1; the code evaluates its limit L."""
    for L in (1, 2, 5):
        assert paper_theorem1(1.0, 2.0, L) == pytest.approx(L * SQ2 * 4 + SQ2 * L, rel=1e-15)
        near = 1 + 1e-6
        closed = L * SQ2 * 4 * near ** (2 * L) + SQ2 * near**2 * (near ** (2 * L) - 1) / (
            near**2 - 1
        )
        assert paper_theorem1(near, 2.0, L) == pytest.approx(closed, rel=1e-8)
    # a net whose layers all have spectral norm exactly 1
    model = relu_mlp(2, 2, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        model.hidden1.weight.copy_(torch.eye(2))
        model.output.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    audit = hessian_bound_audit(model, (torch.ones(1, 2, dtype=torch.float64), torch.tensor([0])))
    assert audit.M_W == 1.0 and np.isfinite(audit.theorem1).all()
    assert audit.theorem1[0] == pytest.approx(2 * SQ2 * 2 + 2 * SQ2)


# ---------------------------------------------------------------------------- counterexamples
def _sigmoid(t):
    return 1 / (1 + math.exp(-t))


def test_counterexample_L1_two_parameters():
    """Logistic regression z = W x, W = (0.25, 0)^T, x = 1, y = 0 (P = 2, one sample):
    H = A x^2 with A = p1 p2 [[1, -1], [-1, 1]], so ||H|| = 2 p1 p2 = 0.4922 while
    Theorem 1 gives sqrt2 M_W^2 (M_x^2 + 1) = 0.1768."""
    model = relu_mlp(1, 2, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        model.output.weight.copy_(torch.tensor([[0.25], [0.0]]))
    data = (torch.ones(1, 1, dtype=torch.float64), torch.tensor([0]))
    audit = hessian_bound_audit(model, data)
    p1 = _sigmoid(0.25)
    exact = 2 * p1 * (1 - p1)
    assert audit.norm_H[0] == pytest.approx(exact, rel=1e-13)
    assert audit.theorem1[0] == pytest.approx(SQ2 * 0.0625 * 2, rel=1e-13)
    assert not audit.holds_theorem1[0] and not audit.holds_theorem1_G[0]
    assert audit.holds_corrected[0] and audit.corrected[0] == pytest.approx(0.5)
    assert audit.h is None and np.isnan(audit.lemma1).all()  # Lemma 1 needs a hidden layer
    json.dumps(audit.to_dict(), allow_nan=False)
    ggn_only = hessian_bound_audit(model, data, kind="ggn")
    assert {t for _, t in ggn_only.checks()} == {"G"} and np.isnan(ggn_only.norm_H).all()
    assert not ggn_only.holds_theorem1_G[0]


def test_counterexample_L2_residual_part():
    """z = W2 relu(W1 x), W1 = [[a]], W2 = [[b1], [b2]], x > 0 (P = 3): with u = a x,
    v = ((b1 - b2) x, u, -u) and r = p - e_y, H = p1 p2 v v^T + x [[0, r1, r2], [r1, 0, 0],
    [r2, 0, 0]] in closed form. At a = b1 = 0.1, b2 = -0.1, x = 1 the residual part makes
    ||H|| ~ 0.70 while Theorem 1 and Lemma 1 give 0.030 and 0.015."""
    a, b1, b2, x = 0.1, 0.1, -0.1, 1.0
    model = relu_mlp(1, 2, 1, 2, dtype=torch.float64)
    with torch.no_grad():
        model.hidden1.weight.copy_(torch.tensor([[a]], dtype=torch.float64))
        model.output.weight.copy_(torch.tensor([[b1], [b2]], dtype=torch.float64))
    audit = hessian_bound_audit(
        model, (torch.tensor([[x]], dtype=torch.float64), torch.tensor([0]))
    )
    u = a * x
    p1 = _sigmoid((b1 - b2) * u)
    p2 = 1 - p1
    r1, r2 = p1 - 1, p2
    v = np.array([(b1 - b2) * x, u, -u])
    H = p1 * p2 * np.outer(v, v) + x * np.array([[0, r1, r2], [r1, 0, 0], [r2, 0, 0]])
    exact = np.abs(np.linalg.eigvalsh(H)).max()
    assert audit.norm_H[0] == pytest.approx(exact, rel=1e-12)
    assert audit.norm_G[0] == pytest.approx(p1 * p2 * v @ v, rel=1e-12)
    MW2 = b1**2 + b2**2  # ||W2||^2 = 0.02 > a^2
    assert audit.theorem1[0] == pytest.approx(2 * SQ2 * MW2**2 + SQ2 * (MW2 + MW2**2))
    assert audit.lemma1[0] == pytest.approx(2 * SQ2 * 0.1**4 + SQ2 * (0.1**2 + 0.1**4))
    assert exact > 20 * audit.theorem1[0]
    assert not (audit.holds_theorem1[0] or audit.holds_lemma1[0] or audit.holds_theorem1_i[0])
    assert audit.holds_theorem1_G[0]  # the GN part alone is still under the bound here
    assert audit.holds_corrected[0] and audit.holds_corrected_i[0]


def test_corrected_ggn_constant_is_attained():
    """L = 1, W = 0, K = 2: p = (1/2, 1/2), ||A|| = 1/2, so ||H_i|| = ||x||^2 / 2 exactly."""
    model = relu_mlp(3, 2, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        model.output.weight.zero_()
    X = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    audit = hessian_bound_audit(model, (X, torch.tensor([1])))
    assert audit.norm_H[0] == pytest.approx(0.5 * 5.25, rel=1e-13)
    assert audit.corrected_i[0] == pytest.approx(audit.norm_H[0], rel=1e-13)
    assert audit.theorem1[0] == 0.0 and not audit.holds_theorem1[0]


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**16),
    L=st.integers(1, 4),
    h=st.integers(1, 5),
    d=st.integers(1, 4),
    C=st.integers(2, 4),
    log_scale=st.floats(-2.0, 1.0),
    x_scale=st.sampled_from([0.1, 1.0, 10.0]),
)
def test_corrected_bounds_hold_on_random_nets(seed, L, h, d, C, log_scale, x_scale):
    model = relu_mlp(d, C, h, L, seed=seed, init_scale=10.0**log_scale, dtype=torch.float64)
    X, y = _data(4, d, C, seed=seed)
    audit = hessian_bound_audit(model, (x_scale * X, y), method="dense")
    assert audit.holds_corrected.all() and audit.holds_corrected_i.all()
    assert audit.holds_corrected_lemma1.all() and audit.holds_corrected_ggn_i.all()
    # the uniform form dominates the per-layer form
    assert (audit.corrected >= audit.corrected_i * (1 - 1e-12)).all()


@settings(max_examples=20)
@given(
    seed=st.integers(0, 2**16),
    L=st.integers(1, 4),
    h=st.integers(1, 4),
    M_W=st.floats(1.0, 3.0),
    x_scale=st.sampled_from([0.01, 1.0, 10.0]),
)
def test_theorem1_holds_when_M_W_is_at_least_one(seed, L, h, M_W, x_scale):
    """For M_W >= 1 Theorem 1's right side dominates the corrected bound (docs 9.3), so
    the statement is true there although its proof is not."""
    model = relu_mlp(3, 3, h, L, seed=seed, dtype=torch.float64)
    Ws = check_relu_mlp(model)
    top = max(float(torch.linalg.matrix_norm(W.detach(), 2)) for W in Ws)
    with torch.no_grad():
        for W in Ws:
            W.mul_(M_W / top)
    X, y = _data(3, 3, 3, seed=seed)
    audit = hessian_bound_audit(model, (x_scale * X, y), method="dense")
    assert audit.M_W == pytest.approx(M_W, rel=1e-12)
    assert (audit.theorem1 >= audit.corrected).all() and audit.holds_theorem1.all()


def test_corrected_bound_formulas_agree_at_equal_layer_norms():
    for L in (1, 2, 4):
        ggn, full = corrected_layer_bound([0.7] * L, 3.0)
        assert full == pytest.approx(corrected_bound(0.7, 3.0, L), rel=1e-12)


# ---------------------------------------------------------------------------- training
def test_train_mlp_reproducible_decreasing_and_paper_architecture():
    data = gaussian(3, 10, 300, seed=1)
    m1 = train_mlp(data, 8, 3, epochs=4, seed=7, lr=1e-2)
    m2 = train_mlp(data, 8, 3, epochs=4, seed=7, lr=1e-2)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)
    log = m1.train_log_
    assert list(log["epoch"]) == [0, 1, 2, 3, 4] and log["step"].iloc[-1] == 4 * 5
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]
    # layers = L weight matrices = the authors' num_layers + 2 (here num_layers = 1)
    Ws = check_relu_mlp(m1)
    assert [tuple(W.shape) for W in Ws] == [(8, 10), (8, 8), (3, 8)]
    assert all(lin.bias is None for lin in m1 if isinstance(lin, nn.Linear))
    assert Ws[0].dtype == torch.float32
    m3 = train_mlp(data, 8, 3, epochs=0, seed=8)
    assert not torch.equal(check_relu_mlp(m3)[0], check_relu_mlp(m1)[0])
    assert len(m3.train_log_) == 1


class _AuthorsStyleNet(nn.Module):
    """Nested ModuleList of Sequentials, as the authors' Net (written here, not copied)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU()), nn.Linear(4, 2, bias=False)]
        )

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


class _Rescaled(_AuthorsStyleNet):
    def forward(self, x):  # the right layers, but not z = W_L relu(... W_1 x)
        return 2 * super().forward(x)


def test_check_relu_mlp_accepts_nested_and_refuses_others():
    assert [tuple(W.shape) for W in check_relu_mlp(_AuthorsStyleNet())] == [(4, 3), (2, 4)]
    cases = {
        "bias": nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False)),
        "Tanh": nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False)),
        "Conv1d": nn.Sequential(nn.Conv1d(1, 1, 3, bias=False), nn.ReLU()),
        "without a ReLU": nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False)),
        "last module is a ReLU": nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU()),
    }
    for what, model in cases.items():
        with pytest.raises(ValueError, match=what) as err:
            check_relu_mlp(model)
        assert "Theorem 1" in str(err.value)
    with pytest.raises(ValueError, match="forward pass"):
        check_relu_mlp(_Rescaled())
    with pytest.raises(TypeError, match="nn.Module"):
        check_relu_mlp("mlp")


# ---------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_computing():
    model = relu_mlp(4, 3, 3, 2, dtype=torch.float64)
    X, y = _data(5, 4, 3)
    biased = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3))
    with pytest.raises(ValueError, match="do not apply"):
        hessian_bound_audit(biased, (X, y))
    with pytest.raises(ValueError, match="do not apply"):
        per_sample_hessian_norms(biased, (X, y))
    Xn = X.clone()
    Xn[2, 1] = math.nan
    with pytest.raises(ValueError, match="finite"):
        per_sample_hessian_norms(model, (Xn, y))
    with pytest.raises(ValueError, match="finite"):
        hessian_bound_audit(model, (Xn, y))
    with pytest.raises(ValueError, match="empty"):
        per_sample_hessian_norms(model, (X[:0], y[:0]))
    with pytest.raises(ValueError, match="empty"):
        hessian_bound_audit(model, (X[:0], y[:0]))
    with pytest.raises(ValueError, match="labels"):
        per_sample_hessian_norms(model, (X, y + 3))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        per_sample_hessian_norms(model, (X[:, :3], y))
    with pytest.raises(ValueError, match="cross-entropy"):
        hessian_bound_audit(model, (X, y), loss_fn="mse")
    with pytest.raises(ValueError, match="label smoothing"):
        hessian_bound_audit(model, (X, y), loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1))
    with pytest.raises(ValueError, match="kind"):
        per_sample_curvature(model, (X, y), kind="fisher")
    with pytest.raises(ValueError, match="kernel"):
        per_sample_curvature(model, (X, y), method="kernel")
    with pytest.raises(ValueError, match="samples"):
        hessian_bound_audit(model, (X, y), samples=9)
    with pytest.raises(ValueError, match="steps"):
        per_sample_curvature(model, (X, y), steps=0)
