r"""The "dynamic force": Hessian block norms of a one-hidden-layer net along Adam training.

Setting (seed paper, Section 3.1 and Appendix B.3): Gaussian data ``X`` (d x N, N(0,1)
entries), **uniformly random labels** (the paper "assigns the label randomly"), net
``f(x) = V relu(W x)`` with LeCun init (:func:`rmthess.simulate.sampling.sample_instance`),
CE loss (MSE selectable), **full-batch** Adam with a cosine-annealed learning rate
(``lr_t = lr (1 + cos(pi t / steps)) / 2``, ``lr_min = 0``). Paper: d = C = 500, m = 8,
10 samples per class (N = 5000), lr = 1e-4, "until convergence" (the step count is not
given; :data:`PAPER` uses 20000 full-batch steps, our choice). Batch size is not stated in
the paper either; full batch is our choice.

At every recorded step the exact Hessian (closed form, :func:`hessian_parts`) is split into

- hidden layer ``H_ww`` (m x m blocks of d x d): diagonal / off-diagonal block norms;
- output layer ``H_vv`` (C x C blocks of m x m): diagonal / off-diagonal block norms;
- cross-layer ``H_wv`` (m x C blocks of d x m): total norm, its residual part
  ``(1/N) sum_i M_ij r_ik x_i e_j^T`` (``r_i = p_i - e_{y_i}``) and Gauss-Newton part;
- the block-circulant measure ``circulant_fraction = ||S(H_wv)||_F^2 / ||H_wv||_F^2``, where
  ``S`` keeps the entries of column ``b = j`` of each block ``(j, k)`` (the paper's
  "stripes", eq. 21). It is close to 1 at initialization for CE with C large (the residual
  term dominates) and falls towards the no-pattern level ``1/m`` as ``r_i -> 0``.

All norms are Frobenius norms of the whole part, e.g. ``hidden_off =
sqrt(sum_{j != l} ||H_{w_j w_l}||_F^2)``.

Observed (CPU runs, see the tests): when the net can (nearly) memorize the random labels
(C = 20, d = 50, N = 200: 92% train accuracy) the residual part shrinks ~4.5x, as the
paper's eq. 18-21 argument says. With many classes and the m = 8 bottleneck
(C = d = 100, N = 1000: ~30% accuracy) the residual part only shrinks ~18%; the stripes
still fade (circulant_fraction 0.97 -> 0.13 ~ 1/m) because the Gauss-Newton part of
``H_wv`` grows with the weights and drowns them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from rmthess._checks import check_choice, check_int, check_positive_float
from rmthess.inits import resolve_init
from rmthess.simulate.device import Device, DType, resolve_device, resolve_dtype
from rmthess.simulate.hessian import HessianParts, hessian_parts, random_labels
from rmthess.simulate.models import LOSSES, loss_from_logits
from rmthess.simulate.sampling import Instance, sample_instance

__all__ = ["train_dynamics", "train_states", "hessian_block_norms", "PAPER", "NORM_COLUMNS"]

PAPER = dict(C=500, d=500, m=8, N=5000, steps=20000, lr=1e-4, schedule="cosine")
"""The paper's Section 3.1 setting (steps: our choice, the paper trains to convergence)."""

SCHEDULES = ("cosine", "constant")

NORM_COLUMNS = (
    "hidden_diag",
    "hidden_off",
    "output_diag",
    "output_off",
    "cross",
    "cross_residual",
    "cross_gn",
    "circulant_fraction",
)


def hessian_block_norms(parts: HessianParts) -> dict[str, float]:
    """Frobenius norms of the parts of the Hessian (see module docstring for the names)."""
    m, d, C = parts.m, parts.d, parts.C
    ww = parts.ww.view(m, d, m, d)
    vv = parts.vv.view(C, m, C, m)
    jj = torch.arange(m, device=ww.device)
    kk = torch.arange(C, device=vv.device)
    hid_tot = (ww**2).sum()
    hid_diag = (ww[jj, :, jj, :] ** 2).sum()
    out_tot = (vv**2).sum()
    out_diag = (vv[kk, :, kk, :] ** 2).sum()
    wv = parts.wv.view(m, d, C, m)
    cross_tot = (wv**2).sum()
    stripe = (wv[jj, :, :, jj] ** 2).sum()
    vals = {
        "hidden_diag": hid_diag.sqrt(),
        "hidden_off": (hid_tot - hid_diag).clamp_min(0).sqrt(),
        "output_diag": out_diag.sqrt(),
        "output_off": (out_tot - out_diag).clamp_min(0).sqrt(),
        "cross": cross_tot.sqrt(),
        "cross_residual": parts.wv_residual.norm(),
        "cross_gn": (parts.wv - parts.wv_residual).norm(),
        "circulant_fraction": stripe / cross_tot if cross_tot > 0 else torch.zeros(()),
    }
    return {k: float(v) for k, v in vals.items()}


def lr_at(lr: float, schedule: str, t: int, steps: int) -> float:
    """Learning rate of step ``t`` of ``steps``: constant, or cosine annealing to 0."""
    if schedule == "constant":
        return lr
    return 0.5 * lr * (1 + math.cos(math.pi * t / max(steps, 1)))


