"""One thread policy for numpy's BLAS and torch's intra-op pool (ground floor).

On small shared machines both pools oversubscribe the cores: the Monte-Carlo theory
integrals ran 6x slower with 2 OpenBLAS threads than with 1 on 2 loaded cores, and 100
torch training steps took 17.3 s of CPU with 2 intra-op threads against 6.5 s with 1.
:func:`limit_threads` caps both for the duration of a ``with`` block and restores them.
torch is imported only if it is already loaded or needed (never for a theory-only run).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["limit_threads"]


@contextmanager
def limit_threads(n: int = 1, *, torch: bool = True) -> Iterator[None]:
    """Cap the BLAS pools (threadpoolctl) and, if ``torch``, torch's intra-op threads at
    ``n`` inside the block; both are restored on exit.

    With ``torch=True`` torch is imported here (lazily, only when this is entered); pass
    ``torch=False`` to cap only a torch that is already loaded.
    """
    from threadpoolctl import threadpool_limits

    from rmthess._checks import check_int

    n = check_int("n", n, 1)
    mod: Any = None
    if torch or "torch" in sys.modules:
        import torch as torch_module

        mod = torch_module
    old = None if mod is None else mod.get_num_threads()
    with threadpool_limits(limits=n, user_api="blas"):
        if mod is not None:
            mod.set_num_threads(n)
        try:
            yield
        finally:
            if mod is not None:
                mod.set_num_threads(old)
