"""rmthess.landscape: Delta_k curves, their exact expectation, rates, the neighbourhood term.

Independent routes: plain Python loops over orders and k (the authors' construction), an
exhaustive enumeration of all orders of small sets, Monte Carlo over many orders, the exact
two-point expectation, ``torch.func.hessian`` of an explicitly written ``D(theta)``, one
forward pass per sample.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rmthess.landscape import delta as dmod
from rmthess.landscape.delta import (
    PAPER_EMA,
    DeltaCurve,
    delta_curve,
    delta_expected,
    ema_filter,
    fit_rate,
    sample_size_for,
)


def _population(name: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, 11])
    return {
        "uniform": lambda: rng.random(n),
        "exponential": lambda: rng.exponential(size=n),
        "pareto2.5": lambda: rng.pareto(2.5, size=n),
        "lognormal": lambda: rng.lognormal(0.0, 1.0, size=n),
        "two-point": lambda: (rng.random(n) < 0.3).astype(float) * 2.0 + 0.5,
    }[name]()


def _loop_reference(losses, n_orders, seed, k_max=None):
    """The authors' route, one order at a time: cumulative means, then ``|diff|``; and a
    literal loop over k with ``mean(first k)``."""
    n = len(losses)
    K = n - 1 if k_max is None else k_max
    out_cum, out_lit = [], []
    for perm in dmod._orders(n, n_orders, seed):
        v = np.asarray(losses)[perm]
        means = np.cumsum(v) / np.arange(1, n + 1)
        out_cum.append(np.abs(np.diff(means))[:K])
        out_lit.append([abs(sum(v[: k + 1]) / (k + 1) - sum(v[:k]) / k) for k in range(1, K + 1)])
    return np.array(out_cum), np.array(out_lit)


# ----------------------------------------------------------------------------- the curve
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_vectorised_curve_equals_python_loops(seed, monkeypatch):
    losses = _population("exponential", 40, seed) + 3.0
    cum, lit = _loop_reference(losses, 7, seed)
    c = delta_curve(losses, 7, seed=seed)
    assert np.allclose(c.delta_trials, cum, rtol=1e-12, atol=1e-15)
    assert np.allclose(c.delta_trials, lit, rtol=1e-12, atol=1e-15)
    assert np.allclose(c.mean, lit.mean(0), rtol=1e-12)
    assert np.allclose(c.mean_se, lit.std(0, ddof=1) / math.sqrt(7), rtol=1e-10)
    assert np.allclose(c.rms, np.sqrt((lit**2).mean(0)), rtol=1e-12)
    assert np.allclose(c.q50, np.median(lit, 0), rtol=1e-12)
    monkeypatch.setattr(dmod, "_CHUNK_ELEMENTS", 50)  # one order per chunk: same result
    c2 = delta_curve(losses, 7, seed=seed, k_max=20)
    assert np.array_equal(c2.delta_trials, c.delta_trials[:, :20])
    # more orders keep the first ones
    assert np.array_equal(delta_curve(losses, 9, seed=seed).delta_trials[:7], c.delta_trials)


def test_ema_is_the_authors_recursion():
    x = np.random.default_rng(3).random(700)
    for f in (PAPER_EMA, 0.5, 1e-3):
        ref = [x[0]]
        for v in x[1:]:
            ref.append(f * ref[-1] + (1 - f) * v)
        assert np.allclose(ema_filter(x, f), ref, rtol=1e-13, atol=1e-15)
    c = delta_curve(_population("uniform", 300), 5, ema=PAPER_EMA)
    assert c.ema[0] == c.mean[0]
    assert np.allclose(c.ema, ema_filter(c.mean, PAPER_EMA))
    per_order = ema_filter(c.delta_trials, PAPER_EMA, axis=1).mean(0)  # linear filter
    assert np.allclose(per_order, c.ema, rtol=1e-12)


def test_ema_distorts_the_rate():
    """EMA(0.99) of the exact c/(k+1): a plateau then a slope far steeper than -1 (docs 9.3)."""
    k = np.arange(1, 10_000)
    e = ema_filter(1.0 / (k + 1), PAPER_EMA)
    assert e[49] > 10 / 51  # at k = 50 more than 10x the curve
    local = np.diff(np.log(e)) / np.diff(np.log(k))
    assert local[300] < -1.3 and abs(local[-1] + 1) < 0.02


# ----------------------------------------------------------------------------- exact expectation
@pytest.mark.parametrize("which", ["exponential", "two-point", "uniform"])
def test_expected_against_all_orders(which):
    """Exhaustive enumeration of the 7! orders: E Delta^2 exact, E|Delta| in the bracket."""
    losses = _population(which, 7, 4)
    if np.ptp(losses) == 0:
        losses[0] += 1.0
    n = len(losses)
    D = []
    for p in itertools.permutations(range(n)):
        v = losses[list(p)]
        D.append(np.abs(v[1:] - np.cumsum(v)[:-1] / np.arange(1, n)) / np.arange(2, n + 1))
    D = np.array(D)
    e = delta_expected(losses)
    assert np.allclose((D**2).mean(0), e.mean_sq, rtol=1e-12)
    ex = D.mean(0)
    assert np.all(e.mean_abs <= ex * (1 + 1e-12)) and np.all(ex <= e.mean_abs_upper * (1 + 1e-12))
    assert math.isclose(ex[-1], e.mean_abs[-1], rel_tol=1e-12)  # k = n-1: exact
    assert math.isclose(ex[0], np.abs(losses[:, None] - losses).sum() / (n * (n - 1)) / 2)
    if which == "two-point":
        assert np.allclose(ex, e.mean_abs, rtol=1e-12)


@pytest.mark.parametrize("which", ["uniform", "exponential", "pareto2.5", "two-point"])
def test_expected_against_monte_carlo(which):
    losses = _population(which, 400)
    R = 4000
    c = delta_curve(losses, R, seed=5)
    e = delta_expected(losses)
    for k in (1, 3, 10, 40, 200, 399):
        sq = c.delta_trials[:, k - 1] ** 2
        assert abs(sq.mean() - e.mean_sq[k - 1]) <= 4 * sq.std(ddof=1) / math.sqrt(R), k
        lo, hi, se = e.mean_abs[k - 1], e.mean_abs_upper[k - 1], c.mean_se[k - 1]
        assert lo - 4 * se <= c.mean[k - 1] <= hi + 4 * se, k
        if which == "two-point":  # the large-k form is exact for a two-valued set
            assert abs(c.mean[k - 1] - lo) <= 4 * se
    # the bracket closes like log(k)/k: the large-k form is the expectation at large k
    width = (e.mean_abs_upper - e.mean_abs) / e.mean_abs
    k = e.k
    assert np.all(width[k >= 100] < 3 * np.log(k[k >= 100]) / k[k >= 100])
    assert e.variance == pytest.approx(np.var(losses, ddof=1), rel=1e-12)


def test_smooth_density_correction_is_seen():
    """Uniform losses: (k+1) E|Delta_k| = MAD' + p(mu) v_k + o(1/k) with p(mu) = 1."""
    n, R = 2000, 40_000
    losses = np.linspace(0, 1, n)  # a deterministic uniform set: p = 1 exactly
    c = delta_curve(losses, R, seed=2, k_max=20)
    e = delta_expected(losses, k=np.arange(1, 21))
    k = 8
    v = e.variance * (n - 1 - k) / (k * (n - 1))
    smooth = (n / (n - 1) * e.mad + v) / (k + 1)
    assert abs(c.mean[k - 1] - smooth) < 4 * c.mean_se[k - 1] + 0.2 * v / (k + 1)
    assert c.mean[k - 1] - e.mean_abs[k - 1] > 6 * c.mean_se[k - 1]  # the correction is real


