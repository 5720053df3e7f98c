"""Curvature of any PyTorch model: Hessian / GGN / residual operators, their spectra and block
maps (docs/theory.md section 9).

Imports are lazy, so ``import rmthess.curvature`` is cheap; ``rmthess.curvature.X`` loads the
module that holds ``X``.
"""

from __future__ import annotations

from rmthess._lazy import lazy_exports

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
    "layer_block_maps": "layer_maps",
    "BlockMap": "blocks",
    "probe_variance": "blocks",
    "DISTRIBUTIONS": "blocks",
    "resolve_blocks": "block_specs",
    "BLOCK_SPECS": "block_specs",
    "plot_block_map": "plots",
    "plot_hessian": "plots",
    "curvature_summary": "summary",
    "CurvatureSummary": "summary",
    "theory_on_data": "on_data",
    "TheoryOnData": "on_data",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(
    __name__, {name: f"rmthess.curvature.{mod}" for name, mod in _WHERE.items()}
)
