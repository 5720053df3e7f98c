"""Reliability of rmthess.curvature (issue 17): exact batch weighting of weighted losses,
refusal of stochastic layers, and one-line errors before any work.

References are independent of rmthess: ``torch.func.hessian`` of the full-batch loss written
by hand with ``torch.nn.functional`` (all data at once), and the GGN ``J^T A J`` from the
Jacobian of all outputs and the Hessian of that loss in the outputs.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian, jacrev
from torch.utils.data import DataLoader, TensorDataset

from rmthess.curvature import curvature_operator, dense_hessian, mlp

N, D, C = 23, 4, 3

# class weights / ignored class / label smoothing: every combination torch allows
VARIANTS = {
    "weight": dict(weight=[0.2, 1.0, 3.0]),
    "ignore": dict(ignore_index=1),
    "weight+ignore": dict(weight=[0.5, 2.0, 1.5], ignore_index=2),
    "weight+smoothing": dict(weight=[0.2, 1.0, 3.0], label_smoothing=0.1),
    "ignore+smoothing": dict(ignore_index=0, label_smoothing=0.2),
}


def _problem(dtype):
    model = mlp(D, C, (5,), activation="tanh", seed=4, dtype=dtype)
    g = torch.Generator().manual_seed(11)
    X = torch.randn(N, D, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, C, (N,), generator=g)
    return model, X, y


def _kwargs(variant, dtype):
    kw = dict(VARIANTS[variant])
    if "weight" in kw:
        kw["weight"] = torch.tensor(kw["weight"], dtype=dtype)
    return kw


def _reference(model, X, y, kw, reduction):
    """(H, G) of the full-batch loss by torch.func on float64 copies (hand-written loss)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().double().flatten() for _, p in model.named_parameters()])
    kw = {k: (v.double() if torch.is_tensor(v) else v) for k, v in kw.items()}
    Xd = X.double()
    net = mlp(D, C, (5,), activation="tanh", seed=4, dtype=torch.float64)

    def outputs(t):
        ps = {n: a.reshape(s) for n, a, s in zip(names, t.split(sizes), shapes, strict=True)}
        return functional_call(net, ps, (Xd,))

    def loss_of_outputs(z):
        return F.cross_entropy(z, y, reduction=reduction, **kw)

    H = hessian(lambda t: loss_of_outputs(outputs(t)))(theta)
    z = outputs(theta).detach()
    J = jacrev(outputs)(theta).reshape(N * C, -1)
    A = hessian(lambda zf: loss_of_outputs(zf.reshape(N, C)))(z.reshape(-1))
    G = J.T @ A @ J
    return H.numpy(), G.numpy()


def _splits(X, y):
    return {
        "one": [(X, y)],
        "uneven": [(X[:7], y[:7]), (X[7:9], y[7:9]), (X[9:], y[9:])],
        "loader": DataLoader(TensorDataset(X, y), batch_size=5),  # last batch has 3
    }


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _grid():
    """float64: every variant and reduction; float32: one case here, the rest marked slow."""
    for variant in sorted(VARIANTS):
        for reduction in ("mean", "sum"):
            yield variant, reduction, torch.float64
            fast = variant == "weight+ignore" and reduction == "mean"
            marks = () if fast else (pytest.mark.slow,)
            yield pytest.param(variant, reduction, torch.float32, marks=marks)


