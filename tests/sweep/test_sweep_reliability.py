"""Sweep reliability (issue 17): one driver per store, read-only stores, workers that die
with their driver, validation identical to the task's, prompt Ctrl-C, readable plots."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import _sweep_tasks
import pytest
from _sweep_tasks import CLI, ENV

from rmthess.sweep import load, run_sweep, status
from rmthess.sweep.lock import StoreLock, host_tag
from rmthess.sweep.store import StoreBusyError

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


@pytest.fixture(autouse=True)
def _test_tasks():
    with _sweep_tasks.registered():
        yield


def write_grid(path, n, sleep, **extra):
    lines = ['task = "_echo"', "[grid]", f"x = {list(range(n))}", f"sleep = [{sleep}]"]
    lines += [f"{k} = [{json.dumps(v)}]" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for(cond, timeout, proc=None, what=""):
    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver exited early ({what}): {proc.stderr.read()}")
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def children(pid):
    """pids of the processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(name))
    return out


def alive(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------- 17.3 lock
def test_two_drivers_on_one_store(tmp_path):
    """Old code: both drivers ran, each deleting the other's temporaries at start-up."""
    gate = tmp_path / "gate"  # the first driver's tasks wait for it: no race with startup
    toml = write_grid(tmp_path / "g.toml", 12, 0.05, gate=str(gate))
    store = tmp_path / "s"
    cmd = CLI + ["run", str(toml), "--store", str(store), "--no-progress", "--json"]
    a = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock, results = store / "lock", store / "results"

    def a_holds_lock_and_runs():
        try:
            owner = json.loads(lock.read_text())
        except (OSError, ValueError):
            return False
        return owner.get("pid") == a.pid and (store / "manifest.json").exists()

    wait_for(a_holds_lock_and_runs, 120, a, "the first driver's lock")
    b = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert b.returncode == 3, b.stderr
    lines = b.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {a.pid} on host {socket.gethostname()}" in lines[0]
    assert "--wait" in lines[0] and b.stdout == ""
    assert a.poll() is None  # the refused driver touched nothing: the first one still runs
    c = subprocess.Popen(cmd + ["--wait"], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(1.0)
    gate.write_text("open")
    out_c, err_c = c.communicate(timeout=300)
    assert c.returncode == 0, err_c
    out_a, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a
    assert json.loads(out_a)["done"] == 12
    summary_c = json.loads(out_c)  # waited for the first, then found everything done
    assert (summary_c["skipped"], summary_c["done"]) == (12, 0)
    entries = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert len(entries) == 12 and all(e["attempt"] == 1 for e in entries)
    assert not lock.exists()  # released by the last driver
    assert not [p for p in store.rglob(".*.tmp")]


def test_lock_in_process_wait_and_stale(tmp_path):
    store = tmp_path / "s"
    spec = {"task": "_echo", "grid": {"x": [1, 2]}}
    store.mkdir()
    with StoreLock(str(store)):
        with pytest.raises(StoreBusyError, match=f"pid {os.getpid()} on host"):
            run_sweep(spec, store, progress=False)
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError, match="after waiting 0.3 s"):
            run_sweep(spec, store, progress=False, wait=0.3)
        assert time.monotonic() - t0 >= 0.3
    # a lock file left by a dead driver (SIGKILL: no flock held) is taken over
    (store / "lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    assert run_sweep(spec, store, progress=False).done == 2
    assert not (store / "lock").exists()
    with pytest.raises(ValueError, match="wait"):
        run_sweep(spec, store, wait=-1)


def test_exclusive_file_fallback_without_flock(tmp_path):
    """Where flock is unsupported: O_EXCL file, taken over only when its pid is dead."""
    path = str(tmp_path)
    first = StoreLock(path)
    first._flock = False
    first.acquire()
    second = StoreLock(path)
    second._flock = False
    with pytest.raises(StoreBusyError, match=f"pid {os.getpid()}"):
        second.acquire()
    first.release()
    stale = {"pid": dead_pid(), "host": socket.gethostname(), "started": "x"}
    (tmp_path / "lock").write_text(json.dumps(stale))
    second.acquire()
    assert second.stale == stale
    assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    second.release()
    assert not (tmp_path / "lock").exists()


def test_only_dead_writers_temporaries_removed(tmp_path):
    store = tmp_path / "s"
    spec = {"task": "_echo", "grid": {"x": [1]}}
    run_sweep(spec, store, progress=False)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tag = host_tag()
        names = {
            "dead": f".a.json.tmp-{dead_pid()}-{tag}-x1.tmp",
            "own": f".b.json.tmp-{os.getpid()}-{tag}-x2.tmp",
            "live": f".c.json.tmp-{live.pid}-{tag}-x3.tmp",
            "other_host": f".d.json.tmp-{dead_pid()}-{host_tag('elsewhere')}-x4.tmp",
        }
        for name in names.values():
            (store / "results" / name).write_text("{")
        run_sweep(spec, store, progress=False)  # start-up cleanup
        left = {p.name for p in (store / "results").glob(".*.tmp")}
        assert left == {names["live"], names["other_host"]}
    finally:
        live.kill()
        live.wait()


# ---------------------------------------------------------------------------- 17.3 readers
def _read_only(monkeypatch, store):
    """Make every write under ``store`` fail with EROFS (as a read-only mount would)."""
    root = os.path.abspath(store)

    def guard(fn):
        def wrapped(*args, **kw):
            for a in args[:2]:
                if isinstance(a, (str, os.PathLike)) and os.path.abspath(a).startswith(root):
                    raise OSError(errno.EROFS, "Read-only file system", os.fspath(a))
            return fn(*args, **kw)

        return wrapped

    for name in ("replace", "rename", "makedirs", "mkdir", "unlink", "remove"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))


def test_read_only_store_with_a_corrupt_file_is_readable(tmp_path, monkeypatch, capsys):
    """Old code: load/plot/report moved the corrupt file aside and crashed with EROFS."""
    from dataclasses import replace

    from rmthess.report import get_config
    from rmthess.report.sections.theory import _stored_limits
    from rmthess.sweep.cli import main

    cfg = get_config("tiny", cases=("linear-mse",))
    store = tmp_path / "s"
    grid = {"case": ["linear-mse"], "C": [2, 3, 4], "gamma": [cfg.gamma]}
    run_sweep({"task": "theory", "grid": grid}, store, progress=False)
    victim = sorted((store / "results").glob("*.json"))[0]
    victim.write_text(victim.read_text()[:50])
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    _read_only(monkeypatch, store)
    with pytest.warns(RuntimeWarning, match="1 invalid result file"):
        df = load(store)
    assert len(df) == 2 and df.attrs["corrupt"] == [victim.name]
    st = status(store)
    assert (st.done, st.corrupt, st.pending, st.quarantined) == (2, 1, 1, 0)
    with pytest.warns(RuntimeWarning):
        assert len(_stored_limits(replace(cfg, store=str(store)))) == 2
    out = tmp_path / "p.png"
    assert main(["plot", str(store), "--y", "F_diag", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rmthess sweep: warning: store {str(store)!r}: 1 invalid result file(s) "
                   "skipped (not loaded); rerun the sweep to recompute them"]  # fmt: skip
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before  # nothing moved


# ---------------------------------------------------------------------------- 17.3 workers
@linux_only
def test_process_workers_die_with_a_killed_driver(tmp_path):
    """Old code: the workers (and the resource tracker) outlived a SIGKILL-ed driver."""
    marks = tmp_path / "marks"
    marks.mkdir()
    toml = write_grid(tmp_path / "g.toml", 6, 30, mark=str(marks))
    cmd = CLI + ["run", str(toml), "--store", str(tmp_path / "s"), "--engine", "processes"]
    cmd += ["--workers", "2", "--no-progress"]
    drv = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(list(marks.iterdir())) >= 2, 120, drv, "two busy workers")
        kids = children(drv.pid)
        workers = {int(p.name) for p in marks.iterdir()}
        assert workers <= set(kids) and len(kids) >= 3  # 2 workers + the resource tracker
        drv.send_signal(signal.SIGKILL)
        drv.wait()
        t0 = time.monotonic()
        while any(alive(p) for p in kids) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert not [p for p in kids if alive(p)], "workers survived their driver"
    finally:
        for p in children(drv.pid) if drv.poll() is None else []:
            os.kill(p, signal.SIGKILL)
        if drv.poll() is None:
            drv.kill()


# ---------------------------------------------------------------------------- 17.3 registry
def test_test_tasks_are_not_registered_in_production():
    code = "from rmthess.sweep.tasks import TASKS; print(sorted(TASKS))"
    env = dict(ENV, PYTHONPATH=_sweep_tasks.ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["['depth',", "'layer_gap',", "'simulate',", "'theory']"], (
        out.stderr
    )


# ---------------------------------------------------------------------------- 17.2 validation
def _cuda():
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize(
    "task, cfg, direct",
    [
        ("theory", {"case": "hidden-ce", "C": 3, "gamma": 0.5, "m": 4, "samples": 1},
         "frobenius_limits('hidden-ce', 3, 0.5, 4, samples=1)"),
        ("layer_gap", {"case": "linear-ce", "C": 1000, "gamma": 0.5},
         "block_diagonal_gap('linear-ce', 1000, 0.5)"),
        ("layer_gap", {"case": "linear-ce", "C": 3, "gamma": 1e-20},
         "block_diagonal_gap('linear-ce', 3, 1e-20)"),
        ("depth", {"loss": "ce", "C": 3, "gamma": 0.5, "widths": "8x1"},
         "depth_frobenius('ce', 3, 0.5, (8, 1))"),
        ("depth", {"loss": "ce", "C": 3, "gamma": 0.5, "widths": "8", "inner": 7},
         "depth_frobenius('ce', 3, 0.5, (8,), inner=7)"),
        ("simulate", {"case": "linear-ce", "C": 3, "d": 8, "N": 8, "device": "cuda"},
         "block_frobenius('linear-ce', 3, 8, 8, device='cuda')"),
    ],
)  # fmt: skip
def test_spec_refuses_what_the_task_refuses(task, cfg, direct, tmp_path):
    """Old code: accepted, then every configuration failed three times after the work."""
    from rmthess.simulate import block_frobenius  # noqa: F401 (used by `direct`)
    from rmthess.theory import block_diagonal_gap, depth_frobenius, frobenius_limits  # noqa: F401

    if cfg.get("device") == "cuda" and _cuda():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError) as lib:  # the library function itself refuses it ...
        eval(direct)
    with pytest.raises(ValueError) as sw:  # ... and so does the sweep, before any work
        run_sweep({"task": task, "grid": cfg}, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()
    head = str(lib.value).split(":")[0].split(" (")[0]  # its parameter and allowed range
    assert head.split()[0] in str(sw.value), (str(lib.value), str(sw.value))
    if task in ("layer_gap", "depth"):  # the very same check: the same message
        assert str(lib.value) in str(sw.value)


def test_task_refusal_is_not_retried(tmp_path):
    spec = {"task": "_fail_if", "configs": [{"x": 1, "refuse": True}, {"x": 2, "fail": True}]}
    res = run_sweep(spec, tmp_path / "s", retries=2, progress=False)
    assert res.failed == 2
    attempts = {
        json.loads(p.read_text())["config"]["x"]: json.loads(p.read_text())["attempts"]
        for p in (tmp_path / "s" / "failures").glob("*.json")
    }
    assert attempts == {1: 1, 2: 3}  # ValueError: once; RuntimeError: 1 + 2 retries


# ---------------------------------------------------------------------------- 17.4 Ctrl-C
@linux_only
@pytest.mark.parametrize("engine", ["processes", "dask"])
def test_ctrl_c_stops_promptly_with_one_line(engine, tmp_path):
    """Old code: processes waited for the running tasks (17-40 s) and printed a traceback;
    Dask printed worker tracebacks and CancelledError warnings."""
    if engine == "dask":
        pytest.importorskip("distributed")
    toml = tmp_path / "g.toml"  # two instant configurations, then two of 20 s
    slow = "[[configs]]\nx = {}\nsleep = 20\n"
    toml.write_text('task = "_echo"\n[grid]\nx = [0, 1]\n' + slow.format(10) + slow.format(11))
    store = tmp_path / "s"
    cmd = CLI + ["run", str(toml), "--store", str(store), "--engine", engine, "--workers", "2"]
    drv = subprocess.Popen(cmd + ["--no-progress"], env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    wait_for(lambda: len(list((store / "results").glob("*.json"))) >= 2, 120, drv, "results")
    time.sleep(0.5)  # the two 20 s configurations are running now
    kids = children(drv.pid)
    os.killpg(drv.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    t0 = time.monotonic()
    _, err = drv.communicate(timeout=60)
    took = time.monotonic() - t0
    assert drv.returncode == 130, err
    assert took < 10, f"exit took {took:.1f} s"
    lines = [ln for ln in err.splitlines() if "dask dashboard" not in ln]
    assert len(lines) == 1, err
    assert lines[0] == (f"rmthess sweep: interrupted; {store} holds 2 of 4 results (2 computed "
                        "in this run, 0 failed); rerun the same command to finish")  # fmt: skip
    time.sleep(1)
    assert not [p for p in kids if alive(p)]


@linux_only
def test_dask_run_closes_quietly(tmp_path):
    """Old code: every run whose tasks used torch ended with 'Worker process still alive
    after 4.0 seconds, killing' (once per worker)."""
    pytest.importorskip("distributed")
    toml = write_grid(tmp_path / "g.toml", 4, 0, torch=True)
    cmd = CLI + ["run", str(toml), "--store", str(tmp_path / "s"), "--engine", "dask"]
    threads = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
    env = {k: v for k, v in ENV.items() if k not in threads}  # torch's own thread pools
    out = subprocess.run(cmd + ["--no-progress"], env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if "dask dashboard" not in ln]
    assert lines == [], out.stderr


# ---------------------------------------------------------------------------- 17.4 plot
def test_plot_log_axes_readable_and_mc_error_bars():
    """Old code: the log x-axis labelled its minor ticks over each other ("2x10^03x10^0"),
    y stayed linear for a decay spanning less than a factor 20, and exact lines got
    zero-length bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from rmthess.sweep import plot

    Cs = np.array([2, 3, 5, 8, 16, 32, 64])
    exact = pd.DataFrame({"case": "exact", "C": Cs, "ratio": Cs**-0.5, "ratio_se": 0.0})
    mc = pd.DataFrame({"case": "mc", "C": Cs, "ratio": 1.1 * Cs**-0.5})
    mc["ratio_se"] = 0.05 * mc["ratio"]
    ax = plot(pd.concat([exact, mc], ignore_index=True))
    fig = ax.figure
    fig.canvas.draw()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"  # a decay: log-log
    renderer = fig.canvas.get_renderer()
    for axis in (ax.xaxis, ax.yaxis):
        labels = [t for t in axis.get_ticklabels(which="both") if t.get_visible()]
        labels = [t for t in labels if t.get_text()]
        boxes = [t.get_window_extent(renderer) for t in labels]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not boxes[i].overlaps(boxes[j]), (labels[i], labels[j])
    shown = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
    assert shown == ["2", "3", "5", "8", "16", "32", "64"]
    bars = {c.get_label(): c for c in ax.containers}
    assert bars["case=exact"].lines[2] == ()  # SE 0: no bars
    (segs,) = [lc.get_segments() for lc in bars["case=mc"].lines[2]]
    lengths = np.array([s[1][1] - s[0][1] for s in segs])
    np.testing.assert_allclose(lengths, 2 * mc["ratio_se"].to_numpy(), rtol=1e-12)
    plt.close(fig)


# ---------------------------------------------------------------------------- 16 seeds
def test_config_seed_numbers_unchanged_via_the_ground_helper(monkeypatch):
    """config_seed now draws through rmthess._random and keeps its numbers (stored seeds
    of existing stores stay valid): independent route, numpy's SeedSequence directly."""
    import numpy as np

    import rmthess._random as rnd
    from rmthess.sweep import config_hash, config_seed

    for h in ("0" * 16, "f" * 16, config_hash("theory", {"case": "linear-ce", "C": 3})):
        w = np.random.SeedSequence(int(h, 16)).generate_state(2, dtype=np.uint32)
        assert config_seed(h) == (int(w[0]) << 31) | (int(w[1]) >> 1)
    calls = []
    real = rnd.seed_sequence
    monkeypatch.setattr(rnd, "seed_sequence", lambda *a: calls.append(a) or real(*a))
    config_seed("0123456789abcdef")
    assert calls == [(0x0123456789ABCDEF,)]
    with pytest.raises(TypeError, match="hash_"):
        config_seed(12)


def test_run_on_a_read_only_store_is_one_clear_error(tmp_path, monkeypatch):
    store = tmp_path / "s"
    spec = {"task": "_echo", "grid": {"x": [1]}}
    run_sweep(spec, store, progress=False)
    real_open = os.open

    def ro_open(path, flags, *a, **kw):
        if os.fspath(path).startswith(str(store)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", ro_open)
    with pytest.raises(ValueError, match="is not writable .Read-only file system"):
        run_sweep(spec, store, progress=False)


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"x"', '{"hashes": 3}'])
def test_manifest_of_the_wrong_json_type_is_one_clear_error(tmp_path, text):
    from rmthess.sweep import load_spec, run_sweep, status

    store = tmp_path / "store"
    (store / "results").mkdir(parents=True)
    (store / "manifest.json").write_text(text)
    spec = load_spec({"task": "theory", "grid": {"case": ["linear-ce"], "C": [2], "gamma": [0.5]}})
    for call in (lambda: status(str(store)), lambda: run_sweep(spec, str(store), progress=False)):
        with pytest.raises(ValueError, match="not an rmthess sweep manifest"):
            call()