# ----------------------------------------------------------------------------- rates
def test_fit_rate_covers_minus_one_and_sees_the_ema():
    c = delta_curve(_population("lognormal", 5000), 100, seed=1, ema=PAPER_EMA)
    for on in ("mean", "rms"):
        f = fit_rate(c, on=on)
        assert f.slope_ci[0] < -1 < f.slope_ci[1] + 0.02, f  # exact slope over 10..5e3: -0.99
        assert 0 < f.slope_se < 0.05
    fe = fit_rate(c, on="ema")  # the authors' smoothing steepens the fitted slope
    assert fe.slope_ci[1] < -1.2
    rec = f.to_dict()
    assert rec["slope_ci_low"] == f.slope_ci[0] and len(f.to_frame()) == 1


def _exact_slope(ks, y):
    x = np.log(ks)
    return np.polyfit(x, np.log(y), 1)[0]


@pytest.mark.parametrize("which,on", [("uniform", "rms"), ("two-point", "mean")])
def test_bootstrap_ci_is_honest(which, on):
    """Over independent order seeds on one population, the 95% CI covers the exact slope
    (E Delta^2 exact; E|Delta| exact for a two-point set) ~95% of the time."""
    losses = _population(which, 400, 3)
    e = delta_expected(losses)
    hits, R = 0, 300
    for s in range(R):
        f = fit_rate(delta_curve(losses, 60, seed=100 + s), k_min=5, on=on, n_boot=400, seed=s)
        ks = np.unique(np.round(np.geomspace(5, 399, 50)).astype(int))
        truth = _exact_slope(ks, (e.rms if on == "rms" else e.mean_abs)[ks - 1])
        hits += f.slope_ci[0] <= truth <= f.slope_ci[1]
    assert abs(hits / R - 0.95) <= 4 * math.sqrt(0.05 * 0.95 / R), hits / R