@pytest.mark.parametrize("variant, reduction, dtype", list(_grid()))
def test_weighted_cross_entropy_matches_the_full_batch_hessian(variant, reduction, dtype):
    model, X, y = _problem(dtype)
    y = y.clone()
    y[:2] = 0  # every class occurs, the ignored one included
    y[2:4] = 1
    y[4:6] = 2
    kw = _kwargs(variant, dtype)
    H, G = _reference(model, X, y, kw, reduction)
    ref = {"hessian": H, "ggn": G, "residual": H - G}
    # float32: products in float32 (eps 1.2e-7) accumulated over ~50 terms per entry
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    loss = nn.CrossEntropyLoss(reduction=reduction, **kw)
    P = H.shape[0]
    for kind in ("hessian", "ggn", "residual"):
        for split, data in _splits(X, y).items():
            op = curvature_operator(model, loss, data, kind)
            M = op.to_dense()
            assert _rel(M, ref[kind]) < tol, (kind, split, _rel(M, ref[kind]))
        D_ = dense_hessian(model, loss, _splits(X, y)["uneven"], kind)
        assert D_.shape == (P, P)
        assert _rel(D_, ref[kind]) < tol, (kind, "dense", _rel(D_, ref[kind]))


def test_weighted_nll_loss_matches_the_full_batch_hessian():
    """NLLLoss has the same weighted mean: a log-softmax model, batches of a DataLoader."""
    model, X, y = _problem(torch.float64)
    net = nn.Sequential(model, nn.LogSoftmax(dim=1))
    w = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    H, _ = _reference(model, X, y, dict(weight=w, ignore_index=2), "mean")
    loss = nn.NLLLoss(weight=w, ignore_index=2)
    data = DataLoader(TensorDataset(X, y), batch_size=4)
    assert _rel(curvature_operator(net, loss, data).to_dense(), H) < 1e-10
    assert _rel(dense_hessian(net, loss, data), H) < 1e-10
    # (the GGN of an NLL loss with class weights fails inside torch.func's vmap of
    # nll_loss, in curvlinops as before this change; its output Hessian is 0 anyway)


def test_the_users_loss_is_left_as_it_was():
    model, X, y = _problem(torch.float64)
    w = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    loss = nn.CrossEntropyLoss(weight=w)
    op = curvature_operator(model, loss, [(X[:10], y[:10]), (X[10:], y[10:])])
    assert loss.reduction == "mean" and torch.equal(loss.weight, w)
    assert op.problem.loss_fn is loss and op.problem.batch_loss_fn.reduction == "sum"
    plain = curvature_operator(model, nn.CrossEntropyLoss(), (X, y))
    assert plain.problem.batch_loss_fn is plain.problem.loss_fn  # unchanged route


def test_all_targets_ignored_is_refused():
    model, X, _ = _problem(torch.float64)
    y = torch.ones(N, dtype=torch.long)
    with pytest.raises(ValueError, match="0/0"):
        curvature_operator(model, nn.CrossEntropyLoss(ignore_index=1), (X, y))


# --------------------------------------------------------------------- stochastic layers
STOCHASTIC = {
    "Dropout": lambda: nn.Dropout(0.1),
    "Dropout1d": lambda: nn.Dropout1d(0.1),  # (channel dropouts: only the class matters here)
    "Dropout2d": lambda: nn.Dropout2d(0.1),
    "Dropout3d": lambda: nn.Dropout3d(0.1),
    "AlphaDropout": lambda: nn.AlphaDropout(0.1),
    "FeatureAlphaDropout": lambda: nn.FeatureAlphaDropout(0.1),
    "RReLU": lambda: nn.RReLU(),
    "BatchNorm1d": lambda: nn.BatchNorm1d(5, dtype=torch.float64),
}


@pytest.mark.filterwarnings("ignore:dropout[23]d. Received a 2-D input:UserWarning")
@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_stochastic_layers_in_training_mode_are_refused(name):
    layer = STOCHASTIC[name]()
    net = nn.Sequential(nn.Linear(D, 5, dtype=torch.float64), layer)
    net.append(nn.Linear(5, C, dtype=torch.float64))
    _, X, y = _problem(torch.float64)
    with pytest.raises(ValueError, match=rf"'1' \({name}\) is in training mode.*model\.eval"):
        curvature_operator(net, "ce", (X, y))
    net.eval()  # deterministic in eval mode: accepted
    if name == "RReLU":  # except that torch.func cannot batch it: a clear error instead
        with pytest.raises(ValueError, match=r"LeakyReLU\(0\.229167\)"):
            curvature_operator(net, "ce", (X, y))
        return
    M = curvature_operator(net, "ce", (X, y)).to_dense()
    assert np.isfinite(M).all()


