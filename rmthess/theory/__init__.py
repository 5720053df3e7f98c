"""Exact limiting theory of the Hessian blocks (numpy/scipy/numba/mpmath; never torch).

- :mod:`rmthess.theory.gmp`: generalized Marchenko-Pastur (GMP) Stieltjes solver.
- :mod:`rmthess.theory.law`: :class:`GMPLaw`, a scipy.stats-like limiting spectral law.
- :mod:`rmthess.theory.block_laws`: the weight law ``nu`` of every Hessian block and its
  limiting eigenvalue density.
- :mod:`rmthess.theory.frobenius`: exact Frobenius limits ``F_diag``, ``F_off`` at fixed C.
- :mod:`rmthess.theory.asymptotics`: large-C constants (``K1..K4``, docs/theory.md section 5).
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

__all__ = [
    "GAMMA_RANGE",
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
