r"""The paper's second-order term: ``L_{k+1} - L_k`` in a Gaussian neighbourhood of ``theta*``.

For one order of the samples (the first ``k+1`` of ``order``) write

    D(theta) = L_{k+1}(theta) - L_k(theta) = (l_{k+1}(theta) - L_k(theta)) / (k+1)     (exact)

and ``theta = theta* + delta``, ``delta ~ N(0, sigma^2 I_P)``. With ``D0 = D(theta*)``,
``g = grad D(theta*) = (grad l_{k+1} - grad L_k)/(k+1)`` and
``M = hess D(theta*) = (H_{k+1} - H^(k))/(k+1)`` (``H^(k)`` the mean Hessian of the first
``k`` samples), the second-order Taylor polynomial ``D2 = D0 + g.delta + delta^T M delta / 2``
has the EXACT moments (Isserlis: ``E (delta^T M delta)^2 = sigma^4 (2 ||M||_F^2 + (tr M)^2)``)

    E D2   = D0 + (sigma^2/2) tr M
    E D2^2 = D0^2 + sigma^2 ||g||^2 + sigma^2 D0 tr M + (sigma^4/4) (2 ||M||_F^2 + (tr M)^2),

and ``E D - E D2 = O(sigma^4)`` (odd orders vanish), ``E D^2 - E D2^2 = O(sigma^4)`` (from
``2 D0 E T4 + 2 E[(g.delta) T3]``, ``T_j`` the Taylor terms of order ``j``). The paper
(section 3.2) writes the quadratic term as ``delta^T (H_{k+1} - H^(k)) delta / (k+1)``,
without the ``1/2`` of its own equation (2), and drops ``g`` by its Assumption 1 (``theta*``
critical for both ``L_k`` and ``L_{k+1}``), which no finite ``k`` satisfies: ``g`` is
the deviation of one per-sample gradient from a mean, ``O(1/k)`` like ``D0``, and
``sigma^2 ||g||^2`` is 28-100% of ``E D2^2 - D0^2`` on small trained tanh MLPs. For ReLU
networks the expansion holds only for ``sigma`` well below the smallest
``|w_j . x_i| / |x_i|`` over the samples used: the Hessian does not see the kinks
(docs/theory.md section 9.3). ``mean_paper`` is the paper's ``D0 + sigma^2 tr M``.

``tr M`` and ``||M||_F^2`` come from Hessian-vector products (:mod:`rmthess.curvature`):
exactly from the ``P`` unit vectors for ``P <= EXACT_MAX_PARAMS`` (or ``probes >= P``),
otherwise by Hutchinson with Rademacher probes ``v`` (``E v^T M v = tr M``,
``E |M v|^2 = ||M||_F^2``) and standard errors from the spread over probes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from rmthess._checks import check_int, check_positive_float
from rmthess._stats import json_safe
from rmthess.curvature._inputs import check_problem
from rmthess.curvature.operators import curvature_operator
from rmthess.landscape.losses import as_batches, check_per_sample, per_sample, unreduced_loss

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike
    from torch import nn

    from rmthess.curvature._types import Data, Loss

__all__ = ["EXACT_MAX_PARAMS", "NeighbourhoodDelta", "NeighbourhoodMC", "neighbourhood_delta"]

EXACT_MAX_PARAMS = 2048
"""Up to this many parameters, ``tr M`` and ``||M||_F^2`` are exact (``P`` products)."""


def _frame(rec: dict):
    import pandas as pd

    return pd.DataFrame([rec])


@dataclass
class NeighbourhoodMC:
    """Result of :meth:`NeighbourhoodDelta.monte_carlo`: ``D(theta* + delta)`` evaluated
    exactly (forward passes) for ``n_draws`` Gaussian ``delta``.

    mean, mean_se / mean_sq, mean_sq_se : Monte-Carlo ``E D`` and ``E D^2`` with standard
        errors (over draws, or over antithetic pairs ``(delta, -delta)``).
    gap_mean, gap_mean_se / gap_sq, gap_sq_se : Monte-Carlo ``E[D - D2]`` and
        ``E[D^2 - D2^2]``, i.e. closed form minus truth, with ``D2`` the Taylor polynomial
        evaluated on the SAME draws (control variate: the noise is that of the Taylor
        remainder, ``O(sigma^3)`` per draw, ``O(sigma^4)`` with antithetic pairs).
    theory_mean, theory_mean_sq : the closed forms; second_order_mean
        (``sigma^2 tr M / 2``) and second_order_sq (``E D2^2 - D0^2``): the neighbourhood
        terms the gaps are to be compared with.
    """

    n_draws: int
    sigma: float
    seed: int
    antithetic: bool
    mean: float
    mean_se: float
    mean_sq: float
    mean_sq_se: float
    gap_mean: float
    gap_mean_se: float
    gap_sq: float
    gap_sq_se: float
    theory_mean: float
    theory_mean_sq: float
    second_order_mean: float
    second_order_sq: float

    def to_dict(self) -> dict:
        return json_safe(dict(self.__dict__))

    def to_frame(self) -> pd.DataFrame:
        return _frame(self.to_dict())


@dataclass
class NeighbourhoodDelta:
    """Result of :func:`neighbourhood_delta` (module docstring for the formulas).

    k, sigma, order (the ``k+1`` sample indices used, ``order[k]`` is the added sample),
    n_params ``P``, seed, method (``"exact"`` or ``"hutchinson"``), n_probes.
    D : ``D0 = L_{k+1}(theta*) - L_k(theta*)`` (signed). grad_sq : ``||g||^2``.
    trace_M, trace_M_se, frob_sq_M, frob_sq_M_se : ``tr M``, ``||M||_F^2`` (SE 0 if exact).
    mean, mean_se : ``E D2``; mean_sq, mean_sq_se : ``E D2^2`` (delta-method SE from the
    probes); mean_paper : the paper's ``D0 + sigma^2 tr M``.
    """

    k: int
    sigma: float
    order: np.ndarray
    n_params: int
    seed: int
    method: str
    n_probes: int
    D: float
    grad_sq: float
    trace_M: float
    trace_M_se: float
    frob_sq_M: float
    frob_sq_M_se: float
    mean: float
    mean_se: float
    mean_sq: float
    mean_sq_se: float
    mean_paper: float
    _ctx: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-safe scalars (the order of the samples is the array ``self.order``)."""
        rec = {k: v for k, v in self.__dict__.items() if k not in ("_ctx", "order")}
        return json_safe(rec)

    def to_frame(self) -> pd.DataFrame:
        """One row: :meth:`to_dict`."""
        return _frame(self.to_dict())

    def monte_carlo(
        self, n_draws: int = 1000, *, seed: int | None = None, antithetic: bool = True
    ) -> NeighbourhoodMC:
        """Evaluate ``D(theta* + delta)`` exactly for ``n_draws`` draws (an even number >= 4
        with ``antithetic``: ``n_draws/2`` pairs ``delta, -delta``; >= 2 without) from
        ``numpy.random.default_rng([seed, 2])`` (default: this result's seed). Cost per draw:
        one forward pass over ``k+1`` samples and two Hessian-vector products (for ``D2``).
        The model must not have changed since :func:`neighbourhood_delta`.
        """
        n_draws = check_int("n_draws", n_draws, 4 if antithetic else 2)
        if antithetic and n_draws % 2:
            raise ValueError(f"n_draws must be even with antithetic pairs, got {n_draws}")
        seed = self.seed if seed is None else check_int("seed", seed, 0)
        ctx, s2 = self._ctx, self.sigma**2
        rng = np.random.default_rng([seed, 2])
        n_units = n_draws // 2 if antithetic else n_draws
        cols = {k: [] for k in ("m", "m2", "g", "g2")}
        for i in range(0, n_units, ctx.chunk):
            b = min(ctx.chunk, n_units - i)
            delta = torch.as_tensor(rng.standard_normal((self.n_params, b)) * self.sigma)
            delta = delta.to(device=ctx.theta.device, dtype=ctx.theta.dtype)
            gd = ctx.grad @ delta
            quad = 0.5 * (delta * ctx.matmul_M(delta)).sum(0)
            units = []
            for sign in (1.0, -1.0) if antithetic else (1.0,):
                d = ctx.D_batch(ctx.theta[None, :] + sign * delta.T)
                d2 = self.D + sign * gd + quad
                units.append((d, d * d, d - d2, d * d - d2 * d2))
            for key, vals in zip(cols, zip(*units, strict=True), strict=True):
                cols[key].append((sum(vals) / len(vals)).double().cpu())
        st = {}
        for key, parts in cols.items():
            v = torch.cat(parts).numpy()
            st[key] = (float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)))
        return NeighbourhoodMC(
            n_draws=n_draws, sigma=self.sigma, seed=seed, antithetic=bool(antithetic),
            mean=st["m"][0], mean_se=st["m"][1], mean_sq=st["m2"][0], mean_sq_se=st["m2"][1],
            gap_mean=st["g"][0], gap_mean_se=st["g"][1], gap_sq=st["g2"][0],
            gap_sq_se=st["g2"][1], theory_mean=self.mean, theory_mean_sq=self.mean_sq,
            second_order_mean=0.5 * s2 * self.trace_M, second_order_sq=self.mean_sq - self.D**2,
        )  # fmt: skip