def test_dropout_inside_attention_and_rnn_is_refused_in_training_mode():
    X = torch.randn(4, 3, 6, dtype=torch.float64)

    class Att(nn.Module):
        def __init__(self, dropout):
            super().__init__()
            self.att = nn.MultiheadAttention(6, 2, dropout=dropout, batch_first=True)
            self.att.double()

        def forward(self, x):
            return self.att(x, x, x)[0].mean(1)

    y = torch.randint(0, 6, (4,))
    with pytest.raises(ValueError, match="MultiheadAttention.*training mode"):
        curvature_operator(Att(0.2), "ce", (X, y))
    curvature_operator(Att(0.0), "ce", (X, y))  # no dropout: deterministic
    lstm = nn.LSTM(6, 4, num_layers=2, dropout=0.3).double()
    with pytest.raises(ValueError, match="LSTM.*training mode"):
        curvature_operator(lstm, "mse", (X, torch.zeros(4, 3, 4, dtype=torch.float64)))


def test_batchnorm_without_running_stats_is_refused_in_eval_mode():
    net = nn.Sequential(
        nn.Linear(D, 5, dtype=torch.float64),
        nn.BatchNorm1d(5, track_running_stats=False, dtype=torch.float64),
        nn.Linear(5, C, dtype=torch.float64),
    ).eval()
    _, X, y = _problem(torch.float64)
    with pytest.raises(ValueError, match="'1' .*no running statistics"):
        curvature_operator(net, "ce", (X, y))


# --------------------------------------------------------------------- one-line errors
@pytest.mark.parametrize(
    "data",
    [
        (torch.zeros(0, D, dtype=torch.float64), torch.zeros(0, dtype=torch.long)),
        [],
    ],
)
def test_empty_data_is_refused_with_one_line(data):
    model, _, _ = _problem(torch.float64)
    with pytest.raises(ValueError, match="data is empty"):
        curvature_operator(model, "ce", data)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_are_refused(dtype):
    model, X, y = _problem(torch.float64)
    with pytest.raises(TypeError, match="float32 or float64.*model.double"):
        curvature_operator(model.to(dtype), "ce", (X.to(dtype), y))


# --------------------------------------------------------------------- mlp
@pytest.mark.parametrize("bias", ["no", 0, None])
def test_mlp_bias_must_be_a_bool(bias):
    with pytest.raises(TypeError, match="bias must be True or False"):
        mlp(3, 2, (4,), bias=bias)


def test_mlp_seed_range_and_large_seeds():
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*128\)"):
        mlp(3, 2, seed=2**130)
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        mlp(3, 2, seed=1.5)
    a, b = mlp(3, 2, seed=2**70), mlp(3, 2, seed=2**70 + 1)  # accepted, distinct streams
    assert not torch.equal(a.output.weight, b.output.weight)
    # seeds below 2**63 seed torch directly: the weights of earlier runs are unchanged
    g = torch.Generator().manual_seed(5)
    w = torch.randn(16, 3, generator=g, dtype=torch.float64) / 3**0.5
    assert torch.equal(mlp(3, 2, seed=5).hidden1.weight, w)


