r"""Whole-layer Hessian spectra in simulation (docs/theory.md section 9.1).

A layer whose blocks are d x d (cases linear-mse, linear-ce, hidden-mse, hidden-ce) has the
``K d x K d`` Hessian (K = C for the linear model, K = m for the hidden layer)

    H = (1/N) sum_i A_i (x) x_i x_i^T,         A_i[k, l] = a_i^{kl}              (**)

with the weights ``a_i`` of :mod:`rmthess.simulate.weights` (linear-ce:
``A_i = diag p_i - p_i p_i^T``; hidden-*: ``A_i = D_i V^T S_i V D_i`` with the ReLU mask
``D_i = diag 1[W x_i > 0]`` and ``S_i = I`` (MSE) or ``diag p_i - p_i p_i^T`` (CE)).
Parameter order: rows of ``W`` flattened row-major, as in
:func:`rmthess.simulate.hessian.full_hessian` (whose ``W`` block this is).

Labels: (**) is exact and label-free in all four cases, also after training. The residual
``r_i = dl_i/dz_i`` multiplies second derivatives of the logits in the layer's weights,
which are 0 for the linear model and 0 a.e. for the hidden layer (ReLU'' = 0); the only
label-dependent term of the hidden net is in the cross-layer block ``H_wv``
(:func:`rmthess.simulate.hessian.hessian_parts`), which is not part of the layer. Labels act
only through the trained weights. The layer matrix is positive semi-definite (every
``A_i`` is); the full hidden-net Hessian, with ``H_wv``, is indefinite.

Decoupled ensemble (``decoupled=True``): ``H' = (1/N) sum_i A_i (x) x'_i x'_i^T`` with
``A_i`` computed from the model's ``x_i`` and ``x'_i`` an independent N(0, I_d) vector, so
that ``A`` is independent of the vector it multiplies: the ensemble of the matrix-valued
GMP equation ``G = (-z I + E[A (I + gamma G A)^{-1}])^{-1}`` (``gamma = d/N``). ``H`` and
``H'`` restricted to ``R^K (x) row(W)^perp`` have the same law (``A_i`` depends on ``x_i``
only through ``W x_i``), so they differ by a perturbation of rank at most ``2 K r``
(``r = rank W``): by Cauchy interlacing at most ``K r`` eigenvalues of ``H`` lie above the
largest eigenvalue of that restriction.

Training (``steps > 0``): full-batch Adam on uniform random labels (``random_labels(C, N,
seed_t)``), cosine-annealed learning rate ``lr_t = lr (1 + cos(pi t/steps))/2``: the hidden
net with :func:`rmthess.simulate.training.train_states`, the linear model with the same loop
here. Accuracy: eigenvalues from ``torch.linalg.eigvalsh`` (backward stable: absolute error
``~ eps ||H||``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from rmthess._checks import check_int, check_positive_float
from rmthess._stats import json_safe
from rmthess.cases import cases_where, get_case
from rmthess.inits import resolve_init
from rmthess.simulate import device as _device
from rmthess.simulate._plan import MAX_TRIALS, check_size
from rmthess.simulate.device import Device, DType, resolve_device, resolve_dtype
from rmthess.simulate.hessian import random_labels
from rmthess.simulate.models import loss_from_logits
from rmthess.simulate.sampling import (
    Instance,
    gaussian,
    make_generator,
    sample_instance,
    trial_seeds,
)
from rmthess.simulate.training import lr_at, train_states
from rmthess.simulate.weights import all_pairs, block_weights

if TYPE_CHECKING:
    import pandas as pd

    from rmthess.inits import InitLike

__all__ = [
    "LayerSpectrum",
    "layer_eigenvalues",
    "layer_matrix",
    "layer_instance",
    "decoupled_vectors",
]

LAYER_CASES = cases_where(has_gmp_limit=True)
"""Cases with d x d blocks: the layers whose spectrum has a GMP bulk (a registry query:
linear-mse, linear-ce, hidden-mse, hidden-ce)."""


@dataclass
class LayerSpectrum:
    """Eigenvalues of whole-layer Hessians.

    eigenvalues: (trials, K d) float64 numpy array, ascending per trial. loss_init_trials,
    loss_trials: mean training loss of each trial at initialization and at the point where
    the Hessian was taken (equal when ``steps == 0``).
    """

    eigenvalues: np.ndarray
    case: str
    C: int
    d: int
    N: int
    m: int | None
    steps: int
    decoupled: bool
    seed: int
    loss_init_trials: np.ndarray
    loss_trials: np.ndarray
    init: str = "lecun"

    @property
    def gamma(self) -> float:
        return self.d / self.N

    @property
    def trials(self) -> int:
        return self.eigenvalues.shape[0]

    @property
    def K(self) -> int:
        return self.eigenvalues.shape[1] // self.d

    def to_dict(self) -> dict:
        """Scalars (case, C, d, N, m, gamma, K, trials, steps, decoupled, seed, lambda_max
        and lambda_max_se over trials, loss_init, loss) flat and JSON-safe; eigenvalues
        are in :meth:`to_frame`."""
        top = self.eigenvalues[:, -1]
        se = float(np.std(top, ddof=1) / math.sqrt(len(top))) if len(top) > 1 else math.nan
        keys = (
            "case",
            "C",
            "d",
            "N",
            "m",
            "gamma",
            "K",
            "trials",
            "steps",
            "decoupled",
            "seed",
            "init",
        )
        rec = {k: getattr(self, k) for k in keys}
        rec.update(lambda_max=float(top.mean()), lambda_max_se=se)
        rec.update(loss_init=float(self.loss_init_trials.mean()))
        rec.update(loss=float(self.loss_trials.mean()))
        return json_safe(rec)

    def to_frame(self) -> pd.DataFrame:
        """Tidy ``pandas.DataFrame``: one row per eigenvalue, columns trial, index (0 =
        smallest), eigenvalue, then case, C, d, N, m, gamma, steps, decoupled."""
        import pandas as pd

        T, n = self.eigenvalues.shape
        df = pd.DataFrame(
            {
                "trial": np.repeat(np.arange(T), n),
                "index": np.tile(np.arange(n), T),
                "eigenvalue": self.eigenvalues.reshape(-1),
            }
        )
        for k in ("case", "C", "d", "N", "m", "gamma", "steps", "decoupled"):
            df[k] = getattr(self, k)
        return df


def layer_matrix(case: str, inst: Instance, *, vectors: torch.Tensor | None = None) -> torch.Tensor:
    """The dense ``K d x K d`` layer Hessian (**) of a single-trial ``inst``.

    ``A_i`` always comes from ``inst``; the vectors are ``inst.X[0]`` or, for the decoupled
    ensemble, ``vectors`` (d, N). Entry ``(k d + a, l d + b)`` is
    ``(1/N) sum_i A_i[k, l] u_ia u_ib``. Cost O(K^2 d^2 N); memory O(K^2 d^2 + K^2 N).
    """
    c = get_case(case)
    U = inst.X[0] if vectors is None else vectors
    d, N = U.shape
    C = inst.W.shape[1] if inst.V is None else inst.V.shape[1]
    K = c.n_blocks(C, None if inst.V is None else inst.V.shape[2])
    r, cc = all_pairs(K, U.device)
    A = block_weights(c.name, inst, r, cc)[0]  # (N, K^2)
    H = torch.empty(K * K, d, d, dtype=U.dtype, device=U.device)
    for q in range(K * K):
        H[q] = (U * A[:, q]) @ U.T / N
    H = H.view(K, K, d, d).permute(0, 2, 1, 3).reshape(K * d, K * d)
    return 0.5 * (H + H.T)


def _train_linear(loss, inst, Y, steps, lr):
    X = inst.X[0]
    W = inst.W[0].clone().requires_grad_(True)
    opt = torch.optim.Adam([W], lr=lr)
    for t in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(lr, "cosine", t, steps)
        opt.zero_grad(set_to_none=True)
        loss_from_logits(loss, W @ X, Y).backward()
        opt.step()
    return Instance(X=inst.X, W=W.detach()[None], V=None)


def _loss(loss, inst, Y) -> float:
    with torch.no_grad():
        Z = inst.W[0] @ inst.X[0]
        if inst.V is not None:
            Z = inst.V[0] @ torch.relu(Z)
        return float(loss_from_logits(loss, Z, Y))


def _prepare(c, C, d, N, m, s, steps, lr, dev, dt, init="lecun"):
    """Trial with stream seed ``s``: (instance at the Hessian point, labels, loss0, loss)."""
    Y = random_labels(C, N, s, dev)
    if c.model == "hidden" and steps > 0:
        states = list(
            train_states(
                C,
                d,
                N,
                m,
                steps=steps,
                lr=lr,
                loss=c.loss,
                seed=s,
                device=dev,
                dtype=dt,
                record_every=steps,
                init=init,
            )  # fmt: skip
        )
        return states[-1][2], Y, states[0][1], states[-1][1]
    inst = sample_instance(c.model, C, d, N, m, seed=s, device=dev, dtype=dt, init=init)
    loss0 = _loss(c.loss, inst, Y)
    if steps > 0:
        inst = _train_linear(c.loss, inst, Y, steps, lr)
    return inst, Y, loss0, _loss(c.loss, inst, Y)


def _check(case, C, d, N, m, trials, seed, steps, lr, decoupled, device, dtype):
    c = get_case(case)
    if c.name not in LAYER_CASES:
        raise ValueError(
            f"case must be one of {', '.join(LAYER_CASES)} (layers with d x d blocks), "
            f"got {c.name!r}"
        )
    C, d, N = (check_size(n, v, lo) for n, v, lo in (("C", C, 2), ("d", d, 1), ("N", N, 1)))
    m = c.check_m(m)
    trials = check_size("trials", trials, 1, MAX_TRIALS)
    seed = check_int("seed", seed, 0)
    steps = check_int("steps", steps, 0)
    lr = check_positive_float("lr", lr)
    if not isinstance(decoupled, bool):
        raise TypeError(f"decoupled must be True or False, got {decoupled!r}")
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    K = c.n_blocks(C, m)
    n = K * d
    # dense matrix + K^2 d^2 staging + eigvalsh workspace, data, weights A_i, training copies
    elems = 4 * n * n + 3 * d * N + 2 * K * K * N + 4 * (C + (m or 0)) * (d + N)
    need = elems * torch.empty((), dtype=dt).element_size()
    avail, what = _device.machine_memory(dev)
    if need > avail / 2:
        raise ValueError(
            f"layer Hessian of {c.name} with C={C}, d={d}, N={N}, m={m} is a dense "
            f"{n} x {n} matrix (K d with K={K}); it needs about {need / 1e9:.3g} GB but the "
            f"budget is half the {what}, {avail / 2e9:.3g} GB; reduce d or "
            f"{'m' if c.blocks_over == 'm' else 'C'}"
        )
    return c, C, d, N, m, trials, seed, steps, lr, dev, dt


def layer_instance(
    case: str,
    C: int,
    d: int,
    N: int,
    m: int | None = None,
    *,
    trial: int = 0,
    trials: int = 1,
    seed: int = 0,
    steps: int = 0,
    lr: float = 1e-2,
    device: Device = "auto",
    dtype: DType = "float64",
    init: InitLike = "lecun",
) -> tuple[Instance, torch.Tensor, float, float]:
    """Trial ``trial`` of :func:`layer_eigenvalues` (same arguments): ``(inst, labels,
    loss_init, loss)`` with ``inst`` (trials = 1) at the point where the Hessian is taken.

    Trial ``t`` uses the stream ``s_t = trial_seeds(seed, trials)[t]``: data and initial
    weights ``sample_instance(model, C, d, N, m, seed=s_t)``, labels
    ``random_labels(C, N, s_t)``, so ``steps = 0`` and ``steps > 0`` share the start.
    """
    c, C, d, N, m, trials, seed, steps, lr, dev, dt = _check(
        case, C, d, N, m, trials, seed, steps, lr, False, device, dtype
    )
    trial = check_int("trial", trial, 0, trials - 1)
    s = trial_seeds(seed, trials)[trial]
    return _prepare(c, C, d, N, m, s, steps, lr, dev, dt, resolve_init(init))


def decoupled_vectors(d: int, N: int, stream_seed: int, device, dtype) -> torch.Tensor:
    """The independent vectors ``x'_i`` (d, N) of the trial with stream seed ``stream_seed``."""
    s = trial_seeds(stream_seed, 1, key=(1,))[0]
    return gaussian((d, N), make_generator(s, device), device, dtype)


