r"""Curvature matrices of any PyTorch model as linear operators, and as dense references.

For a model :math:`f_\theta`, a loss :math:`\ell` and data :math:`(x_n, y_n)_{n \le N}`, the
data-set loss is :math:`L(\theta) = c \sum_n \ell(f_\theta(x_n), y_n)` with :math:`c = 1/N`
(``reduction="mean"``) or 1 (``"sum"``). With :math:`J_n = \partial f_\theta(x_n)/\partial\theta`,
:math:`A_n = \nabla_f^2 \ell` and :math:`r_n = \nabla_f \ell` at :math:`f_\theta(x_n)`:

.. math::
    H = \nabla^2_\theta L = \underbrace{c \sum_n J_n^\top A_n J_n}_{G\ \text{(GGN)}}
      + \underbrace{c \sum_n \sum_k r_{nk} \nabla^2_\theta f_k(x_n)}_{R = H - G\ \text{(residual)}}.

``kind="hessian"`` is :math:`H`, ``"ggn"`` is :math:`G` (positive semi-definite for convex
:math:`\ell`) and ``"residual"`` is :math:`R = H - G` (it vanishes with the residuals
:math:`r_n`, or for a model linear in :math:`\theta`).

:func:`curvature_operator` multiplies Hessian-vector products by reverse-over-reverse
autodiff on a kept gradient graph (:mod:`rmthess.curvature.graph_hvp`, the default) or
through ``curvlinops`` (forward-over-reverse, batched over columns with ``vmap``; the GGN
always);
:func:`dense_hessian` forms the matrix by an independent route (``torch.func``:
reverse-over-reverse for :math:`H`, explicit :math:`J^\top A J` for :math:`G`), the reference
of the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from rmthess._checks import check_choice, check_int, physical_memory
from rmthess.curvature._inputs import Problem, check_problem

if TYPE_CHECKING:
    from curvlinops._torch_base import PyTorchLinearOperator
    from torch import nn

    from rmthess.curvature._types import Data, Loss

KINDS = ("hessian", "ggn", "residual")
__all__ = ["KINDS", "CurvatureOperator", "curvature_operator", "dense_hessian"]


class CurvatureOperator(LinearOperator):
    """A curvature matrix (``kind``) of a model's data-set loss, on the flat parameter vector.

    A ``scipy.sparse.linalg.LinearOperator`` (numpy in and out in the model's precision, so
    float64 for a float64 model; symmetric) that also
    multiplies torch tensors on the model's device without a copy (:meth:`matmat_torch`).
    The flat vector is ``torch.cat([p.flatten() for p in params])`` over the parameters that
    require grad, in ``model.named_parameters()`` order; ``offsets[name]`` is each one's slice.
    ``n_matvecs`` counts matrix-vector products (one per column).

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    >>> X, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))
    >>> H = curvature_operator(net, nn.CrossEntropyLoss(), (X, y))
    >>> H.shape
    (26, 26)
    >>> import numpy as np
    >>> bool(np.allclose(H @ np.eye(26), dense_hessian(net, nn.CrossEntropyLoss(), (X, y))))
    True
    """

    def __init__(self, problem: Problem, kind: str, op: PyTorchLinearOperator, max_columns: int):
        P = problem.n_params
        np_dtype = torch.empty(0, dtype=problem.dtype).numpy().dtype
        super().__init__(dtype=np_dtype, shape=(P, P))
        self.problem = problem
        self.kind = kind
        self._op = op
        self.max_columns = max_columns
        self.n_matvecs = 0

    # --- facts -----------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return self.problem.names

    @property
    def offsets(self) -> dict[str, slice]:
        return self.problem.offsets

    @property
    def device(self) -> torch.device:
        return self.problem.device

    @property
    def torch_dtype(self) -> torch.dtype:
        return self.problem.dtype

    @property
    def n_data(self) -> int:
        return self.problem.n_data

    def __repr__(self) -> str:
        return (
            f"CurvatureOperator(kind={self.kind!r}, P={self.shape[0]}, N={self.n_data}, "
            f"params={list(self.names)}, device={self.device}, dtype={self.torch_dtype})"
        )

    # --- products --------------------------------------------------------------------------
    def matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        """``M @ V`` for a torch ``V`` of shape (P,) or (P, k), in column chunks."""
        vec = V.dim() == 1
        V = V.reshape(self.shape[0], -1).to(device=self.device, dtype=self.torch_dtype)
        k = V.shape[1]
        self.n_matvecs += k
        out = [self._op @ V[:, i : i + self.max_columns] for i in range(0, k, self.max_columns)]
        out = torch.cat(out, dim=1) if len(out) > 1 else out[0]
        return out[:, 0] if vec else out

    def _matmat(self, X):
        V = torch.as_tensor(np.asarray(X), dtype=self.torch_dtype, device=self.device)
        return self.matmat_torch(V).detach().cpu().numpy().astype(self.dtype, copy=False)

    def _matvec(self, x):
        return self._matmat(np.asarray(x).reshape(-1, 1)).ravel()

    def _adjoint(self):
        return self

    def to_dense(self) -> np.ndarray:
        """The matrix, from ``P`` products with unit vectors (for small models)."""
        P = self.shape[0]
        _check_dense_memory(P, "to_dense")
        eye = torch.eye(P, dtype=self.torch_dtype, device=self.device)
        M = self.matmat_torch(eye).detach().cpu().numpy().astype(np.float64)
        return (M + M.T) / 2


ROUTES = ("graph", "curvlinops")
"""How Hessian products are computed: ``"graph"`` (reverse-over-reverse on a kept gradient
graph, :mod:`rmthess.curvature.graph_hvp`) or ``"curvlinops"`` (forward-over-reverse)."""


def _curvlinops_op(problem: Problem, kind: str, route: str = "curvlinops"):
    from curvlinops import GGNLinearOperator, HessianLinearOperator

    args = (problem.model, problem.batch_loss_fn, list(problem.params), list(problem.batches))
    kw = dict(check_deterministic=False, num_data=problem.n_data)
    if route == "graph" and kind != "ggn":
        from rmthess.curvature.graph_hvp import GraphHessian

        H = GraphHessian(problem)
        return H if kind == "hessian" else H - GGNLinearOperator(*args, **kw)
    if kind == "hessian":
        return HessianLinearOperator(*args, **kw)
    if kind == "ggn":
        return GGNLinearOperator(*args, **kw)
    return HessianLinearOperator(*args, **kw) - GGNLinearOperator(*args, **kw)


def curvature_operator(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    kind: str = "hessian",
    *,
    batch_size: int | None = None,
    max_columns: int = 32,
    route: str = "graph",
) -> CurvatureOperator:
    """Hessian, GGN or residual ``H - G`` of the data-set loss as a :class:`CurvatureOperator`.

    Parameters
    ----------
    model : torch.nn.Module
        Differentiated in its parameters that require grad (not in training mode if it has
        Dropout/BatchNorm). Data are moved to its parameters' device and dtype.
    loss_fn : torch.nn loss module with ``reduction`` "mean" or "sum", or "ce" / "mse"
    data : ``(X, y)``, an ``rmthess.data.Dataset``, or an iterable of ``(X, y)`` batches
        The loss is averaged (or summed) over all samples, whatever the batching; a
        cross-entropy / NLL mean with class ``weight`` or ``ignore_index`` is torch's weighted
        mean over ALL the data (``sum_i w_{y_i} l_i / sum_i w_{y_i}``, ignored targets left
        out), exactly, whatever the batching (label smoothing included).
    kind : "hessian", "ggn" or "residual"
    batch_size : samples per batch when ``data`` is one ``(X, y)`` pair (default: all, up to
        4096)
    max_columns : columns multiplied at once (memory: activations times this)
    route : ``"graph"`` (default) or ``"curvlinops"``: how Hessian products (``kind``
        "hessian" and the H of "residual") are computed, :data:`ROUTES`. ``"graph"`` keeps
        each batch's gradient graph and differentiates it again per product (about 1.5
        gradients a product; rebuilt per product where the graphs would not fit in memory,
        and after any in-place change of the parameters); ``"curvlinops"`` is
        forward-over-reverse (about 3-4 gradients). The GGN always uses curvlinops.

    Cost: one product is one pass over the data with a second-order derivative, about 1.5
    gradients (``route="graph"``, kept graphs) to 4 (the residual costs a Hessian and a GGN
    product).
    """
    kind = check_choice("kind", kind, KINDS)
    route = check_choice("route", route, ROUTES)
    max_columns = check_int("max_columns", max_columns, 1)
    problem = check_problem(model, loss_fn, data, batch_size=batch_size)
    return CurvatureOperator(problem, kind, _curvlinops_op(problem, kind, route), max_columns)


# --- dense reference -------------------------------------------------------------------------
def _check_dense_memory(P: int, caller: str, factor: float = 3.0) -> None:
    need = factor * 8.0 * P * P
    total = physical_memory()
    if total and need > 0.5 * total:
        raise ValueError(
            f"{caller}: a dense {P} x {P} curvature matrix needs ~{need / 2**30:.1f} GiB, more "
            f"than half of this machine's {total / 2**30:.0f} GiB; use the operator instead"
        )


def _functional_loss(problem: Problem):
    """``theta (P,), X, y -> loss of the batch`` and ``theta, X -> outputs``."""
    from torch.func import functional_call

    names, shapes = problem.names, problem.shapes
    sizes = [int(np.prod(s)) for s in shapes]
    buffers = dict(problem.model.named_buffers())
    fixed = {n: p for n, p in problem.model.named_parameters() if n not in names}

    def outputs(theta, X):
        parts = torch.split(theta, sizes)
        ps = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return functional_call(problem.model, {**fixed, **buffers, **ps}, (X,))

    def loss(theta, X, y):
        return problem.batch_loss_fn(outputs(theta, X), y)

    return outputs, loss


def _ggn_dense(problem: Problem, theta: torch.Tensor, outputs, chunk: int) -> torch.Tensor:
    from torch.func import hessian, jacrev, vmap

    P = theta.numel()
    G = torch.zeros(P, P, dtype=theta.dtype, device=theta.device)

    def per_sample(z, t):  # loss of one sample, as the batch loss would count it
        return problem.batch_loss_fn(z[None], t[None])

    for X, y in problem.batches:
        w = problem.weight(len(X)) / len(X) if problem.batch_loss_fn.reduction == "mean" else 1.0
        for i in range(0, len(X), chunk):
            Xc, yc = X[i : i + chunk], y[i : i + chunk]
            J = jacrev(outputs)(theta, Xc)  # (b, C, P)
            z = outputs(theta, Xc).detach()
            A = vmap(hessian(per_sample))(z, yc)  # (b, C, C)
            J = J.reshape(len(Xc), -1, P)
            A = A.reshape(len(Xc), J.shape[1], J.shape[1])
            G += w * torch.einsum("bcp,bcd,bdq->pq", J, A, J)
    return G


def dense_hessian(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    kind: str = "hessian",
    *,
    batch_size: int | None = None,
) -> np.ndarray:
    """The curvature matrix (P x P float64 ndarray) by ``torch.func``, for small models.

    ``"hessian"``: ``jacrev(jacrev(loss))`` (reverse-over-reverse, columns in chunks), summed
    over batches with weights ``B/N``. ``"ggn"``: ``sum_n J_n^T A_n J_n`` with the Jacobian
    ``J_n`` of the outputs (``jacrev``) and the per-sample output Hessian ``A_n`` (``hessian``
    of the loss of one sample). ``"residual"``: their difference. This route shares no code
    with :func:`curvature_operator` (``curvlinops``): it is the reference of the tests.
    Refuses matrices that would take more than half of the machine's memory.
    """
    from torch.func import jacrev

    kind = check_choice("kind", kind, KINDS)
    problem = check_problem(model, loss_fn, data, batch_size=batch_size)
    P = problem.n_params
    _check_dense_memory(P, "dense_hessian")
    theta = torch.cat([p.detach().flatten() for p in problem.params])
    outputs, loss = _functional_loss(problem)
    H = None
    if kind in ("hessian", "residual"):
        H = torch.zeros(P, P, dtype=theta.dtype, device=theta.device)
        hess = jacrev(jacrev(loss), chunk_size=min(P, 256))
        for X, y in problem.batches:
            H += problem.weight(len(X)) * hess(theta, X, y)
    G = None
    if kind in ("ggn", "residual"):
        chunk = max(1, int(2**27 // max(1, P * problem.n_outputs)))  # J chunk <= 1 GiB
        G = _ggn_dense(problem, theta, outputs, chunk)
    M = H if kind == "hessian" else G if kind == "ggn" else H - G
    M = M.detach().cpu().numpy().astype(np.float64)
    return (M + M.T) / 2
