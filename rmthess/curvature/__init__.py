"""Curvature of any PyTorch model: Hessian / GGN / residual operators, their spectra and block
maps (docs/theory.md section 9).

Imports are lazy, so ``import rmthess.curvature`` is cheap; ``rmthess.curvature.X`` loads the
module that holds ``X``.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "KINDS": "operators",
    "CurvatureOperator": "operators",
    "curvature_operator": "operators",
    "dense_hessian": "operators",
    "mlp": "models",
    "train": "models",
    "top_eigenvalues": "eigen",
    "condition_number": "eigen",
    "TopEigen": "eigen",
    "Condition": "eigen",
    "hessian_trace": "trace",
    "TraceEstimate": "trace",
    "spectral_density": "density",
    "SpectralDensity": "density",
    "outliers": "density",
    "Outliers": "density",
    "plot_density": "density",
    "block_norms": "blocks",
    "BlockMap": "blocks",
    "probe_variance": "blocks",
    "DISTRIBUTIONS": "blocks",
    "resolve_blocks": "block_specs",
    "BLOCK_SPECS": "block_specs",
    "plot_block_map": "plots",
    "plot_hessian": "plots",
    "curvature_summary": "summary",
    "CurvatureSummary": "summary",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"rmthess.curvature.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'rmthess.curvature' has no attribute {name!r}")


def __dir__():
    return __all__