@dataclass
class _Context:
    """What the Monte Carlo needs: ``D`` as a function of a batch of flat parameter
    vectors, products with ``M``, the gradient, the chunk size."""

    theta: torch.Tensor
    grad: torch.Tensor
    D_batch: object
    matmul_M: object
    chunk: int


def _check_order(order, N: int, k: int, seed: int) -> np.ndarray:
    if order is None:
        return np.random.default_rng(seed).permutation(N)[: k + 1]
    o = np.asarray(order)
    if o.ndim != 1 or o.dtype.kind not in "iu":
        raise TypeError(f"order must be a 1-D array of sample indices, got {order!r}")
    if o.size < k + 1:
        raise ValueError(f"order must list at least k+1 = {k + 1} indices, got {o.size}")
    o = o[: k + 1]
    if o.min() < 0 or o.max() >= N or np.unique(o).size != o.size:
        raise ValueError(f"order[:k+1] must hold distinct indices in [0, {N - 1}], got {o}")
    return o


def _functional_D(pb, none_loss, Xs, ys, k: int):
    """``theta (P,) -> D`` and its vmap over a batch of parameter vectors."""
    from torch.func import functional_call, vmap

    sizes = [p.numel() for p in pb.params]
    fixed = {n: p for n, p in pb.model.named_parameters() if n not in pb.names}
    fixed.update(dict(pb.model.named_buffers()))

    def D(theta):
        parts = torch.split(theta, sizes)
        ps = {n: t.reshape(p.shape) for n, t, p in zip(pb.names, parts, pb.params, strict=True)}
        ls = per_sample(none_loss, functional_call(pb.model, {**fixed, **ps}, (Xs,)), ys)
        return (ls[k] - ls[:k].mean()) / (k + 1)

    return D, vmap(D)


