"""Block Frobenius norms of the Hessian without materializing it (the Gram route).

:func:`block_frobenius` simulates ``trials`` independent draws of one configuration
``(case, C, d, N, m)`` and averages the normalized squared Frobenius norms of its
diagonal and off-diagonal blocks (kernels and flop counts: :mod:`rmthess.simulate.gram`);
:func:`frobenius_sweep` does it for a list of C.

Normalization (docs/theory.md section 4): ``(1/d) ||H||_F^2`` for the d x d blocks (linear-*,
hidden-*), plain ``||H||_F^2`` for the m x m output blocks (output-*).

Seeding: trial ``t`` of configuration C draws its data and weights from the stream
``(seed, C, t)`` (:func:`rmthess.simulate.sampling.trial_seeds` with key ``(C, 0)``) and
the sampled blocks come from the stream ``(seed, C)`` (key ``(C, 1)``). A seed therefore
fixes every number whatever ``trial_batch`` or ``max_bytes`` (up to float round-off of
the chunked reductions, ~1e-15 relative), and two configurations never share data:
``(C=8, seed=1)`` and ``(C=16, seed=0)`` use unrelated streams.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rmthess._checks import check_int, check_progress
from rmthess._random import check_seed
from rmthess._stats import ratio_stderr
from rmthess.cases import get_case
from rmthess.simulate._plan import MAX_DIAG, MAX_PAIRS, MAX_SIZE, MAX_TRIALS, Plan, plan
from rmthess.simulate.device import Device, DType
from rmthess.simulate.gram import (  # noqa: F401  (direct_sq_norms etc.: old import paths)
    direct_flops,
    direct_sq_norms,
    gram_flops,
    gram_sq_norms,
    instance_sq_norms,
)
from rmthess.simulate.sampling import sample_trials, trial_seeds

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from rmthess.inits import InitLike


def block_dim(case: str, d: int, m: int | None) -> int:
    """Size p of a block: d for linear-* and hidden-*, m for output-*
    (:meth:`rmthess.cases.Case.block_size`)."""
    c = get_case(case)
    d = check_int("d", d, 1)
    if m is not None:
        m = check_int("m", m, 1)
    return c.block_size(d, m)


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
    seed = check_seed(seed)
    max_diag = check_int("max_diag", max_diag, 1)
    max_pairs = check_int("max_pairs", max_pairs, 1)
    # kept as it is (not rmthess._random.rng(seed, ...)): the sampled blocks, hence every
    # published number with K > max_diag or K(K-1)/2 > max_pairs, depend on this stream
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


def _none_if_nan(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _se(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


@dataclass
class BlockFrobenius:
    """Simulated block Frobenius norms of one configuration, ``trials`` independent draws.

    ``F_diag_trials[t]`` is the average over the selected diagonal blocks of trial t of
    ``(1/d)||H_kk||_F^2`` (d x d blocks) or ``||H_kk||_F^2`` (m x m output blocks);
    ``F_off_trials[t]`` the same over the selected off-diagonal pairs ``k < l``.
    :attr:`F_diag`, :attr:`F_off` are their means over trials (the estimates of the
    limits), ``*_se`` the standard errors of those means, ``std(ddof=1) / sqrt(trials)``
    (nan when ``trials == 1``). ``unbiased``: the output-* values dropped the ``i = j``
    terms (see :func:`rmthess.simulate.gram.instance_sq_norms`).
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
    F_diag_trials: np.ndarray
    F_off_trials: np.ndarray
    n_diag: int
    n_off: int
    seconds: float = float("nan")
    flops: float = float("nan")
    unbiased: bool = False
    init: str = "lecun"
    activation: str = "relu"

    @property
    def gamma(self) -> float:
        """``d / N``."""
        return self.d / self.N

    @property
    def F_diag(self) -> float:
        """Mean of ``F_diag_trials``: the estimate of the diagonal-block limit."""
        return float(np.mean(self.F_diag_trials))

    @property
    def F_off(self) -> float:
        """Mean of ``F_off_trials``: the estimate of the off-diagonal-block limit."""
        return float(np.mean(self.F_off_trials))

    @property
    def F_diag_se(self) -> float:
        """Standard error of :attr:`F_diag`: ``std(F_diag_trials, ddof=1) / sqrt(trials)``."""
        return _se(self.F_diag_trials)

    @property
    def F_off_se(self) -> float:
        """Standard error of :attr:`F_off`: ``std(F_off_trials, ddof=1) / sqrt(trials)``."""
        return _se(self.F_off_trials)

    @property
    def ratio(self) -> float:
        """``sqrt(F_off / F_diag)`` of the means (the structure measure r(C)); nan if
        ``F_diag <= 0``."""
        if not self.F_diag > 0:
            return float("nan")
        return math.sqrt(max(self.F_off, 0.0) / self.F_diag)

    @property
    def ratio_se(self) -> float:
        """Delta-method standard error of :attr:`ratio`, including the per-trial covariance.

        ``var(log r) = (1/4) [v_off / F_off^2 + v_diag / F_diag^2 - 2 c / (F_off F_diag)]``
        with ``v, c`` the variances / covariance of the trial means
        (:func:`rmthess._stats.ratio_stderr`); nan for one trial or ``F_off = 0``.
        """
        T = len(self.F_diag_trials)
        if T < 2:
            return float("nan")
        cov = np.cov(np.vstack([self.F_diag_trials, self.F_off_trials]), ddof=1) / T
        return ratio_stderr(self.F_diag, self.F_off, cov[0, 0], cov[1, 1], cov[0, 1])

    def to_dict(self) -> dict:
        """Every scalar field, flat and JSON-safe (non-finite floats -> None): case, C, d,
        N, m, gamma, trials, seed, F_diag, F_diag_se, F_off, F_off_se, ratio, ratio_se,
        n_diag, n_off, method, unbiased, init, activation, device, dtype, seconds, flops."""
        rec = {
            "case": self.case,
            "C": self.C,
            "d": self.d,
            "N": self.N,
            "m": self.m,
            "gamma": self.gamma,
            "trials": self.trials,
            "seed": self.seed,
            "F_diag": self.F_diag,
            "F_diag_se": self.F_diag_se,
            "F_off": self.F_off,
            "F_off_se": self.F_off_se,
            "ratio": self.ratio,
            "ratio_se": self.ratio_se,
            "n_diag": self.n_diag,
            "n_off": self.n_off,
            "method": self.method,
            "unbiased": self.unbiased,
            "init": self.init,
            "activation": self.activation,
            "device": self.device,
            "dtype": self.dtype,
            "seconds": float(self.seconds),
            "flops": float(self.flops),
        }
        return {k: _none_if_nan(v) for k, v in rec.items()}

    def to_frame(self) -> pd.DataFrame:
        """Tidy ``pandas.DataFrame``, one row per trial: case, C, d, N, m, gamma, seed,
        trial, F_diag, F_off (that trial's block averages), ratio (``sqrt(F_off/F_diag)``
        of the trial), method, unbiased."""
        import pandas as pd

        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.sqrt(np.maximum(self.F_off_trials, 0) / self.F_diag_trials)
        return pd.DataFrame(
            {
                "case": self.case,
                "C": self.C,
                "d": self.d,
                "N": self.N,
                "m": self.m,
                "gamma": self.gamma,
                "seed": self.seed,
                "trial": np.arange(self.trials),
                "F_diag": self.F_diag_trials,
                "F_off": self.F_off_trials,
                "ratio": r,
                "method": self.method,
                "unbiased": self.unbiased,
                "init": self.init,
                "activation": self.activation,
            }
        )