def test_sample_size_for():
    losses = _population("exponential", 3000)
    e = delta_expected(losses)
    eps = 2e-3
    k = sample_size_for(e, eps)
    # independent: smallest k with S^2 / (k (k+1)) < eps^2, solved as a quadratic
    S2 = np.var(losses, ddof=1)
    kq = math.floor((-1 + math.sqrt(1 + 4 * S2 / eps**2)) / 2) + 1
    assert k == kq
    assert sample_size_for(e, eps, on="mean_abs") <= k  # E|Delta| <= rms
    c = delta_curve(losses, 50, seed=0)
    kc = sample_size_for(c, eps)
    assert np.all(c.mean[kc - 1 :] < eps) and c.mean[kc - 2] >= eps
    assert sample_size_for(c, 10.0) == 1
    with pytest.raises(ValueError, match="eps = 1e-09 is never reached"):
        sample_size_for(c, 1e-9)


def test_frames_and_dicts():
    c = delta_curve([1.0, 2.0, 4.0, 3.0], 3, ema=0.5)
    assert list(c.to_frame().columns)[-1] == "ema" and len(c.to_frame()) == 3
    d = c.to_dict()
    assert d["k_max"] == 3 and "delta_trials" not in d and d["ema_factor"] == 0.5
    assert all(not isinstance(v, list | dict) for v in d.values())  # scalars: arrays in frames
    e = delta_expected([1.0, 2.0, 4.0, 3.0], k=[3, 1, 1])
    assert e.k.tolist() == [1, 3] and len(e.to_frame()) == 2 and e.to_dict()["n"] == 4


# ----------------------------------------------------------------------------- bad input
BAD = [
    (lambda: delta_curve([]), ValueError, "losses must hold at least 2"),
    (lambda: delta_curve([1.0]), ValueError, "losses must hold at least 2"),
    (lambda: delta_curve([1.0, np.nan, 2.0]), ValueError, r"losses\[1\] = nan"),
    (lambda: delta_curve([1.0, np.inf]), ValueError, "losses must be finite"),
    (lambda: delta_curve([2.0] * 5), ValueError, "constant.*no rate"),
    (lambda: delta_curve([[1.0, 2.0]]), ValueError, "losses must be 1-D"),
    (lambda: delta_curve(["a", "b"]), TypeError, "losses must hold real"),
    (lambda: delta_curve([1.0, 2.0], n_orders=1), ValueError, "n_orders must be an integer >= 2"),
    (lambda: delta_curve([1.0, 2.0, 3.0], k_max=3), ValueError, "k_max must be an integer <= 2"),
    (lambda: delta_curve([1.0, 2.0], ema=1.0), ValueError, r"ema must be a number in \(0, 1\)"),
    (lambda: delta_curve([1.0, 2.0], ema=0), ValueError, r"ema must be a number in \(0, 1\)"),
    (lambda: delta_curve([1.0, 2.0], ema="x"), TypeError, "ema must be a real number"),
    (lambda: delta_expected([3.0, 3.0]), ValueError, "constant"),
    (lambda: delta_expected([1.0, 2.0, 3.0], k=3), ValueError, r"k must lie in \[1, n-1\]"),
    (lambda: delta_expected([1.0, 2.0, 3.0], k=1.5), ValueError, "k must hold integers"),
    (lambda: fit_rate("curve"), TypeError, "curve must be a DeltaCurve"),
    (lambda: fit_rate(_C, on="median"), ValueError, "unknown on 'median'"),
    (lambda: fit_rate(_C, on="ema"), ValueError, "ema"),
    (lambda: fit_rate(_C, k_min=0), ValueError, "k_min must be an integer >= 1"),
    (lambda: fit_rate(_C, k_max=50), ValueError, "k_max must be an integer <= 29"),
    (lambda: fit_rate(_C, level=1.0), ValueError, r"level must lie in \(0, 1\)"),
    (lambda: sample_size_for(_C, -1.0), ValueError, "eps must be a finite number > 0"),
    (lambda: sample_size_for([1.0], 0.1), TypeError, "DeltaCurve or a DeltaExpected"),
    (lambda: sample_size_for(_C, 0.1, on="mean_abs"), ValueError, "unknown on"),
]
_C = delta_curve(np.arange(30.0) ** 2, 4)


