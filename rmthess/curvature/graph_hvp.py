"""Hessian-vector products at the cost floor: reverse-over-reverse on a kept gradient graph
(issue 21).

One product ``H v`` of the data-set loss ``L = sum_b w_b l_b(theta)`` (batches ``b``, weights
``w_b`` of :meth:`rmthess.curvature._inputs.Problem.weight`) is
``sum_b d/dtheta <grad l_b, v>``. Differentiating the gradient's graph again costs about one
more backward pass; building that graph (a forward and a backward with ``create_graph``)
is the same for every ``v``, so it is built once per batch and kept (PyHessian's route),
while memory allows: profiled on digits MLPs (one thread, float64, one run), a product costs
1.64 / 1.51 gradients at P = 20k / 150k this way, against 2.78 / 2.56 for a plain double
backward and 3.85 / 3.09 for curvlinops' forward-over-reverse operator (the benchmark runs:
BENCHMARKS.md).

Kept graphs hold about three times the forward activations of every batch. Where the
estimate (forward hooks on the first batch, times the number of batches) exceeds
``max_bytes`` the graph is rebuilt for each product and batch instead (a plain double
backward, still no slower than forward-over-reverse). The graph is tied to the parameter
values it was built at: each product first compares the parameters with a copy taken then
(``O(P)``, negligible against the product) and rebuilds the graph after any change, an
optimizer step or an assignment through ``.data`` (which torch's version counters do not
see), so a kept graph is never stale.

Exact: the same matrix as :func:`rmthess.curvature.dense_hessian` and curvlinops (the
operator tests run over both routes: loss options, class weights, several batches, float32).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rmthess._checks import physical_memory

if TYPE_CHECKING:
    from rmthess.curvature._inputs import Problem

__all__ = ["GraphHessian", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 2 * 2**30
"""Largest estimated size of the kept graphs (also at most 1/8 of the RAM)."""

_GRAPH_FACTOR = 3.0
"""Kept double-backward graph / forward activations (saved inputs of the backward, the
gradient's own graph); a conservative factor for the estimate."""


def _activation_bytes(problem: Problem) -> float:
    """Bytes of every module output of one forward pass over all batches (hooks on the first
    batch, scaled by the sample count)."""
    sizes: list[int] = []

    def hook(_mod, _inp, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel() * out.element_size())

    handles = [m.register_forward_hook(hook) for m in problem.model.modules()]
    try:
        X, _ = problem.batches[0]
        with torch.no_grad():
            problem.model(X)
    finally:
        for h in handles:
            h.remove()
    return float(sum(sizes)) * problem.n_data / max(1, problem.batches[0][0].shape[0])


class GraphHessian:
    """``H @ V`` (``V`` of shape (P, k), torch) for a :class:`Problem` (module docstring).

    ``keep``: keep the gradient graphs between products (None: when the estimate fits
    ``max_bytes``, default :data:`DEFAULT_MAX_BYTES` and 1/8 of the RAM).
    """

    def __init__(self, problem: Problem, keep: bool | None = None, max_bytes: float | None = None):
        self.problem = problem
        if keep is None:
            limit = DEFAULT_MAX_BYTES if max_bytes is None else float(max_bytes)
            total = physical_memory()
            if total:
                limit = min(limit, total / 8)
            keep = _GRAPH_FACTOR * _activation_bytes(problem) <= limit
        self.keep = bool(keep)
        self._graphs: list[tuple[torch.Tensor | None, ...]] | None = None
        self._snapshot: list[torch.Tensor] = []

    def _grad_graph(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        p = self.problem
        loss_fn = p.batch_loss_fn
        assert loss_fn is not None  # set in Problem.__post_init__
        loss = p.weight(X.shape[0]) * loss_fn(p.model(X), y)
        g = torch.autograd.grad(loss, p.params, create_graph=True, allow_unused=True)
        return tuple(t if t is not None and t.requires_grad else None for t in g)

    def _graphs_now(self):
        params = self.problem.params
        stale = self._graphs is None or not all(
            torch.equal(p.detach(), s) for p, s in zip(params, self._snapshot, strict=True)
        )
        if stale:
            self._graphs = [self._grad_graph(X, y) for X, y in self.problem.batches]
            self._snapshot = [p.detach().clone() for p in params]
        return self._graphs

    def _hvp(self, g, parts) -> list[torch.Tensor | None]:
        idx = [i for i, t in enumerate(g) if t is not None]
        if not idx:
            return [None] * len(parts)
        out = torch.autograd.grad(
            [g[i] for i in idx], self.problem.params, grad_outputs=[parts[i] for i in idx],
            retain_graph=self.keep, allow_unused=True,
        )  # fmt: skip
        return list(out)

    def __matmul__(self, V: torch.Tensor) -> torch.Tensor:
        p = self.problem
        shapes = p.shapes
        sizes = [t.numel() for t in p.params]
        cols = []
        graphs = self._graphs_now() if self.keep else None
        for j in range(V.shape[1]):
            parts = [c.reshape(s) for c, s in zip(torch.split(V[:, j], sizes), shapes, strict=True)]
            acc = [torch.zeros_like(t) for t in p.params]
            batches = graphs if graphs is not None else p.batches
            for item in batches:
                g = item if graphs is not None else self._grad_graph(*item)
                for a, h in zip(acc, self._hvp(g, parts), strict=True):
                    if h is not None:
                        a.add_(h)
            cols.append(torch.cat([a.reshape(-1) for a in acc]))
        return torch.stack(cols, dim=1).detach()

    def __sub__(self, other):
        return _Difference(self, other)


class _Difference:
    """``A @ V - B @ V`` (the residual ``H - G``)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __matmul__(self, V: torch.Tensor) -> torch.Tensor:
        return self.a @ V - self.b @ V
