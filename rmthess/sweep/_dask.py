"""The ``dask`` engine of :func:`rmthess.sweep.run_sweep` (imported only when used).

A ``LocalCluster`` made here is started with SIGINT blocked, so its worker processes
(which inherit the signal mask) leave Ctrl-C to the driver instead of printing their
tracebacks, and its workers exit at once when the cluster closes (:class:`ExitOnClose`):
a worker that imported torch otherwise lingers past the nanny's 4 s close timeout and is
killed with a warning. Everything is saved before the close, so nothing is lost. A
running scheduler given by address (``scheduler=``) is left as it is.
"""

from __future__ import annotations

import logging
import os
import sys

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from rmthess.sweep.engines import sigint_blocked
from rmthess.sweep.tasks import run_chunk

__all__ = ["run_dask", "ExitOnClose"]


class ExitOnClose(WorkerPlugin):
    """Worker plugin: exit the worker process as soon as the worker closes, without the
    warning of each task the close cuts short (the driver recomputes those next run)."""

    name = "rmthess-sweep-exit-on-close"

    def setup(self, worker):
        logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
        quiet_close_noise()

    def teardown(self, worker):
        os._exit(0)


_NOISE = ("Batched Comm Closed", "Scheduler was unaware of this worker")
_CLOSED = ("CommClosedError", "StreamClosedError", "ConnectionResetError", "BrokenPipeError")


def _not_close_noise(record: logging.LogRecord) -> bool:
    """Logging filter: drop what a local cluster says while its connections close in the
    usual order (scheduler first): "Batched Comm Closed", "Scheduler was unaware of this
    worker", and records whose exception is, or was caused by, a closed connection. Keep
    everything else (a worker lost mid-run is still seen by the driver, as a failed task)."""
    if any(s in record.getMessage() for s in _NOISE):
        return False
    exc = record.exc_info[1] if record.exc_info else None
    seen = 0
    while exc is not None and seen < 20:  # the exception and its causes / contexts
        if type(exc).__name__ in _CLOSED:
            return False
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return True


def quiet_close_noise() -> None:
    """Install :func:`_not_close_noise` on the handlers of the ``distributed`` logger (and
    the root logger's), in this process: the driver's (its scheduler and nanny log there)
    or a worker's (:class:`ExitOnClose`). Idempotent."""
    for lg in (logging.getLogger("distributed"), logging.getLogger()):
        for h in lg.handlers:
            if _not_close_noise not in h.filters:
                h.addFilter(_not_close_noise)


def run_dask(fn, batches, handle, *, workers, scheduler, gpu, **_):
    cluster = None
    quiet_close_noise()
    if scheduler is None:
        extra = {"resources": {"GPU": 1}} if gpu else {}
        with sigint_blocked():
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", **extra,
            )  # fmt: skip
            client = Client(cluster)
            client.register_plugin(ExitOnClose())
    else:
        client = Client(scheduler)
    print(f"rmthess sweep: dask dashboard {client.dashboard_link}", file=sys.stderr)
    counter = iter(range(10**12))
    futures = {}
    try:

        def submit(batch):
            res = {"GPU": 1} if any(c.get("device") == "cuda" for _, c, _ in batch) else None
            key = f"rmthess-sweep-{batch[0][0]}-{next(counter)}"
            f = client.submit(run_chunk, fn, batch, key=key, pure=False, resources=res)
            futures[f.key] = (f, batch)
            return f

        ac = as_completed([submit(b) for b in batches])
        for f in ac:
            _, batch = futures.pop(f.key)
            try:
                outs, err = f.result(), None
            except Exception as exc:  # KilledWorker, a lost connection, ...
                outs, err = None, f"{type(exc).__name__}: {exc}"
            f.release()
            for nb in handle(batch, outs, err):
                ac.add(submit(nb))
    finally:
        _close_quietly(client, cluster, [f for f, _ in futures.values()])


def _close_quietly(client, cluster, pending) -> None:
    """Cancel ``pending`` futures and close the client (and our cluster) without the
    warnings and tracebacks of tasks cut short (they are recomputed by the next run)."""
    names = ("distributed", "distributed.nanny", "distributed.client", "distributed.worker")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with sigint_blocked():  # a second Ctrl-C does not cut the close short
            if cluster is not None:  # our workers exit at once (ExitOnClose): no cancel
                cluster.close()
            elif pending:
                client.cancel(pending, force=True)
            client.close()
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)
