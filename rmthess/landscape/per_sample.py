r"""Spectral norms of per-sample Hessians ``H_i`` and Gauss-Newton parts of a bias-free ReLU MLP.

For sample ``(x_i, y_i)`` and the cross-entropy ``l_i(theta) = logsumexp(z_i) - z_{i,y_i}`` of
the logits ``z_i = f_theta(x_i)`` (``C`` classes, ``P`` parameters ``theta = cat(vec W^(p))``,
rows of each weight matrix in order, as ``rmthess.curvature``):

.. math::
    H_i = \nabla^2_\theta l_i = \underbrace{J_i^\top A_i J_i}_{G_i\ \text{(GGN)}}
        + \underbrace{\textstyle\sum_k r_{ik} \nabla^2_\theta z_{ik}}_{R_i},
    \qquad A_i = \operatorname{diag} p_i - p_i p_i^\top,\ r_i = p_i - e_{y_i},

``J_i = dz_i/dtheta`` (``C x P``), ``p_i = softmax(z_i)``. Returned: ``||M_i||_2`` (the largest
``|eigenvalue|``) of ``M_i = H_i`` (``kind="hessian"``) or ``G_i`` (``"ggn"``), by one of

- ``"kernel"`` (GGN only, the default for it): ``G_i = B^T B`` with ``B = A_i^{1/2} J_i``
  has the nonzero eigenvalues of ``B B^T = A_i^{1/2} (J_i J_i^T) A_i^{1/2}``, a ``C x C``
  matrix (``J_i J_i^T`` is the per-sample neural tangent kernel), so
  ``||G_i||_2 = lambda_max(A_i^{1/2} K_i A_i^{1/2})`` exactly: one Jacobian per sample;
- ``"dense"``: the ``P x P`` matrix (``vmap`` over samples of ``torch.func.hessian``, or
  ``J^T A J`` from ``jacrev``) and ``eigvalsh``; exact to round-off, for small ``P``;
- ``"lanczos"``: Lanczos with full reorthogonalisation (the three-term recurrence, then
  one classical Gram-Schmidt pass against all previous Lanczos vectors), run on a chunk of
  samples at once: each step is ONE batched product, ``vmap`` over samples of a per-sample
  Hessian-vector product (forward-over-reverse) or GGN-vector product (``J^T (A (J v))``).
  The estimate is the Ritz value of largest magnitude; its residual
  ``||M y - theta y|| = |beta_j u_j|`` (``u_j`` the last entry of the Ritz vector of the
  tridiagonal ``T_j``) bounds the distance to an eigenvalue of ``M_i``; a sample stops when
  that residual is ``<= tol |theta|`` (checked every 8 steps) or at breakdown
  (``beta_j <= 1e-12 ||T_j||``: the Krylov space is invariant, its Ritz values exact;
  ``H_i`` has rank ``O(sum of widths)``, so this happens after at most that many steps).
  Ritz values lie inside the spectrum, so the estimate approaches the norm from below; a
  random start vector (seeded) misses the top eigenvector with probability 0.

``"auto"``: ``"kernel"`` for the GGN; ``"dense"`` for ``H`` when ``P <=`` :data:`DENSE_MAX_P`,
else ``"lanczos"``. Everything runs in ``dtype`` (float64 by default) on the model's device,
the model itself untouched. At a ReLU kink (a pre-activation exactly 0) the Hessian is the
one of the active pattern ``z > 0`` (torch's ``relu'(0) = 0``).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from rmthess._checks import check_choice, check_int, check_positive_float, check_progress
from rmthess._device import DType, resolve_dtype
from rmthess._stats import json_safe
from rmthess.data import as_xy
from rmthess.landscape.models import check_relu_mlp

if TYPE_CHECKING:
    from torch import nn

    from rmthess.curvature._types import Data

__all__ = [
    "KINDS",
    "METHODS",
    "PerSampleNorms",
    "per_sample_curvature",
    "per_sample_hessian_norms",
]

KINDS = ("hessian", "ggn")
METHODS = ("auto", "dense", "lanczos", "kernel")
DENSE_MAX_P = 400
"""``method="auto"`` forms dense per-sample Hessians up to this many parameters."""
MEMORY = 2**30
"""Default working-memory budget in bytes of one chunk of samples (``memory=None``)."""
_CHECK_EVERY = 8
_BREAKDOWN = 1e-12
_FIRST_CAP = 32  # Lanczos vectors allocated at first (doubled on demand)


@dataclass(frozen=True)
class PerSampleNorms:
    """Per-sample spectral norms ``||H_i||_2`` or ``||G_i||_2`` (see the module docstring).

    ``norm`` (N,): the norms; ``eigenvalue`` (N,): the eigenvalue of largest magnitude
    (signed: a negative one comes from the residual part ``R_i``); ``residual`` (N,): the
    Lanczos residual relative to ``|eigenvalue|`` (0 for the exact routes); ``steps`` (N,):
    Lanczos steps used (0 otherwise). ``method`` is the route actually taken.
    """

    norm: np.ndarray
    eigenvalue: np.ndarray
    residual: np.ndarray
    steps: np.ndarray
    kind: str
    method: str
    n_params: int
    tol: float
    seconds: float

    def __len__(self) -> int:
        return len(self.norm)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.norm, dtype=dtype)

    def to_dict(self) -> dict:
        """Flat JSON-safe summary (no per-sample arrays)."""
        return json_safe(
            {
                "kind": self.kind,
                "method": self.method,
                "N": len(self.norm),
                "n_params": self.n_params,
                "norm_min": float(self.norm.min()),
                "norm_median": float(np.median(self.norm)),
                "norm_max": float(self.norm.max()),
                "residual_max": float(self.residual.max()),
                "steps_max": int(self.steps.max()),
                "tol": self.tol,
                "seconds": self.seconds,
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy DataFrame: one row per sample (``sample, norm, eigenvalue, residual, steps``)."""
        return pd.DataFrame(
            {
                "sample": np.arange(len(self.norm)),
                "norm": self.norm,
                "eigenvalue": self.eigenvalue,
                "residual": self.residual,
                "steps": self.steps,
                "kind": self.kind,
                "method": self.method,
            }
        )


