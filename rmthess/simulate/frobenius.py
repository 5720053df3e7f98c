"""Block Frobenius norms of the Hessian without materializing it (the Gram route).

Every within-layer Hessian block has the form (THEORY.md, eq. (*))

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

Normalization (THEORY.md section 4): ``(1/d) ||H||_F^2`` for the d x d blocks (linear-*,
hidden-*), plain ``||H||_F^2`` for the m x m output blocks (output-*).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rmthess._checks import check_case, check_choice, check_int
from rmthess._stats import ratio_stderr
from rmthess.cases import get_case
from rmthess.simulate.device import resolve_device, resolve_dtype
from rmthess.simulate.sampling import Instance, sample_instance
from rmthess.simulate.weights import block_vectors, block_weights, model_of, n_blocks

MAX_DIAG = 256
"""Default cap on the number of diagonal blocks averaged per trial (uniform sample)."""

MAX_PAIRS = 256
"""Default cap on the number of off-diagonal pairs averaged per trial (uniform sample)."""

_DEFAULT_MAX_BYTES = {"cpu": 512 * 2**20, "cuda": 4 * 2**30}


def block_dim(case: str, d: int, m: int | None) -> int:
    """Size p of a block: d for linear-* and hidden-*, m for output-*."""
    return m if check_case(case).startswith("output") else d


def select_blocks(
    K: int, max_diag: int = MAX_DIAG, max_pairs: int = MAX_PAIRS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Choose the blocks to average: returns ``(rows, cols, n_diag)``.

    The first ``n_diag`` entries are diagonal blocks ``(k, k)``: all K of them if
    ``K <= max_diag``, else a uniform sample without replacement. The rest are
    off-diagonal pairs ``k < l``: all ``K (K-1) / 2`` if that is ``<= max_pairs``, else a
    uniform sample of ``max_pairs`` distinct ordered pairs ``k != l`` (reported as
    ``(min, max)``; ``||H_kl|| = ||H_lk||`` so this is uniform over unordered pairs; a
    pair may then appear twice, with probability ``O(max_pairs^2 / K^2)``).
    """
    K = check_int("K", K, 2)
    max_diag = check_int("max_diag", max_diag, 1)
    max_pairs = check_int("max_pairs", max_pairs, 1)
    rng = np.random.default_rng([seed, 0x5EED])
    if K <= max_diag:
        diag = np.arange(K)
    else:
        diag = np.sort(rng.choice(K, size=max_diag, replace=False))
    n_pairs = K * (K - 1) // 2
    if n_pairs <= max_pairs:
        r, c = np.triu_indices(K, 1)
    else:
        idx = rng.choice(K * (K - 1), size=max_pairs, replace=False)
        k = idx // (K - 1)
        j = idx % (K - 1)
        l_ = j + (j >= k)
        r, c = np.minimum(k, l_), np.maximum(k, l_)
    rows = np.concatenate([diag, r]).astype(np.int64)
    cols = np.concatenate([diag, c]).astype(np.int64)
    return rows, cols, len(diag)


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


def gram_sq_norms(U: torch.Tensor, A: torch.Tensor, max_bytes: int | None = None) -> torch.Tensor:
    """``(1/N^2) a_P^T (G o G) a_P`` for every column of ``A``, batched over trials.

    Parameters
    ----------
    U : (T, p, N) tensor, columns ``u_i``.
    A : (T, N, P) tensor, column P holds the weights ``a_i`` of block P.
    max_bytes : bound on the memory of one chunk of ``G`` (rows of G are chunked).

    Returns
    -------
    (T, P) tensor of ``||(1/N) U diag(a) U^T||_F^2``. Exact up to round-off
    (float64: relative error ~1e-13; float32: ~1e-6 sqrt(N)).
    """
    T, p, N = U.shape
    if A.shape[:2] != (T, N):
        raise ValueError(f"A must have shape (T={T}, N={N}, P), got {tuple(A.shape)}")
    if max_bytes is None:
        max_bytes = _DEFAULT_MAX_BYTES.get(U.device.type, _DEFAULT_MAX_BYTES["cpu"])
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
        max_bytes = _DEFAULT_MAX_BYTES.get(U.device.type, _DEFAULT_MAX_BYTES["cpu"])
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


