"""Engines and the sweep driver :func:`run_sweep`.

Engines: ``serial`` (in this process), ``processes`` (``concurrent.futures``
``ProcessPoolExecutor``, spawn context) and ``dask`` (``dask.distributed``; a
``LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)`` unless
``scheduler=ADDRESS`` names a running one; the dashboard address is printed on stderr).
On Dask, a task whose configuration says ``device = "cuda"`` asks for the worker resource
``GPU = 1`` (start GPU workers with ``--resources GPU=1``; a LocalCluster made here gives
each worker ``GPU = 1`` when the grid has such a configuration).

Every engine runs *chunks* of ``chunk`` configurations (one engine task each, so that
scheduler overhead stays below the task cost for tiny configurations) and hands results
back as they complete; the DRIVER writes each one to the store at once. A configuration
that raises, or whose worker dies, is retried up to ``retries`` more times (alone, in a
chunk of one) and then recorded in ``failures/``; it never stops the others. A dead
process-pool worker breaks the whole pool: every chunk then in flight is charged one
attempt and the pool is restarted. Dask reschedules the tasks of a lost worker itself
(up to ``distributed.scheduler.allowed-failures`` times) before the driver sees an error.
A configuration that its task refuses (``ValueError``/``TypeError``: deterministic given
the configuration and its seed) is recorded in ``failures/`` at once, never retried.

Process-pool workers die with their driver: on Linux the kernel kills them when the
driver dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), elsewhere (and as a fallback) a
watchdog thread in each worker exits when its parent process is gone; a SIGKILL-ed driver
leaves no worker (nor multiprocessing's resource tracker, which exits with the last of
them) behind. Ctrl-C stops a run promptly on every engine: the workers are stopped, the
configurations in flight are dropped (rerun to compute them) and one line on stderr says
what the store holds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported by to_frame
    import pandas as pd

    from rmthess.sweep.spec import Spec

__all__ = ["run_sweep", "SweepResult", "ENGINES"]

ENGINES = ("serial", "processes", "dask")


@dataclass(frozen=True)
class SweepResult:
    """Outcome of :func:`run_sweep`: ``total`` configurations in the spec, ``skipped``
    (valid results already in the store), ``done`` (computed now), ``failed`` (every
    attempt failed), ``corrupt`` (invalid result files moved aside and recomputed),
    ``seconds`` (wall time) and the ``store`` path."""

    store: str
    task: str
    engine: str
    total: int
    skipped: int
    done: int
    failed: int
    corrupt: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """:func:`rmthess.sweep.load` of the store (one row per finished configuration)."""
        from rmthess.sweep.store import load

        return load(self.store)


# ---------------------------------------------------------------------------- engines
def _serial(fn, batches, handle, **_):
    from rmthess.sweep.tasks import run_chunk

    queue = deque(batches)
    while queue:
        batch = queue.popleft()
        queue.extend(handle(batch, run_chunk(fn, batch), None))


def _die_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """Make this process exit when process ``parent_pid`` (its parent) dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (the kernel kills it with its parent);
    everywhere: a daemon thread that exits the process once ``os.getppid()`` changes
    (the orphan was reparented), within ``poll_s`` seconds.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no libc symbol: the watchdog below remains
            pass
    if os.getppid() != parent_pid:  # died before prctl took effect
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="rmthess-parent-watchdog", daemon=True).start()


def _worker_init(parent_pid: int) -> None:
    """Process-pool worker initializer: die with the driver; leave Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the workers itself
    _die_with_parent(parent_pid)


def _stop_pool(ex) -> None:
    """Stop a ProcessPoolExecutor now: cancel what has not started, kill the workers."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.kill()
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(timeout=5)


