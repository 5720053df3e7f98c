"""Sweep tasks for the tests only (not part of rmthess): ``_echo`` and ``_fail_if``.

``_echo`` returns ``x``, ``2x`` and a uniform draw from the seed after sleeping ``sleep``
seconds; with ``die_once=PATH`` the process running it kills itself (SIGKILL) the first
time (it creates PATH first), to test worker loss; ``mark=DIR`` writes ``DIR/<pid>`` when
the task starts (to see that a worker is busy); ``torch=true`` imports torch and sums a
small tensor first (such a worker used to outlive the Dask close timeout); ``gate=PATH``
waits (at most 120 s) until PATH exists. ``_fail_if``
raises ``RuntimeError`` when ``fail`` is true and ``ValueError`` (a refusal) when
``refuse`` is true. Both must live in an importable module (this one: ``tests/sweep/`` is on
``sys.path`` under pytest, and spawned workers inherit it) to run on process and Dask
workers.

Register them in a test with :func:`registered` (a context manager), or run the sweep CLI
with them registered: ``python tests/sweep/_sweep_tasks.py run GRID.toml --store DIR``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from rmthess._checks import check_bool, check_float
from rmthess._random import rng
from rmthess.sweep.tasks import TASKS, _check_keys, register_task

NAMES = ("_echo", "_fail_if")
TESTS = os.path.dirname(os.path.abspath(__file__))  # tests/sweep: this module's folder
ROOT = os.path.dirname(os.path.dirname(TESTS))
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
ENV["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS, ENV.get("PYTHONPATH", "")])
CLI = [sys.executable, os.path.join(TESTS, "_sweep_tasks.py")]
"""The sweep CLI with these tasks registered (run with ``env=ENV``)."""


def validate_echo(config, *, from_grid=True):
    cfg = dict(config)
    keys = ("x", "sleep", "die_once", "fail", "refuse", "mark", "torch", "gate", "threads")
    _check_keys(cfg, keys, ("x",))
    check_float("x", cfg["x"])
    check_float("sleep", cfg.get("sleep", 0), 0, 60, closed="left")
    for k in ("fail", "refuse", "torch"):
        if k in cfg:
            check_bool(k, cfg[k])
    return cfg


def echo_task(config: dict, *, seed: int) -> dict:
    if config.get("torch"):
        import torch

        float(torch.ones(10, 10).sum())
    if config.get("mark"):
        with open(os.path.join(config["mark"], str(os.getpid())), "w") as fh:
            fh.write(str(config["x"]))
    t0 = time.monotonic()
    while config.get("gate") and not os.path.exists(config["gate"]):
        if time.monotonic() - t0 > 120:
            raise RuntimeError(f"gate {config['gate']!r} never opened")
        time.sleep(0.05)
    marker = config.get("die_once")
    if marker and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(config.get("sleep", 0)))
    x = config["x"]
    return {"x": x, "double": 2 * x, "draw": float(rng(seed).random())}


def fail_if_task(config: dict, *, seed: int) -> dict:
    if config.get("fail"):
        raise RuntimeError(f"_fail_if: asked to fail for x={config['x']!r}")
    if config.get("refuse"):
        raise ValueError(f"_fail_if: refuses x={config['x']!r}")
    return echo_task({k: v for k, v in config.items() if k not in ("fail", "refuse")}, seed=seed)


def register() -> None:
    register_task("_echo", echo_task, validate=validate_echo)
    register_task("_fail_if", fail_if_task, validate=validate_echo)


@contextlib.contextmanager
def registered():
    """Register the test tasks for the duration of a ``with`` block."""
    before = {k: TASKS.get(k) for k in NAMES}
    register()
    try:
        yield
    finally:
        for k, entry in before.items():
            if entry is None:
                TASKS.pop(k, None)
            else:
                TASKS[k] = entry


if __name__ == "__main__":  # the sweep CLI with the test tasks registered
    import _sweep_tasks  # this file under its module name, so workers can unpickle tasks

    _sweep_tasks.register()
    from rmthess.sweep.cli import main

    sys.exit(main(sys.argv[1:]))
