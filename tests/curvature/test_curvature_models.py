"""Spectral diagnostics on curvature operators of real models, against dense references."""

import numpy as np
import pytest

from rmthess.curvature import (
    condition_number,
    curvature_operator,
    dense_hessian,
    hessian_trace,
    mlp,
    spectral_density,
    top_eigenvalues,
    train,
)
from rmthess.data import digits, gaussian


@pytest.fixture(scope="module")
def trained():
    ds = digits().subset(150, seed=0)
    net = mlp(ds.d, 10, (6,), seed=0)
    data = ds.tensors()
    train(net, "ce", data, steps=60, lr=1e-2)
    return net, data


# SA of the PSD GGN is a cluster of round-off zeros where Lanczos does not converge: not tested
@pytest.mark.parametrize("kind,which", [("hessian", "LA"), ("ggn", "LA"), ("hessian", "SA")])
def test_top_eigenvalues_of_the_operator_match_eigvalsh(trained, kind, which):
    net, data = trained
    op = curvature_operator(net, "ce", data, kind)
    ev = np.linalg.eigvalsh(dense_hessian(net, "ce", data, kind))
    ref = ev[::-1][:6] if which == "LA" else ev[:6]
    top = top_eigenvalues(op, 6, which=which, seed=1)
    assert np.abs(top.eigenvalues - ref).max() <= 1e-8 * np.abs(ref).max()
    assert top.n_matvecs > 0 and top.method == "lanczos"  # tol=1e-8: stopped by residuals


def test_trace_standard_errors_are_honest_on_the_operator(trained):
    """z = (estimate - tr H) / se over independent seeds: mean ~ 0, std ~ 1."""
    net, data = trained
    op = curvature_operator(net, "ce", data)
    exact = np.trace(dense_hessian(net, "ce", data))
    z = []
    for seed in range(60):
        t = hessian_trace(op, matvecs=30, seed=seed)
        z.append((t.trace - exact) / t.trace_se)
    z = np.array(z)
    # 60 draws: the mean of z has SE 1/sqrt(60) = 0.13; the sample std has SE ~0.09
    assert abs(z.mean()) < 4 / np.sqrt(60)
    assert 0.65 < z.std() < 1.35
    assert np.abs(z).max() < 5


def test_condition_number_of_the_ggn_and_refusal_for_the_hessian(trained):
    net, data = trained
    G = dense_hessian(net, "ce", data, "ggn")
    c = condition_number(curvature_operator(net, "ce", data, "ggn"))
    ev = np.linalg.eigvalsh(G)
    rng = ev[ev > 1e-6 * ev.max()]
    assert c.condition == pytest.approx(rng.max() / rng.min(), rel=1e-6)
    with pytest.raises(ValueError, match="indefinite|not meaningful"):
        condition_number(curvature_operator(net, "ce", data), psd=False)


class _DiagBlock:
    """The (k, k) block of an operator as a LinearOperator on the block's coordinates."""

    def __init__(self, op, idx):
        from scipy.sparse.linalg import LinearOperator

        self.op, self.idx = op, idx
        self.lo = LinearOperator((len(idx), len(idx)), matvec=self._mv, matmat=self._mm)

    def _mm(self, V):
        Z = np.zeros((self.op.shape[0], V.shape[1]))
        Z[self.idx] = V
        return (self.op @ Z)[self.idx]

    def _mv(self, v):
        return self._mm(v.reshape(-1, 1)).ravel()


def test_slq_density_of_a_linear_ce_diagonal_block_matches_its_gmp_law():
    """SLQ on one class block of the linear model (d=200, N=400) vs the limiting GMP law."""
    from rmthess.report.sections.spectra import ks_statistic
    from rmthess.theory.block_laws import limiting_law

    C, d, N = 5, 200, 400
    ds = gaussian(C, d, N, seed=3)  # x_i ~ N(0, I_d) (Assumption 1)
    net = mlp(d, C, (), bias=False, seed=4)  # LeCun: logits W x ~ N(0, I_C) (Assumption 2)
    op = curvature_operator(net, "ce", ds)
    block = _DiagBlock(op, np.arange(0, d))  # row 0 of W: the class-0 block
    law = limiting_law("linear-ce", "diag", C, d / N)
    sd = spectral_density(block.lo, probes=8, steps=60, seed=0)
    grid = np.linspace(0, law.support()[-1][1] * 1.2, 400)
    ks_slq = np.abs(sd.cdf(grid) - law.cdf(grid)).max()
    dense = np.linalg.eigvalsh(block._mm(np.eye(d)))
    ks_dense = ks_statistic(dense, law)
    assert ks_dense < 0.05  # finite d = 200 (measured 0.023)
    assert ks_slq < ks_dense + 0.02  # SLQ (8 probes, 60 steps) adds little (measured 0.027)


def test_train_epoch_schedule_is_the_documented_loop():
    """``train(epochs=E)``: E passes, each in the order of one randperm cut into batches,
    logged at the start and after each epoch; checked against the loop written out here."""
    import copy
    import math

    import torch
    from torch import nn

    from rmthess.curvature import train

    torch.manual_seed(3)
    X = torch.randn(23, 5, dtype=torch.float64)
    y = torch.arange(23) % 3
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double()
    ref = copy.deepcopy(net)
    log = train(net, nn.CrossEntropyLoss(), (X, y), epochs=3, batch_size=5, lr=0.05, seed=7)

    opt = torch.optim.Adam(ref.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(7)
    loss_fn = nn.CrossEntropyLoss()
    with torch.no_grad():
        losses = [float(loss_fn(ref(X), y))]
    for _ in range(3):
        order = torch.randperm(23, generator=gen)
        for b in range(math.ceil(23 / 5)):
            idx = order[b * 5 : (b + 1) * 5]
            opt.zero_grad()
            loss_fn(ref(X[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            losses.append(float(loss_fn(ref(X), y)))
    assert list(log.columns) == ["epoch", "step", "loss", "accuracy"]
    assert log["epoch"].tolist() == [0, 1, 2, 3] and log["step"].tolist() == [0, 5, 10, 15]
    assert log["loss"].tolist() == losses
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
