"""Shared pytest configuration."""

import os

# 2-core CI machines: one BLAS thread per process avoids oversubscription when numpy
# and torch both spin thread pools (measured 20x slowdowns of the Monte-Carlo tests).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402
from hypothesis import settings  # noqa: E402

matplotlib.use("Agg")

# numba JIT compilation makes first calls slow: no per-example deadline.
settings.register_profile("ci", deadline=None, max_examples=40, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
