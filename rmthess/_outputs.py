"""One atomic writer for every output of the command line (ground floor, standard library only).

Output directories (``rmthess report --out``, ``curvature --out``, ``landscape --out``)
-------------------------------------------------------------------------------------
1. :func:`prepare_out_dir` checks ``--out`` *before* any work and touches nothing: it must
   be a directory or creatable (its nearest existing parent a writable directory), writable
   (a probe file is created and removed), and either empty, or rmthess's own output of the
   same command (it holds the marker file :data:`MARKER` naming the command), or ``force``.
   A non-empty directory that is not an rmthess output is refused unless ``force``.
2. :class:`Staging` writes everything into ``OUT/.rmthess-partial-<pid>-XXXX`` (``OUT`` is
   created then). A staging directory whose writer ``<pid>`` is dead (SIGKILL, power loss)
   is removed by the next writer; one whose writer is alive makes the next writer refuse
   (two runs into one directory).
3. :meth:`Staging.commit` moves the staged entries into ``OUT`` with ``os.replace`` (atomic
   per entry on one file system; ``index.html`` last), removes the entries the previous
   rmthess run listed in its marker that this run did not write (no stale figure of an
   earlier model stays), and writes the marker listing this run's entries. Files a user
   put there are never removed. :meth:`Staging.abort` (an error, Ctrl-C) removes the
   staging directory, and ``OUT`` too if this run created it: ``OUT`` keeps the previous
   complete output or nothing.

Single files (``theory --out FILE.png``, ``sweep plot --out``)
-----------------------------------------------------------------
:func:`check_out_file` checks the target before any work; :func:`write_file_atomic` writes
a temporary file beside it (named with the writer's pid, removed by the next writer when
that pid is dead) and renames it onto the target.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MARKER",
    "STAGING_PREFIX",
    "Staging",
    "check_out_file",
    "prepare_out_dir",
    "remove_stale_partials",
    "write_file_atomic",
]

MARKER = ".rmthess-output"
STAGING_PREFIX = ".rmthess-partial-"
LAST = "index.html"  # committed last: a directory has an index only if its run completed
_PARTIAL = re.compile(re.escape(STAGING_PREFIX) + r"(\d+)-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _partial_pid(name: str) -> int | None:
    m = _PARTIAL.match(name)
    return int(m.group(1)) if m else None


def remove_stale_partials(directory: str | os.PathLike[str]) -> list[int]:
    """Remove the partial outputs (``.rmthess-partial-<pid>-*``) of dead writers in
    ``directory`` (this process's own are left alone); return the pids of live writers
    that still have one there."""
    live: list[int] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return live
    for p in entries:
        pid = _partial_pid(p.name)
        if pid is None or pid == os.getpid():  # ours may be in use (another thread)
            continue
        if _pid_alive(pid):
            live.append(pid)
        elif p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except OSError:
                pass
    return live


def _probe(directory: Path, what: str) -> None:
    """Create and remove a file in ``directory``: ``os.access`` can be fooled (root,
    read-only mounts, ACLs)."""
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"{what} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=".rmthess-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{what} is not writable: {exc.strerror or exc}") from None


def _existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def read_marker(directory: str | os.PathLike[str]) -> dict | None:
    """The marker of an rmthess output directory (``{"command", "entries"}``), or None."""
    try:
        data = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("command"), str):
        return None
    entries = data.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        data["entries"] = []
    return data


def prepare_out_dir(
    out: str | os.PathLike[str],
    force: bool = False,
    marker: str = "report",
    *,
    option: str = "--out",
    force_flag: str | None = None,
) -> Path:
    """Check the output directory ``out`` before any work; return it as an absolute Path.

    Nothing is created or removed here (:class:`Staging` creates ``out``).

    Parameters
    ----------
    out : the directory.
    force : write into a non-empty directory that is not this command's rmthess output.
    marker : the command name recorded in the marker file (``"report"``, ``"curvature"``).
    option : the option named in the errors.
    force_flag : the flag that sets ``force`` (named in the refusal), if the command has one.

    Raises
    ------
    ValueError
        ``out`` is a file; cannot be created or written; is not empty and not this
        command's output (unless ``force``); or another live rmthess process is writing
        into it.
    """
    path = Path(out).expanduser().absolute()
    what = f"{option} {str(out)!r}"
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} exists and is not a directory")
    if not path.exists():
        parent = _existing_parent(path)
        if not parent.is_dir():
            raise ValueError(f"{what} cannot be created: {str(parent)!r} is not a directory")
        _probe(parent, f"{what} cannot be created: {str(parent)!r}")
        return path
    _probe(path, what)
    busy = _live_writers(path)
    if busy:
        raise ValueError(
            f"{what} is being written by another rmthess process (pid {busy[0]}); "
            "wait for it or choose another directory"
        )
    entries = [p.name for p in path.iterdir() if _partial_pid(p.name) is None]
    if not entries or force:
        return path
    mark = read_marker(path)
    if mark is not None and mark["command"] == marker:
        return path  # our own previous output: replaced at commit
    owner = f" (it holds the output of 'rmthess {mark['command']}')" if mark else ""
    how = f"pass {force_flag} to write into it, or " if force_flag else ""
    raise ValueError(
        f"{what} is not empty ({len(entries)} entries) and is not an output of "
        f"'rmthess {marker}'{owner}; {how}choose an empty or new directory"
    )


def _live_writers(directory: Path) -> list[int]:
    """Pids of live writers with a partial output in ``directory`` (nothing removed)."""
    pids = (_partial_pid(p.name) for p in directory.iterdir())
    return [pid for pid in pids if pid not in (None, os.getpid()) and _pid_alive(pid)]


class Staging:
    """A staging directory inside ``out`` (created with its parents); a context manager.

    Write into :attr:`path`, then call :meth:`commit`. Leaving the ``with`` block without
    a commit (an exception, ``KeyboardInterrupt``) calls :meth:`abort`.
    """

    def __init__(self, out: str | os.PathLike[str], marker: str = "report") -> None:
        self.out = Path(out).expanduser().absolute()
        self.marker = marker
        self.created: Path | None = None
        if not self.out.exists():
            top = self.out
            while not top.parent.exists():
                top = top.parent
            self.out.mkdir(parents=True, exist_ok=True)
            self.created = top
        remove_stale_partials(self.out)
        prefix = f"{STAGING_PREFIX}{os.getpid()}-"
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.out))
        self.committed = False

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.committed:
            self.abort()

    def abort(self) -> None:
        """Remove the staging directory (and ``out`` if this writer created it)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)

    def commit(self) -> list[Path]:
        """Move the staged entries into ``out`` (``index.html`` last), remove the previous
        rmthess run's entries this run did not write, write the marker; return the final
        paths of the entries."""
        new = sorted(p.name for p in self.path.iterdir())
        old = read_marker(self.out)
        old_entries = [] if old is None else [e for e in old["entries"] if _safe_name(e)]
        # the marker first lists old and new: a crash half-way leaves nothing unowned
        self._write_marker(sorted(set(old_entries) | set(new)))
        moved = []
        for name in sorted(new, key=lambda n: (n == LAST, n)):
            src, dst = self.path / name, self.out / name
            if dst.is_dir() and not dst.is_symlink():
                trash = self.path / f".old-{name}"
                os.replace(dst, trash)  # out of the way in one rename, deleted below
            os.replace(src, dst)
            moved.append(dst)
        for name in set(old_entries) - set(new):
            _remove(self.out / name)
        self._write_marker(new)
        shutil.rmtree(self.path, ignore_errors=True)
        self.committed = True
        return moved

    def _write_marker(self, entries: list[str]) -> None:
        text = json.dumps({"command": self.marker, "entries": entries}, indent=1)
        write_file_atomic(self.out / MARKER, text)


