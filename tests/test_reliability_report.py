"""Issue 17 (report area): one atomic writer for every output, checked before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rmthess._outputs import (
    MARKER,
    STAGING_PREFIX,
    Staging,
    check_out_file,
    prepare_out_dir,
    write_file_atomic,
)
from rmthess.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _write_run(out, files: dict, marker="report"):
    """One complete writer run: check, stage ``files``, commit."""
    prepare_out_dir(out, marker=marker)
    with Staging(out, marker=marker) as st:
        for name, text in files.items():
            (st.path / name).parent.mkdir(parents=True, exist_ok=True)
            (st.path / name).write_text(text)
        st.commit()


def _listing(d):
    return sorted(p.name for p in d.iterdir())


# ----------------------------------------------------------------------------- the writer
def test_rerun_replaces_the_previous_output(tmp_path):
    out = tmp_path / "o"
    _write_run(out, {"a.png": "model 1", "fig/b.png": "model 1"})
    assert _listing(out) == [MARKER, "a.png", "fig"]
    (out / "notes.txt").write_text("mine")  # a user's file beside rmthess's
    _write_run(out, {"c.png": "model 2"})  # no force needed: the marker says it is ours
    assert _listing(out) == [MARKER, "c.png", "notes.txt"]  # a.png, fig/ of run 1 gone
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / MARKER).read_text()) == {"command": "report", "entries": ["c.png"]}


def test_foreign_non_empty_directory_is_refused(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match="not empty .* not an output of 'rmthess report'"):
        prepare_out_dir(out, marker="report", force_flag="--force")
    # another command's output is rmthess's but not this command's: refused too
    other = tmp_path / "curv"
    _write_run(other, {"summary.json": "{}"}, marker="curvature")
    with pytest.raises(ValueError, match="output of 'rmthess curvature'"):
        prepare_out_dir(other, marker="landscape")
    assert prepare_out_dir(out, force=True) == out.absolute()


def test_out_is_a_file_or_uncreatable(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        prepare_out_dir(f)
    with pytest.raises(ValueError, match="cannot be created"):
        prepare_out_dir(f / "sub")
    assert not (tmp_path / "new").exists()
    prepare_out_dir(tmp_path / "new" / "deeper")  # creatable: nothing created yet
    assert not (tmp_path / "new").exists()


def test_abort_removes_what_it_created(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), Staging(out) as st:
        (st.path / "x.png").write_text("half")
        raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()
    out = tmp_path / "kept"
    _write_run(out, {"x.png": "complete"})
    with pytest.raises(KeyboardInterrupt), Staging(out) as st:
        (st.path / "x.png").write_text("half")
        raise KeyboardInterrupt
    assert _listing(out) == [MARKER, "x.png"] and (out / "x.png").read_text() == "complete"


def _sigkilled_writer(out):
    """A writer process killed (SIGKILL) while it writes into ``out``."""
    code = textwrap.dedent(f"""
        import time
        from rmthess._outputs import Staging
        st = Staging({str(out)!r})
        (st.path / "half.png").write_text("half")
        print("staged", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "staged"
    staged = [p.name for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert staged == [n for n in staged if n.startswith(f"{STAGING_PREFIX}{proc.pid}-")]
    return proc, staged


def test_sigkill_mid_write_leaves_nothing_after_the_next_run(tmp_path):
    out = tmp_path / "k"
    proc, staged = _sigkilled_writer(out)
    assert len(staged) == 1
    # while the writer lives, a second writer is refused (two runs into one directory)
    with pytest.raises(ValueError, match=f"another rmthess process \\(pid {proc.pid}\\)"):
        prepare_out_dir(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (out / staged[0]).is_dir()  # SIGKILL cannot clean up
    _write_run(out, {"index.html": "done"})
    assert _listing(out) == [MARKER, "index.html"]


def test_write_file_atomic(tmp_path, monkeypatch):
    p = tmp_path / "fig.png"
    p.write_bytes(b"old")
    stale = tmp_path / f"{STAGING_PREFIX}999999999-abc-fig.png"  # a dead writer's (no such pid)
    stale.write_bytes(b"half")

    def boom(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_file_atomic(p, boom)
    assert _listing(tmp_path) == ["fig.png"] and p.read_bytes() == b"old"
    write_file_atomic(p, lambda tmp: open(tmp, "wb").write(b"new"))
    assert p.read_bytes() == b"new" and _listing(tmp_path) == ["fig.png"]
    write_file_atomic(p, "text")
    assert p.read_text() == "text" and oct(p.stat().st_mode & 0o077) != oct(0)


def test_check_out_file(tmp_path):
    with pytest.raises(ValueError, match="must name a .png file"):
        check_out_file(tmp_path / "x.txt", suffix=".png")
    with pytest.raises(ValueError, match="is a directory"):
        check_out_file(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        check_out_file(tmp_path / "nope" / "x.png")


# ----------------------------------------------------------------------------- the CLIs
@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory this process cannot write: a read-only one, or /proc for root (who can
    write any mode bits)."""
    if IS_ROOT:
        if not os.path.isdir("/proc/self"):
            pytest.skip("root without /proc: no unwritable directory")
        yield "/proc"
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    yield str(ro)
    ro.chmod(0o700)


@pytest.mark.parametrize(
    "argv,compute",
    [
        (
            ["landscape", "--data", "digits", "--limit", "200", "--hidden", "4", "--layers", "1"],
            "rmthess.landscape.experiment.landscape_experiment",
        ),
        (
            ["theory", "--case", "linear-ce", "--layer-spectrum", "--C", "3", "--gamma", "0.5"],
            "rmthess.theory.cli.layer_spectrum_records",
        ),
        (
            ["curvature", "--data", "gaussian", "--C", "3", "--d", "4", "--N", "20"],
            "rmthess.curvature.models.mlp",
        ),
    ],
)
def test_unwritable_target_refused_before_work(capsys, monkeypatch, unwritable_dir, argv, compute):
    """Today ``landscape --out`` and ``theory --out`` crash *after* the computation."""
    import importlib

    modname, fn = compute.rsplit(".", 1)

    def must_not_run(*a, **k):
        raise AssertionError("the computation ran before --out was checked")

    monkeypatch.setattr(importlib.import_module(modname), fn, must_not_run)
    target = os.path.join(unwritable_dir, "rmthess-out" + (".png" if argv[0] == "theory" else ""))
    rc = main([*argv, "--out", target])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "not writable" in err and "--out" in err
    assert not os.path.exists(target)


def test_report_rerun_replaces_and_foreign_refused(tmp_path, capsys):
    """The README's first command, twice: the second run replaces the first report."""
    out = tmp_path / "rep"
    argv = ["report", "--mode", "tiny", "--out", str(out), "--no-progress", "--sections"]
    assert main([*argv, "spectra"]) in (0, 1)
    first = set(os.listdir(out / "figures"))
    assert main([*argv, "clusters"]) in (0, 1), capsys.readouterr().err
    second = set(os.listdir(out / "figures"))
    assert second and not (first & second)  # nothing stale of the first run stays
    assert json.loads((out / MARKER).read_text())["command"] == "report"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1")
    t0 = time.perf_counter()
    assert main(["report", "--mode", "tiny", "--out", str(foreign), "--no-progress"]) == 2
    assert time.perf_counter() - t0 < 5
    assert "not empty" in capsys.readouterr().err and _listing(foreign) == ["data.csv"]


# ----------------------------------------------------------------------------- CLI help
HEAVY = ("scipy", "numba", "torch", "pandas", "matplotlib")


@pytest.mark.parametrize("argv", [[], ["report"], ["curvature"], ["landscape"], ["sweep"]])
def test_help_imports_nothing_heavy(argv):
    """``--help`` used to load scipy and numba (4-6 s): every sub-command was imported."""
    code = textwrap.dedent(f"""
        import contextlib, io, sys
        from rmthess.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            rc = main({[*argv, "--help"]!r})
        heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
        print(rc, heavy, "``" in out.getvalue(), ":func:" in out.getvalue())
    """)
    env = {**os.environ, "PYTHONPATH": ROOT}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.stdout.split() == ["0", "[]", "False", "False"], res.stdout + res.stderr[-2000:]


def test_help_text_is_plain_and_whole(capsys):
    from rmthess.cli import first_paragraph, plain_text

    assert (
        plain_text("see :func:`~rmthess.x.f` and ``--out DIR``") == "see rmthess.x.f and --out DIR"
    )
    assert first_paragraph("A long line\ncut here.\n\nMore.") == "A long line cut here."
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "vs masked probes" in text  # the help line used to stop at "vs masked"
    assert main(["theory", "--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out