def layer_eigenvalues(
    case: str,
    C: int,
    d: int,
    N: int,
    m: int | None = None,
    *,
    trials: int = 1,
    seed: int = 0,
    decoupled: bool = False,
    steps: int = 0,
    lr: float = 1e-2,
    device: Device = "auto",
    dtype: DType = "float64",
    init: InitLike = "lecun",
) -> LayerSpectrum:
    """Eigenvalues of the whole-layer Hessian (**) of ``case`` for ``trials`` instances.

    Parameters
    ----------
    case : linear-mse, linear-ce, hidden-mse or hidden-ce (the layers with d x d blocks).
    C : classes (>= 2). d, N : input dimension and samples (>= 1). m : hidden width
        (hidden-*: >= 2; refused for linear-*).
    trials : independent instances (stream of trial ``t``: :func:`layer_instance`).
    decoupled : use fresh vectors ``x'_i`` independent of ``A_i`` (module docstring).
    steps, lr : full-batch Adam steps on random labels before the Hessian is taken
        (0: at initialization), peak learning rate (cosine schedule).
    device, dtype : as in :func:`rmthess.simulate.sampling.sample_instance`.
    init : weight initialisation (:mod:`rmthess.inits`: ``"lecun"``, ``"torch-default"``
        or a float sigma), as in ``sample_instance``.

    The dense ``K d x K d`` matrix must fit in half of the machine's memory
    (:func:`rmthess.simulate.device.machine_memory`), else ``ValueError`` before any
    allocation. Cost per trial O(K^2 d^2 N + K^3 d^3).

    Returns
    -------
    :class:`LayerSpectrum`; its ``eigenvalues`` (trials, K d) are those of ``H`` itself.
    """
    c, C, d, N, m, trials, seed, steps, lr, dev, dt = _check(
        case, C, d, N, m, trials, seed, steps, lr, decoupled, device, dtype
    )
    ini = resolve_init(init)
    K = c.n_blocks(C, m)
    ev = np.empty((trials, K * d))
    l0, l1 = np.empty(trials), np.empty(trials)
    for t, s in enumerate(trial_seeds(seed, trials)):
        inst, _Y, l0[t], l1[t] = _prepare(c, C, d, N, m, s, steps, lr, dev, dt, ini)
        U = decoupled_vectors(d, N, s, dev, dt) if decoupled else None
        H = layer_matrix(c.name, inst, vectors=U)
        ev[t] = torch.linalg.eigvalsh(H).double().cpu().numpy()
        del H
    return LayerSpectrum(
        eigenvalues=ev,
        case=c.name,
        C=C,
        d=d,
        N=N,
        m=m,
        steps=steps,
        decoupled=decoupled,
        seed=seed,
        loss_init_trials=l0,
        loss_trials=l1,
        init=str(ini),
    )