def _safe_name(name: str) -> bool:
    """A marker entry names one entry of the directory, nothing outside it."""
    return bool(name) and name not in (".", "..", MARKER) and "/" not in name and "\\" not in name


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        try:
            p.unlink()
        except OSError:
            pass


def check_out_file(
    path: str | os.PathLike[str], option: str = "--out", suffix: str | None = None
) -> Path:
    """Check a single output file before any work: not a directory, its directory exists
    and is writable, an existing file is writable, and (if given) its suffix."""
    p = Path(path).expanduser()
    what = f"{option} {str(path)!r}"
    if suffix is not None and p.suffix.lower() != suffix:
        raise ValueError(f"{option} must name a {suffix} file, got {str(path)!r}")
    if p.is_dir():
        raise ValueError(f"{what} is a directory; give a file name")
    parent = p.absolute().parent
    if not parent.is_dir():
        raise ValueError(f"{option}: directory {str(parent)!r} does not exist")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{what} is not writable")
    _probe(parent, f"{option}: directory {str(parent)!r}")
    return p


def write_file_atomic(
    path: str | os.PathLike[str], data: str | bytes | Callable[[str], object]
) -> Path:
    """Write ``data`` to ``path`` atomically: into a temporary file beside it (named with
    this process's pid), then ``os.replace`` onto ``path``. ``data`` is text, bytes, or a
    function ``write(tmp_path)`` that writes the file (e.g. ``fig.savefig``; the temporary
    name keeps the suffix of ``path``). An error leaves ``path`` as it was."""
    p = Path(path).expanduser()
    parent = p.absolute().parent
    remove_stale_partials(parent)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{STAGING_PREFIX}{os.getpid()}-", suffix=f"-{p.name}", dir=parent
    )
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
