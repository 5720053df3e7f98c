"""Whole-layer Hessian spectra (rmthess.simulate.layer) against independent routes.

- real layer: eigenvalues vs eigvalsh of the W block of torch.func.hessian of the real loss
  (rmthess.simulate.models.loss, a second derivative with no shared formula), also after
  training; float64 entries O(1), sums of N <= 30 terms: 1e-11 absolute is ample round-off;
- decoupled layer: equal to (1/N) sum_i A_i (x) x'_i x'_i^T built here in numpy, with A_i
  written out from the softmax / ReLU formulas (not from rmthess.simulate.weights);
- linear-ce: at least d zero eigenvalues (softmax Hessian annihilates the ones vector).
"""

import numpy as np
import pytest
import torch

from rmthess.simulate import models
from rmthess.simulate.layer import (
    LayerSpectrum,
    decoupled_vectors,
    layer_eigenvalues,
    layer_instance,
    layer_matrix,
)
from rmthess.simulate.sampling import trial_seeds

CASES = [("linear-mse", None), ("linear-ce", None), ("hidden-mse", 3), ("hidden-ce", 3)]


def _autograd_layer(case, inst, Y):
    """W block of torch.func.hessian of the mean loss (other parameters held fixed)."""
    X, W = inst.X[0], inst.W[0]
    rest = () if inst.V is None else (inst.V[0],)

    def f(w):
        return models.loss(case, (w.reshape(W.shape), *rest), X, Y)

    return torch.func.hessian(f)(W.reshape(-1))


@pytest.mark.parametrize("case,m", CASES)
@pytest.mark.parametrize("steps", [0, 15])
def test_layer_eigenvalues_match_autograd(case, m, steps):
    C, d, N = 3, 5, 30
    res = layer_eigenvalues(case, C, d, N, m, trials=2, seed=4, steps=steps, lr=0.05, device="cpu")
    assert res.eigenvalues.shape == (2, res.K * d)
    for t in range(2):
        inst, Y, _, _ = layer_instance(
            case, C, d, N, m, trial=t, trials=2, seed=4, steps=steps, lr=0.05, device="cpu"
        )
        H = _autograd_layer(case, inst, Y)
        ref = np.linalg.eigvalsh(H.numpy())
        np.testing.assert_allclose(res.eigenvalues[t], ref, atol=1e-11, rtol=0)
        np.testing.assert_allclose(layer_matrix(case, inst).numpy(), H.numpy(), atol=1e-12)


def _A_numpy(case, X, W, V):
    """A_i (N, K, K) from the formulas of docs/theory.md section 2, in numpy."""
    G = W @ X  # (K_W, N)
    if case == "linear-mse":
        return np.broadcast_to(np.eye(W.shape[0]), (X.shape[1], W.shape[0], W.shape[0]))
    if case == "linear-ce":
        P = np.exp(G - G.max(0)).T
        P /= P.sum(1, keepdims=True)
        return np.einsum("nk,kl->nkl", P, np.eye(P.shape[1])) - P[:, :, None] * P[:, None, :]
    D = (G.T > 0).astype(float)  # (N, m)
    Z = V @ np.maximum(G, 0)
    if case == "hidden-mse":
        S = np.broadcast_to(np.eye(V.shape[0]), (X.shape[1], V.shape[0], V.shape[0]))
    else:
        P = np.exp(Z - Z.max(0)).T
        P /= P.sum(1, keepdims=True)
        S = np.einsum("nk,kl->nkl", P, np.eye(P.shape[1])) - P[:, :, None] * P[:, None, :]
    return np.einsum("nj,cj,ncd,dl,nl->njl", D, V, S, V, D)


@pytest.mark.parametrize("case,m", CASES)
def test_decoupled_is_explicit_sum(case, m):
    C, d, N, seed = 3, 4, 25, 2
    res = layer_eigenvalues(case, C, d, N, m, seed=seed, decoupled=True, device="cpu")
    inst, _, _, _ = layer_instance(case, C, d, N, m, seed=seed, device="cpu")
    s = trial_seeds(seed, 1)[0]
    Xp = decoupled_vectors(d, N, s, torch.device("cpu"), torch.float64).numpy()
    X, W = inst.X[0].numpy(), inst.W[0].numpy()
    V = None if inst.V is None else inst.V[0].numpy()
    A = _A_numpy(case, X, W, V)
    H = sum(np.kron(A[i], np.outer(Xp[:, i], Xp[:, i])) for i in range(N)) / N
    np.testing.assert_allclose(
        layer_matrix(case, inst, vectors=torch.from_numpy(Xp)).numpy(), H, atol=1e-12
    )
    np.testing.assert_allclose(res.eigenvalues[0], np.linalg.eigvalsh(H), atol=1e-11)
    # the fresh vectors are not the data: the real layer differs
    real = layer_eigenvalues(case, C, d, N, m, seed=seed, device="cpu")
    assert np.abs(real.eigenvalues - res.eigenvalues).max() > 1e-3