def _run(pl: Plan) -> BlockFrobenius:
    """Simulate a validated :class:`~rmthess.simulate._plan.Plan`."""
    c = pl.case
    rows, cols, n_diag = select_blocks(pl.K, pl.max_diag, pl.max_pairs, pl.blocks_seed)
    fd = np.empty(pl.trials)
    fo = np.empty(pl.trials)
    used = pl.method
    if pl.dev.type == "cuda":
        torch.cuda.synchronize(pl.dev)
    t0 = time.perf_counter()
    for start in range(0, pl.trials, pl.trial_batch):
        nt = min(pl.trial_batch, pl.trials - start)
        seeds = trial_seeds(pl.seed, nt, key=(pl.C, 0), start=start)
        inst = sample_trials(
            c.model, pl.C, pl.d, pl.N, pl.m, seeds, pl.dev, pl.dt, init=pl.init,
            activation=pl.activation,
        )  # fmt: skip
        sq, used = instance_sq_norms(c, inst, rows, cols, pl.method, pl.max_bytes, pl.unbiased)
        sq = sq.double().cpu().numpy()
        fd[start : start + nt] = sq[:, :n_diag].mean(axis=1)
        fo[start : start + nt] = sq[:, n_diag:].mean(axis=1)
        del inst, sq
    if pl.dev.type == "cuda":
        torch.cuda.synchronize(pl.dev)
    seconds = time.perf_counter() - t0
    P = len(rows)
    if used == "gram":
        flops = gram_flops(pl.N, pl.p, P, pl.trials)[1]
    else:
        flops = direct_flops(pl.N, pl.p, P, pl.trials)
    return BlockFrobenius(
        case=c.name,
        C=pl.C,
        d=pl.d,
        N=pl.N,
        m=pl.m,
        trials=pl.trials,
        seed=pl.seed,
        device=str(pl.dev),
        dtype=str(pl.dt).replace("torch.", ""),
        method=used,
        F_diag_trials=fd,
        F_off_trials=fo,
        n_diag=n_diag,
        n_off=P - n_diag,
        seconds=seconds,
        flops=flops,
        unbiased=pl.unbiased,
        init=pl.init.name,
        activation=pl.activation,
    )


