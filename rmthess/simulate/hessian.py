r"""Exact Hessians of the linear model and the one-hidden-layer net in closed form.

Notation (one trial): ``X`` (d, N), ``W`` (m, d) (hidden) or (C, d) (linear), ``V`` (C, m),
``g_i = W x_i``, ``M_ij = 1[g_ij > 0]``, ``h_i = relu(g_i)``, logits ``z_i`` (``W x_i``
linear, ``V h_i`` hidden), per-sample loss ``l_i``, residual ``r_i = dl_i/dz_i``
(CE: ``p_i - e_{y_i}``; MSE: ``z_i - y_i``) and output Hessian ``A_i = d^2 l_i/dz_i^2``
(CE: ``diag p_i - p_i p_i^T``; MSE: ``I_C``). ``v_j`` = j-th column of V.

Parameter order of the full Hessian: the rows of W flattened row-major
(index ``j*d + a`` for ``W[j, a]``), then (hidden model) the rows of V
(index ``m*d + k*m + b`` for ``V[k, b]``); i.e. ``torch.cat([W.flatten(), V.flatten()])``.

Blocks (all exact; ReLU'' = 0 a.e., so the within-layer blocks carry no residual term;
another activation ``phi`` of the instance replaces ``M`` by ``phi'(g)`` and ``relu`` by
``phi``, and adds ``delta_jl (1/N) sum_i phi''(g_ij) (v_j^T r_i) x_i x_i^T`` to the hidden
blocks, :mod:`rmthess.simulate.weights`):

- ``H_{W_j W_l} = (1/N) sum_i M_ij M_il (v_j^T A_i v_l) x_i x_i^T``           (d x d)
- ``H_{V_k V_l} = (1/N) sum_i A_i[k,l] h_i h_i^T``                             (m x m)
- ``H_{W_j V_k} = (1/N) sum_i M_ij [ (A_i V)[k,j] x_i h_i^T + r_ik x_i e_j^T ]``  (d x m)

The cross block follows from ``d^2 l / (dW_ja dV_kb) = (df/dW_ja)^T A (df/dV_kb) +
r^T d^2 f/(dW_ja dV_kb)`` with ``df/dW_ja = v_j M_j x_a``, ``df/dV_kb = e_k h_b`` and
``d^2 f_c/(dW_ja dV_kb) = delta_ck delta_bj M_j x_a``. The second ("residual") part is
non-zero only in column ``b = j`` of block ``(j, k)``: this is the paper's block-circulant
pattern of ``H_wv`` at initialization (eq. 18-21), which vanishes as ``r_i -> 0`` in
training. The linear model's Hessian is the linear-* block matrix.

Everything is checked against :func:`autograd_hessian` (``torch.func.hessian``) to
round-off in float64 (tests/simulate/test_hessian.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rmthess._checks import check_case, check_choice, check_int
from rmthess.cases import case_for
from rmthess.simulate import models
from rmthess.simulate.sampling import Instance, make_generator
from rmthess.simulate.torch_activations import torch_activation
from rmthess.simulate.weights import all_pairs, block_vectors, block_weights, n_blocks

__all__ = [
    "hessian_blocks",
    "full_hessian",
    "autograd_hessian",
    "hessian_parts",
    "HessianParts",
    "random_labels",
    "trial_instance",
]


def trial_instance(inst: Instance, trial: int = 0) -> Instance:
    """The single-trial instance ``trial`` of ``inst`` (leading dimension kept, size 1)."""
    if not isinstance(inst, Instance):
        raise TypeError(f"inst must be an rmthess.simulate.sampling.Instance, got {type(inst)}")
    trial = check_int("trial", trial, 0, inst.trials - 1)
    return inst.trial(trial)


def random_labels(C: int, N: int, seed: int = 0, device="cpu") -> torch.Tensor:
    """Uniform random labels in ``0..C-1``, shape (N,), from a generator seeded with ``seed``."""
    C = check_int("C", C, 1)
    N = check_int("N", N, 1)
    dev = torch.device(device)
    return torch.randint(0, C, (N,), generator=make_generator(seed, dev), device=dev)


def hessian_blocks(case: str, inst: Instance, trial: int = 0) -> torch.Tensor:
    """All K x K blocks of one layer's Hessian, closed form, shape (K, K, p, p).

    ``H[k, l] = (1/N) sum_i a_i^{kl} u_i u_i^T`` with the weights of
    :func:`rmthess.simulate.weights.block_weights` (K = C or m, p = d or m). Materialized:
    memory O(K^2 p^2), small sizes only. Labels enter only through the ``phi''`` term of an
    activation other than the piecewise-linear ones (``inst.Y``).
    """
    case = check_case(case)
    one = trial_instance(inst, trial)
    U = block_vectors(case, one)[0]  # (p, N)
    C = one.W.shape[1] if one.V is None else one.V.shape[1]
    m = None if one.V is None else one.V.shape[2]
    K = n_blocks(case, C, m)
    r, c = all_pairs(K, U.device)
    p, N = U.shape
    out = torch.empty(K * K, p, p, dtype=U.dtype, device=U.device)
    chunk = max(1, int(2**24 // max(1, p * N)))
    for s in range(0, K * K, chunk):
        a = block_weights(case, one, r[s : s + chunk], c[s : s + chunk])[0]  # (N, q)
        out[s : s + chunk] = (U.unsqueeze(0) * a.T.unsqueeze(1)) @ U.T / N
    return out.reshape(K, K, p, p)


def _instance_labels(Y, one: Instance, act, loss_name, C, N, seed, device):
    """The labels of a hidden model's Hessian: an activation with ``phi'' != 0`` uses the
    instance's own (its within-layer blocks depend on them); a given ``Y`` is refused there."""
    if act.homogeneous:
        return _labels_or_default(loss_name, Y, C, N, seed, device)
    if Y is not None:
        raise ValueError(
            f"Y does not apply to an instance with activation {one.activation!r}: its "
            "hidden blocks use the instance's own labels (inst.Y); leave Y out"
        )
    if one.Y is None:
        raise ValueError(
            f"the instance has no labels Y, which its {one.activation!r} blocks need; sample "
            "it with sample_instance(..., activation=...)"
        )
    return one.Y[0]