@contextlib.contextmanager
def sigint_blocked():
    """Block SIGINT in this thread for the ``with`` block (POSIX main thread; else a no-op).

    Processes started inside inherit the blocked mask, so a terminal's Ctrl-C (sent to the
    whole process group) reaches the driver only; a SIGINT that arrives meanwhile is
    delivered when the block ends.
    """
    usable = (
        hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _processes(fn, batches, handle, *, workers, **_):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from rmthess.sweep.tasks import run_chunk

    todo = list(batches)
    ctx = multiprocessing.get_context("spawn")
    while todo:
        ex = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
        )
        broken = False
        try:
            with sigint_blocked():  # workers start with SIGINT blocked (sigint_blocked)
                pending = {ex.submit(run_chunk, fn, b): b for b in todo}
            todo = []
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    batch = pending.pop(f)
                    try:
                        outs, err = f.result(), None
                    except BrokenProcessPool as exc:
                        broken = True
                        outs, err = None, f"worker process died ({exc})"
                    except Exception as exc:  # e.g. a result that cannot be pickled
                        outs, err = None, f"{type(exc).__name__}: {exc}"
                    for nb in handle(batch, outs, err):
                        if broken:
                            todo.append(nb)
                        else:
                            with sigint_blocked():
                                pending[ex.submit(run_chunk, fn, nb)] = nb
        except BaseException:  # Ctrl-C, or an error writing the store: stop at once
            _stop_pool(ex)
            raise
        ex.shutdown(wait=not broken, cancel_futures=True)


def _dask(fn, batches, handle, **kw):
    from rmthess.sweep._dask import run_dask

    run_dask(fn, batches, handle, **kw)


_RUNNERS = {"serial": _serial, "processes": _processes, "dask": _dask}


# ---------------------------------------------------------------------------- driver
def run_sweep(
    spec: Spec | dict[str, Any] | str | os.PathLike[str],
    store: str | os.PathLike[str],
    *,
    engine: str = "serial",
    workers: int = 2,
    scheduler: str | None = None,
    retries: int = 2,
    chunk: int = 1,
    progress: bool | None = None,
    force: bool = False,
    extend: bool = False,
    wait: bool | float = False,
) -> SweepResult:
    """Run every configuration of ``spec`` not already in ``store``; resumable.

    Parameters
    ----------
    spec : dict, TOML path or :class:`rmthess.sweep.spec.Spec` (:func:`load_spec`); the
        whole grid is validated before anything runs.
    store : directory (created if missing); see :mod:`rmthess.sweep.store`. A store made
        for another grid is refused unless ``extend`` (add the grid) or ``force``.
    engine : ``"serial" | "processes" | "dask"``. workers : processes / Dask workers (>= 1).
    scheduler : address of a running Dask scheduler (``engine="dask"`` only).
    retries : extra attempts for a failing configuration (>= 0); a configuration refused
        by its task (``ValueError``/``TypeError``) is not retried. chunk : configurations
        per engine task (>= 1). progress : tqdm bar on stderr (default: when stderr is a
        TTY).
    wait : one driver per store (:mod:`rmthess.sweep.store`): if another live driver holds
        the store, False (default) raises :class:`rmthess.sweep.store.StoreBusyError` at
        once, True waits for it, a number of seconds waits at most that long.

    Valid results already in the store are skipped; invalid ones are moved to ``corrupt/``
    and recomputed. Returns a :class:`SweepResult`. On Ctrl-C the workers are stopped, one
    line on stderr says how many results the store holds, and ``KeyboardInterrupt`` is
    raised again.
    """
    from rmthess._checks import check_bool, check_choice, check_float, check_int, check_progress
    from rmthess.sweep.spec import load_spec
    from rmthess.sweep.store import ResultStore

    check_choice("engine", engine, ENGINES)
    workers = check_int("workers", workers, 1)
    retries = check_int("retries", retries, 0)
    chunk = check_int("chunk", chunk, 1)
    check_progress(progress)
    force, extend = check_bool("force", force), check_bool("extend", extend)
    if not isinstance(wait, bool):
        wait = check_float("wait", wait, 0, None)
    if scheduler is not None:
        if engine != "dask":
            raise ValueError(f"scheduler applies to engine='dask' only, got engine={engine!r}")
        if not isinstance(scheduler, str) or not scheduler:
            raise TypeError(f"scheduler must be an address string, got {scheduler!r}")
    if engine == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ImportError(
                "engine='dask' needs dask.distributed: pip install 'rmthess[dask]'"
            ) from None
    spec = load_spec(spec)
    from rmthess.sweep.tasks import get_task

    fn = get_task(spec.task).fn
    cuda = [c.config for c in spec.configs if c.config.get("device") == "cuda"]
    if cuda and not (engine == "dask" and scheduler is not None):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                f"device 'cuda' was requested (configuration {cuda[0]}) but CUDA is not "
                "available on this machine; use device='cpu', or engine='dask' with the "
                "address of a scheduler whose workers have GPUs (scheduler=)"
            )
    st = ResultStore(store)
    with st.lock(wait=wait):
        return _drive(spec, st, fn, engine, workers, scheduler, retries, chunk, progress,
                      force, extend)  # fmt: skip


