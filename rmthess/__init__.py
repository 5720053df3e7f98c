"""rmthess: random-matrix theory of neural-network Hessians.

Layers point one way::

    {rmthess.report, rmthess.bench} -> rmthess.sweep -> rmthess.landscape
        -> {rmthess.simulate, rmthess.curvature} -> {rmthess.theory, rmthess.data, rmthess._device}
        -> ground floor (rmthess.cases, rmthess._checks, rmthess._stats)

``rmthess.theory`` uses numpy/scipy/numba/mpmath only and never imports torch;
``rmthess.data`` imports torch and scikit-learn only inside the functions that need them;
the ground floor imports nothing heavier than the standard library (numpy at most).
``tests/test_layers.py`` enforces these rules.
"""

from rmthess.cases import CASES

__version__ = "0.2.0.dev0"
"""The one place the version is written (pyproject.toml reads it)."""

__all__ = ["CASES", "__version__"]
