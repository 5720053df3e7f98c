"""Weights ``a_i``, vectors ``u_i`` of the within-layer Hessian blocks (docs/theory.md section 2).

Every within-layer block of the six cases has the form

    H_kl = (1/N) sum_i a_i^{kl} u_i u_i^T                                   (*)

with ``u_i = x_i`` (linear-*, hidden-*) or ``u_i = h_i = relu(W x_i)`` (output-*), and

=========== ================================================================
case        a_i^{kl}
=========== ================================================================
linear-mse  delta_kl
linear-ce   delta_kl p_ik - p_ik p_il,             p_i = softmax(W x_i)
hidden-mse  (v_k^T v_l) 1[g_ik>0] 1[g_il>0],        g_i = W x_i
hidden-ce   v_k^T (diag p_i - p_i p_i^T) v_l 1[g_ik>0] 1[g_il>0],  p_i = softmax(V h_i)
output-mse  delta_kl
output-ce   delta_kl p_ik - p_ik p_il,             p_i = softmax(V h_i)
=========== ================================================================

``v_k`` is the k-th COLUMN of ``V`` (the output weights leaving hidden neuron k). With
another activation ``phi`` than ReLU (``inst.activation``; :mod:`.torch_activations`),
``h_i = phi(g_i)``, the indicators become ``phi'(g_ik) phi'(g_il)`` and the diagonal hidden
blocks gain the residual term ``phi''(g_ik) v_k^T r_i`` (``r_i = p_i - e_{y_i}`` for CE,
``V h_i - e_{y_i}`` for MSE, labels ``inst.Y``; docs/theory.md section 9.5). The
weights are exact (no approximation): the closed-form blocks built from them equal
``torch.func.hessian`` of the real model and loss to round-off (tests/simulate/test_hessian.py).

Shapes follow :class:`rmthess.simulate.sampling.Instance`: ``X`` (T, d, N), ``W`` (T, C, d)
(linear) or (T, m, d) (hidden), ``V`` (T, C, m). Softmax probabilities come from
``torch.softmax`` on the logits (stable); no (T, N, C, C) tensor is ever formed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rmthess._checks import check_int
from rmthess.cases import get_case
from rmthess.simulate.sampling import Instance
from rmthess.simulate.torch_activations import TorchActivation, torch_activation

BlockIndex = torch.Tensor | Sequence[int] | int
"""Block indices of :func:`block_weights` and ``instance_sq_norms``: a 1-D integer tensor,
a sequence of ints, or one int."""

__all__ = [
    "block_vectors",
    "block_weights",
    "n_blocks",
    "hidden_preactivations",
    "logits",
    "probabilities",
    "all_pairs",
]


def n_blocks(case: str, C: int, m: int | None = None) -> int:
    """Number K of blocks per side of the layer's Hessian: ``m`` for hidden-*, else ``C``
    (:meth:`rmthess.cases.Case.n_blocks`)."""
    c = get_case(case)
    C = check_int("C", C, 2)
    if m is not None:
        m = check_int("m", m, 1)
    return c.n_blocks(C, m)


def _check_instance(case: str, inst: Instance) -> None:
    if not isinstance(inst, Instance):
        raise TypeError(f"inst must be an rmthess.simulate.sampling.Instance, got {type(inst)}")
    c = get_case(case)
    model, case = c.model, c.name
    if model == "hidden" and inst.V is None:
        raise ValueError(
            f"case {case!r} needs a one-hidden-layer instance (V is None); "
            "sample it with sample_instance('hidden', ...)"
        )
    if model == "linear" and inst.V is not None:
        raise ValueError(
            f"case {case!r} needs a linear-model instance (V must be None); "
            "sample it with sample_instance('linear', ...)"
        )


def hidden_preactivations(inst: Instance) -> torch.Tensor:
    """``G = W X``, shape (T, m, N) (hidden model) or the logits (T, C, N) (linear model)."""
    return inst.W @ inst.X


def _act(inst: Instance) -> TorchActivation:
    return torch_activation(inst.activation)


def logits(inst: Instance) -> torch.Tensor:
    """Logits ``Z`` of shape (T, C, N): ``W X`` (linear) or ``V phi(W X)`` (hidden)."""
    G = inst.W @ inst.X
    if inst.V is None:
        return G
    return inst.V @ _act(inst).phi(G)


def probabilities(inst: Instance) -> torch.Tensor:
    """Softmax probabilities ``P`` of shape (T, N, C) (``torch.softmax`` of the logits)."""
    return torch.softmax(logits(inst).transpose(1, 2), dim=-1)


def block_vectors(case: str, inst: Instance) -> torch.Tensor:
    """Vectors ``u_i`` of form (*): ``X`` (T, d, N) for linear-*/hidden-*, else ``phi(W X)``.

    For output-* cases the result is ``H = phi(W X)`` of shape (T, m, N).
    """
    c = get_case(case)
    _check_instance(c, inst)
    if c.block_dim == "m":  # m x m blocks of the output layer: u_i = h_i
        return _act(inst).phi(inst.W @ inst.X)
    return inst.X


def _as_index(name: str, idx, K: int, device) -> torch.Tensor:
    if isinstance(idx, torch.Tensor):
        if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dtype.is_complex:
            raise TypeError(f"{name} must hold integer block indices, got dtype {idx.dtype}")
        t = idx.to(device=device, dtype=torch.long).reshape(-1)
    elif isinstance(idx, Sequence) or hasattr(idx, "__iter__"):
        vals = [check_int(f"{name} entry", v, 0, K - 1) for v in idx]
        t = torch.tensor(vals, dtype=torch.long, device=device)
    else:
        t = torch.tensor([check_int(name, idx, 0, K - 1)], dtype=torch.long, device=device)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > K - 1):
        raise ValueError(f"{name} must hold block indices in [0, {K - 1}], got {t.tolist()}")
    return t


def all_pairs(K: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of all K*K block pairs, row-major: ``(k, l) -> k*K + l``."""
    K = check_int("K", K, 1)
    ar = torch.arange(K, device=device)
    return ar.repeat_interleave(K), ar.repeat(K)


