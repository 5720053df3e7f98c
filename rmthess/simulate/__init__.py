"""Monte-Carlo layer: simulated Hessian blocks in torch (CPU/GPU).

- :func:`block_frobenius` / :func:`frobenius_sweep`: block Frobenius norms by the Gram
  route (never materializing the Hessian, :mod:`rmthess.simulate.gram`), with standard
  errors; sizes that cannot fit in memory are refused up front (:func:`peak_bytes`).
- :func:`block_eigenvalues`: eigenvalues of one diagonal / off-diagonal block.
- :func:`depth_block_frobenius`: the block maps of every layer of a deeper MLP (closed-form
  pre-activation Hessians, Gram route), any activation.
- :func:`fit_decay`: power-law fit of r(C) = sqrt(F_off / F_diag) with a bootstrap CI.
- :func:`sample_instance`, :func:`block_vectors`, :func:`block_weights`,
  :func:`hessian_blocks`, :func:`autograd_hessian`: sampling, the form (*) of every block,
  closed-form and autograd Hessians.

Exports are resolved lazily (PEP 562) so that importing ``rmthess.simulate.cli`` (done by
``rmthess --help``) does not import torch.
"""

from __future__ import annotations

from rmthess._lazy import lazy_exports

_EXPORTS = {
    "DepthBlockNorms": "rmthess.simulate.deep",
    "depth_block_frobenius": "rmthess.simulate.deep",
    "LayerSpectrum": "rmthess.simulate.layer",
    "layer_eigenvalues": "rmthess.simulate.layer",
    "layer_matrix": "rmthess.simulate.layer",
    "layer_instance": "rmthess.simulate.layer",
    "BlockFrobenius": "rmthess.simulate.frobenius",
    "block_frobenius": "rmthess.simulate.frobenius",
    "frobenius_sweep": "rmthess.simulate.frobenius",
    "select_blocks": "rmthess.simulate.frobenius",
    "block_dim": "rmthess.simulate.frobenius",
    "MAX_DIAG": "rmthess.simulate.frobenius",
    "MAX_PAIRS": "rmthess.simulate.frobenius",
    "MAX_SIZE": "rmthess.simulate.frobenius",
    "MAX_TRIALS": "rmthess.simulate.frobenius",
    "gram_sq_norms": "rmthess.simulate.gram",
    "direct_sq_norms": "rmthess.simulate.gram",
    "instance_sq_norms": "rmthess.simulate.gram",
    "gram_flops": "rmthess.simulate.gram",
    "direct_flops": "rmthess.simulate.gram",
    "peak_bytes": "rmthess.simulate.gram",
    "block_eigenvalues": "rmthess.simulate.spectra",
    "block_matrix": "rmthess.simulate.spectra",
    "DecayFit": "rmthess.simulate.fits",
    "fit_decay": "rmthess.simulate.fits",
    "Instance": "rmthess.simulate.sampling",
    "sample_instance": "rmthess.simulate.sampling",
    "trial_seeds": "rmthess.simulate.sampling",
    "resolve_device": "rmthess.simulate.device",
    "resolve_dtype": "rmthess.simulate.device",
    "machine_memory": "rmthess.simulate.device",
    "block_vectors": "rmthess.simulate.weights",
    "block_weights": "rmthess.simulate.weights",
    "n_blocks": "rmthess.simulate.weights",
    "hessian_blocks": "rmthess.simulate.hessian",
    "autograd_hessian": "rmthess.simulate.hessian",
    "full_hessian": "rmthess.simulate.hessian",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
