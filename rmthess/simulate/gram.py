"""Kernels of the Gram route, their flop counts and the memory plan of one simulation.

Every within-layer Hessian block has the form (docs/theory.md, eq. (*))

    H_kl = (1/N) sum_i a_i^{kl} u_i u_i^T = (1/N) U diag(a^{kl}) U^T,      U = (u_1 .. u_N),

so, with the Gram matrix ``G = U^T U`` (N x N) and ``S = G o G`` (entrywise square),

    ||H_kl||_F^2 = tr(H_kl H_kl^T) = (1/N^2) sum_{i,j} a_i a_j (u_i^T u_j)^2
                 = (1/N^2) a^T S a.

One batched matmul builds ``G`` (``2 N^2 p`` flops per trial, p = dim u), one more
multiplies ``S`` by the stacked weight vectors ``A`` (N x P, ``2 N^2 P`` flops), and the
P squared norms are the column sums of ``A o (S A)``. No p x p block and no
(Cp) x (Cp) Hessian is ever formed. Rows of ``G`` are processed in chunks so memory
stays below ``max_bytes`` whatever N is.

For the m x m output-layer blocks (p = m small) the direct route
``H = (1/N) (U diag a) U^T`` costs ``2 N p^2`` per block and is cheaper than the Gram
route; ``method="auto"`` picks the route with the smaller flop count.

:func:`peak_bytes` estimates the memory of one :func:`rmthess.simulate.block_frobenius`
call so that impossible sizes are refused before anything is allocated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from rmthess._checks import check_choice
from rmthess.cases import get_case
from rmthess.simulate.weights import block_vectors, block_weights

if TYPE_CHECKING:
    from rmthess.cases import Case
    from rmthess.simulate.sampling import Instance
    from rmthess.simulate.weights import BlockIndex

__all__ = [
    "gram_flops",
    "direct_flops",
    "gram_sq_norms",
    "direct_sq_norms",
    "instance_sq_norms",
    "choose_method",
    "peak_bytes",
]

DEFAULT_MAX_BYTES = {"cpu": 512 * 2**20, "cuda": 4 * 2**30}
"""Default bound on one chunk of the Gram (or direct) route, by device type."""


def gram_flops(N: int, p: int, P: int, trials: int = 1) -> tuple[float, float]:
    """Flop counts of the Gram route: ``(gram, total)``.

    ``gram = 2 T N^2 p`` (the batched matmul ``U^T U``); ``total`` adds the entrywise
    square ``T N^2`` and ``S A`` (``2 T N^2 P``) and the final reduction ``2 T N P``.
    """
    g = 2.0 * trials * N * N * p
    return g, g + trials * (N * N + 2.0 * N * N * P + 2.0 * N * P)


def direct_flops(N: int, p: int, P: int, trials: int = 1) -> float:
    """Flops of the direct route: per block ``U diag(a)`` (N p) and ``(U a) U^T`` (2 N p^2)."""
    return trials * P * (N * p + 2.0 * N * p * p + p * p)


def choose_method(method: str, N: int, p: int, P: int) -> str:
    """``"gram"`` or ``"direct"``: ``method`` itself, or for ``"auto"`` the cheaper route."""
    if method != "auto":
        return method
    return "gram" if gram_flops(N, p, P)[1] <= direct_flops(N, p, P) else "direct"


def gram_sq_norms(U: torch.Tensor, A: torch.Tensor, max_bytes: int | None = None) -> torch.Tensor:
    """``(1/N^2) a_P^T (G o G) a_P`` for every column of ``A``, batched over trials.

    Parameters
    ----------
    U : (T, p, N) tensor, columns ``u_i``.
    A : (T, N, P) tensor, column P holds the weights ``a_i`` of block P.
    max_bytes : bound on the memory of one chunk of ``G`` (rows of G are chunked; at
        least one row of one trial, ``N`` elements, per chunk).

    Returns
    -------
    (T, P) tensor of ``||(1/N) U diag(a) U^T||_F^2``. Exact up to round-off
    (float64: relative error ~1e-13; float32: ~1e-6 sqrt(N)); the chunking changes only
    the summation order.
    """
    T, p, N = U.shape
    if A.shape[:2] != (T, N):
        raise ValueError(f"A must have shape (T={T}, N={N}, P), got {tuple(A.shape)}")
    if max_bytes is None:
        max_bytes = DEFAULT_MAX_BYTES.get(U.device.type, DEFAULT_MAX_BYTES["cpu"])
    item = U.element_size()
    per_row = N * item  # one row of G for one trial
    rows_per_chunk = max(1, int(max_bytes // per_row))
    out = torch.zeros(T, A.shape[2], dtype=U.dtype, device=U.device)
    Ut = U.transpose(1, 2)  # (T, N, p)
    if rows_per_chunk >= T * N:
        tc_size, rc = T, N
    elif rows_per_chunk >= N:
        tc_size, rc = rows_per_chunk // N, N
    else:
        tc_size, rc = 1, rows_per_chunk
    for t0 in range(0, T, tc_size):
        t1 = min(T, t0 + tc_size)
        for i0 in range(0, N, rc):
            i1 = min(N, i0 + rc)
            G = torch.matmul(Ut[t0:t1, i0:i1], U[t0:t1])  # (tc, r, N)
            G.square_()
            SA = torch.matmul(G, A[t0:t1])  # (tc, r, P)
            out[t0:t1] += (A[t0:t1, i0:i1] * SA).sum(dim=1)
            del G, SA
    return out / float(N) ** 2


def direct_sq_norms(U: torch.Tensor, A: torch.Tensor, max_bytes: int | None = None) -> torch.Tensor:
    """Same quantity as :func:`gram_sq_norms` by forming each p x p block explicitly.

    ``H_P = (1/N) (U * a_P) U^T``; cost ``2 N p^2`` per block, memory chunked over blocks.
    """
    T, p, N = U.shape
    P = A.shape[2]
    if max_bytes is None:
        max_bytes = DEFAULT_MAX_BYTES.get(U.device.type, DEFAULT_MAX_BYTES["cpu"])
    item = U.element_size()
    per_block = T * (p * p + p * N) * item
    bc = max(1, int(max_bytes // per_block))
    out = torch.empty(T, P, dtype=U.dtype, device=U.device)
    for b0 in range(0, P, bc):
        b1 = min(P, b0 + bc)
        Ua = U.unsqueeze(1) * A[:, :, b0:b1].permute(0, 2, 1).unsqueeze(2)  # (T, b, p, N)
        H = torch.matmul(Ua, U.transpose(1, 2).unsqueeze(1))  # (T, b, p, p)
        out[:, b0:b1] = H.square().sum(dim=(2, 3))
    return out / float(N) ** 2


def check_unbiased(case, N: int, unbiased) -> None:
    """``unbiased`` must be a bool; True only for m x m (output-*) blocks and ``N >= 2``."""
    c = get_case(case)
    if not isinstance(unbiased, bool):
        raise TypeError(f"unbiased must be True or False, got {unbiased!r}")
    if unbiased and c.block_dim != "m":
        raise ValueError(
            f"unbiased=True applies to the m x m output-* blocks only (got case {c.name!r}): "
            "for d x d blocks the i = j terms are part of the limit"
        )
    if unbiased and N < 2:
        raise ValueError(f"unbiased=True needs N >= 2 samples, got N={N}")


def instance_sq_norms(
    case: str,
    inst: Instance,
    rows: BlockIndex,
    cols: BlockIndex,
    method: str = "auto",
    max_bytes: int | None = None,
    unbiased: bool = False,
) -> tuple[torch.Tensor, str]:
    """Normalized squared norms of blocks ``(rows[P], cols[P])`` of a sampled instance.

    Returns ``((T, P) tensor, method_used)``; values are ``(1/d)||H||_F^2`` for d x d
    blocks and ``||H||_F^2`` for the m x m output blocks.

    ``unbiased=True`` (output-* only, ``N >= 2``) drops the ``i = j`` terms::

        (1/(N (N-1))) sum_{i != j} a_i a_j (h_i . h_j)^2
            = (N^2 ||H||_F^2 - sum_i a_i^2 |h_i|^4) / (N (N-1)),

    the U-statistic that is unbiased, given the weights ``W, V``, for the N -> infinity
    limit ``||E[a h h^T | W, V]||_F^2`` of the m x m block. The plain value carries the
    exact finite-N bias ``(E[a^2 |h|^4] - ||E[a h h^T]||_F^2) / N``, a few percent at
    N = 1000. (For the d x d blocks the ``i = j`` terms are the ``gamma E[a^2]`` part of
    the limit itself, so the option is refused there.)
    """
    c = get_case(case)
    method = check_choice("method", method, ("auto", "gram", "direct"))
    check_unbiased(c, inst.X.shape[2], unbiased)
    U = block_vectors(c, inst)  # (T, p, N)
    dev = inst.X.device
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=dev)
    cols = torch.as_tensor(np.asarray(cols), dtype=torch.long, device=dev)
    A = block_weights(c, inst, rows, cols)  # (T, N, P)
    T, p, N = U.shape
    P = A.shape[2]
    method = choose_method(method, N, p, P)
    fn = gram_sq_norms if method == "gram" else direct_sq_norms
    sq = fn(U, A, max_bytes=max_bytes)
    if unbiased:
        u4 = U.square().sum(dim=1).square()  # (T, N): |h_i|^4
        sq = (sq * N * N - torch.einsum("tn,tnp->tp", u4, A * A)) / (N * (N - 1))
    if c.normalization == "1/d":
        sq = sq / p
    return sq, method


def peak_bytes(
    case: str | Case,
    C: int,
    d: int,
    N: int,
    m: int | None,
    *,
    P: int,
    trial_batch: int,
    item: int,
    max_bytes: int,
    method: str,
    unbiased: bool = False,
) -> dict[str, int]:
    """Estimated peak memory (bytes) of one batch of :func:`instance_sq_norms`, by part.

    With ``T = trial_batch``, ``K_W = C`` (linear model) or ``m`` (hidden), ``p`` the block
    size and ``P`` the number of blocks evaluated, the tensors alive at the peak are

    ============================  ===========================================================
    part                          elements
    ============================  ===========================================================
    ``data X``                    ``T d N``
    ``weights W, V``              ``T (K_W d + C m)``
    ``hidden activations``        ``3 T m N`` (``W X``, ``relu``, masks / ``u_i = h_i``)
    ``logits and softmax``        ``3 T N C`` (cross-entropy only)
    ``block weights a_i``         ``T (6 N P + C P)`` (A and the temporaries that build it)
    ``Gram chunk``                ``r (N + 2 P)``, ``r = min(max(1, B / N), T N)`` rows of G
    ``direct-route chunk``        ``b T (2 p^2 + p N)``, ``b = min(max(1, B / (T (p^2 + p
                                  N))), P)`` blocks
    ``i != j correction``         ``T (N + N P)`` (``unbiased=True`` only)
    ============================  ===========================================================

    (``B = max_bytes / item``) times ``item`` bytes (8 for float64, 4 for float32).
    Accuracy: an upper estimate of the live tensors (exact sizes, temporaries counted
    generously); the measured peak-RSS growth of a CPU call was 0.6 to 0.95 of it
    (linear-ce, hidden-ce, output-ce, linear-mse, hidden-mse at 0.05 to 1 GB). The
    process itself (torch: ~0.3 GB) comes on top. Returns ``{part: bytes}``; the total
    is the sum.
    """
    c = get_case(case)
    T = trial_batch
    K_W = C if c.model == "linear" else m
    p = c.block_size(d, m)
    parts = {"data X": T * d * N, "weights W, V": T * (K_W * d + (C * m if m else 0))}
    if c.model == "hidden":
        parts["hidden activations"] = 3 * T * m * N
    if c.loss == "ce":
        parts["logits and softmax"] = 3 * T * N * C  # softmax copies the transposed logits
    parts["block weights a_i"] = T * (6 * N * P + (C * P if c.layer == "hidden" else 0))
    budget = max_bytes // item
    if method == "gram":  # as in gram_sq_norms: r rows of G (r N), S A and A o (S A) (2 r P)
        r = min(max(1, budget // N), T * N)
        parts["Gram chunk"] = r * (N + 2 * P)
    else:  # as in direct_sq_norms: b blocks of U diag(a) (T b p N) and H, H o H (2 T b p^2)
        per_block = T * (p * p + p * N)
        b = min(max(1, budget // per_block), P)
        parts["direct-route chunk"] = b * T * (2 * p * p + p * N)
    if unbiased:
        parts["i != j correction"] = T * (N + N * P)
    return {k: int(v) * item for k, v in parts.items()}