@dataclass
class BlockFrobenius:
    """Simulated block Frobenius norms, one value per trial.

    ``F_diag[t]`` is the average over the selected diagonal blocks of trial t of
    ``(1/d)||H_kk||_F^2`` (d x d blocks) or ``||H_kk||_F^2`` (m x m output blocks);
    ``F_off[t]`` the same over the selected off-diagonal pairs ``k < l``. The standard
    errors are those of the mean over trials, ``std(ddof=1) / sqrt(trials)`` (nan when
    ``trials == 1``); trials are independent draws of data and weights. ``unbiased``: the
    output-* values dropped the ``i = j`` terms (see :func:`instance_sq_norms`).
    """

    case: str
    C: int
    d: int
    N: int
    m: int | None
    trials: int
    seed: int
    device: str
    dtype: str
    method: str
    F_diag: np.ndarray
    F_off: np.ndarray
    n_diag: int
    n_off: int
    seconds: float = float("nan")
    flops: float = float("nan")
    extra: dict = field(default_factory=dict)
    unbiased: bool = False

    @property
    def gamma(self) -> float:
        """``d / N``."""
        return self.d / self.N

    @staticmethod
    def _se(x: np.ndarray) -> float:
        return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")

    @property
    def F_diag_mean(self) -> float:
        """Mean of ``F_diag`` over trials: the estimate of the diagonal-block limit."""
        return float(np.mean(self.F_diag))

    @property
    def F_off_mean(self) -> float:
        """Mean of ``F_off`` over trials: the estimate of the off-diagonal-block limit."""
        return float(np.mean(self.F_off))

    @property
    def F_diag_se(self) -> float:
        """Standard error of :attr:`F_diag_mean`: ``std(F_diag, ddof=1) / sqrt(trials)``."""
        return self._se(self.F_diag)

    @property
    def F_off_se(self) -> float:
        """Standard error of :attr:`F_off_mean`: ``std(F_off, ddof=1) / sqrt(trials)``."""
        return self._se(self.F_off)

    @property
    def ratio(self) -> float:
        """``sqrt(mean F_off / mean F_diag)`` (the structure measure r(C))."""
        return math.sqrt(max(self.F_off_mean, 0.0) / self.F_diag_mean)

    @property
    def ratio_se(self) -> float:
        """Delta-method standard error of :attr:`ratio`, including the per-trial covariance.

        ``var(log r) = (1/4) [v_off / F_off^2 + v_diag / F_diag^2 - 2 c / (F_off F_diag)]``
        with ``v, c`` the variances / covariance of the trial means.
        """
        T = len(self.F_diag)
        if T < 2:
            return float("nan")
        cov = np.cov(np.vstack([self.F_diag, self.F_off]), ddof=1) / T
        return ratio_stderr(self.F_diag_mean, self.F_off_mean, cov[0, 0], cov[1, 1], cov[0, 1])

    def to_dict(self) -> dict:
        """The CLI's JSON record (means over trials)."""
        return {
            "case": self.case,
            "C": self.C,
            "d": self.d,
            "N": self.N,
            "m": self.m,
            "trials": self.trials,
            "F_diag": self.F_diag_mean,
            "F_off": self.F_off_mean,
            "F_diag_se": _nan_to_none(self.F_diag_se),
            "F_off_se": _nan_to_none(self.F_off_se),
            "ratio": self.ratio,
        }

    def summary_record(self) -> dict:
        """:meth:`to_dict` plus ``gamma``, ``ratio_se``, ``method`` and ``seconds``: one row
        of the per-C tables of :func:`frobenius_sweep`, :func:`rmthess.simulate.fit_decay`
        and the CLI's ``--csv``."""
        rec = self.to_dict()
        rec.update(gamma=self.gamma, ratio_se=self.ratio_se, method=self.method)
        rec.update(seconds=self.seconds)
        return rec

    def to_frame(self):
        """Tidy ``pandas.DataFrame``: one row per trial (columns case, C, d, N, m, gamma,
        trial, F_diag, F_off, ratio_trial, seed, method)."""
        import pandas as pd

        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.sqrt(np.maximum(self.F_off, 0) / self.F_diag)
        return pd.DataFrame(
            {
                "case": self.case,
                "C": self.C,
                "d": self.d,
                "N": self.N,
                "m": self.m,
                "gamma": self.gamma,
                "trial": np.arange(self.trials),
                "F_diag": self.F_diag,
                "F_off": self.F_off,
                "ratio_trial": r,
                "seed": self.seed,
                "method": self.method,
            }
        )


def _nan_to_none(x: float):
    return None if not math.isfinite(x) else x


