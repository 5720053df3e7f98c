"""Exact limiting theory of the Hessian blocks (numpy/scipy/numba/mpmath; never torch).

- :mod:`rmthess.theory.gmp`: generalized Marchenko-Pastur (GMP) Stieltjes solver.
- :mod:`rmthess.theory.law`: :class:`GMPLaw`, a scipy.stats-like limiting spectral law.
- :mod:`rmthess.theory.block_laws`: the weight law ``nu`` of every Hessian block and its
  limiting eigenvalue density.
- :mod:`rmthess.theory.frobenius`: exact Frobenius limits ``F_diag``, ``F_off`` at fixed C.
- :mod:`rmthess.theory.ce_quadrature` (with :mod:`~rmthess.theory.ce_inner` and
  :mod:`~rmthess.theory.relu_gram`): the deterministic Gram quadrature of the
  one-hidden-layer CE limits; :mod:`rmthess.theory.hidden_integrals`: their nested Monte
  Carlo.
- :mod:`rmthess.theory.inputs` (:class:`InputStats`), :mod:`rmthess.theory.aniso_linear`:
  statistics of non-isotropic inputs and the linear model's limits for them (issue 19).
- :mod:`rmthess.theory.separable_gmp`, :mod:`rmthess.theory.separable_law`: block spectra
  under anisotropic inputs (the separable GMP equation, :class:`SeparableGMPLaw`).
- :mod:`rmthess.theory.asymptotics`: large-C constants (``K1..K4``, docs/theory.md section 5).
- :mod:`rmthess.theory.case_theory`: one theory object per case of the registry, behind
  the public functions above (:func:`~rmthess.theory.case_theory.theory_for`).
- :mod:`rmthess.theory.matrix_gmp`, :mod:`rmthess.theory.matrix_law`: the matrix-valued GMP
  equation and :class:`MatrixGMPLaw` (whole-layer spectra, docs/theory.md section 9.1).
- :mod:`rmthess.theory.layer_laws`, :mod:`rmthess.theory.layer_gap`: the whole-layer laws of
  the paper's models and their distance to the block-diagonal part.
"""

from __future__ import annotations

from rmthess._lazy import lazy_exports

_EXPORTS = {
    "GAMMA_RANGE": "rmthess.theory.gmp",
    "BlockDiagonalGap": "rmthess.theory.layer_gap",
    "GapCurve": "rmthess.theory.layer_gap",
    "MatrixGMPLaw": "rmthess.theory.matrix_law",
    "MixtureLaw": "rmthess.theory.matrix_law",
    "block_diagonal_gap": "rmthess.theory.layer_gap",
    "block_diagonal_law": "rmthess.theory.layer_laws",
    "gap_vs_C": "rmthess.theory.layer_gap",
    "layer_law": "rmthess.theory.layer_laws",
    "layer_weight_law": "rmthess.theory.layer_laws",
    "matrix_gmp_density": "rmthess.theory.matrix_gmp",
    "matrix_gmp_moments": "rmthess.theory.matrix_law",
    "matrix_gmp_stieltjes": "rmthess.theory.matrix_gmp",
    "matrix_gmp_zero_mass": "rmthess.theory.matrix_gmp",
    "AsymptoticConstants": "rmthess.theory.asymptotics",
    "FrobeniusLimits": "rmthess.theory.frobenius",
    "InputStats": "rmthess.theory.inputs",
    "conditional_frobenius": "rmthess.theory.aniso_linear",
    "activation_frobenius": "rmthess.theory.activation_hidden",
    "deep_frobenius": "rmthess.theory.deep_hidden",
    "depth_frobenius": "rmthess.theory.depth",
    "DepthLimits": "rmthess.theory.depth",
    "depth_block_limit": "rmthess.theory.depth_laws",
    "depth_limiting_law": "rmthess.theory.depth_laws",
    "sample_network": "rmthess.theory.depth_laws",
    "offset_frobenius": "rmthess.theory.offset_limits",
    "input_stats": "rmthess.theory.inputs",
    "GMPLaw": "rmthess.theory.law",
    "SeparableGMPLaw": "rmthess.theory.separable_law",
    "separable_gmp_density": "rmthess.theory.separable_gmp",
    "separable_gmp_moments": "rmthess.theory.separable_gmp",
    "separable_gmp_stieltjes": "rmthess.theory.separable_gmp",
    "separable_gmp_support": "rmthess.theory.separable_gmp",
    "separable_gmp_zero_mass": "rmthess.theory.separable_gmp",
    "asymptotic_constants": "rmthess.theory.asymptotics",
    "block_weight_law": "rmthess.theory.block_laws",
    "frobenius_limits": "rmthess.theory.frobenius",
    "gmp_density": "rmthess.theory.gmp",
    "gmp_moments": "rmthess.theory.law",
    "gmp_stieltjes": "rmthess.theory.gmp",
    "gmp_support": "rmthess.theory.gmp",
    "gmp_zero_mass": "rmthess.theory.gmp",
    "limiting_density": "rmthess.theory.block_laws",
    "limiting_law": "rmthess.theory.block_laws",
    "output_block_limit": "rmthess.theory.block_laws",
}

__all__ = sorted(_EXPORTS)

# lazily: `rmthess theory --help` (and any rmthess.theory.X import) loads nothing heavy
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