def block_frobenius(
    case: str,
    C: int,
    d: int,
    N: int,
    m: int | None = None,
    *,
    trials: int = 8,
    seed: int = 0,
    device: Device = "auto",
    dtype: DType = "float64",
    method: str = "auto",
    max_diag: int = MAX_DIAG,
    max_pairs: int = MAX_PAIRS,
    trial_batch: int | None = None,
    max_bytes: int | None = None,
    unbiased: bool = False,
    init: InitLike = "lecun",
    activation: str = "relu",
) -> BlockFrobenius:
    """Simulate the block Frobenius norms of one case, ``trials`` independent draws.

    For each trial, data ``X`` (d x N, N(0,1)) and weights of the ``init`` law are drawn
    (:mod:`rmthess.simulate.sampling`), the block weights ``a_i`` and vectors ``u_i`` are
    formed (:mod:`rmthess.simulate.weights`) and

        F_diag = mean_{k in D} (1/d) ||H_kk||_F^2,   F_off = mean_{(k,l) in O} (1/d) ||H_kl||_F^2

    (no 1/d for the m x m output-* blocks), where ``D`` is all K diagonal blocks (or a
    uniform sample of ``max_diag``) and ``O`` all ``K(K-1)/2`` pairs ``k < l`` (or a
    uniform sample of ``max_pairs``); see :func:`select_blocks`. K = C (linear-*,
    output-*) or m (hidden-*). Norms use the Gram route (:func:`gram_sq_norms`) or, when
    cheaper (small m x m output blocks), the direct route; both are exact.

    Parameters
    ----------
    case : one of :data:`rmthess.CASES`.
    C : number of classes, ``2 <= C <= MAX_SIZE``. d, N : input dimension and sample
        count, ``1 <= d, N <= MAX_SIZE``.
    m : hidden width, required for hidden-* (>= 2) and output-* (>= 1), refused for
        linear-* (:meth:`rmthess.cases.Case.check_m`).
    trials : independent draws, ``1 <= trials <= MAX_TRIALS``; standard errors need >= 2.
    seed : non-negative int; with ``device`` and ``dtype`` it fixes every number, whatever
        ``trial_batch`` and ``max_bytes`` (module docstring).
    device : ``"auto" | "cpu" | "cuda"``. dtype : ``"float64"`` (default) or ``"float32"``.
    method : ``"auto" | "gram" | "direct"``.
    trial_batch : trials sampled together (default: as many as fit in ``max_bytes``).
    max_bytes : memory bound of one chunk of the Gram route (default 512 MiB on CPU,
        4 GiB on CUDA, at most 1/8 of the machine's memory).
    unbiased : output-* only: drop the ``i = j`` terms so that each trial's value is
        unbiased (given the weights) for the N -> infinity block norm; removes the O(1/N)
        bias of the m x m blocks (see :func:`instance_sq_norms`). Default False.
    init : weight initialisation, ``"lecun"`` (default), ``"torch-default"`` or a float
        ``sigma`` (:func:`rmthess.inits.resolve_init`; sampling: :mod:`.sampling`).
    activation : hidden activation of hidden-*/output-* (a name of
        :data:`rmthess.activations.ACTIVATIONS`; ``"relu"``, the paper's, by default and the
        only value the linear cases take): the blocks of ``V phi(W x)``, with uniform labels
        where ``phi'' != 0`` (:mod:`rmthess.simulate.weights`). Theory:
        ``frobenius_limits(..., activation=)``.

    Memory: before anything is allocated the peak memory of one trial batch is estimated
    (:func:`rmthess.simulate.gram.peak_bytes`: data ``T d N``, weights, softmax ``2 T N C``,
    block weights ``~6 T N P``, one Gram chunk) and compared with the machine's memory
    (CPU: total RAM; CUDA: free device memory). Past it a ``ValueError`` names the
    parameters that drive the largest part and the largest values that would fit.

    Returns
    -------
    BlockFrobenius: means ``F_diag``, ``F_off``, ``ratio`` with standard errors, and the
    per-trial arrays ``F_diag_trials``, ``F_off_trials``.
    """
    return _run(
        plan(
            case, C, d, N, m, trials=trials, seed=seed, device=device, dtype=dtype,
            method=method, max_diag=max_diag, max_pairs=max_pairs, trial_batch=trial_batch,
            max_bytes=max_bytes, unbiased=unbiased, init=init, caller="block_frobenius",
            activation=activation,
        )
    )  # fmt: skip