def per_sample_hessian_norms(model: nn.Module, data: Data, **kw: Any) -> np.ndarray:
    """``||H_i||_2`` (or ``||G_i||_2`` with ``kind="ggn"``) for every sample, shape (N,).

    The array of :func:`per_sample_curvature` (same keywords), which also returns the
    Lanczos residuals and the route taken.
    """
    return per_sample_curvature(model, data, **kw).norm


def per_sample_curvature(
    model: nn.Module,
    data: Data,
    *,
    kind: str = "hessian",
    method: str = "auto",
    chunk: int | None = None,
    steps: int | None = None,
    tol: float = 1e-10,
    seed: int = 0,
    dtype: DType = "float64",
    memory: int | None = None,
    progress: bool | None = None,
) -> PerSampleNorms:
    """Spectral norms of the per-sample cross-entropy Hessians (or GGNs) of a ReLU MLP.

    Parameters
    ----------
    model : bias-free ReLU MLP (:func:`rmthess.landscape.models.check_relu_mlp`)
    data : ``rmthess.data.Dataset`` or ``(X, y)`` (tensors or arrays; ``X`` (N, d) finite,
        ``y`` (N,) integer labels in ``[0, C)``), ``N >= 1``
    kind : ``"hessian"`` (``H_i``) or ``"ggn"`` (``G_i = J_i^T A_i J_i``)
    method : ``"auto"``, ``"dense"``, ``"lanczos"`` or ``"kernel"`` (GGN only)
    chunk : samples processed at once (default: as many as fit in ``memory``; for Lanczos
        the estimate assumes <= 64 steps, and a chunk that needs more grows past it)
    steps : maximum Lanczos steps (default ``min(P, 256)``)
    tol : Lanczos stopping rule, residual ``<= tol |eigenvalue|`` (float64: 1e-10 gives
        the norm to ~1e-10 relative or better)
    seed : seed of the Lanczos start vectors
    dtype : float64 (default) or float32 arithmetic
    memory : bytes of working memory per chunk (default :data:`MEMORY`)
    progress : tqdm bar over chunks (``None``: on a terminal, when there are more than 4)

    Cost per sample: ``"kernel"`` one backward sweep of the ``C x C`` identity
    (``sum_p C d_p d_(p+1)`` multiply-adds, no Jacobian stored); ``"dense"`` ``P`` Hessian
    rows and a ``P^3`` eigensolve; ``"lanczos"`` ``s`` Hessian-vector products (about 3-4
    gradients each) plus ``s^2 P`` multiply-adds of reorthogonalisation, ``s`` the steps
    taken (16-32 for ``784 -> 16 x 6 -> 10``: 16-26 ms per sample on one CPU core).
    """
    kind = check_choice("kind", kind, KINDS)
    method = check_choice("method", method, METHODS)
    weights = check_relu_mlp(model)
    shapes = [tuple(W.shape) for W in weights]
    P = sum(a * b for a, b in shapes)
    C = shapes[-1][0]
    dtype = resolve_dtype(dtype)
    if method == "auto":
        method = "kernel" if kind == "ggn" else ("dense" if P <= DENSE_MAX_P else "lanczos")
    if method == "kernel" and kind != "ggn":
        raise ValueError("method='kernel' computes the GGN only; use kind='ggn'")
    steps = min(P, 256) if steps is None else check_int("steps", steps, 1, P)
    tol = check_positive_float("tol", tol)
    seed = check_int("seed", seed, 0)
    memory = MEMORY if memory is None else check_int("memory", memory, 1)
    progress = check_progress(progress)
    if chunk is not None:
        chunk = check_int("chunk", chunk, 1)
    X, Y = xy_tensors(data, shapes[0][1], C, dtype, weights[0].device)
    return _curvature(weights, X, Y, kind, method, chunk, steps, tol, seed, memory, progress)