def test_linear_ce_zero_eigenvalues():
    C, d, N = 4, 12, 40
    for decoupled in (False, True):
        ev = layer_eigenvalues("linear-ce", C, d, N, trials=2, decoupled=decoupled, device="cpu")
        scale = ev.eigenvalues.max()
        assert ((np.abs(ev.eigenvalues) < 1e-12 * scale).sum(axis=1) >= d).all()
        assert (ev.eigenvalues > -1e-12 * scale).all()  # PSD


def test_training_changes_weights_and_lowers_loss():
    for case, m in (("linear-ce", None), ("hidden-ce", 4)):
        inst0, Y0, l0, l0b = layer_instance(case, 5, 10, 40, m, device="cpu")
        inst1, Y1, l1_init, l1 = layer_instance(case, 5, 10, 40, m, steps=30, device="cpu")
        assert l0 == l0b == l1_init
        assert torch.equal(Y0, Y1) and torch.equal(inst0.X, inst1.X)
        assert (inst1.W - inst0.W).abs().max() > 1e-3
        assert l1 < l0 - 0.05
        res = layer_eigenvalues(case, 5, 10, 40, m, steps=30, device="cpu")
        assert res.loss_trials[0] == pytest.approx(l1, abs=1e-12)
        assert res.loss_init_trials[0] == pytest.approx(l0, abs=1e-12)


def test_result_vocabulary():
    res = layer_eigenvalues("hidden-mse", 3, 4, 10, 2, trials=3, device="cpu")
    assert isinstance(res, LayerSpectrum)
    assert res.gamma == 0.4 and res.K == 2 and res.trials == 3
    df = res.to_frame()
    assert list(df.columns[:3]) == ["trial", "index", "eigenvalue"]
    assert len(df) == 3 * 8
    np.testing.assert_array_equal(df["eigenvalue"].to_numpy(), res.eigenvalues.reshape(-1))
    rec = res.to_dict()
    assert rec["lambda_max"] == pytest.approx(res.eigenvalues[:, -1].mean())
    assert rec["lambda_max_se"] > 0 and rec["m"] == 2
    one = layer_eigenvalues("linear-mse", 3, 4, 10, device="cpu").to_dict()
    assert one["lambda_max_se"] is None  # NaN -> None with one trial


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(case="output-ce", m=3), ValueError, "case must be one of"),
        (dict(case="hidden-ce", m=None), ValueError, "m"),
        (dict(case="linear-ce", m=3), ValueError, "m does not apply"),
        (dict(case="linear-ce", C=1), ValueError, "C must be"),
        (dict(case="linear-ce", d=0), ValueError, "d must be"),
        (dict(case="linear-ce", trials=0), ValueError, "trials"),
        (dict(case="linear-ce", steps=-1), ValueError, "steps"),
        (dict(case="linear-ce", lr=0.0), ValueError, "lr"),
        (dict(case="linear-ce", decoupled=1), TypeError, "decoupled"),
        (dict(case="linear-ce", d=2.5), ValueError, "d must be"),
        (dict(case="linear-ce", C=10**4, d=10**4), ValueError, "dense"),
    ],
)
def test_input_errors(kwargs, exc, match):
    args = dict(case="linear-ce", C=3, d=4, N=10, m=None) | kwargs
    case, C, d, N, m = (args.pop(k) for k in ("case", "C", "d", "N", "m"))
    with pytest.raises(exc, match=match):
        layer_eigenvalues(case, C, d, N, m, device="cpu", **args)


def test_init_is_passed_to_the_sampler():
    # torch-default weights are uniform with variance 1/(3 d): the linear-ce layer's
    # logits shrink, the softmax Hessian grows towards diag(1/C) - 1/C^2 and lambda_max
    # changes; "lecun" equals the default call bit for bit
    a = layer_eigenvalues("linear-ce", 3, 20, 40, seed=1)
    b = layer_eigenvalues("linear-ce", 3, 20, 40, seed=1, init="lecun")
    c = layer_eigenvalues("linear-ce", 3, 20, 40, seed=1, init="torch-default")
    assert np.array_equal(a.eigenvalues, b.eigenvalues)
    assert not np.allclose(a.eigenvalues, c.eigenvalues)
    assert c.to_dict()["init"] == "torch-default"