@pytest.mark.parametrize("call,exc,msg", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_curve_type():
    assert isinstance(_C, DeltaCurve) and _C.k_max == 29


# ----------------------------------------------------------------------------- torch parts
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    from rmthess.curvature.models import mlp

    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=g)
    return mlp(5, 3, (6,), activation="tanh", bias=False, seed=1), X, y


def test_per_sample_losses_match_one_forward_per_sample(tiny, one_torch_thread):
    from torch import nn

    from rmthess.landscape.losses import per_sample_losses

    net, X, y = tiny
    l = per_sample_losses(net, nn.CrossEntropyLoss(label_smoothing=0.1), (X, y), batch_size=10)
    with torch.no_grad():
        one = nn.CrossEntropyLoss(label_smoothing=0.1)
        ref = [float(one(net(X[i : i + 1]), y[i : i + 1])) for i in range(len(X))]
        batch = float(nn.CrossEntropyLoss(label_smoothing=0.1)(net(X), y))
        Y = nn.functional.one_hot(y, 3).double()
        mse = ((net(X) - Y) ** 2).mean(1).numpy()
    assert l.dtype == np.float64 and l.shape == (64,)
    assert np.allclose(l, ref, rtol=1e-13) and math.isclose(l.mean(), batch, rel_tol=1e-13)
    m = per_sample_losses(net, nn.MSELoss(reduction="none"), [(X[:30], y[:30]), (X[30:], y[30:])])
    assert np.allclose(m, mse, rtol=1e-13)  # MSE: mean over outputs, integer labels one-hot
    with pytest.raises(ValueError, match="weighted mean"):
        w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        per_sample_losses(net, nn.CrossEntropyLoss(weight=w), (X, y))
    Xn = X.clone()
    Xn[5, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        per_sample_losses(net, "ce", (Xn, y))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        per_sample_losses(net, "ce", (X, y), batch_size=0)


def _explicit_D(net, X, y, order, k):
    """``D(theta)`` written out for ``V tanh(W x)`` (no rmthess code)."""
    W0, V0 = net.hidden1.weight.detach(), net.output.weight.detach()
    Xs, ys = X[order], y[order]

    def D(theta):
        W = theta[: W0.numel()].reshape(W0.shape)
        V = theta[W0.numel() :].reshape(V0.shape)
        ls = torch.nn.functional.cross_entropy(torch.tanh(Xs @ W.T) @ V.T, ys, reduction="none")
        return (ls[k] - ls[:k].mean()) / (k + 1)

    return D, torch.cat([W0.flatten(), V0.flatten()])


def test_neighbourhood_closed_form_against_autograd_and_monte_carlo(tiny, one_torch_thread):
    from torch.func import grad, hessian

    from rmthess.landscape.losses import per_sample_losses
    from rmthess.landscape.neighbourhood import neighbourhood_delta

    net, X, y = tiny
    k = 20
    r = neighbourhood_delta(net, "ce", (X, y), k, 0.04, seed=0)
    D, theta = _explicit_D(net, X, y, r.order, k)
    H, g = hessian(D)(theta), grad(D)(theta)
    assert r.method == "exact" and r.trace_M_se == 0
    assert math.isclose(r.D, float(D(theta)), rel_tol=1e-12)
    l = per_sample_losses(net, "ce", (X, y))
    assert math.isclose(r.D, (l[r.order[k]] - l[r.order[:k]].mean()) / (k + 1), rel_tol=1e-10)
    assert math.isclose(r.grad_sq, float(g @ g), rel_tol=1e-10)
    assert abs(r.trace_M - float(H.trace())) < 1e-12 * float(H.abs().sum())
    assert math.isclose(r.frob_sq_M, float((H * H).sum()), rel_tol=1e-10)
    s2 = 0.04**2
    assert math.isclose(r.mean, r.D + s2 / 2 * float(H.trace()), rel_tol=1e-12)
    mc = r.monte_carlo(4000)
    assert abs(mc.mean - r.mean) < 4 * mc.mean_se
    assert abs(mc.mean_sq - r.mean_sq) < 4 * mc.mean_sq_se
    assert abs(mc.mean - r.mean_paper) > 4 * mc.mean_se  # the paper's missing 1/2 is visible
    # the Taylor gap of E D shrinks like sigma^4 (>= sigma^3 required): 16x per halving
    small = neighbourhood_delta(net, "ce", (X, y), k, 0.02, seed=0).monte_carlo(4000)
    assert abs(small.gap_mean) > 4 * small.gap_mean_se
    assert abs(mc.gap_mean / small.gap_mean) > 8, mc.gap_mean / small.gap_mean
    rel = [abs(m.gap_mean / m.second_order_mean) for m in (mc, small)]
    assert rel[1] < rel[0] / 2  # relative to the sigma^2 term: at least like sigma
    # E D^2: here 2 D0 E T4 and 2 E[(g.delta) T3] nearly cancel, and the gap is below the
    # Monte-Carlo noise at both sigmas; its 4-SE bound, relative to the sigma^2 term, is
    # under 2% and shrinks at least like sigma (the per-draw remainder is O(sigma^4)).
    bound = [(abs(m.gap_sq) + 4 * m.gap_sq_se) / m.second_order_sq for m in (mc, small)]
    assert bound[0] < 0.02 and bound[1] < bound[0] / 2, bound
    # Hutchinson mode: unbiased moments of M with honest errors
    h = neighbourhood_delta(net, "ce", (X, y), k, 0.04, seed=3, order=r.order, probes=40)
    assert h.method == "hutchinson" and h.n_probes == 40
    assert abs(h.trace_M - r.trace_M) < 4 * h.trace_M_se
    assert abs(h.frob_sq_M - r.frob_sq_M) < 4 * h.frob_sq_M_se
    assert set(r.to_dict()) >= {"D", "mean", "mean_sq"} and len(mc.to_frame()) == 1


def test_neighbourhood_bad_input(tiny):
    from rmthess.landscape.neighbourhood import neighbourhood_delta

    net, X, y = tiny
    for kw, exc, msg in [
        (dict(k=0, sigma=0.1), ValueError, "k must be an integer >= 1"),
        (dict(k=64, sigma=0.1), ValueError, "k must be an integer <= N-1 = 63"),
        (dict(k=3, sigma=0.0), ValueError, "sigma must be a finite number > 0"),
        (dict(k=3, sigma=0.1, order=[0, 1, 2]), ValueError, "at least k\\+1 = 4"),
        (dict(k=3, sigma=0.1, order=[0, 1, 1, 2]), ValueError, "distinct indices"),
        (dict(k=3, sigma=0.1, order=[0, 1, 2, 99]), ValueError, "distinct indices in \\[0, 63\\]"),
        (dict(k=3, sigma=0.1, probes=1), ValueError, "probes must be an integer >= 2"),
    ]:
        with pytest.raises(exc, match=msg):
            neighbourhood_delta(net, "ce", (X, y), **kw)
    r = neighbourhood_delta(net, "ce", (X, y), 3, 0.1)
    with pytest.raises(ValueError, match="n_draws must be even"):
        r.monte_carlo(5)
