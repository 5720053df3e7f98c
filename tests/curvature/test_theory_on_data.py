"""``rmthess.curvature.theory_on_data`` and ``rmthess curvature --theory`` at small sizes.

The measured side is checked against an independent numpy computation (the Gram route of
validation/theory_on_data_linear.py: ``H_kl = (1/N) sum_i A_i[k, l] x_i x_i^T`` with
``A = diag(p) - p p^T``), the theory levels against direct calls of rmthess.theory.
"""

from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest

from rmthess.cli import main
from rmthess.curvature import TheoryOnData, mlp, theory_on_data
from rmthess.curvature.on_data import LEVELS, network_seed
from rmthess.data import digits

NETS = 3


@pytest.fixture(scope="module")
def small():
    return digits().subset(120, seed=0)  # 12 per class, d = 64, C = 10


def _gram_blocks(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(C, C) array of ``(1/d)||H_kl||_F^2``, each block formed explicitly (d x d)."""
    N, d = X.shape
    C = W.shape[0]
    z = X @ W.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    A = np.einsum("ik,kl->ikl", p, np.eye(C)) - p[:, :, None] * p[:, None, :]
    F = np.empty((C, C))
    for k in range(C):
        for l in range(C):
            H = np.einsum("i,ia,ib->ab", A[:, k, l], X, X) / N
            F[k, l] = np.sum(H * H) / d
    return F


def _independent(X: np.ndarray, C: int, networks: int, seed: int) -> dict:
    N, d = X.shape
    off = ~np.eye(C, dtype=bool)
    per = []
    for t in range(networks):
        W = mlp(d, C, hidden=(), bias=False, seed=network_seed(seed, t)).output.weight
        F = _gram_blocks(X, W.detach().numpy())
        per.append((np.diag(F).mean(), F[off].mean()))
    per = np.array(per)
    m = per.mean(axis=0)
    c = np.cov(per.T, ddof=1) / networks
    r = math.sqrt(m[1] / m[0])
    var_log = (c[1, 1] / m[1] ** 2 + c[0, 0] / m[0] ** 2 - 2 * c[0, 1] / (m[0] * m[1])) / 4
    return dict(
        F_diag=m[0],
        F_off=m[1],
        ratio=r,
        F_diag_se=math.sqrt(c[0, 0]),
        F_off_se=math.sqrt(c[1, 1]),
        ratio_se=r * math.sqrt(var_log),
    )


def test_measured_ce_equals_the_gram_route(small):
    res = theory_on_data(small, networks=NETS, seed=5, levels=["isotropic"], progress=False)
    ref = _independent(np.asarray(small.X), small.n_classes, NETS, seed=5)
    for k, v in ref.items():
        assert getattr(res, k) == pytest.approx(v, rel=1e-10, abs=0), k
    assert (res.N, res.d, res.C, res.case) == (120, 64, 10, "linear-ce")


def test_measured_mse_is_the_theory_normalisation(small):
    """mse: the blocks are ``(1/N) X^T X`` on the diagonal, 0 off it, for every network."""
    X = np.asarray(small.X)
    H = X.T @ X / len(X)
    res = theory_on_data(small, "mse", networks=2, levels=["isotropic"], progress=False)
    assert res.F_diag == pytest.approx(np.sum(H * H) / X.shape[1], rel=1e-10)
    assert res.F_off == 0.0 and res.ratio == 0.0 and res.F_diag_se < 1e-12 * res.F_diag
    assert res.rel_err("isotropic", "F_off") == 0.0  # 0 vs 0


def test_levels_are_the_theory_calls():
    from rmthess.data import clustered
    from rmthess.theory import conditional_frobenius, frobenius_limits, input_stats

    ds = clustered(3, 12, 60, seed=1)
    kw = dict(networks=2, draws=64, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = theory_on_data(ds, **kw, progress=False)
        st = input_stats(ds.X, ds.y, n_classes=3)
        sub = input_stats(ds.X, ds.y, n_classes=3, per_class=4, seed=3)
        ref = {
            "isotropic": frobenius_limits("linear-ce", 3, 12 / 60),
            "gaussian": conditional_frobenius("linear-ce", 3, st.pooled(), 60, **kw),
            "mixture-limit": frobenius_limits("linear-ce", 3, 12 / 60, inputs=st),
            "mixture": conditional_frobenius("linear-ce", 3, st, 60, **kw),
            "mixture+norms": conditional_frobenius("linear-ce", 3, st, 60, **kw, self_term="data"),
            "clusters": conditional_frobenius("linear-ce", 3, sub, 60, **kw),
        }
    assert tuple(res.levels) == LEVELS
    for level, lim in ref.items():
        for q in ("F_diag", "F_off", "ratio"):
            got = getattr(res.levels[level], q)
            assert got == pytest.approx(getattr(lim, q), rel=1e-12), (level, q)
            assert res.rel_err(level, q) == pytest.approx(got / getattr(res, q) - 1, rel=1e-12)
    frame = res.to_frame()
    assert list(frame.level) == ["measured", *LEVELS]
    assert {"F_diag_se", "F_off_se", "ratio_se", "err_F_diag", "err_F_off", "err_ratio"} <= set(
        frame.columns
    )
    rec = res.to_dict()
    json.dumps(rec, allow_nan=False)
    assert rec["err_F_off_mixture"] == pytest.approx(res.rel_err("mixture", "F_off"))
    assert isinstance(res, TheoryOnData)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(hidden=(4, 4)), "deeper"),
        (dict(hidden=(1,)), "hidden"),
        (dict(hidden=(6,), levels=["mixture-limit"]), "levels"),
        (dict(bias=True), "bias"),
        (dict(loss="hinge"), "loss"),
        (dict(networks=1), "networks"),
        (dict(networks=10**9), "networks"),
        (dict(draws=17), "draws"),
        (dict(levels=["nope"]), "levels"),
        (dict(levels="mixture"), "levels"),
        (dict(levels=["mixture", "mixture"]), "levels"),
        (dict(progress="yes"), "progress"),
        (dict(seed=-1), "seed"),
    ],
)
def test_refusals_before_any_work(kwargs, match, monkeypatch):
    import rmthess.curvature.blocks as blocks

    def boom(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(blocks, "block_norms", boom)
    X = np.random.default_rng(0).standard_normal((12, 4))
    with pytest.raises((ValueError, TypeError), match=match):
        theory_on_data((X, np.arange(12) % 3), **kwargs)


def test_refuses_a_class_with_one_sample():
    X = np.random.default_rng(0).standard_normal((7, 4))
    with pytest.raises(ValueError, match="class 2 has 1 samples"):
        theory_on_data((X, np.array([0, 0, 0, 1, 1, 1, 2])), networks=2)


SMALL = ["curvature", "--data", "digits", "--n", "60", "--layers", "0", "--theory"]


def test_cli_json_matches_the_python_api(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main([*SMALL, "--networks", "2", "--per-class", "2", "--json"]) == 0
        rec = json.loads(capsys.readouterr().out)
        res = theory_on_data(digits().subset(60, seed=0), networks=2, per_class=2, progress=False)
    rows = rec.pop("levels")
    assert [r["level"] for r in rows] == ["measured", *LEVELS]
    for key, v in res.to_dict().items():
        if not key.startswith("seconds_"):
            exact = v is None or isinstance(v, str)
            assert rec[key] == (v if exact else pytest.approx(v, rel=1e-10)), key


def test_theory_warnings_come_once_each(small):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theory_on_data(small, networks=2, draws=64, levels=["mixture-limit"], progress=False)
    texts = [str(w.message) for w in caught]
    assert any("d_eff" in t for t in texts) and len(texts) == len(set(texts))
    assert all(w.filename == __file__ for w in caught)  # they point at the caller


def test_cli_table_and_out(tmp_path, capsys):
    out = tmp_path / "th"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main([*SMALL, "--networks", "2", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    text = cap.out
    assert cap.err.startswith("note: ") and "d_eff" in cap.err
    assert "mixture+norms" in text and "err F_off" in text and "measured" in text
    assert {"theory.json", "theory.csv"} <= set(os.listdir(out))


@pytest.mark.parametrize(
    "args,match",
    [
        (["--layers", "2"], "--layers 0"),
        (["--layers", "1", "--activation", "tanh"], "ReLU"),
        (["--layers", "0", "--train-steps", "3"], "--train-steps"),
        (["--layers", "0", "--kind", "ggn"], "--kind"),
        (["--layers", "0", "--networks", "1"], "networks"),
        (["--layers", "0", "--per-class", "0"], "per-class"),
    ],
)
def test_cli_theory_refusals(args, match, capsys, monkeypatch):
    import rmthess.curvature.on_data as tod

    def boom(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(tod, "theory_on_data", boom)
    code = main(["curvature", "--data", "digits", "--n", "50", "--theory", *args])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------ the hidden layer (m,)
def _hidden_oracle(X, W, V):
    """(F_diag, F_off) of the first layer's row blocks, each formed explicitly (d x d):
    a_i^{kl} = v_k^T (diag p - p p^T) v_l 1[g_k > 0] 1[g_l > 0] (docs/theory.md 2.1)."""
    N, d = X.shape
    m = W.shape[0]
    g = X @ W.T
    z = np.maximum(g, 0) @ V.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    F = np.empty((m, m))
    for k in range(m):
        for l in range(m):
            a = (p @ (V[:, k] * V[:, l]) - (p @ V[:, k]) * (p @ V[:, l])) * (g[:, k] > 0)
            a = a * (g[:, l] > 0)
            H = (X * a[:, None]).T @ X / N
            F[k, l] = np.sum(H * H) / d
    return np.mean(np.diag(F)), np.mean(F[~np.eye(m, dtype=bool)])


@pytest.fixture(scope="module")
def hidden_run(small):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return theory_on_data(small, hidden=(6,), networks=NETS, draws=256, progress=False)


def test_hidden_measured_equals_explicit_blocks(small, hidden_run):
    X = np.asarray(small.X, dtype=np.float64)
    for t in range(NETS):
        net = mlp(64, 10, hidden=(6,), bias=False, init="lecun", seed=network_seed(0, t))
        W, V = (p.detach().double().numpy() for p in (net.hidden1.weight, net.output.weight))
        np.testing.assert_allclose(
            hidden_run.per_network["measured"][t], _hidden_oracle(X, W, V), rtol=1e-9
        )
    assert hidden_run.case == "hidden-ce" and hidden_run.m == 6
    assert tuple(hidden_run.levels) == ("isotropic", "gaussian", "mixture", "clusters")


def test_hidden_exact_levels_run_on_the_measured_networks(small, hidden_run):
    """The paired levels are the conditional route on the measured (W, V): the same call
    made directly gives the same numbers; the isotropic level is frobenius_limits."""
    from rmthess._random import rng
    from rmthess.inits import resolve_init
    from rmthess.theory import frobenius_limits, input_stats
    from rmthess.theory.aniso_hidden import hidden_per_network

    nets = []
    for t in range(NETS):
        net = mlp(64, 10, hidden=(6,), bias=False, init="lecun", seed=network_seed(0, t))
        nets.append(
            tuple(p.detach().double().numpy() for p in (net.hidden1.weight, net.output.weight))
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = input_stats(small.X, small.y, n_classes=10)
        sub = input_stats(small.X, small.y, n_classes=10, per_class=4, seed=0)
    for level in ("gaussian", "mixture", "clusters"):
        per = hidden_per_network(
            "hidden-ce",
            10,
            6,
            sub if level == "clusters" else stats,
            small.n,
            resolve_init("lecun"),
            NETS,
            256,
            rng(0, "theory-on-data", level),
            nets,
            level == "gaussian",
        )
        np.testing.assert_allclose(hidden_run.per_network[level], per, rtol=1e-12)
    iso = frobenius_limits("hidden-ce", 10, 64 / small.n, 6)
    assert hidden_run.levels["isotropic"].F_diag == pytest.approx(iso.F_diag, rel=1e-12)


def test_hidden_error_se_is_the_paired_jackknife(hidden_run):
    """err_se of a paired level: the jackknife of the ratio of means over networks, written
    out here; of the deterministic isotropic level: the measured relative SE."""
    T, M = hidden_run.per_network["mixture"], hidden_run.per_network["measured"]
    n = len(M)
    loo = [T[np.arange(n) != t, 0].mean() / M[np.arange(n) != t, 0].mean() for t in range(n)]
    want = math.sqrt((n - 1) / n * np.sum((np.array(loo) - np.mean(loo)) ** 2))
    assert hidden_run.err_se("mixture", "F_diag") == pytest.approx(want, rel=1e-12)
    iso = hidden_run.levels["isotropic"].F_diag
    rel = iso / hidden_run.F_diag * hidden_run.F_diag_se / hidden_run.F_diag
    assert hidden_run.err_se("isotropic", "F_diag") == pytest.approx(rel, rel=1e-6)
    frame = hidden_run.to_frame()
    assert {"err_F_diag_se", "err_F_off_se", "err_ratio_se"} <= set(frame.columns)


def test_cli_hidden_theory(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        args = ["curvature", "--data", "digits", "--n", "60", "--layers", "1", "--hidden", "6"]
        assert main([*args, "--theory", "--networks", "2", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["case"] == "hidden-ce" and rec["m"] == 6
    levels = ["measured", "isotropic", "gaussian", "mixture", "clusters"]
    assert [r["level"] for r in rec["levels"]] == levels