def _moments_of_M(matmul_M, P: int, probes: int | None, rng, dtype, device):
    """``(t, f, n)``: per-probe ``v^T M v`` and ``|M v|^2`` (exact: one entry, n = 0)."""
    if probes is None or probes >= P:
        cols = []
        for j in range(0, P, 256):
            E = torch.zeros(P, min(256, P - j), dtype=dtype, device=device)
            E[torch.arange(j, j + E.shape[1]), torch.arange(E.shape[1])] = 1.0
            cols.append(matmul_M(E))
        M = torch.cat(cols, dim=1)
        M = (M + M.T) / 2
        return np.array([float(M.trace())]), np.array([float((M * M).sum())]), 0
    V = torch.as_tensor(rng.integers(0, 2, size=(P, probes)) * 2.0 - 1.0, dtype=dtype)
    V = V.to(device)
    MV = matmul_M(V)
    t = (V * MV).sum(0).double().cpu().numpy()
    f = (MV * MV).sum(0).double().cpu().numpy()
    return t, f, probes


def neighbourhood_delta(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    k: int,
    sigma: float,
    *,
    order: ArrayLike | None = None,
    seed: int = 0,
    probes: int | None = None,
) -> NeighbourhoodDelta:
    """Closed-form ``E_delta D`` and ``E_delta D^2`` for ``delta ~ N(0, sigma^2 I)`` (module
    docstring), with :meth:`NeighbourhoodDelta.monte_carlo` to check them.

    Parameters
    ----------
    model, loss_fn, data : as for :func:`rmthess.landscape.losses.per_sample_losses` (the
        loss enters as its mean over samples; float64 models for the Monte-Carlo check: the
        Taylor remainder at small ``sigma`` is below float32 round-off).
    k : ``1 <= k <= N-1``; ``D`` compares the means of the first ``k`` and ``k+1`` samples.
    sigma : standard deviation of each parameter's perturbation (> 0).
    order : sample indices (distinct, at least ``k+1``; only the first ``k+1`` are used);
        default a random permutation from ``numpy.random.default_rng(seed)``.
    seed : the order, the probes, and the Monte-Carlo draws (default).
    probes : None: exact moments of ``M`` when ``P <= EXACT_MAX_PARAMS``, else 100 probes;
        an int >= 2: Hutchinson with that many probes (exact when ``probes >= P``).

    Cost: ``P`` (exact) or ``probes`` products with ``H_{k+1}`` and ``H^(k)``, each a
    forward-over-reverse pass over 1 and ``k`` samples.
    """
    k = check_int("k", k, 1)
    sigma = check_positive_float("sigma", sigma)
    seed = check_int("seed", seed, 0)
    if probes is not None:
        probes = check_int("probes", probes, 2)
    mean_loss, none_loss = unreduced_loss(loss_fn)
    pb = check_problem(model, mean_loss, as_batches(data))
    if k > pb.n_data - 1:
        raise ValueError(f"k must be an integer <= N-1 = {pb.n_data - 1}, got {k}")
    o = _check_order(order, pb.n_data, k, seed)
    X = torch.cat([b[0] for b in pb.batches])
    y = torch.cat([b[1] for b in pb.batches])
    idx = torch.as_tensor(o, device=X.device)
    Xs, ys = X[idx], y[idx]
    check_per_sample(mean_loss, none_loss, pb.model, Xs, ys)
    P = pb.n_params
    if probes is None and P > EXACT_MAX_PARAMS:
        probes = 100
    D_fn, D_batch = _functional_D(pb, none_loss, Xs, ys, k)
    theta = torch.cat([p.detach().flatten() for p in pb.params])
    from torch.func import grad

    with torch.no_grad():
        D0 = float(D_fn(theta))
    g = grad(D_fn)(theta).detach()
    op_new = curvature_operator(pb.model, mean_loss, (Xs[k : k + 1], ys[k : k + 1]))
    op_old = curvature_operator(pb.model, mean_loss, (Xs[:k], ys[:k]))

    def matmul_M(V):
        return ((op_new.matmat_torch(V) - op_old.matmat_torch(V)) / (k + 1)).detach()

    rng = np.random.default_rng([seed, 1])
    t, f, n = _moments_of_M(matmul_M, P, probes, rng, theta.dtype, theta.device)
    tr, fr = float(t.mean()), float(f.mean())
    s2, gsq = sigma**2, float(g @ g)
    cov = np.cov(np.vstack([t, f])) / n if n else np.zeros((2, 2))
    grad_sq_mean = np.array([s2 * D0 + s2**2 * tr / 2, s2**2 / 2])  # d E D2^2 / d(tr, frob)
    chunk = max(1, min(256, 2**23 // ((k + 1) * 64 + P)))  # vmap memory: params + activations
    return NeighbourhoodDelta(
        k=k, sigma=sigma, order=o, n_params=P, seed=seed,
        method="hutchinson" if n else "exact", n_probes=n, D=D0, grad_sq=gsq,
        trace_M=tr, trace_M_se=math.sqrt(cov[0, 0]), frob_sq_M=fr,
        frob_sq_M_se=math.sqrt(cov[1, 1]), mean=D0 + s2 / 2 * tr,
        mean_se=s2 / 2 * math.sqrt(cov[0, 0]),
        mean_sq=D0**2 + s2 * gsq + s2 * D0 * tr + s2**2 / 4 * (2 * fr + tr**2),
        mean_sq_se=math.sqrt(max(float(grad_sq_mean @ cov @ grad_sq_mean), 0.0)),
        mean_paper=D0 + s2 * tr,
        _ctx=_Context(theta, g, D_batch, matmul_M, chunk),
    )  # fmt: skip
