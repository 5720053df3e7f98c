"""Safe, atomic output directories for the report.

Protocol
--------
1. :func:`prepare_out_dir` checks ``--out`` *before* any work: it is created if absent;
   an existing non-empty directory is refused unless ``force=True``; a directory that
   cannot be written is refused. With ``force`` an old ``index.html`` is deleted first,
   so an interrupted run can never leave an index that belongs to another run.
2. Everything is written into a staging directory ``OUT/.rmthess-partial-XXXX``.
3. :meth:`Staging.commit` moves the files into ``OUT`` with ``os.replace`` (atomic per
   file on one file system), ``index.html`` last. :meth:`Staging.abort` (on error or
   Ctrl-C) deletes the staging directory. A report directory therefore has an
   ``index.html`` only if the run that wrote it completed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

STAGING_PREFIX = ".rmthess-partial-"
INDEX = "index.html"


def prepare_out_dir(out, force: bool = False) -> Path:
    """Validate and create the output directory ``out``; return it as a resolved Path.

    Raises
    ------
    ValueError
        ``out`` exists and is not a directory; is not empty and ``force`` is False;
        or cannot be created / written.
    """
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {str(path)!r} cannot be created: {exc.strerror or exc}") from None
    leftovers = [p for p in path.iterdir() if not p.name.startswith(STAGING_PREFIX)]
    if leftovers and not force:
        raise ValueError(
            f"--out {str(path)!r} is not empty ({len(leftovers)} entries); "
            "choose an empty or new directory, or pass --force to overwrite"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(path)!r} is not writable")
    # a probe: os.access can be fooled (root, read-only mounts, ACLs)
    try:
        fd, probe = tempfile.mkstemp(prefix=".rmthess-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--out {str(path)!r} is not writable: {exc.strerror or exc}") from None
    # stale staging directories of interrupted runs are ours: remove them
    for p in path.iterdir():
        if p.name.startswith(STAGING_PREFIX) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
    if force:
        idx = path / INDEX
        if idx.exists():
            idx.unlink()
    return path.resolve()


class Staging:
    """A staging directory inside ``out``; use as a context manager.

    On normal exit nothing happens by itself: call :meth:`commit`. On an exception
    (including ``KeyboardInterrupt``) the staging directory is removed.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out))
        self.committed = False

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            self.abort()

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> list[Path]:
        """Move staged entries into ``out`` (``index.html`` last); return their final paths."""
        entries = sorted(self.path.iterdir(), key=lambda p: (p.name == INDEX, p.name))
        moved = []
        for src in entries:
            dst = self.out / src.name
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            os.replace(src, dst)
            moved.append(dst)
        self.path.rmdir()
        self.committed = True
        return moved
