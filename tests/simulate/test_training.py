"""Training dynamics (rmthess.simulate.training): the block-circulant cross-layer part fades.

Thresholds come from runs of the test configuration (C = 10, d = 20, m = 8, N = 100,
150 full-batch Adam steps, lr 1e-2, cosine) over seeds 0..3 (CPU, float64):
cross_residual end/start = 0.49..0.59, circulant_fraction 0.89..0.93 -> 0.26..0.38,
cross_share 0.76..0.82 -> 0.46..0.49. The asserted bounds leave >= 25% margin.
"""

import numpy as np
import pytest
import torch

from rmthess.simulate.hessian import autograd_hessian, hessian_parts
from rmthess.simulate.training import (
    NORM_COLUMNS,
    hessian_block_norms,
    train_dynamics,
    train_states,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


SMALL = dict(C=10, d=20, m=8, N=100, steps=150, lr=1e-2, record_every=50, device="cpu")


@pytest.mark.parametrize("seed", [0, 1])
def test_block_circulant_cross_part_fades_while_training(seed):
    df = train_dynamics(seed=seed, **SMALL)
    assert list(df["step"]) == [0, 50, 100, 150]
    first, last = df.iloc[0], df.iloc[-1]
    assert last["loss"] < 0.6 * first["loss"]
    # residual (block-circulant) part of H_wv: seen 0.49..0.59 of its start
    assert last["cross_residual"] < 0.75 * first["cross_residual"]
    # stripe energy fraction: seen ~0.9 -> <= 0.41
    assert first["circulant_fraction"] > 0.8
    assert last["circulant_fraction"] < 0.6 * first["circulant_fraction"]
    # share of the whole Hessian in the cross-layer blocks: seen 0.76..0.82 -> 0.46..0.49
    assert last["cross_share"] < 0.8 * first["cross_share"]
    # the block-diagonal structure stays: diagonal blocks keep dominating
    assert (df["hidden_ratio"] < 1).all() and (df["output_ratio"] < 1).all()
    assert df[list(NORM_COLUMNS)].notna().all().all()


def test_block_norms_match_autograd_hessian():
    """Independent route: split torch.func.hessian by explicit index loops."""
    C, d, m, N = 3, 5, 3, 9
    states = list(train_states(C=C, d=d, m=m, N=N, steps=4, lr=1e-2, record_every=4, device="cpu"))
    _, _, snap, Y = states[-1]
    H = autograd_hessian("hidden", "ce", snap, Y).numpy()
    md = m * d
    hd = ho = od = oo = 0.0
    for j in range(m):
        for l in range(m):
            s = (H[j * d : (j + 1) * d, l * d : (l + 1) * d] ** 2).sum()
            hd, ho = (hd + s, ho) if j == l else (hd, ho + s)
    for k in range(C):
        for l in range(C):
            s = (H[md + k * m : md + (k + 1) * m, md + l * m : md + (l + 1) * m] ** 2).sum()
            od, oo = (od + s, oo) if k == l else (od, oo + s)
    cross = H[:md, md:]
    stripe = sum(
        (cross[j * d : (j + 1) * d, k * m + j] ** 2).sum() for j in range(m) for k in range(C)
    )
    # Gauss-Newton part of H_wv = J^T A J (J = d logits / d theta), residual = rest
    X, W, V = snap.X[0], snap.W[0], snap.V[0]
    theta = torch.cat([W.reshape(-1), V.reshape(-1)])

    def logits(th):
        return th[md:].view(C, m) @ torch.relu(th[:md].view(m, d) @ X)

    J = torch.func.jacrev(logits)(theta)  # (C, N, n_params)
    P = torch.softmax(logits(theta), dim=0)
    GN = (
        sum(
            J[:, i].T @ (torch.diag(P[:, i]) - torch.outer(P[:, i], P[:, i])) @ J[:, i]
            for i in range(N)
        ).numpy()
        / N
    )
    got = hessian_block_norms(hessian_parts("ce", snap, Y))
    want = {
        "cross_gn": np.linalg.norm(GN[:md, md:]),
        "cross_residual": np.linalg.norm(cross - GN[:md, md:]),
        "hidden_diag": hd**0.5,
        "hidden_off": ho**0.5,
        "output_diag": od**0.5,
        "output_off": oo**0.5,
        "cross": np.linalg.norm(cross),
        "circulant_fraction": stripe / (cross**2).sum(),
    }
    for key, val in want.items():
        assert got[key] == pytest.approx(val, rel=1e-10), key


def test_reproducible_and_step_zero_is_init():
    a = train_dynamics(C=4, d=6, m=3, N=12, steps=6, record_every=3, device="cpu", seed=3)
    b = train_dynamics(C=4, d=6, m=3, N=12, steps=6, record_every=3, device="cpu", seed=3)
    c = train_dynamics(C=4, d=6, m=3, N=12, steps=6, record_every=3, device="cpu", seed=4)
    assert a.equals(b)
    assert not a["loss"].equals(c["loss"])
    assert list(a["step"]) == [0, 3, 6]
    assert a["lr"].iloc[0] == pytest.approx(1e-2) and a["lr"].iloc[-1] == pytest.approx(0)


def test_constant_schedule_and_mse():
    df = train_dynamics(
        C=4, d=6, m=3, N=12, steps=4, record_every=2, device="cpu", schedule="constant", loss="mse"
    )
    assert (df["lr"] == 1e-2).all()
    assert df["loss"].iloc[-1] < df["loss"].iloc[0]


def test_states_params_change_and_float32():
    states = list(
        train_states(C=4, d=6, m=3, N=12, steps=3, record_every=1, device="cpu", dtype="float32")
    )
    assert [s[0] for s in states] == [0, 1, 2, 3]
    assert states[0][2].W.dtype == torch.float32
    assert not torch.equal(states[0][2].W, states[-1][2].W)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        (dict(C=0), ValueError, "C"),
        (dict(d=2.5), ValueError, "d"),
        (dict(m="8"), TypeError, "m"),
        (dict(N=-1), ValueError, "N"),
        (dict(steps=-1), ValueError, "steps"),
        (dict(lr=0), ValueError, "lr"),
        (dict(schedule="linear"), ValueError, "schedule"),
        (dict(loss="hinge"), ValueError, "loss"),
        (dict(record_every=0), ValueError, "record_every"),
        (dict(device="tpu"), ValueError, "device"),
    ],
)
def test_bad_inputs(kwargs, err, match):
    base = dict(C=4, d=6, m=3, N=12, steps=2, device="cpu")
    with pytest.raises(err, match=match):
        train_dynamics(**{**base, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without CUDA")
def test_cuda_requested_but_absent():
    with pytest.raises(ValueError, match="CUDA"):
        train_dynamics(C=4, d=6, m=3, N=12, steps=2, device="cuda")
