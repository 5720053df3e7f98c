"""Shared pytest configuration."""

import os
import sys

# The tests mirror the package (tests/theory, tests/simulate, ...); helpers shared across
# those folders (_quadrature.py) live here, so this folder is importable from all of them
# whatever the import mode. Basenames of test files stay unique across folders.
TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# 2-core CI machines: one BLAS thread per process avoids oversubscription when numpy
# and torch both spin thread pools (measured 20x slowdowns of the Monte-Carlo tests).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

matplotlib.use("Agg")

# numba JIT compilation makes first calls slow: no per-example deadline.
settings.register_profile("ci", deadline=None, max_examples=40, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch CPU thread, restoring the count afterwards.

    For modules of tiny timed torch calls: on a loaded 2-core machine two torch threads
    stall at every OpenMP barrier (measured: test_training 0.2 s -> 12-27 s, the quick
    simulate bench 1.5 s -> 7 s); one thread is as fast when unloaded and immune to that.
    torch is imported here, not at module level, so theory-only test runs stay torch-free.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