def _labels_or_default(loss_name, Y, C, N, seed, device):
    if Y is None:
        Y = random_labels(C, N, seed, device)
    if not isinstance(Y, torch.Tensor):
        raise TypeError(f"Y must be a torch.Tensor or None, got {type(Y).__name__}")
    return Y.to(device)


@dataclass
class HessianParts:
    """Closed-form Hessian of the one-hidden-layer net, by part (one trial).

    ww: (m*d, m*d) hidden layer; vv: (C*m, C*m) output layer; wv: (m*d, C*m) cross-layer
    block; wv_residual: the residual (block-circulant) part of ``wv``
    (``(1/N) sum_i M_ij r_ik x_i e_j^T``), so ``wv - wv_residual`` is the Gauss-Newton part.
    """

    ww: torch.Tensor
    vv: torch.Tensor
    wv: torch.Tensor
    wv_residual: torch.Tensor
    m: int
    d: int
    C: int

    def full(self) -> torch.Tensor:
        """The whole symmetric Hessian [[ww, wv], [wv^T, vv]]."""
        top = torch.cat([self.ww, self.wv], dim=1)
        bot = torch.cat([self.wv.T, self.vv], dim=1)
        return torch.cat([top, bot], dim=0)


def hessian_parts(
    loss: str, inst: Instance, Y: torch.Tensor | None = None, trial: int = 0, seed: int = 0
) -> HessianParts:
    """Closed-form hidden, output and cross-layer Hessian blocks of ``V phi(W X)``
    (``phi = inst.activation``; ReLU's masks become ``phi'(g)``, and the hidden blocks gain
    the ``phi''`` term of :mod:`rmthess.simulate.weights`, with the instance's labels).

    Parameters
    ----------
    loss : "mse" or "ce".
    inst : one-hidden-layer :class:`Instance`.
    Y : labels (N,) (CE; MSE one-hot encodes them) or MSE targets (C, N); ``None`` draws
        random labels with :func:`random_labels` (``seed``). Refused for an activation
        with ``phi'' != 0``, whose instance carries its labels (``inst.Y``).
    trial : which trial of ``inst``.

    Cost O(N m d (d m + C m)) + O(N C^2 m^2); memory O((m d + C m)^2 + N C m).
    """
    loss = check_choice("loss", loss, models.LOSSES)
    one = trial_instance(inst, trial)
    if one.V is None:
        raise ValueError("hessian_parts needs a one-hidden-layer instance (V is None)")
    X, W, V = one.X[0], one.W[0], one.V[0]
    d, N = X.shape
    m, C = W.shape[0], V.shape[0]
    dt, dev = X.dtype, X.device
    act = torch_activation(one.activation)
    G = W @ X  # (m, N)
    Mk = act.dphi(G)  # (m, N): phi'(g), the ReLU masks
    Hh = act.phi(G)  # (m, N)
    Z = V @ Hh  # (C, N)
    Y = _instance_labels(Y, one, act, loss, C, N, seed, dev)
    Yt = models.targets(loss, Y, C, dt)
    if loss == "ce":
        P = torch.softmax(Z.T, dim=-1)  # (N, C)
        R = P - torch.nn.functional.one_hot(Yt, C).to(dt)  # (N, C)
        PV = P @ V  # (N, m)
        B = P.unsqueeze(2) * (V.unsqueeze(0) - PV.unsqueeze(1))  # (N, C, m): A_i V
    else:
        R = (Z - Yt.to(dt)).T  # (N, C)
        B = V.unsqueeze(0).expand(N, C, m)
    # hidden layer: form (*) with the weights of rmthess.simulate.weights
    ww = _layer_matrix(hessian_blocks(case_for("hidden", loss).name, one))
    # output layer, vectorized over the C^2 blocks (hessian_blocks would loop over them):
    # block (k, l) = (1/N) sum_i (delta_kl p_ik - p_ik p_il) h_i h_i^T  (CE), delta_kl H H^T/N
    if loss == "ce":
        diag = torch.einsum("nk,bn,cn->kbc", P, Hh, Hh) / N  # (C, m, m)
        Q = (P.unsqueeze(2) * Hh.T.unsqueeze(1)).reshape(N, C * m)
        vv = -(Q.T @ Q) / N
        vv4 = vv.view(C, m, C, m)
        idx = torch.arange(C, device=dev)
        vv4[idx, :, idx, :] += diag
    else:
        vv = torch.kron(torch.eye(C, dtype=dt, device=dev), Hh @ Hh.T / N)
    # cross layer
    wv = torch.empty(m, d, C, m, dtype=dt, device=dev)
    res = torch.zeros(m, d, C, m, dtype=dt, device=dev)
    for j in range(m):
        Yj = ((Mk[j].unsqueeze(1) * B[:, :, j]).unsqueeze(2) * Hh.T.unsqueeze(1)).reshape(N, C * m)
        wv[j] = (X @ Yj).view(d, C, m) / N
        res[j, :, :, j] = X @ (Mk[j].unsqueeze(1) * R) / N
    wv = wv + res
    return HessianParts(
        ww=ww,
        vv=vv,
        wv=wv.reshape(m * d, C * m),
        wv_residual=res.reshape(m * d, C * m),
        m=m,
        d=d,
        C=C,
    )