def _check_m(case: str, m) -> int | None:
    """:meth:`rmthess.cases.Case.check_m`."""
    return get_case(case).check_m(m)


def _check_unbiased(case: str, N: int, unbiased) -> None:
    if not isinstance(unbiased, bool):
        raise TypeError(f"unbiased must be True or False, got {unbiased!r}")
    if unbiased and not case.startswith("output"):
        raise ValueError(
            f"unbiased=True applies to the m x m output-* blocks only (got case {case!r}): "
            "for d x d blocks the i = j terms are part of the limit"
        )
    if unbiased and N < 2:
        raise ValueError(f"unbiased=True needs N >= 2 samples, got N={N}")


def instance_sq_norms(
    case: str,
    inst: Instance,
    rows,
    cols,
    method: str = "auto",
    max_bytes: int | None = None,
    unbiased: bool = False,
) -> tuple[torch.Tensor, str]:
    """Normalized squared norms of blocks ``(rows[P], cols[P])`` of a sampled instance.

    Returns ``((T, P) tensor, method_used)``; values are ``(1/d)||H||_F^2`` for d x d
    blocks and ``||H||_F^2`` for the m x m output blocks.

    ``unbiased=True`` (output-* only, ``N >= 2``) drops the ``i = j`` terms:

        (1/(N (N-1))) sum_{i != j} a_i a_j (h_i . h_j)^2
            = (N^2 ||H||_F^2 - sum_i a_i^2 |h_i|^4) / (N (N-1)),

    the U-statistic that is unbiased, given the weights ``W, V``, for the N -> infinity
    limit ``||E[a h h^T | W, V]||_F^2`` of the m x m block. The plain value carries the
    exact finite-N bias ``(E[a^2 |h|^4] - ||E[a h h^T]||_F^2) / N``, a few percent at
    N = 1000. (For the d x d blocks the ``i = j`` terms are the ``gamma E[a^2]`` part of
    the limit itself, so the option is refused there.)
    """
    case = check_case(case)
    method = check_choice("method", method, ("auto", "gram", "direct"))
    _check_unbiased(case, inst.X.shape[2], unbiased)
    U = block_vectors(case, inst)  # (T, p, N)
    dev = inst.X.device
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=dev)
    cols = torch.as_tensor(np.asarray(cols), dtype=torch.long, device=dev)
    A = block_weights(case, inst, rows, cols)  # (T, N, P)
    T, p, N = U.shape
    P = A.shape[2]
    if method == "auto":
        method = "gram" if gram_flops(N, p, P)[1] <= direct_flops(N, p, P) else "direct"
    fn = gram_sq_norms if method == "gram" else direct_sq_norms
    sq = fn(U, A, max_bytes=max_bytes)
    if unbiased:
        u4 = U.square().sum(dim=1).square()  # (T, N): |h_i|^4
        sq = (sq * N * N - torch.einsum("tn,tnp->tp", u4, A * A)) / (N * (N - 1))
    if not case.startswith("output"):
        sq = sq / p
    return sq, method