def _drive(spec, st, fn, engine, workers, scheduler, retries, chunk, progress, force, extend):
    """:func:`run_sweep` once the store is locked."""
    st.open_for(spec, force=force, extend=extend)
    t0 = time.perf_counter()
    valid, corrupt = st.scan(move_corrupt=True)
    todo = [c for c in spec.configs if c.hash not in valid]
    by_hash = {c.hash: c for c in todo}
    items = [(c.hash, c.config, c.seed) for c in todo]
    batches = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    attempts = dict.fromkeys(by_hash, 0)
    counts = {"done": 0, "failed": 0}
    bar = _progress(len(todo), progress)

    def handle(batch, outs, err):
        retry = []
        if outs is None:
            outs = [{"ok": False, "message": err, "traceback": ""} for _ in batch]
        for item, out in zip(batch, outs, strict=True):
            cfg = by_hash[item[0]]
            attempts[cfg.hash] += 1
            if out.get("ok"):
                try:
                    st.write_result(spec.task, cfg, out, attempts[cfg.hash])
                    counts["done"] += 1
                    bar.update(1)
                    continue
                except (ValueError, TypeError) as exc:  # a record that is not JSON-safe
                    out = {"ok": False, "message": f"record not JSON-safe: {exc}"}
                    out.update(traceback="", retry=False)
            if attempts[cfg.hash] <= retries and out.get("retry", True):
                retry.append([item])
            else:
                st.write_failure(spec.task, cfg, out, attempts[cfg.hash])
                counts["failed"] += 1
                bar.update(1)
        bar.set_postfix(done=counts["done"], failed=counts["failed"], refresh=False)
        return retry

    try:
        if batches:
            gpu = any(c.config.get("device") == "cuda" for c in todo)
            _RUNNERS[engine](fn, batches, handle, workers=workers, scheduler=scheduler, gpu=gpu)
    except KeyboardInterrupt:
        bar.close()
        held = len(spec.configs) - len(todo) + counts["done"]
        print(
            f"rmthess sweep: interrupted; {st.path} holds {held} of {len(spec.configs)} "
            f"results ({counts['done']} computed in this run, {counts['failed']} failed); "
            "rerun the same command to finish",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
        st.open_for(spec, force=False, extend=True)  # refresh the manifest's 'updated'
    return SweepResult(
        store=st.path, task=spec.task, engine=engine, total=len(spec.configs),
        skipped=len(spec.configs) - len(todo), done=counts["done"], failed=counts["failed"],
        corrupt=len(corrupt), seconds=time.perf_counter() - t0,
    )  # fmt: skip


def _progress(total: int, progress: bool | None):
    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    return tqdm(total=total, disable=not progress, desc="sweep", unit="cfg", file=sys.stderr)
