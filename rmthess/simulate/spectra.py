"""Empirical eigenvalues of one Hessian block (for histogram-vs-theory overlays).

A block of form (*) (docs/theory.md section 2) is materialized as

    H_kl = (1/N) U diag(a^{kl}) U^T          (p x p, p = d or m)

and its eigenvalues are computed with ``torch.linalg.eigvalsh`` (the symmetric part is
used: for k != l the block ``H_kl`` is already symmetric because it is a weighted sum of
rank-one terms ``u_i u_i^T``). For d x d blocks the limiting eigenvalue law is the GMP
law of docs/theory.md section 3 with ratio ``gamma = d/N``; for the m x m output blocks only
the m eigenvalues are returned (no bulk: the block converges to a fixed matrix).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from rmthess._checks import check_choice, check_int
from rmthess.cases import get_case
from rmthess.inits import resolve_init
from rmthess.simulate import device as _device
from rmthess.simulate._plan import MAX_TRIALS, check_size
from rmthess.simulate.device import Device, DType, resolve_device, resolve_dtype
from rmthess.simulate.sampling import sample_instance
from rmthess.simulate.weights import block_vectors, block_weights

if TYPE_CHECKING:
    from rmthess.inits import InitLike
    from rmthess.simulate.sampling import Instance


def block_matrix(case: str, inst: Instance, k: int, l: int, trial: int = 0) -> torch.Tensor:
    """Materialize block ``(k, l)`` of trial ``trial``: ``(1/N) U diag(a^{kl}) U^T`` (p x p)."""
    U = block_vectors(case, inst)[trial]  # (p, N)
    a = block_weights(case, inst, [k], [l])[trial, :, 0]  # (N,)
    N = U.shape[1]
    return (U * a) @ U.T / N


def block_eigenvalues(
    case: str,
    block: str = "diag",
    C: int = 10,
    d: int = 400,
    N: int = 800,
    m: int | None = None,
    *,
    seed: int = 0,
    device: Device = "auto",
    dtype: DType = "float64",
    trials: int = 1,
    init: InitLike = "lecun",
    activation: str = "relu",
) -> np.ndarray:
    """Eigenvalues of one diagonal (``block="diag"``: H_00) or off-diagonal
    (``block="off"``: H_01) block of a freshly sampled instance.

    Parameters
    ----------
    case : one of :data:`rmthess.CASES`.
    block : ``"diag"`` or ``"off"``.
    C : classes (>= 2). d, N : sizes (>= 1). m : hidden width (hidden-*: >= 2; output-*:
        >= 1; refused for linear-*). All at most ``MAX_SIZE``.
    seed, device, dtype : as in :func:`rmthess.simulate.sampling.sample_instance`.
    trials : independent instances (``<= MAX_TRIALS``); their eigenvalues are concatenated
        (pooled histogram).
    init : weight initialisation (``"lecun"``, ``"torch-default"`` or a float sigma;
        :func:`rmthess.inits.resolve_init`).
    activation : hidden activation of hidden-*/output-* (a name of
        :data:`rmthess.activations.ACTIVATIONS`, ReLU by default; theory:
        ``limiting_law(..., activation=)``).

    Memory: ``trials (d N + K_W d + C m + 2 m N + 3 N C + 2 p N + 3 p^2)`` elements (data,
    weights, activations, softmax, ``U diag a``, the block and its eigen-workspace) must
    fit in the machine's memory (:func:`rmthess.simulate.device.machine_memory`), else a
    ``ValueError`` is raised before anything is allocated.

    Returns
    -------
    1-D float64 numpy array, ascending within each trial, length ``trials * p`` with
    ``p = d`` (linear-*, hidden-*) or ``m`` (output-*). No normalization: these are the
    eigenvalues of ``H`` itself, whose empirical law tends to the GMP law.
    """
    c = get_case(case)
    block = check_choice("block", block, ("diag", "off"))
    C, d, N = (check_size(n, v, lo) for n, v, lo in (("C", C, 2), ("d", d, 1), ("N", N, 1)))
    trials = check_size("trials", trials, 1, MAX_TRIALS)
    seed = check_int("seed", seed, 0)
    ini = resolve_init(init)
    activation = c.check_activation(activation)
    m = c.check_m(m)
    if m is not None:
        m = check_size("m", m, 1)
    K = c.n_blocks(C, m)
    if block == "off" and K < 2:
        raise ValueError(f"an off-diagonal block needs at least 2 blocks, got K={K}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    p = c.block_size(d, m)
    K_W = C if c.model == "linear" else m
    elems = trials * (
        d * N + K_W * d + C * (m or 0) + 2 * (m or 0) * N + 3 * N * C + 2 * p * N + 3 * p * p
    )
    need = elems * torch.empty((), dtype=dt).element_size()
    avail, what = _device.machine_memory(dev)
    if need > avail:
        raise ValueError(
            f"block_eigenvalues: {c.name} with C={C}, d={d}, N={N}, m={m}, trials={trials} "
            f"needs about {need / 1e9:.3g} GB of memory but the {what} is "
            f"{avail / 1e9:.3g} GB; reduce trials, d, N or C"
        )
    inst = sample_instance(
        c.model, C, d, N, m, trials=trials, seed=seed, device=dev, dtype=dt, init=ini,
        activation=activation,
    )  # fmt: skip
    k, l_ = (0, 0) if block == "diag" else (0, 1)
    U = block_vectors(case, inst)  # (T, p, N)
    a = block_weights(case, inst, [k], [l_])[:, :, 0]  # (T, N)
    H = torch.matmul(U * a.unsqueeze(1), U.transpose(1, 2)) / N
    H = 0.5 * (H + H.transpose(1, 2))
    ev = torch.linalg.eigvalsh(H)
    return ev.double().cpu().numpy().reshape(-1)