def block_frobenius(
    case: str,
    C: int,
    d: int,
    N: int,
    m: int | None = None,
    trials: int = 8,
    seed: int = 0,
    device="auto",
    dtype="float64",
    method: str = "auto",
    max_diag: int = MAX_DIAG,
    max_pairs: int = MAX_PAIRS,
    trial_batch: int | None = None,
    max_bytes: int | None = None,
    unbiased: bool = False,
) -> BlockFrobenius:
    """Simulate the block Frobenius norms of one case, ``trials`` independent draws.

    For each trial, data ``X`` (d x N, N(0,1)) and LeCun weights are drawn
    (:func:`rmthess.simulate.sampling.sample_instance`), the block weights ``a_i`` and
    vectors ``u_i`` are formed (:mod:`rmthess.simulate.weights`) and

        F_diag = mean_{k in D} (1/d) ||H_kk||_F^2,   F_off = mean_{(k,l) in O} (1/d) ||H_kl||_F^2

    (no 1/d for the m x m output-* blocks), where ``D`` is all K diagonal blocks (or a
    uniform sample of ``max_diag``) and ``O`` all ``K(K-1)/2`` pairs ``k < l`` (or a
    uniform sample of ``max_pairs``); see :func:`select_blocks`. K = C (linear-*,
    output-*) or m (hidden-*). Norms use the Gram route (:func:`gram_sq_norms`) or, when
    cheaper (small m x m output blocks), the direct route; both are exact.

    Parameters
    ----------
    case : one of :data:`rmthess.CASES`.
    C : number of classes (>= 2). d, N : input dimension and sample count (>= 1).
    m : hidden width, required for hidden-* (>= 2) and output-* (>= 1) cases.
    trials : independent draws (>= 1); standard errors need >= 2.
    seed : non-negative int; with ``device``, fixes every number.
    device : ``"auto" | "cpu" | "cuda"``. dtype : ``"float64"`` (default) or ``"float32"``.
    method : ``"auto" | "gram" | "direct"``.
    trial_batch : trials sampled together (default: as many as fit in ``max_bytes``).
    unbiased : output-* only: drop the ``i = j`` terms so that each trial's value is
        unbiased (given the weights) for the N -> infinity block norm; removes the O(1/N)
        bias of the m x m blocks (see :func:`instance_sq_norms`). Default False.

    Returns
    -------
    BlockFrobenius with per-trial arrays ``F_diag``, ``F_off`` and their standard errors.
    """
    case = check_case(case)
    C = check_int("C", C, 2)
    d = check_int("d", d, 1)
    N = check_int("N", N, 1)
    trials = check_int("trials", trials, 1)
    seed = check_int("seed", seed, 0)
    m = _check_m(case, m)
    method = check_choice("method", method, ("auto", "gram", "direct"))
    _check_unbiased(case, N, unbiased)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    if max_bytes is None:
        max_bytes = _DEFAULT_MAX_BYTES.get(dev.type, _DEFAULT_MAX_BYTES["cpu"])
    K = n_blocks(case, C, m)
    rows, cols, n_diag = select_blocks(K, max_diag, max_pairs, seed)
    P = len(rows)
    p = block_dim(case, d, m)
    if trial_batch is None:
        item = 8 if dt == torch.float64 else 4
        per_trial = item * (d * N + N * P + (N * C if C else 0) + N * N)
        trial_batch = max(1, min(trials, int(max_bytes // max(per_trial, 1))))
    trial_batch = check_int("trial_batch", trial_batch, 1)
    sq_all = []
    used = method
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for b, start in enumerate(range(0, trials, trial_batch)):
        nt = min(trial_batch, trials - start)
        inst = sample_instance(
            model_of(case), C, d, N, m, trials=nt, seed=_batch_seed(seed, b), device=dev, dtype=dt
        )
        sq, used = instance_sq_norms(case, inst, rows, cols, method, max_bytes, unbiased)
        sq_all.append(sq.double().cpu().numpy())
        del inst, sq
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    sq = np.concatenate(sq_all, axis=0)
    if used == "gram":
        flops = gram_flops(N, p, P, trials)[1]
    else:
        flops = direct_flops(N, p, P, trials)
    return BlockFrobenius(
        case=case,
        C=C,
        d=d,
        N=N,
        m=m,
        trials=trials,
        seed=seed,
        device=str(dev),
        dtype=str(dt).replace("torch.", ""),
        method=used,
        F_diag=sq[:, :n_diag].mean(axis=1),
        F_off=sq[:, n_diag:].mean(axis=1),
        n_diag=n_diag,
        n_off=P - n_diag,
        seconds=seconds,
        flops=flops,
        unbiased=bool(unbiased),
    )


def _batch_seed(seed: int, batch: int) -> int:
    """Seed of trial batch ``batch``: batch 0 uses ``seed`` itself; later batches derive
    distinct non-negative seeds so batches are independent."""
    if batch == 0:
        return seed
    return int(np.random.SeedSequence([seed, batch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def frobenius_sweep(
    case: str,
    Cs,
    d: int,
    N: int,
    m: int | None = None,
    trials: int = 8,
    seed: int = 0,
    device="auto",
    dtype="float64",
    progress: bool = False,
    **kwargs,
):
    """:func:`block_frobenius` for every C in ``Cs``; tidy ``pandas.DataFrame``.

    One row per C: case, C, d, N, m, gamma, trials, F_diag, F_off, F_diag_se, F_off_se,
    ratio, ratio_se, method, seconds. Each C uses seed ``seed + i`` (i its position) so
    the C values are independent.
    """
    import pandas as pd

    Cs = [check_int("C", c, 2) for c in Cs]
    it = Cs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(Cs, desc=f"simulate {case}", unit="C")
    recs = []
    for i, C in enumerate(it):
        res = block_frobenius(case, C, d, N, m, trials, seed + i, device, dtype, **kwargs)
        recs.append(res.summary_record())
    return pd.DataFrame.from_records(recs)
