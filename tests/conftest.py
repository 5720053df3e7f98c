"""Shared pytest configuration."""

import os

import matplotlib
from hypothesis import settings

matplotlib.use("Agg")

# numba JIT compilation makes first calls slow: no per-example deadline.
settings.register_profile("ci", deadline=None, max_examples=40, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
