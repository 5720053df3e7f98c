r"""Block maps of a curvature matrix: squared Frobenius norms of all its blocks, by masked
random probes (docs/theory.md section 9).

For a symmetric curvature matrix :math:`H` (P x P; Hessian, GGN or residual of a model's
data-set loss) and disjoint blocks :math:`I_1, \dots, I_L` of the flat parameter vector
(:func:`~rmthess.curvature.block_specs.resolve_blocks`), the block map is

.. math::  S_{rc} = \lVert H_{rc} \rVert_F^2, \qquad H_{rc} = H[I_r, I_c].

**Estimator.** For a column block :math:`c` draw probes :math:`v` supported on :math:`I_c`
(i.i.d. Rademacher or standard normal entries there, zero elsewhere), so
:math:`E[v v^\top] = \mathbb 1_{I_c}`. One product :math:`u = H v` gives, for EVERY row
block :math:`r` at once, :math:`u_r = u[I_r] = H_{rc} v_c` and

.. math::  E \lVert u_r \rVert^2 = \operatorname{tr}(H_{rc} E[v_c v_c^\top] H_{rc}^\top)
           = \lVert H_{rc} \rVert_F^2 .

The whole L x L map therefore costs ``L * probes`` products (one ``matmat_torch`` call per
column block), against ``L^2 * probes`` for one Hutchinson estimate per block pair
(``curvlinops.SubmatrixLinearOperator`` + ``hutchinson_squared_fro``; same variance per
pair). The estimate is the mean over probes, its standard error the sample standard
deviation over probes divided by ``sqrt(probes)``.

**Variance.** With :math:`M = H_{rc}` and :math:`B = M^\top M`,
:math:`\lVert M v\rVert^2 = v^\top B v = \sum_i B_{ii} v_i^2 + \sum_{i \ne j} B_{ij} v_i v_j`.
For Rademacher :math:`v` (:math:`v_i^2 = 1`, :math:`E v_i v_j v_k v_l = 1` only for paired
indices) the first sum is the constant :math:`\operatorname{tr} B` and the second has
variance :math:`2 \sum_{i \ne j} B_{ij}^2`:

.. math::  \operatorname{Var} \lVert M v \rVert^2
           = 2 \big(\lVert M^\top M \rVert_F^2 - \textstyle\sum_i (M^\top M)_{ii}^2\big)
           \quad\text{(Rademacher)}, \qquad
           2 \lVert M^\top M \rVert_F^2 \quad\text{(Gaussian, } E v_i^4 = 3\text{)}.

Rademacher probes are never worse; for a single row (``M`` one row) the Gaussian variance
is :math:`2\lVert M\rVert^4` while the Rademacher one is :math:`2(\lVert M\rVert^4 - \sum_i
M_i^4)`. The variance of the mean over ``probes`` probes is this divided by ``probes``; the
entries of one column block are correlated (same probes), different column blocks are
independent (independent streams, one per block position, from ``numpy.random.SeedSequence
(seed, spawn_key=(c,))``). ``sq_norm[r, c]`` and ``sq_norm[c, r]`` estimate the same number
(``H`` is symmetric) from independent probes; they are not averaged.

**Exact mode.** With unit vectors on :math:`I_c` instead (``exact=True``, default when
``|I_c| <= probes``), :math:`u = H e_i` are the columns of :math:`H[:, I_c]` and the norms are
exact (round-off only: relative ~1e-13 in float64), standard error 0, cost ``|I_c|``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from rmthess._checks import check_choice, check_int, check_memory, check_progress, progress_bar
from rmthess._random import check_seed, seed_int
from rmthess._stats import json_safe, ratio_stderr
from rmthess.curvature.block_specs import resolve_blocks
from rmthess.curvature.trace import DISTRIBUTIONS, check_distribution

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from rmthess.curvature._types import Array, Blocks, Data, Loss
    from rmthess.curvature.operators import CurvatureOperator

__all__ = ["BlockMap", "block_norms", "probe_variance", "DISTRIBUTIONS"]
MAX_PROBES = 10**6
"""Most probes per column block: the standard error of an entry falls as 1/sqrt(probes), to
1e-3 of one probe's spread here, and a block of size <= probes is computed exactly for less."""
_COLUMN_BYTES = 2**28  # bound on the probe and product matrices of one call (V and H V)
_PROGRESS_AFTER_S = 5.0


