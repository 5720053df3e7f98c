"""``rmthess.sweep``: grids of configurations on serial / process / Dask engines, with a
resumable, checksummed result store.

>>> from rmthess.sweep import run_sweep, load
>>> spec = {"task": "theory", "grid": {"case": ["linear-ce"], "C": [2, 4], "gamma": [0.5]}}
>>> res = run_sweep(spec, "my-store")            # doctest: +SKIP
>>> load("my-store")[["case", "C", "ratio"]]     # doctest: +SKIP

Modules: :mod:`~rmthess.sweep.spec` (TOML/dict grid specs, hashes, seeds),
:mod:`~rmthess.sweep.tasks` (task registry: ``theory``, ``simulate``, ``layer_gap``),
:mod:`~rmthess.sweep.store` (result store, :func:`load`, :func:`status`; one driver per
store: :mod:`~rmthess.sweep.lock`, :class:`StoreBusyError`),
:mod:`~rmthess.sweep.engines` (:func:`run_sweep`), :mod:`~rmthess.sweep.plots`,
:mod:`~rmthess.sweep.cli`. Dask is optional (``rmthess[dask]``) and imported only by the
``dask`` engine.
"""

from __future__ import annotations

from rmthess.sweep.engines import ENGINES, SweepResult, run_sweep
from rmthess.sweep.plots import plot
from rmthess.sweep.spec import Spec, config_hash, config_seed, load_spec
from rmthess.sweep.store import StoreBusyError, StoreStatus, load, status
from rmthess.sweep.tasks import get_task, register_task

__all__ = [
    "ENGINES",
    "Spec",
    "StoreBusyError",
    "StoreStatus",
    "SweepResult",
    "config_hash",
    "config_seed",
    "get_task",
    "load",
    "load_spec",
    "plot",
    "register_task",
    "run_sweep",
    "status",
]
