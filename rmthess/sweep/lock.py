"""One writer per store: the store lock and pid-named temporary files.

:class:`StoreLock` is an exclusive ``flock`` on ``STORE/lock`` held for a whole run; the
file records the owner (pid, host, start time) so that a second driver can say who holds
the store. The kernel releases the flock when its process dies, so a lock left by a
killed driver is stale and taken over at once, whatever its file says (no pid-reuse
problem). Where ``flock`` is not supported by the file system, the lock file is created
exclusively (``O_EXCL``) instead and taken over when it names a dead pid of this host.

Temporary files are named ``.NAME.tmp-PID-HOST-XXXX.tmp`` (:func:`temp_prefix`): the
cleanup at start-up (:func:`remove_stale_temporaries`) removes only those of this process
and of dead processes of this host, never a live writer's.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
import zlib

__all__ = ["StoreBusyError", "StoreLock", "pid_alive", "remove_stale_temporaries", "temp_prefix"]

LOCK_NAME = "lock"
_TMP = re.compile(r"\.tmp-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[^/]*\.tmp$")
_OLD_TMP_AGE_S = 3600.0  # temporaries of rmthess versions that did not name the pid


class StoreBusyError(RuntimeError):
    """Another live driver holds the store's lock."""


def host_tag(host: str | None = None) -> str:
    """8 hex digits naming a host (CRC-32 of its name) in temporary file names."""
    return f"{zlib.crc32((host or socket.gethostname()).encode()):08x}"


def temp_prefix(path: str) -> str:
    """``mkstemp`` prefix of a temporary for ``path``: ``.NAME.tmp-PID-HOST-``."""
    return f".{os.path.basename(path)}.tmp-{os.getpid()}-{host_tag()}-"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove the ``.*.tmp`` files of ``directory`` left by this process or by dead
    processes of this host (and unnamed ones older than an hour); return their names."""
    removed: list[str] = []
    me, here = os.getpid(), host_tag()
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        path = os.path.join(directory, name)
        m = _TMP.search(name)
        if m is not None:
            pid = int(m["pid"])
            stale = m["host"] == here and (pid == me or not pid_alive(pid))
        else:
            try:
                stale = time.time() - os.stat(path).st_mtime > _OLD_TMP_AGE_S
            except FileNotFoundError:
                continue
        if stale:
            try:
                os.unlink(path)
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed


def _owner() -> dict:
    from datetime import UTC, datetime

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process (its lock file is being written)"
    return f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('started')})"


class StoreLock:
    """Exclusive lock of a store directory; a context manager (``with StoreLock(...)``).

    ``wait``: False (default) raises :class:`StoreBusyError` at once when a live process
    holds the lock; True waits for it; a number waits at most that many seconds.
    ``stale``: the owner record of a dead driver's lock that was taken over, else None.
    """

    def __init__(self, store_path: str, *, wait: bool | float = False, poll_s: float = 0.2):
        self.path = os.path.join(store_path, LOCK_NAME)
        self.wait = wait
        self.poll_s = poll_s
        self._fd: int | None = None
        self._flock = True
        self.stale: dict | None = None

    # ------------------------------------------------------------------ acquire
    def acquire(self) -> StoreLock:
        if self.wait is True:
            deadline = float("inf")
        else:
            deadline = time.monotonic() + (0.0 if self.wait is False else float(self.wait))
        while True:
            try:
                holder = self._try()
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
                raise ValueError(
                    f"store {os.path.dirname(self.path)!r} is not writable ({exc.strerror}): "
                    "a sweep run writes its results there (load, status and plot only read)"
                ) from None
            if holder is None:
                return self
            if time.monotonic() >= deadline:
                waited = "" if self.wait is False else f" after waiting {float(self.wait):g} s"
                raise StoreBusyError(
                    f"store {os.path.dirname(self.path)!r} is in use by {_describe(holder)}"
                    f"{waited}: one driver per store; wait for it (--wait), stop it, or use "
                    "another store"
                )
            time.sleep(self.poll_s)

    def _try(self) -> dict | None:
        """None when acquired, else the holder's record (``{}`` if unreadable)."""
        if self._flock:
            try:
                import fcntl
            except ImportError:
                self._flock = False
        if not self._flock:
            return self._try_exclusive()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return holder
            self._flock = False  # ENOLCK, EINVAL, ...: no flock on this file system
            return self._try_exclusive()
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous owner removed the file after we opened it: retry
            os.close(fd)
            return self._try()
        old = _read(fd)
        self.stale = old or None  # a record left there belongs to a dead driver
        _write(fd, _owner())
        self._fd = fd
        return None

    def _try_exclusive(self) -> dict | None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(self.path) as fh:
                    holder = json.load(fh)
            except (OSError, ValueError):
                return {}
            same_host = holder.get("host") == socket.gethostname()
            if same_host and not pid_alive(int(holder.get("pid", 0))):
                # stale: move it aside under a unique name, so that two drivers taking
                # over the same stale lock cannot remove each other's new one
                aside = f"{self.path}.stale-{os.getpid()}"
                try:
                    os.rename(self.path, aside)
                except FileNotFoundError:
                    return self._try_exclusive()
                try:
                    with open(aside) as fh:
                        moved = json.load(fh)
                except (OSError, ValueError):
                    moved = {}
                if moved != holder:  # another driver's fresh lock: put it back
                    try:
                        os.link(aside, self.path)
                    except FileExistsError:
                        pass
                os.unlink(aside)
                if moved != holder:
                    return self._try_exclusive()
                self.stale = holder
                return self._try_exclusive()
            return holder
        _write(fd, _owner())
        self._fd = fd
        return None

    # ------------------------------------------------------------------ release
    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it (see _try's inode check)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # drops the flock
        self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)
        out = json.loads(data.decode()) if data else {}
        return out if isinstance(out, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(fd: int, obj: dict) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(obj).encode())
    os.fsync(fd)
