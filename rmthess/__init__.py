"""rmthess: random-matrix theory of neural-network Hessians.

Layers point one way: ``rmthess.report -> rmthess.simulate -> rmthess.theory``.
``rmthess.theory`` uses numpy/scipy/numba/mpmath only and never imports torch.
"""

__version__ = "0.1.0"

CASES = ("linear-mse", "linear-ce", "hidden-mse", "hidden-ce", "output-mse", "output-ce")
