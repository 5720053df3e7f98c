"""The resumable result store: one directory, one JSON file per finished configuration.

Layout::

    STORE/manifest.json          rmthess version, task, specs (grids), hashes, created,
                                 updated, machine
    STORE/results/<hash>.json    one per finished configuration
    STORE/failures/<hash>.json   last error of a configuration that failed every attempt
    STORE/corrupt/               result files found invalid, moved aside (never loaded)
    STORE/lock                   held by the running driver: its pid, host and start time

A result file holds ``hash, task, config, seed, record, record_sha256, seconds, started,
finished, host, rmthess_version, attempt``. It is *valid* when it parses as JSON, its
``hash`` equals its file name, :func:`rmthess.sweep.spec.config_hash` of its task and
config equals that hash, and ``record_sha256`` is the sha256 of the canonical JSON of its
record. Anything else (a half-written file, bad JSON, a checksum or hash mismatch) is never
loaded: readers (:func:`load`, :func:`status`, ``sweep plot``, ``report --store``) skip it
and say how many they skipped (they never write, so a read-only store loads); the driver
moves it to ``corrupt/`` and recomputes its configuration.

Only the driver writes, and one driver at a time: :meth:`ResultStore.lock` takes an
exclusive ``flock`` on ``STORE/lock`` (which records the owner's pid, host and start time)
for the whole run, so a second driver on the same store gets one clear
:class:`StoreBusyError` naming the owner (or waits, ``wait=``). A lock left by a killed
driver is stale and taken over at once: the kernel drops the flock of a dead process
(where ``flock`` is not supported, the file is created exclusively and taken over when
its pid is dead on this host). Each file is written to a temporary
``.NAME.tmp-PID-HOST-XXXX.tmp`` in the same directory, flushed, fsync-ed and renamed over
the target (``os.replace``), so a killed driver leaves either the old state or the
complete new file; a starting driver removes the stray temporaries of dead processes of
this host (and its own), never those of a live process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import TYPE_CHECKING

from rmthess.sweep.lock import StoreBusyError, StoreLock, remove_stale_temporaries, temp_prefix

if TYPE_CHECKING:  # pandas is imported by load
    import pandas as pd

__all__ = ["ResultStore", "StoreBusyError", "load", "status", "StoreStatus", "TIMING_COLUMNS"]

_NAME = re.compile(r"^[0-9a-f]{16}\.json$")
TIMING_COLUMNS = ("seconds", "started", "finished", "host", "attempt")
"""Columns of :func:`load` that depend on when and where a configuration ran."""


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="microseconds")


def record_sha256(record: dict) -> str:
    from rmthess.sweep.spec import canonical_json

    return hashlib.sha256(canonical_json(record).encode("ascii")).hexdigest()


def write_json_atomic(path: str, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temp file + fsync + os.replace)."""
    parent = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_valid(path: str) -> dict | None:
    """The parsed result file if valid (module docstring), else None."""
    from rmthess.sweep.spec import config_hash

    stem = os.path.basename(path)[:-5]
    try:
        with open(path) as fh:
            data = json.load(fh)
        ok = (
            isinstance(data, dict)
            and data.get("hash") == stem
            and isinstance(data.get("config"), dict)
            and isinstance(data.get("record"), dict)
            and config_hash(data["task"], data["config"]) == stem
            and record_sha256(data["record"]) == data.get("record_sha256")
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return data if ok else None


class ResultStore:
    """A store directory (created if missing). The writing methods are for the driver
    only, under :meth:`lock`."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError(f"store {self.path!r} exists and is not a directory")
        self.results = os.path.join(self.path, "results")
        self.failures = os.path.join(self.path, "failures")
        self.corrupt = os.path.join(self.path, "corrupt")
        self.manifest_path = os.path.join(self.path, "manifest.json")

    def lock(self, *, wait: bool | float = False) -> StoreLock:
        """The store's exclusive lock (a context manager; creates the directory).

        ``wait``: False raises :class:`StoreBusyError` at once if a live driver holds it,
        True waits, a number waits at most that many seconds.
        """
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot create store {self.path!r}: {exc.strerror}") from None
        return StoreLock(self.path, wait=wait)

    def ensure(self) -> None:
        """Create the subdirectories and remove stale temporaries (module docstring)."""
        for d in (self.results, self.failures, self.corrupt):
            os.makedirs(d, exist_ok=True)
        for d in (self.results, self.failures, self.path):
            remove_stale_temporaries(d)

    # ------------------------------------------------------------------ manifest
    def read_manifest(self) -> dict | None:
        if not os.path.exists(self.manifest_path):
            return None
        try:
            with open(self.manifest_path) as fh:
                manifest = json.load(fh)
        except ValueError as exc:
            msg = f"store manifest {self.manifest_path!r} is not valid JSON: {exc}"
            raise ValueError(msg) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("hashes", []), list):
            raise ValueError(
                f"store manifest {self.manifest_path!r} is not an rmthess sweep manifest "
                f"(a JSON object with a 'hashes' list), got {type(manifest).__name__}"
            )
        return manifest

    def open_for(self, spec, *, force: bool = False, extend: bool = False) -> None:
        """Check the manifest against ``spec`` and write it (created/updated).

        Refuses (``ValueError``) a store made for another task (unless ``force``) or another
        grid of the same task (unless ``extend``, which adds the grid, or ``force``, which
        replaces the manifest's grids; results already stored stay and are reused where a
        configuration hash matches).
        """
        from rmthess import __version__
        from rmthess.sweep.spec import canonical_json

        self.ensure()
        old = self.read_manifest()
        new_spec = spec.to_dict()
        now = _now()
        if old is None:
            specs, hashes, created = [new_spec], list(spec.hashes), now
        else:
            specs, created = list(old.get("specs", [])), old.get("created", now)
            hashes = list(old.get("hashes", []))
            same = any(canonical_json(s) == canonical_json(new_spec) for s in specs)
            if not same:
                if force:
                    specs, hashes = [new_spec], []
                elif old.get("task") != spec.task:
                    raise ValueError(
                        f"store {self.path!r} holds task {old.get('task')!r}, not "
                        f"{spec.task!r}; use another store or force=True (--force)"
                    )
                elif extend:
                    specs.append(new_spec)
                else:
                    raise ValueError(
                        f"store {self.path!r} was made for another grid of task "
                        f"{spec.task!r}; pass extend=True (--extend) to add this grid, "
                        "force=True (--force) to replace the manifest, or use another store"
                    )
            seen = set(hashes)
            hashes += [h for h in spec.hashes if h not in seen]
        manifest = {
            "rmthess_version": __version__,
            "task": spec.task,
            "specs": specs,
            "hashes": hashes,
            "created": created,
            "updated": now,
            "machine": {
                "host": platform.node(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
        }
        write_json_atomic(self.manifest_path, manifest)

    # ------------------------------------------------------------------ results
    def result_path(self, h: str) -> str:
        return os.path.join(self.results, f"{h}.json")

    def scan(self, *, move_corrupt: bool = False) -> tuple[dict[str, dict], list[str]]:
        """Valid results by hash, and the names of the invalid result files.

        Readers leave invalid files where they are; the driver (holding :meth:`lock`)
        passes ``move_corrupt=True`` to move them to ``corrupt/``.
        """
        valid, bad = {}, []
        if not os.path.isdir(self.results):
            return valid, bad
        for name in sorted(os.listdir(self.results)):
            if not _NAME.match(name):
                continue
            path = os.path.join(self.results, name)
            data = _read_valid(path)
            if data is None:
                bad.append(name)
                if move_corrupt:
                    self.move_aside(path)
            else:
                valid[data["hash"]] = data
        return valid, bad

    def quarantined(self) -> int:
        """How many invalid files earlier runs moved to ``corrupt/``."""
        if not os.path.isdir(self.corrupt):
            return 0
        return sum(1 for n in os.listdir(self.corrupt) if not n.startswith("."))

    def move_aside(self, path: str) -> None:
        os.makedirs(self.corrupt, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        dest = os.path.join(self.corrupt, f"{os.path.basename(path)}.{stamp}.{os.getpid()}")
        os.replace(path, dest)

    def write_result(self, task, cfg, outcome: dict, attempt: int) -> None:
        from rmthess import __version__

        record = outcome["record"]
        entry = {
            "hash": cfg.hash,
            "task": task,
            "config": cfg.config,
            "seed": cfg.seed,
            "record": record,
            "record_sha256": record_sha256(record),
            "seconds": outcome["seconds"],
            "started": outcome["started"],
            "finished": outcome["finished"],
            "host": outcome["host"],
            "rmthess_version": __version__,
            "attempt": attempt,
        }
        write_json_atomic(self.result_path(cfg.hash), entry)
        fail = os.path.join(self.failures, f"{cfg.hash}.json")
        if os.path.exists(fail):
            os.unlink(fail)

    def write_failure(self, task, cfg, outcome: dict, attempts: int) -> None:
        entry = {
            "hash": cfg.hash,
            "task": task,
            "config": cfg.config,
            "message": outcome.get("message", ""),
            "traceback": outcome.get("traceback", ""),
            "attempts": attempts,
            "time": _now(),
        }
        write_json_atomic(os.path.join(self.failures, f"{cfg.hash}.json"), entry)


@dataclass(frozen=True)
class StoreStatus:
    """Counts of a store: ``total`` configurations in its manifest, ``done`` (valid
    results), ``failed`` (failure files without a result), ``pending`` (the rest, invalid
    files included), ``corrupt`` (invalid files in ``results/``, to be recomputed by the
    next run) and ``quarantined`` (invalid files earlier runs moved to ``corrupt/``: kept
    for inspection, their configurations already recomputed or pending)."""

    store: str
    task: str | None
    total: int
    done: int
    failed: int
    pending: int
    corrupt: int
    quarantined: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def status(store: str | os.PathLike[str]) -> StoreStatus:
    """Counts done / failed / pending / corrupt of a store (read-only: moves nothing)."""
    st = ResultStore(store)
    if not os.path.isdir(st.path):
        raise ValueError(f"store {st.path!r} does not exist")
    manifest = st.read_manifest() or {}
    hashes = set(manifest.get("hashes", []))
    valid, bad = st.scan(move_corrupt=False)
    done = len(hashes & set(valid)) if hashes else len(valid)
    failed_files = set()
    if os.path.isdir(st.failures):
        failed_files = {n[:-5] for n in os.listdir(st.failures) if _NAME.match(n)}
    failed = len((failed_files - set(valid)) & hashes) if hashes else len(failed_files)
    total = len(hashes) if hashes else done + failed
    return StoreStatus(
        store=st.path, task=manifest.get("task"), total=total, done=done, failed=failed,
        pending=total - done - failed, corrupt=len(bad), quarantined=st.quarantined(),
    )  # fmt: skip


def load(store: str | os.PathLike[str]) -> pd.DataFrame:
    """Tidy ``pandas.DataFrame`` of a store: one row per valid result.

    Columns: the configuration parameters, then the record fields not already among them,
    then ``seed``, ``hash`` and the timing columns :data:`TIMING_COLUMNS`. Rows are sorted
    stably by the configuration columns (then hash). Invalid result files are skipped,
    never loaded: a ``RuntimeWarning`` says how many, and ``df.attrs["corrupt"]`` lists
    their names. Reading writes nothing (a read-only store loads); the next
    ``rmthess sweep run`` moves them to ``corrupt/`` and recomputes them.
    """
    import warnings

    import pandas as pd

    st = ResultStore(store)
    if not os.path.isdir(st.path):
        raise ValueError(f"store {st.path!r} does not exist")
    valid, bad = st.scan(move_corrupt=False)
    if bad:
        warnings.warn(
            f"store {st.path!r}: {len(bad)} invalid result file(s) skipped (not loaded); "
            "rerun the sweep to recompute them",
            RuntimeWarning,
            stacklevel=2,
        )
    rows, config_cols = [], []
    for h in sorted(valid):
        data = valid[h]
        row = dict(data["config"])
        for k in row:
            if k not in config_cols:
                config_cols.append(k)
        for k, v in data["record"].items():
            row.setdefault(k, v)
        if "seed" not in row:  # the task's own seed field wins (theory: None if unused)
            row["seed"] = data.get("seed")
        row["hash"] = h
        for k in TIMING_COLUMNS:
            row[k] = data.get(k)
        rows.append(row)
    df = pd.DataFrame.from_records(rows)
    df.attrs["corrupt"] = list(bad)
    if df.empty:
        return df
    try:
        df = df.sort_values(config_cols + ["hash"], kind="mergesort", na_position="first")
    except TypeError:  # mixed types in a column: hash order (already sorted)
        pass
    df = df.reset_index(drop=True)
    df.attrs["corrupt"] = list(bad)
    return df
