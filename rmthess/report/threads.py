"""Limit the BLAS thread pool of numpy/scipy while the report runs.

On small machines (2 cores) shared with torch's own thread pool and other jobs, numpy's
OpenBLAS threads oversubscribe the CPU: the Monte-Carlo theory integrals
(``rmthess.theory`` hidden-ce/output-ce) were measured 6x slower with 2 OpenBLAS threads
than with 1 under load (18.8 s vs 3.0 s for hidden-ce at C = 256). numpy is already
imported when ``rmthess report`` starts, so ``OPENBLAS_NUM_THREADS`` can no longer act;
this module calls the loaded library's ``*_set_num_threads`` instead (the mechanism of
threadpoolctl, kept dependency-free). Only the OpenBLAS builds bundled with numpy/scipy
(``scipy_openblas``) are touched, never torch's. Linux only; a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads")


def _numpy_openblas_libs() -> list:
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "scipy_openblas" in line}
    except OSError:
        return []
    libs = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            libs.append((setter, getter))
    return libs


@contextmanager
def blas_threads(n: int = 1):
    """Within the block, numpy/scipy OpenBLAS uses at most ``n`` threads (then restored)."""
    libs = _numpy_openblas_libs()
    old = []
    for setter, getter in libs:
        old.append(int(getter()))
        setter(int(n))
    try:
        yield len(libs)
    finally:
        for (setter, _), k in zip(libs, old, strict=True):
            setter(k)
