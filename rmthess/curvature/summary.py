"""One call for the usual curvature diagnostics of a model: ``curvature_summary``.

It is what ``rmthess curvature`` prints: top eigenvalues (Lanczos, with residuals), the
trace (Hutch++ with a standard error, to a relative target), the block map and its off/diag
ratio, and optionally the SLQ spectral density; all from one :class:`CurvatureOperator`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from rmthess._checks import check_int, check_memory, check_positive_float, check_progress
from rmthess._random import check_seed
from rmthess._stats import json_safe
from rmthess.curvature.operators import CurvatureOperator, curvature_operator

if TYPE_CHECKING:
    from torch import nn

    from rmthess.curvature._types import Blocks, Data, Loss

__all__ = ["CurvatureSummary", "curvature_summary"]


@dataclass
class CurvatureSummary:
    """Diagnostics of one curvature matrix. ``eigen``/``trace``/``blocks``/``density`` are the
    result objects of :func:`top_eigenvalues`, :func:`hessian_trace`, :func:`block_norms`
    and :func:`spectral_density` (``None`` when skipped)."""

    kind: str
    n_params: int
    n_data: int
    eigen: object = None
    trace: object = None
    blocks: object = None
    density: object = None
    n_matvecs: int = 0
    seconds: dict = field(default_factory=dict)

    @property
    def eigenvalues(self):
        return None if self.eigen is None else self.eigen.eigenvalues

    def to_dict(self) -> dict:
        """JSON-safe scalars: ``lambda_max`` (the largest eigenvalue found), ``k``,
        ``eigen_max_residual``; ``trace``, ``trace_se``; the block map as ``n_blocks``,
        ``ratio(_se)``, ``F_diag``, ``F_off``; ``density_mean(_se)``; ``n_matvecs`` and
        ``seconds_*``. The eigenvalues are :meth:`to_frame`'s rows (and ``eigen``'s
        :meth:`~rmthess.curvature.TopEigen.to_frame`), the block map ``blocks.to_frame()``."""
        d = {"kind": self.kind, "n_params": self.n_params, "n_data": self.n_data}
        if self.eigen is not None:
            d["k"] = self.eigen.k
            d["lambda_max"] = float(self.eigen.eigenvalues.max())
            d["eigen_max_residual"] = self.eigen.max_residual
        if self.trace is not None:
            d["trace"], d["trace_se"] = float(self.trace.trace), float(self.trace.trace_se)
        if self.blocks is not None:
            d["n_blocks"] = len(self.blocks.names)
            d["ratio"], d["ratio_se"] = self.blocks.ratio, self.blocks.ratio_se
            d["F_diag"], d["F_off"] = self.blocks.F_diag, self.blocks.F_off
        if self.density is not None:
            d["density_mean"] = float(self.density.mean)
            d["density_mean_se"] = float(self.density.mean_se)
        d["n_matvecs"] = self.n_matvecs
        d.update({f"seconds_{k}": v for k, v in self.seconds.items()})
        return json_safe(d)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table ``quantity, index, value, se``: eigenvalues, trace, ratio."""
        rows = []
        if self.eigen is not None:
            for i, (lam, res) in enumerate(
                zip(self.eigen.eigenvalues, self.eigen.residuals, strict=True)
            ):
                rows.append(("eigenvalue", i, float(lam), float(res * abs(lam))))
        if self.trace is not None:
            rows.append(("trace", 0, float(self.trace.trace), float(self.trace.trace_se)))
        if self.blocks is not None:
            rows.append(("ratio", 0, self.blocks.ratio, self.blocks.ratio_se))
            rows.append(("F_diag", 0, self.blocks.F_diag, self.blocks.F_diag_se))
            rows.append(("F_off", 0, self.blocks.F_off, self.blocks.F_off_se))
        return pd.DataFrame(rows, columns=["quantity", "index", "value", "se"])


def curvature_summary(
    model: nn.Module | None = None,
    loss_fn: Loss | None = None,
    data: Data | None = None,
    kind: str = "hessian",
    *,
    op: CurvatureOperator | None = None,
    k: int = 10,
    trace_rtol: float | None = 0.05,
    trace_matvecs: int = 300,
    blocks: Blocks = "layers",
    probes: int = 20,
    density: bool = False,
    seed: int = 0,
    progress: bool | None = None,
) -> CurvatureSummary:
    """Top-``k`` eigenvalues, trace (to ``trace_rtol`` relative SE, at most ``trace_matvecs``
    products), block map (``blocks``, ``probes`` per block; ``None`` skips it) and, with
    ``density=True``, the SLQ density, of one curvature matrix.

    Give either ``(model, loss_fn, data, kind)`` or an operator ``op``. ``k=0`` skips the
    eigenvalues, ``trace_rtol=None`` the trace. ``probes >= 2`` (a standard error needs
    two). ``progress``: a tqdm bar per step (None: when stderr is a terminal).
    """
    from rmthess.curvature.blocks import MAX_PROBES, block_norms
    from rmthess.curvature.density import spectral_density
    from rmthess.curvature.eigen import top_eigenvalues
    from rmthess.curvature.trace import hessian_trace

    k = check_int("k", k, 0)
    probes = check_int("probes", probes, 2, MAX_PROBES)
    progress = check_progress(progress)
    seed = check_seed(seed)
    trace_matvecs = check_int("trace_matvecs", trace_matvecs, 6)
    if trace_rtol is not None:
        trace_rtol = check_positive_float("trace_rtol", trace_rtol)
    if op is None:
        op = curvature_operator(model, loss_fn, data, kind)
    elif not isinstance(op, CurvatureOperator):
        raise TypeError(f"op must be a CurvatureOperator, got {type(op).__name__}")
    if blocks is not None:  # resolve the spec before any product: errors come first
        from rmthess.curvature.block_specs import resolve_blocks

        L = len(resolve_blocks(op, blocks))
        check_memory(8.0 * L * L * probes, f"the block map of {L} blocks", "lower probes")
    out = CurvatureSummary(kind=op.kind, n_params=op.shape[0], n_data=op.n_data)
    start = op.n_matvecs

    def timed(name, fn):
        t = time.perf_counter()
        res = fn()
        out.seconds[name] = time.perf_counter() - t
        return res

    if k:
        out.eigen = timed(
            "eigen",
            lambda: top_eigenvalues(
                op, min(k, op.shape[0]), which="LA", seed=seed, progress=progress
            ),
        )
    if trace_rtol is not None:
        out.trace = timed(
            "trace",
            lambda: hessian_trace(
                op, rtol=trace_rtol, max_matvecs=trace_matvecs, seed=seed, progress=progress
            ),
        )
    if blocks is not None:
        out.blocks = timed(
            "blocks",
            lambda: block_norms(
                None, None, None, blocks, op=op, probes=probes, seed=seed, progress=progress
            ),
        )
    if density:
        out.density = timed("density", lambda: spectral_density(op, seed=seed, progress=progress))
    out.n_matvecs = op.n_matvecs - start
    return out