def block_weights(case: str, inst: Instance, rows: BlockIndex, cols: BlockIndex) -> torch.Tensor:
    """Weights ``a_i^{rows[q], cols[q]}`` of form (*), shape (T, N, P).

    Parameters
    ----------
    case : one of :data:`rmthess.CASES`.
    inst : :class:`~rmthess.simulate.sampling.Instance` (linear instance for linear-*,
        one-hidden-layer instance otherwise).
    rows, cols : 1-D integer tensors or int sequences of equal length P: block indices in
        ``0..C-1`` (linear-*, output-*) or ``0..m-1`` (hidden-*).

    Returns
    -------
    torch.Tensor of shape (T, N, P), same dtype/device as ``inst.X``. Exact (see module
    docstring); cost O(T N (C + m) P), memory O(T N (C P + m)).
    """
    c_ = get_case(case)
    _check_instance(c_, inst)
    T, _, N = inst.X.shape
    dev, dt = inst.X.device, inst.X.dtype
    C = inst.W.shape[1] if inst.V is None else inst.V.shape[1]
    m = None if inst.V is None else inst.V.shape[2]
    K = c_.n_blocks(C, m)
    r = _as_index("rows", rows, K, dev)
    c = _as_index("cols", cols, K, dev)
    if r.shape != c.shape:
        raise ValueError(
            f"rows and cols must have the same length, got {r.numel()} and {c.numel()}"
        )
    P_ = r.numel()
    delta = (r == c).to(dt)  # (P,)
    if c_.blocks_over == "C" and c_.loss == "mse":  # A_i = I_C
        return delta.expand(T, N, P_).clone()
    if c_.blocks_over == "C":  # A_i = diag p_i - p_i p_i^T
        P = probabilities(inst)  # (T, N, C)
        pr, pc = P[..., r], P[..., c]
        return delta * pr - pr * pc
    # hidden-*: masks phi'(g_r) phi'(g_c), (T, N, P)
    act = _act(inst)
    G = (inst.W @ inst.X).transpose(1, 2)
    M = act.dphi(G)
    mask = M[..., r] * M[..., c]  # (T, N, P)
    V = inst.V  # (T, C, m)
    if c_.loss == "mse":
        vv = (V[:, :, r] * V[:, :, c]).sum(dim=1)  # (T, P): v_r . v_c
        a = vv.unsqueeze(1) * mask
    else:  # hidden-ce: v_r^T diag(p) v_c - (p.v_r)(p.v_c)
        Z = V @ act.phi(G.transpose(1, 2))
        P = torch.softmax(Z.transpose(1, 2), dim=-1)  # (T, N, C)
        first = P @ (V[:, :, r] * V[:, :, c])  # (T, N, P)
        PV = P @ V  # (T, N, m)
        a = (first - PV[..., r] * PV[..., c]) * mask
    if act.homogeneous or not bool((r == c).any()):
        return a
    return a + delta * _residual(c_.loss, inst, act, G, r)


def _residual(loss: str, inst: Instance, act: TorchActivation, G, r) -> torch.Tensor:
    """``phi''(g_ir) v_r^T r_i``, (T, N, P): the label term of the diagonal hidden blocks."""
    if inst.Y is None:
        raise ValueError(
            f"the instance has no labels Y, which the {inst.activation!r} blocks need "
            "(phi'' != 0); sample it with sample_instance(..., activation=...)"
        )
    V = inst.V
    Z = (V @ act.phi(G.transpose(1, 2))).transpose(1, 2)  # (T, N, C)
    R = torch.softmax(Z, dim=-1) if loss == "ce" else Z
    R = R - torch.nn.functional.one_hot(inst.Y, V.shape[1]).to(R.dtype)
    RV = R @ V  # (T, N, m): v_j . r_i
    return act.d2phi(G)[..., r] * RV[..., r]