def _curvature(weights, X, Y, kind, method, chunk, steps, tol, seed, memory, progress):
    """:func:`per_sample_curvature` on checked arguments and data already on the device
    (``X`` (N, d), one-hot ``Y`` (N, C), both of the working dtype)."""
    shapes = [tuple(W.shape) for W in weights]
    P = sum(a * b for a, b in shapes)
    C = shapes[-1][0]
    dtype = X.dtype
    item = torch.finfo(dtype).bits // 8
    per = {
        "kernel": 4 * C * C + 2 * C * max(a for a, _ in shapes) + 2 * sum(b for _, b in shapes),
        "dense": 4 * P * P + 8 * P,
        "lanczos": (min(steps, 2 * _FIRST_CAP) + 12) * P,
    }[method] * item
    if method == "dense" and per > memory and chunk is None:
        raise ValueError(
            f"method='dense' needs {per / 2**20:.0f} MiB per sample (P = {P}), more than "
            f"memory = {memory / 2**20:.0f} MiB; use method='lanczos' or raise memory"
        )
    N = len(X)
    chunk = max(1, min(N, memory // per)) if chunk is None else chunk
    theta = torch.cat([W.detach().to(dtype).reshape(-1) for W in weights])
    fns = _Functions(shapes)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    norm, eig, res, nsteps = (np.zeros(N) for _ in range(4))
    starts = range(0, N, chunk)
    if progress or (progress is None and len(starts) > 4 and sys.stderr.isatty()):
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"per-sample {kind} ({method})", unit="chunk")
    t0 = time.perf_counter()
    for i in starts:
        sl = slice(i, min(N, i + chunk))
        Xc, Yc = X[sl], Y[sl]
        if method == "kernel":
            e, r, s = fns.ggn_kernel(theta, Xc), None, None
        elif method == "dense":
            e, r, s = fns.dense(theta, Xc, Yc, kind), None, None
        else:
            e, r, s = _lanczos(fns, kind, theta, Xc, Yc, steps, tol, gen)
        eig[sl] = e.cpu().numpy()
        if r is not None:
            res[sl], nsteps[sl] = r.cpu().numpy(), s.cpu().numpy()
    norm = np.abs(eig)
    bad = int(np.sum(res > tol))
    if bad:
        warnings.warn(
            f"Lanczos did not reach residual <= tol = {tol:g} for {bad} of {N} samples within "
            f"steps = {steps} (largest relative residual {res.max():.2g}); raise steps",
            RuntimeWarning,
            stacklevel=3,
        )
    return PerSampleNorms(
        norm, eig, res, nsteps.astype(np.int64), kind, method, P, tol, time.perf_counter() - t0
    )


# ---------------------------------------------------------------------------- data
def check_xy(data, d: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` numpy arrays of ``data`` (:func:`rmthess.data.as_xy`, the one coercion),
    checked for a model of input width ``d`` and ``C`` classes: ``X`` (N, d) finite real,
    ``y`` (N,) integer labels in ``[0, C)``."""
    X, y = as_xy(data)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"data: X must have shape (N, {d}) for this model, got {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"data: y must have shape ({X.shape[0]},) like X's rows, got {y.shape}")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        raise ValueError(f"data: X must be finite; sample {int(np.argmin(finite))} has NaN/inf")
    if y.dtype.kind not in "iu":
        raise TypeError(f"data: y must hold integer class labels, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= C:
        raise ValueError(
            f"data: labels must lie in [0, {C - 1}] (the model has {C} outputs), "
            f"got [{y.min()}, {y.max()}]"
        )
    return X, y


def to_tensors(X: np.ndarray, y: np.ndarray, C: int, dtype, dev):
    """``(X, one-hot Y)`` as ``dtype`` tensors on ``dev`` (one conversion)."""
    Xt = torch.tensor(X, dtype=dtype, device=dev)
    Yt = torch.nn.functional.one_hot(torch.tensor(y, dtype=torch.int64), C).to(dev, dtype)
    return Xt, Yt


def xy_tensors(data, d: int, C: int, dtype, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, one-hot Y)`` on ``dev``: :func:`check_xy`, then :func:`to_tensors`."""
    return to_tensors(*check_xy(data, d, C), C, dtype, dev)


# ---------------------------------------------------------------------------- functions
class _Functions:
    """Per-sample logits, loss and curvature products on the flat parameter vector."""

    def __init__(self, shapes):
        self.shapes = shapes
        self.sizes = [a * b for a, b in shapes]

    def logits(self, theta, x):
        ws = [
            t.reshape(s) for t, s in zip(torch.split(theta, self.sizes), self.shapes, strict=True)
        ]
        a = x
        for W in ws[:-1]:
            a = torch.relu(W @ a)
        return ws[-1] @ a

    def loss(self, theta, x, Y):
        z = self.logits(theta, x)
        return torch.logsumexp(z, 0) - (z * Y).sum()

    def jac_and_A(self, theta, X):
        """``J`` (b, C, P) and ``A = diag p - p p^T`` (b, C, C)."""
        from torch.func import jacrev, vmap

        J = vmap(jacrev(self.logits), in_dims=(None, 0))(theta, X)
        p = torch.softmax(vmap(self.logits, in_dims=(None, 0))(theta, X), dim=1)
        A = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        return J, A

    def kernel(self, theta, X):
        """Per-sample NTK ``K_i = J_i J_i^T`` (b, C, C) and ``p_i`` (b, C), without ``J``.

        ``J_i J_i^T = sum_p ||x^(p)||^2 G^(p) G^(p)^T`` since ``dz[V^(p)] = G^(p) V^(p) x^(p)``
        (``x^(p)`` the input of layer ``p``, ``G^(p) = dz/dz^(p)``, ``G^(L) = I``,
        ``G^(p) = G^(p+1) W^(p+1) D^(p)``): ``sum_p C d_p d_(p+1)`` flops per sample.
        """
        ws = [
            t.reshape(s) for t, s in zip(torch.split(theta, self.sizes), self.shapes, strict=True)
        ]
        acts, masks, a = [X], [], X
        for W in ws[:-1]:
            zp = a @ W.T
            masks.append(zp > 0)
            a = torch.relu(zp)
            acts.append(a)
        p = torch.softmax(a @ ws[-1].T, dim=1)
        b, C = p.shape
        G = torch.eye(C, dtype=X.dtype, device=X.device).expand(b, C, C)
        K = (acts[-1] ** 2).sum(1)[:, None, None] * G
        for q in range(len(ws) - 2, -1, -1):  # G^(q+1) from G^(q+2), 0-based lists
            G = (G @ ws[q + 1]) * masks[q][:, None, :]
            K = K + (acts[q] ** 2).sum(1)[:, None, None] * (G @ G.transpose(1, 2))
        return K, p

    def ggn_kernel(self, theta, X):
        K, p = self.kernel(theta, X)
        A = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        lam, U = torch.linalg.eigh(A)
        S = (U * lam.clamp(min=0).sqrt()[:, None, :]) @ U.transpose(1, 2)  # A^{1/2}
        return torch.linalg.eigvalsh(S @ K @ S)[:, -1]

    def dense(self, theta, X, Y, kind):
        from torch.func import hessian, vmap

        if kind == "hessian":
            M = vmap(hessian(self.loss), in_dims=(None, 0, 0))(theta, X, Y)
        else:
            J, A = self.jac_and_A(theta, X)
            M = J.transpose(1, 2) @ A @ J
        ev = torch.linalg.eigvalsh((M + M.transpose(1, 2)) / 2)
        return _largest_magnitude(ev)

    def product(self, kind):
        """``(theta, V (b, P), X, Y) -> M_i v_i`` batched over samples."""
        from torch.func import grad, jvp, vjp, vmap

        if kind == "hessian":

            def one(theta, v, x, Y):
                return jvp(lambda t: grad(self.loss)(t, x, Y), (theta,), (v,))[1]

        else:

            def one(theta, v, x, Y):
                z, Jv = jvp(lambda t: self.logits(t, x), (theta,), (v,))
                p = torch.softmax(z, 0)
                u = p * Jv - p * (p @ Jv)
                return vjp(lambda t: self.logits(t, x), theta)[1](u)[0]

        return vmap(one, in_dims=(None, 0, 0, 0))


def _largest_magnitude(ev: torch.Tensor) -> torch.Tensor:
    """Eigenvalue of largest magnitude of each row of ascending eigenvalues (b, k)."""
    lo, hi = ev[:, 0], ev[:, -1]
    return torch.where(hi.abs() >= lo.abs(), hi, lo)


# ---------------------------------------------------------------------------- Lanczos
def _lanczos(fns: _Functions, kind, theta, X, Y, steps: int, tol: float, gen):
    """Batched Lanczos for the eigenvalue of largest magnitude of each sample's matrix.

    Returns ``(eigenvalue, relative residual, steps)``, each of shape (b,). Each step: the
    three-term recurrence, then one classical Gram-Schmidt pass against every previous
    Lanczos vector (full reorthogonalisation). Converged or broken-down samples leave the
    active batch at the next check (every 8 steps); the basis grows by doubling.
    """
    b, P = X.shape[0], theta.numel()
    dev, dt = theta.device, theta.dtype
    op = fns.product(kind)
    out_e = torch.zeros(b, dtype=dt, device=dev)
    out_r = torch.full((b,), math.inf, dtype=dt, device=dev)
    out_s = torch.zeros(b, dtype=torch.int64, device=dev)
    active = torch.arange(b, device=dev)
    Q = torch.empty(b, min(steps, _FIRST_CAP) + 1, P, dtype=dt, device=dev)
    q = torch.randn(b, P, generator=gen, dtype=torch.float64).to(dev, dt)
    Q[:, 0] = q / q.norm(dim=1, keepdim=True)
    alpha = torch.zeros(b, steps, dtype=dt, device=dev)
    beta = torch.zeros(b, steps, dtype=dt, device=dev)
    for j in range(steps):
        if j + 1 >= Q.shape[1]:  # grow the basis
            Q = torch.cat([Q, torch.empty_like(Q[:, : min(Q.shape[1], steps + 1 - Q.shape[1])])], 1)
        qj = Q[:, j]
        w = op(theta, qj, X[active], Y[active])
        alpha[:, j] = a = (w * qj).sum(1)
        w = w - a[:, None] * qj
        if j:
            w = w - beta[:, j - 1, None] * Q[:, j - 1]
        basis = Q[:, : j + 1]  # one full reorthogonalisation pass
        w = torch.baddbmm(w[:, None, :], (basis @ w[:, :, None]).transpose(1, 2), basis, alpha=-1)
        w = w[:, 0]
        bn = w.norm(dim=1)
        scale = torch.maximum(alpha[:, : j + 1].abs().amax(1), beta[:, : j + 1].abs().amax(1))
        alive = bn > _BREAKDOWN * scale
        beta[:, j] = torch.where(alive, bn, torch.zeros_like(bn))
        Q[:, j + 1] = torch.where(alive[:, None], w / bn.clamp(min=1e-300)[:, None], 0.0)
        if (j + 1) % _CHECK_EVERY and j + 1 < steps:
            continue
        e, r = _ritz(alpha[:, : j + 1], beta[:, : j + 1])
        done = (r <= tol * e.abs()) | (r == 0) | (j + 1 == steps)
        tiny = torch.finfo(dt).tiny
        out_e[active[done]] = e[done]
        out_r[active[done]] = r[done] / e[done].abs().clamp(min=tiny)
        out_s[active[done]] = j + 1
        if bool(done.all()):
            break
        keep = ~done
        active, Q, alpha, beta = active[keep], Q[keep], alpha[keep], beta[keep]
    return out_e, out_r, out_s


def _ritz(alpha: torch.Tensor, beta: torch.Tensor):
    """Ritz value of largest magnitude of each ``T_j`` and its absolute residual."""
    j = alpha.shape[1]
    T = torch.diag_embed(alpha)
    if j > 1:
        off = torch.diag_embed(beta[:, : j - 1], offset=1)
        T = T + off + off.transpose(1, 2)
    lam, U = torch.linalg.eigh(T)
    k = torch.where(lam[:, -1].abs() >= lam[:, 0].abs(), j - 1, 0)
    rows = torch.arange(len(lam), device=lam.device)
    return lam[rows, k], (beta[:, -1] * U[rows, -1, k]).abs()