@dataclass
class BlockMap:
    """Squared Frobenius norms of the L x L blocks of a curvature matrix.

    Attributes
    ----------
    names : tuple of str, the L block names (rows and columns share them).
    sizes : (L,) int ndarray, block sizes ``|I_r|``.
    sq_norm : (L, L) ndarray, ``sq_norm[r, c]`` estimates ``||H[I_r, I_c]||_F^2``.
    sq_norm_se : (L, L) ndarray, its standard error (0 for exact column blocks).
    sq_norm_trials : (L, L, probes) ndarray, the per-probe values ``||u_r||^2`` whose mean is
        ``sq_norm`` (NaN for exact column blocks).
    probes : int, probes per stochastic column block.
    n_matvecs : int, products with the curvature matrix used.
    kind : "hessian", "ggn", "residual" (or "dense" for a matrix given directly).
    exact : (L,) bool ndarray, column block ``c`` computed exactly.
    distribution, seed, seconds : how it was drawn, and the wall time.
    """

    names: tuple[str, ...]
    sizes: np.ndarray
    sq_norm: np.ndarray
    sq_norm_se: np.ndarray
    sq_norm_trials: np.ndarray
    probes: int
    n_matvecs: int
    kind: str
    exact: np.ndarray
    distribution: str = "rademacher"
    seed: int = 0
    seconds: float = float("nan")

    @property
    def n_blocks(self) -> int:
        return len(self.names)

    # --- root-mean-square entries ----------------------------------------------------------
    @property
    def rms(self) -> np.ndarray:
        """(L, L) root-mean-square entry ``sqrt(sq_norm / (size_r size_c))``."""
        return np.sqrt(np.maximum(self.sq_norm, 0.0) / np.outer(self.sizes, self.sizes))

    @property
    def rms_se(self) -> np.ndarray:
        """Delta-method standard error of :attr:`rms`: ``rms * sq_norm_se / (2 sq_norm)``
        (0 where the entry is exact, NaN where the estimate is 0 but uncertain)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            se = self.rms * self.sq_norm_se / (2.0 * self.sq_norm)
        return np.where(self.sq_norm_se == 0, 0.0, se)

    # --- linear functionals of the map and their (co)variances ----------------------------
    def _moments(self, w1: np.ndarray, w2: np.ndarray) -> tuple[float, float, float, float, float]:
        """``(sum w1 S, sum w2 S, var1, var2, cov)``: column blocks are independent, the
        entries of one column block share its probes (sample covariance over probes)."""
        e1, e2 = float((w1 * self.sq_norm).sum()), float((w2 * self.sq_norm).sum())
        v1 = v2 = cv = 0.0
        for c in np.flatnonzero(~self.exact):
            s = self.sq_norm_trials[:, c, :]  # (L, k)
            a, b = w1[:, c] @ s, w2[:, c] @ s
            k = s.shape[1]
            v1 += float(np.var(a, ddof=1)) / k
            v2 += float(np.var(b, ddof=1)) / k
            cv += float(np.cov(a, b, ddof=1)[0, 1]) / k
        return e1, e2, v1, v2, cv

    def _weights(self, normalized: bool) -> tuple[np.ndarray, np.ndarray]:
        L = self.n_blocks
        scale = 1.0 / np.outer(self.sizes, self.sizes) if normalized else np.ones((L, L))
        eye = np.eye(L, dtype=bool)
        w_diag = np.where(eye, scale, 0.0) / L
        w_off = np.where(eye, 0.0, scale) / (L * (L - 1)) if L > 1 else np.zeros((L, L))
        return w_diag, w_off

    @property
    def F_diag(self) -> float:
        """Mean of the diagonal entries ``sq_norm[c, c]`` (not normalized by block size)."""
        return float(np.mean(np.diag(self.sq_norm)))

    @property
    def F_diag_se(self) -> float:
        w_diag, w_off = self._weights(False)
        return float(np.sqrt(self._moments(w_diag, w_off)[2]))

    @property
    def F_off(self) -> float:
        """Mean of the off-diagonal entries ``sq_norm[r, c]``, ``r != c`` (NaN for L = 1)."""
        if self.n_blocks < 2:
            return float("nan")
        return float(self.sq_norm[~np.eye(self.n_blocks, dtype=bool)].mean())

    @property
    def F_off_se(self) -> float:
        if self.n_blocks < 2:
            return float("nan")
        w_diag, w_off = self._weights(False)
        return float(np.sqrt(self._moments(w_diag, w_off)[3]))

    @property
    def ratio(self) -> float:
        """``r = sqrt(mean_{r != c} rms^2 / mean_c rms^2)``: off-diagonal against diagonal
        root-mean-square entry. When all blocks have one size p it equals the paper's
        ``sqrt(mean F_off / mean F_diag)`` (any common normalization of the norms cancels).
        NaN for L = 1."""
        if self.n_blocks < 2:
            return float("nan")
        w_diag, w_off = self._weights(True)
        d, o = float((w_diag * self.sq_norm).sum()), float((w_off * self.sq_norm).sum())
        return float(np.sqrt(max(o, 0.0) / d)) if d > 0 else float("nan")

    @property
    def ratio_se(self) -> float:
        """Delta-method standard error of :attr:`ratio` (:func:`rmthess._stats.ratio_stderr`)
        from the per-probe values: the diagonal and off-diagonal entries of one column block
        come from the same probes (their covariance is kept), column blocks are independent.
        First order in the relative errors (bias and error O(1/probes))."""
        if self.n_blocks < 2:
            return float("nan")
        w_diag, w_off = self._weights(True)
        d, o, vd, vo, cv = self._moments(w_diag, w_off)
        if o == 0 and vo == 0:
            return 0.0
        return ratio_stderr(d, o, vd, vo, cv)

    # --- output ------------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """Tidy ``pandas.DataFrame``, one row per block pair (row-major): ``row, col,
        sq_norm, sq_norm_se, size_row, size_col, rms, rms_se``."""
        import pandas as pd

        L = self.n_blocks
        r, c = np.divmod(np.arange(L * L), L)
        names = np.asarray(self.names, dtype=object)
        return pd.DataFrame(
            {
                "row": names[r],
                "col": names[c],
                "sq_norm": self.sq_norm.ravel(),
                "sq_norm_se": self.sq_norm_se.ravel(),
                "size_row": self.sizes[r],
                "size_col": self.sizes[c],
                "rms": self.rms.ravel(),
                "rms_se": self.rms_se.ravel(),
            }
        )

    def to_dict(self) -> dict:
        """Every scalar, flat and JSON-safe (non-finite floats -> None): kind, n_blocks,
        n_params (sum of block sizes), probes, n_exact (exact column blocks), n_matvecs,
        distribution, seed, seconds, F_diag, F_diag_se, F_off, F_off_se, ratio, ratio_se.
        The map itself is in :meth:`to_frame`."""
        return json_safe(
            {
                "kind": self.kind,
                "n_blocks": self.n_blocks,
                "n_params": int(self.sizes.sum()),
                "probes": self.probes,
                "n_exact": int(self.exact.sum()),
                "n_matvecs": self.n_matvecs,
                "distribution": self.distribution,
                "seed": self.seed,
                "seconds": float(self.seconds),
                "F_diag": self.F_diag,
                "F_diag_se": self.F_diag_se,
                "F_off": self.F_off,
                "F_off_se": self.F_off_se,
                "ratio": self.ratio,
                "ratio_se": self.ratio_se,
            }
        )

    def __repr__(self) -> str:
        return (
            f"BlockMap(kind={self.kind!r}, L={self.n_blocks}, P={int(self.sizes.sum())}, "
            f"probes={self.probes}, exact={int(self.exact.sum())}/{self.n_blocks}, "
            f"n_matvecs={self.n_matvecs}, ratio={self.ratio:.4g} +- {self.ratio_se:.2g})"
        )


def probe_variance(M: Array, distribution: str = "rademacher") -> float:
    """Exact variance of ``||M v||^2`` for ONE probe ``v`` with i.i.d. entries (module
    docstring): ``2 (||B||_F^2 - sum_i B_ii^2)`` with ``B = M^T M`` for Rademacher entries,
    ``2 ||B||_F^2`` for standard normal ones. ``M``: a dense block (numpy or torch, 2-D).
    The standard error of a map entry from ``k`` probes is ``sqrt(probe_variance / k)``."""
    distribution = check_distribution(distribution)
    if hasattr(M, "detach"):
        M = M.detach().cpu().numpy()
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2:
        raise ValueError(f"M must be a 2-D matrix, got shape {M.shape}")
    B = M.T @ M
    v = 2.0 * float(np.sum(B * B))
    return v - 2.0 * float(np.sum(np.diag(B) ** 2)) if distribution == "rademacher" else v


def _block_seed(seed: int, c: int) -> int:
    """The torch seed of column block ``c``: stream ``(seed, c)`` of :mod:`rmthess._random`."""
    return seed_int(seed, c)


def _probes(n: int, k: int, distribution: str, seed: int) -> torch.Tensor:
    """(n, k) float64 CPU probe entries (same numbers on every device)."""
    gen = torch.Generator().manual_seed(seed)
    if distribution == "rademacher":
        return torch.randint(0, 2, (n, k), generator=gen, dtype=torch.float64).mul_(2).sub_(1)
    return torch.randn(n, k, generator=gen, dtype=torch.float64)


def _estimate(
    matmat, P, blocks, *, probes, exact, seed, distribution, progress, device, dtype, kind
) -> BlockMap:
    """The estimator on any ``matmat`` (torch (P, k) -> (P, k)); arguments already checked."""
    L = len(blocks)
    sizes = np.array([len(idx) for _, idx in blocks], dtype=np.int64)
    is_exact = np.array(
        [bool(exact) if exact is not None else n <= probes for n in sizes], dtype=bool
    )
    cost = np.where(is_exact, sizes, probes)
    rows = [torch.as_tensor(idx, device=device) for _, idx in blocks]
    covered = torch.cat(rows)  # flat indices of all blocks, and the block of each
    owner = torch.cat([torch.full((len(ix),), r, device=device) for r, ix in enumerate(rows)])
    S = np.zeros((L, L))
    SE = np.zeros((L, L))
    T = np.full((L, L, probes), np.nan)
    per_call = max(1, _COLUMN_BYTES // (16 * P))
    n_mv, bar, t0 = 0, None, time.perf_counter()
    if progress:
        bar = progress_bar(True, total=int(cost.sum()), desc="block map", unit="HVP")
    for c in range(L):
        n, k = int(sizes[c]), int(cost[c])
        if is_exact[c]:
            vals = None
        else:
            vals = _probes(n, k, distribution, _block_seed(seed, c)).to(device=device)
        samples = np.zeros((L, k))
        for j0 in range(0, k, per_call):
            j1 = min(k, j0 + per_call)
            V = torch.zeros(P, j1 - j0, dtype=dtype, device=device)
            if vals is None:
                V[rows[c][j0:j1], torch.arange(j1 - j0, device=device)] = 1
            else:
                V[rows[c]] = vals[:, j0:j1].to(dtype)
            U = matmat(V).detach()
            n_mv += j1 - j0
            sums = torch.zeros(L, j1 - j0, dtype=torch.float64, device=device)
            sums.index_add_(0, owner, U[covered].double().square())  # ||u_r||^2, every r
            samples[:, j0:j1] = sums.cpu().numpy()
            if bar is not None:
                bar.update(j1 - j0)
        if is_exact[c]:
            S[:, c] = samples.sum(1)
        else:
            S[:, c] = samples.mean(1)
            SE[:, c] = samples.std(1, ddof=1) / np.sqrt(k)
            T[:, c, :] = samples
        if c == 0 and bar is None and progress is None and L > 1:
            left = (time.perf_counter() - t0) / cost[0] * cost[1:].sum()
            if left > _PROGRESS_AFTER_S:  # shown when stderr is a terminal
                bar = progress_bar(
                    None, total=int(cost.sum()), initial=int(cost[0]), desc="block map", unit="HVP"
                )
    if bar is not None:
        bar.close()
    return BlockMap(
        names=tuple(name for name, _ in blocks),
        sizes=sizes,
        sq_norm=S,
        sq_norm_se=SE,
        sq_norm_trials=T,
        probes=probes,
        n_matvecs=n_mv,
        kind=kind,
        exact=is_exact,
        distribution=distribution,
        seed=seed,
        seconds=time.perf_counter() - t0,
    )


def block_norms(
    model: nn.Module | None = None,
    loss_fn: Loss | None = None,
    data: Data | None = None,
    blocks: Blocks = "layers",
    kind: str | None = None,
    *,
    probes: int = 20,
    exact: bool | None = None,
    seed: int = 0,
    distribution: str = "rademacher",
    progress: bool | None = None,
    op: CurvatureOperator | None = None,
) -> BlockMap:
    """Squared Frobenius norms of all L x L blocks of a curvature matrix (module docstring).

    Parameters
    ----------
    model, loss_fn, data : the problem, as for
        :func:`~rmthess.curvature.operators.curvature_operator`; leave them None when ``op``
        is given.
    blocks : "layers", "params", "output-rows", "hidden-rows" or ``{name: spec}``
        (:func:`~rmthess.curvature.block_specs.resolve_blocks`).
    kind : "hessian", "ggn" or "residual" (default: ``op.kind``, else "hessian").
    probes : int in ``[2, MAX_PROBES = 10**6]``, random probes per column block; the standard
        error of an entry falls as ``1/sqrt(probes)``. The map's arrays must fit in half the
        RAM (``8 L^2 probes`` bytes for the per-probe values): checked first.
    exact : True: unit vectors on every block (exact, cost = block size); False: probes on
        every block; None (default): exact for the blocks of size ``<= probes``.
    seed : int in ``[0, 2**128)``, seeds the probes (one independent stream per column block:
        ``rmthess._random.seed_int(seed, c)``).
    distribution : "rademacher" (default, smaller variance) or "normal".
    progress : tqdm bar; None shows it when stderr is a terminal and the rest of the map is
        predicted to take more than 5 s after the first column block.
    op : an existing ``CurvatureOperator`` to reuse (its products are counted in its
        ``n_matvecs`` too).

    Returns
    -------
    :class:`BlockMap`. Cost: ``sum_c (|I_c| if exact else probes)`` products, i.e.
    ``L * probes`` when every block is stochastic. Accuracy: unbiased; entry standard error
    ``sqrt(Var/probes)`` with the variance of the module docstring (estimated from the
    probes, reported in ``sq_norm_se``; its square is unbiased for ``Var/probes``). As for
    any studentized mean, ``(estimate - truth)/se`` is not exactly N(0, 1): to first order
    its mean is ``-g/(2 sqrt(probes))`` and its variance ``1 + (2 + 7 g^2/4)/probes``, with
    ``g`` the skewness of one probe's ``||u_r||^2`` (measured on an MLP Hessian with 20
    probes: z mean -0.12, sd 1.11, both as predicted). Small blocks with few probes have
    discrete, skewed per-probe values and unreliable standard errors: the default
    ``exact=None`` computes every block of size ``<= probes`` exactly.

    Every argument is checked, and the blocks resolved, before the first product.
    """
    from rmthess.curvature.operators import KINDS, CurvatureOperator, curvature_operator

    probes = check_int("probes", probes, 2, MAX_PROBES)
    if exact is not None and not isinstance(exact, bool | np.bool_):
        raise TypeError(f"exact must be True, False or None, got {exact!r}")
    seed = check_seed(seed)
    distribution = check_distribution(distribution)
    progress = check_progress(progress)
    if kind is not None:
        kind = check_choice("kind", kind, KINDS)
    if op is not None:
        if not isinstance(op, CurvatureOperator):
            raise TypeError(f"op must be a CurvatureOperator, got {type(op).__name__}")
        if any(a is not None for a in (model, loss_fn, data)):
            raise ValueError("give either op or (model, loss_fn, data), not both")
        if kind is not None and kind != op.kind:
            raise ValueError(f"kind {kind!r} disagrees with op.kind {op.kind!r}")
    else:
        if model is None or loss_fn is None or data is None:
            raise ValueError("model, loss_fn and data are required when op is not given")
        op = curvature_operator(model, loss_fn, data, kind or "hessian")
    resolved = resolve_blocks(op, blocks)
    L, n_max = len(resolved), max(len(idx) for _, idx in resolved)
    cost = {None: lambda n: min(n, probes), True: lambda n: n, False: lambda n: probes}
    k_max = max(cost[None if exact is None else bool(exact)](len(idx)) for _, idx in resolved)
    per_call = min(k_max, max(1, _COLUMN_BYTES // (16 * op.shape[0])))
    check_memory(
        8.0 * (L * L * probes + (n_max + L) * k_max) + 16.0 * op.shape[0] * per_call,
        f"block_norms(probes={probes}) of {L} blocks",
        "lower probes",
    )
    return _estimate(
        op.matmat_torch,
        op.shape[0],
        resolved,
        probes=probes,
        exact=None if exact is None else bool(exact),
        seed=seed,
        distribution=distribution,
        progress=progress,
        device=op.device,
        dtype=op.torch_dtype,
        kind=op.kind,
    )
