"""Exact limiting theory of the Hessian blocks (numpy/scipy/numba/mpmath; never torch).

- :mod:`rmthess.theory.gmp`: generalized Marchenko-Pastur (GMP) Stieltjes solver.
- :mod:`rmthess.theory.law`: :class:`GMPLaw`, a scipy.stats-like limiting spectral law.
- :mod:`rmthess.theory.block_laws`: the weight law ``nu`` of every Hessian block and its
  limiting eigenvalue density.
- :mod:`rmthess.theory.frobenius`: exact Frobenius limits ``F_diag``, ``F_off`` at fixed C.
- :mod:`rmthess.theory.asymptotics`: large-C constants (``K1..K4``, docs/theory.md section 5).
- :mod:`rmthess.theory.case_theory`: one theory object per case of the registry, behind
  the public functions above (:func:`~rmthess.theory.case_theory.theory_for`).
- :mod:`rmthess.theory.matrix_gmp`, :mod:`rmthess.theory.matrix_law`: the matrix-valued GMP
  equation and :class:`MatrixGMPLaw` (whole-layer spectra, docs/theory.md section 9.1).
- :mod:`rmthess.theory.layer_laws`, :mod:`rmthess.theory.layer_gap`: the whole-layer laws of
  the paper's models and their distance to the block-diagonal part.
"""

from rmthess.theory.asymptotics import AsymptoticConstants, asymptotic_constants
from rmthess.theory.block_laws import (
    block_weight_law,
    limiting_density,
    limiting_law,
    output_block_limit,
)
from rmthess.theory.frobenius import FrobeniusLimits, frobenius_limits
from rmthess.theory.gmp import (
    GAMMA_RANGE,
    gmp_density,
    gmp_stieltjes,
    gmp_support,
    gmp_zero_mass,
)
from rmthess.theory.law import GMPLaw, gmp_moments
from rmthess.theory.layer_gap import BlockDiagonalGap, GapCurve, block_diagonal_gap, gap_vs_C
from rmthess.theory.layer_laws import block_diagonal_law, layer_law, layer_weight_law
from rmthess.theory.matrix_gmp import (
    matrix_gmp_density,
    matrix_gmp_stieltjes,
    matrix_gmp_zero_mass,
)
from rmthess.theory.matrix_law import MatrixGMPLaw, MixtureLaw, matrix_gmp_moments

__all__ = [
    "GAMMA_RANGE",
    "BlockDiagonalGap",
    "GapCurve",
    "MatrixGMPLaw",
    "MixtureLaw",
    "block_diagonal_gap",
    "block_diagonal_law",
    "gap_vs_C",
    "layer_law",
    "layer_weight_law",
    "matrix_gmp_density",
    "matrix_gmp_moments",
    "matrix_gmp_stieltjes",
    "matrix_gmp_zero_mass",
    "AsymptoticConstants",
    "FrobeniusLimits",
    "GMPLaw",
    "asymptotic_constants",
    "block_weight_law",
    "frobenius_limits",
    "gmp_density",
    "gmp_moments",
    "gmp_stieltjes",
    "gmp_support",
    "gmp_zero_mass",
    "limiting_density",
    "limiting_law",
    "output_block_limit",
]