def frobenius_sweep(
    case: str,
    Cs: Iterable[int],
    d: int,
    N: int,
    m: int | None = None,
    *,
    trials: int = 8,
    seed: int = 0,
    device: Device = "auto",
    dtype: DType = "float64",
    progress: bool | None = False,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`block_frobenius` for every C in ``Cs``; tidy ``pandas.DataFrame``.

    One row per C, the columns of :meth:`BlockFrobenius.to_dict`. Row C is exactly
    ``block_frobenius(case, C, d, N, m, seed=seed, ...)``: its stream is derived from
    ``(seed, C)`` (module docstring), so the C values are independent and no two
    ``(C, seed)`` pairs share data. Every C is validated (sizes, memory) before any is
    simulated. ``kwargs``: the keyword arguments of :func:`block_frobenius`. ``progress``:
    a tqdm bar over the Cs on stderr (``None``: a bar when stderr is a terminal).
    """
    import pandas as pd

    res = sweep_results(
        case, Cs, d, N, m, trials=trials, seed=seed, device=device, dtype=dtype,
        progress=progress, **kwargs,
    )  # fmt: skip
    return pd.DataFrame.from_records([r.to_dict() for r in res])


def sweep_results(
    case, Cs, d, N, m=None, *, trials=8, seed=0, device: Device = "auto",
    dtype: DType = "float64", progress: bool | None = False, **kwargs,
) -> list[BlockFrobenius]:  # fmt: skip
    """:func:`frobenius_sweep` as a list of :class:`BlockFrobenius` (one per C)."""
    progress = check_progress(progress)
    if isinstance(Cs, (str, bytes)) or not hasattr(Cs, "__iter__"):
        raise TypeError(f"Cs must be a sequence of integers >= 2, got {Cs!r}")
    Cs = list(Cs)
    if not Cs:
        raise ValueError("Cs must hold at least one integer >= 2, got an empty sequence")
    plans = [
        plan(
            case, C, d, N, m, trials=trials, seed=seed, device=device, dtype=dtype,
            caller="frobenius_sweep", **kwargs,
        )
        for C in Cs
    ]  # fmt: skip
    from tqdm.auto import tqdm

    off = None if progress is None else not progress  # None: a bar on a terminal only
    bar = tqdm(plans, desc=f"simulate {plans[0].case.name}", unit="C", disable=off)
    return [_run(pl) for pl in bar]


__all__ = [
    "BlockFrobenius",
    "block_frobenius",
    "frobenius_sweep",
    "sweep_results",
    "select_blocks",
    "block_dim",
    "MAX_DIAG",
    "MAX_PAIRS",
    "MAX_SIZE",
    "MAX_TRIALS",
]