def _layer_matrix(Hb: torch.Tensor) -> torch.Tensor:
    """(K, K, p, p) blocks -> the (K p) x (K p) layer Hessian (rows of the weight matrix
    flattened row-major)."""
    K, _, p, _ = Hb.shape
    return Hb.permute(0, 2, 1, 3).reshape(K * p, K * p)


def _linear_full(loss: str, inst: Instance, trial: int) -> torch.Tensor:
    return _layer_matrix(hessian_blocks(case_for("linear", loss).name, inst, trial))  # (C d, C d)


def full_hessian(
    model: str,
    loss: str,
    inst: Instance,
    Y: torch.Tensor | None = None,
    trial: int = 0,
    seed: int = 0,
) -> torch.Tensor:
    """The whole Hessian in closed form (one trial).

    Parameter order: rows of W flattened row-major, then rows of V (hidden model), i.e.
    ``torch.cat([W.flatten(), V.flatten()])``. Size ``C d`` (linear) or ``m d + C m``
    (hidden). The linear model's Hessian (and every within-layer block) does not depend on
    the labels; the hidden model's cross-layer block does (residual term), so ``Y`` (labels
    (N,) or MSE targets (C, N); default: :func:`random_labels` with ``seed``) is used.
    """
    model = check_choice("model", model, models.MODELS)
    loss = check_choice("loss", loss, models.LOSSES)
    if model == "linear":
        if inst.V is not None:
            raise ValueError("model 'linear' needs a linear instance (V must be None)")
        return _linear_full(loss, inst, trial)
    return hessian_parts(loss, inst, Y, trial, seed).full()


def autograd_hessian(
    model: str,
    loss: str,
    inst: Instance,
    Y: torch.Tensor | None = None,
    trial: int = 0,
    seed: int = 0,
) -> torch.Tensor:
    """Reference Hessian: ``torch.func.hessian`` of :func:`rmthess.simulate.models.loss`.

    Same parameter order and label convention as :func:`full_hessian`. Cost is that of
    ``n_params`` forward-over-reverse passes: small sizes only.
    """
    model = check_choice("model", model, models.MODELS)
    loss = check_choice("loss", loss, models.LOSSES)
    one = trial_instance(inst, trial)
    X, W = one.X[0], one.W[0]
    N = X.shape[1]
    if model == "linear":
        if one.V is not None:
            raise ValueError("model 'linear' needs a linear instance (V must be None)")
        shapes = [W.shape]
        theta = W.reshape(-1)
        C = W.shape[0]
    else:
        if one.V is None:
            raise ValueError("model 'hidden' needs a one-hidden-layer instance")
        V = one.V[0]
        shapes = [W.shape, V.shape]
        theta = torch.cat([W.reshape(-1), V.reshape(-1)])
        C = V.shape[0]
    if model == "linear":
        Y = _labels_or_default(loss, Y, C, N, seed, X.device)
    else:
        Y = _instance_labels(Y, one, torch_activation(one.activation), loss, C, N, seed, X.device)
    sizes = [s[0] * s[1] for s in shapes]

    def f(th):
        params = [t.reshape(s) for t, s in zip(torch.split(th, sizes), shapes, strict=True)]
        return models.loss(loss, params, X, Y, one.activation)

    return torch.func.hessian(f)(theta)
