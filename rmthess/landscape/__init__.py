"""Loss-landscape convergence with sample size (seed 000, Kiselev & Grabovoy): ``Delta_k``
curves with honest statistics, their exact expectation, rates, the neighbourhood term, and an
audit of the paper's Hessian bounds (docs/theory.md section 9.3).

Imports are lazy: ``rmthess.landscape.X`` loads the module that holds ``X``.
"""

from __future__ import annotations

from rmthess._lazy import lazy_exports

_WHERE = {
    "per_sample_losses": "losses",
    "unreduced_loss": "losses",
    "PAPER_EMA": "delta",
    "NeighbourhoodMC": "neighbourhood",
    "EXACT_MAX_PARAMS": "neighbourhood",
    "delta_curve": "delta",
    "DeltaCurve": "delta",
    "delta_expected": "delta",
    "DeltaExpected": "delta",
    "fit_rate": "delta",
    "RateFit": "delta",
    "sample_size_for": "sample_size",
    "ema_filter": "delta",
    "neighbourhood_delta": "neighbourhood",
    "NeighbourhoodDelta": "neighbourhood",
    "relu_mlp": "models",
    "train_mlp": "models",
    "check_relu_mlp": "models",
    "per_sample_hessian_norms": "per_sample",
    "per_sample_curvature": "per_sample",
    "hessian_bound_audit": "bounds",
    "paper_theorem1": "bounds",
    "corrected_bound": "bounds",
    "corrected_layer_bound": "bounds",
    "PerSampleNorms": "per_sample",
    "BoundAudit": "bounds",
    "landscape_experiment": "experiment",
    "LandscapeExperiment": "experiment",
    "plot_delta_panels": "experiment",
    "paper_pixels": "experiment",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(
    __name__, {name: f"rmthess.landscape.{mod}" for name, mod in _WHERE.items()}
)