def test_mlp_init_vocabulary_is_the_packages():
    from rmthess.inits import INITS

    assert "torch-default" in INITS
    a = mlp(3, 2, (4,), init="torch-default", seed=1)
    bound = 1 / 3**0.5  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert a.hidden1.weight.abs().max() <= bound and a.hidden1.bias.abs().max() <= bound
    with pytest.warns(DeprecationWarning, match="say init='torch-default'"):
        b = mlp(3, 2, (4,), init="pytorch", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(ValueError, match="allowed: lecun, torch-default"):
        mlp(3, 2, init="kaiming")


# --------------------------------------------------------------------- refuse before working
def _no_products(monkeypatch):
    """Any Hessian-vector product fails the test: the refusal must come first."""
    from rmthess.curvature.operators import CurvatureOperator

    def boom(self, V):
        raise AssertionError("a product was computed before the refusal")

    monkeypatch.setattr(CurvatureOperator, "matmat_torch", boom)


def _small_op():
    model, X, y = _problem(torch.float64)
    return curvature_operator(model, "ce", (X, y))


def test_block_norms_with_huge_probes_is_refused_first(monkeypatch):
    import rmthess._checks
    from rmthess.curvature import block_norms

    op = _small_op()
    _no_products(monkeypatch)
    with pytest.raises(ValueError, match=r"probes must be an integer <= 1000000, got 1000000000"):
        block_norms(op=op, probes=10**9)
    # within the cap, the memory of the map (8 L^2 probes bytes) is checked against the RAM:
    # 43 one-entry blocks x 10**6 probes = 14.8 GB against a machine of 8 GiB
    monkeypatch.setattr(rmthess._checks, "physical_memory", lambda: 8 * 2**30)
    singles = {f"e{i}": [i] for i in range(op.shape[0])}
    with pytest.raises(ValueError, match=r"block_norms\(probes=1000000\) of 43 blocks.*GiB"):
        block_norms(op=op, blocks=singles, probes=10**6, exact=False)


def test_spectral_density_with_huge_grid_is_refused_first(monkeypatch):
    from rmthess.curvature import spectral_density

    op = _small_op()
    _no_products(monkeypatch)
    with pytest.raises(ValueError, match=r"1000000000 grid points \(n_grid\).*lower n_grid"):
        spectral_density(op, n_grid=10**9)


def test_trace_rtol_range_and_no_overflow():
    from rmthess.curvature import hessian_trace

    A = np.diag(np.linspace(-1.0, 3.0, 50))
    with pytest.raises(ValueError, match=r"rtol must be a finite number >= 1e-12, got 1e-300"):
        hessian_trace(A, matvecs=12, rtol=1e-300)
    # the smallest rtol runs to its budget instead of overflowing when sizing a batch
    t = hessian_trace(A, matvecs=12, rtol=1e-12, max_matvecs=40)
    assert t.n_matvecs == 40 and t.target_reached is False


def test_top_eigenvalues_of_the_zero_operator_are_zero():
    from scipy.sparse.linalg import aslinearoperator

    from rmthess.curvature import top_eigenvalues

    for tol, method in ((1e-8, "lanczos"), (0, "arpack")):
        r = top_eigenvalues(aslinearoperator(np.zeros((60, 60))), 4, return_vectors=True, tol=tol)
        assert r.method == method
        assert np.array_equal(r.eigenvalues, np.zeros(4))
        assert np.array_equal(r.residuals, np.zeros(4))
        assert np.allclose(r.vectors.T @ r.vectors, np.eye(4))


def test_probe_vocabulary_is_one_word():
    from rmthess.curvature import DISTRIBUTIONS, block_norms, hessian_trace
    from rmthess.curvature.trace import DISTRIBUTIONS as TRACE_DISTRIBUTIONS

    assert DISTRIBUTIONS == TRACE_DISTRIBUTIONS == ("rademacher", "normal")
    A = np.diag(np.linspace(0.0, 1.0, 40))
    t = hessian_trace(A, matvecs=12, distribution="normal", seed=3)
    assert t.distribution == "normal"
    with pytest.warns(DeprecationWarning, match="say 'normal'"):
        old = hessian_trace(A, matvecs=12, distribution="gaussian", seed=3)
    assert old.trace == t.trace and old.distribution == "normal"
    bm = block_norms(op=_small_op(), probes=3, exact=False, distribution="normal")
    assert bm.distribution == "normal"


def test_seeds_keep_their_streams():
    """Seeds go through rmthess._random with the numbers of before: an int seed is the stream
    of numpy.random.default_rng(seed); column block c of a block map seeds torch with
    SeedSequence(entropy=seed, spawn_key=(c,)).generate_state(1, uint64)[0] >> 1."""
    from rmthess.curvature import hessian_trace
    from rmthess.curvature.blocks import _block_seed

    ss = np.random.SeedSequence(entropy=7, spawn_key=(2,))
    assert _block_seed(7, 2) == int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    A = np.diag(np.arange(1.0, 41.0))
    t = hessian_trace(A, matvecs=10, method="hutchinson", seed=5)
    G = np.random.default_rng(5).integers(0, 2, size=(40, 10)).astype(float) * 2 - 1
    assert np.allclose(t.trace_trials, np.einsum("ij,ij->j", G, A @ G))
    with pytest.raises(ValueError, match="seed"):
        hessian_trace(A, seed=-1)


# --------------------------------------------------------------------- progress and CLI
def test_train_shows_a_bar_when_asked_and_none_off_a_terminal(capsys):
    from rmthess.curvature import train

    model, X, y = _problem(torch.float64)
    train(model, "ce", (X, y), steps=3, progress=True)
    assert "train" in capsys.readouterr().err
    train(model, "ce", (X, y), steps=3)  # progress=None: stderr is not a terminal here
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        train(model, "ce", (X, y), steps=1, progress="yes")


def test_top_eigenvalues_progress_counts_products(capsys):
    from rmthess.curvature import top_eigenvalues

    op = _small_op()
    top_eigenvalues(op, 3, progress=True)
    assert "top eigenvalues" in capsys.readouterr().err


def test_cli_help_and_refusals_before_work(capsys):
    from rmthess.cli import main

    assert main(["curvature", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for flag, text in [("--train-steps", "default 0"), ("--lr", "default 0.01")]:
        assert flag in out and text in out
    assert "--no-progress" in out and "probe (default 0)" in out
    for args, match in [
        (["--data", "gaussian", "--C", "1e9"], "C must be an integer <= 100000"),  # data's bound
        (["--data", "gaussian", "--C", "1000", "--hidden", "1e7"], "P=10650001000 parameters"),
        (["--data", "gaussian", "--d", "20000", "--hidden", "20000"], "lower --hidden"),
        (["--probes", "1"], "probes must be an integer >= 2"),
        (["--probes", "1e7"], "probes must be an integer <= 1000000"),
    ]:
        assert main(["curvature", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert match in err[-1], err


def test_condition_number_rtol_floor_and_mlp_sizes():
    """rtol below 10 P eps (the dense solver's round-off) and nets past half the RAM are
    refused from the arguments, naming the parameter; the floor itself is accepted."""
    from rmthess.curvature import condition_number

    A = np.diag([4.0, 2.0, 1.0, 0.0])
    floor = 10 * 4 * np.finfo(float).eps
    assert condition_number(A, rtol=floor).condition == pytest.approx(4.0)
    with pytest.raises(ValueError, match="rtol"):
        condition_number(A, rtol=floor / 2)
    for kw in (dict(d=10**12), dict(hidden=10**12), dict(C=10**12)):
        with pytest.raises(ValueError, match="lower d, C or hidden"):
            mlp(**{"d": 3, "C": 2, **kw})
    with pytest.raises(ValueError, match="C must be an integer >= 2"):
        mlp(3, 1)
    with pytest.raises(ValueError, match="hidden must be an integer"):
        mlp(3, 2, 2.5)
    with pytest.raises(TypeError, match="hidden must be an int or a sequence"):
        mlp(3, 2, None)
    with pytest.raises(ValueError, match="device"):
        mlp(3, 2, device="tpu9")