def _check_config(C, d, m, N, steps, lr, schedule, loss, record_every):
    C = check_int("C", C, 1)
    d = check_int("d", d, 1)
    m = check_int("m", m, 1)
    N = check_int("N", N, 1)
    steps = check_int("steps", steps, 0)
    lr = check_positive_float("lr", lr)
    schedule = check_choice("schedule", schedule, SCHEDULES)
    loss = check_choice("loss", loss, LOSSES)
    record_every = check_int("record_every", record_every, 1)
    return C, d, m, N, steps, lr, schedule, loss, record_every


def train_states(
    C: int = 20,
    d: int = 50,
    N: int = 200,
    m: int = 8,
    *,
    steps: int = 500,
    lr: float = 1e-2,
    schedule: str = "cosine",
    loss: str = "ce",
    seed: int = 0,
    device: Device = "auto",
    dtype: DType = "float64",
    record_every: int = 1,
    init="lecun",
) -> Iterator[tuple[int, float, Instance, torch.Tensor]]:
    """Run full-batch Adam and yield ``(step, loss, instance, labels)`` every ``record_every``.

    Step 0 is the initialization; the final step ``steps`` is always yielded. ``instance``
    holds detached copies of the current ``W``, ``V`` (trials = 1) and the fixed data ``X``.
    Labels are uniform random (``random_labels(C, N, seed)``); MSE uses their one-hot codes.
    ``init``: initialisation of ``W`` and ``V`` (:func:`rmthess.inits.resolve_init`).
    """
    C, d, m, N, steps, lr, schedule, loss, record_every = _check_config(
        C, d, m, N, steps, lr, schedule, loss, record_every
    )
    ini = resolve_init(init)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    inst = sample_instance("hidden", C, d, N, m=m, seed=seed, device=dev, dtype=dt, init=ini)
    Y = random_labels(C, N, seed, dev)
    # validation above runs eagerly; the loop is a generator
    return _run(inst, Y, steps, lr, schedule, loss, record_every)


def _run(inst, Y, steps, lr, schedule, loss, record_every):
    X = inst.X[0]
    W = inst.W[0].clone().requires_grad_(True)
    V = inst.V[0].clone().requires_grad_(True)
    opt = torch.optim.Adam([W, V], lr=lr)

    def snapshot():
        return Instance(X=inst.X, W=W.detach().clone()[None], V=V.detach().clone()[None])

    for t in range(steps + 1):
        value = loss_from_logits(loss, V @ torch.relu(W @ X), Y)
        if t % record_every == 0 or t == steps:
            yield t, float(value.detach()), snapshot(), Y
        if t == steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(lr, schedule, t, steps)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()


def train_dynamics(
    C: int = 20,
    d: int = 50,
    N: int = 200,
    m: int = 8,
    *,
    steps: int = 500,
    lr: float = 1e-2,
    schedule: str = "cosine",
    record_every: int = 25,
    seed: int = 0,
    device: Device = "auto",
    loss: str = "ce",
    dtype: DType = "float64",
    init="lecun",
):
    """Train ``V relu(W x)`` with Adam and record Hessian block norms along training.

    Defaults (C = 20, d = 50, m = 8, N = 200 = 10 per class, lr = 1e-2, 500 full-batch
    steps, cosine) run in a few seconds on CPU and show the effect: the net (near)
    memorizes the random labels, the residuals ``p_i - e_{y_i}`` shrink and with them the
    block-circulant cross-layer part. The paper's setting is ``train_dynamics(**PAPER)``
    (GPU advised). lr is larger than the paper's 1e-4 so that 500 steps suffice.
    ``init``: weight initialisation (:func:`rmthess.inits.resolve_init`; default LeCun).

    Returns
    -------
    pandas.DataFrame with one row per recorded step and columns ``step, lr, loss,
    accuracy`` and :data:`NORM_COLUMNS` (see module docstring), plus the ratios
    ``hidden_ratio = hidden_off/hidden_diag``, ``output_ratio``,
    ``cross_rel = cross / cross(step 0)`` and ``cross_share = sqrt(2) cross / ||H||_F``
    (the share of the whole Hessian's Frobenius norm in the two cross-layer blocks).
    """
    import pandas as pd

    rows = []
    for t, value, snap, Y in train_states(
        C,
        d,
        N,
        m,
        steps=steps,
        lr=lr,
        schedule=schedule,
        loss=loss,
        seed=seed,
        device=device,
        dtype=dtype,
        record_every=record_every,
        init=init,
    ):
        parts = hessian_parts(loss, snap, Y)
        with torch.no_grad():
            Z = snap.V[0] @ torch.relu(snap.W[0] @ snap.X[0])
            acc = float((Z.argmax(0) == Y).double().mean())
        lr_t = lr_at(lr, schedule, t, steps)
        rows.append(
            {"step": t, "lr": lr_t, "loss": value, "accuracy": acc, **hessian_block_norms(parts)}
        )
    df = pd.DataFrame(rows)
    df["hidden_ratio"] = df["hidden_off"] / df["hidden_diag"]
    df["output_ratio"] = df["output_off"] / df["output_diag"]
    df["cross_rel"] = df["cross"] / df["cross"].iloc[0]
    total2 = df["hidden_diag"] ** 2 + df["hidden_off"] ** 2 + df["output_diag"] ** 2
    total2 = total2 + df["output_off"] ** 2 + 2 * df["cross"] ** 2
    df["cross_share"] = (2 * df["cross"] ** 2 / total2) ** 0.5
    return df
