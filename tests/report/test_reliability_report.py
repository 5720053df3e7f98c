"""Issue 17 (report area): one atomic writer for every output, checked before any work."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
            ["landscape", "--data", "digits", "--n", "200", "--hidden", "4", "--depths", "1"],
            "rmthess.landscape.experiment.landscape_experiment",
        ),
        (
            ["theory", "--case", "linear-ce", "--layer-spectrum", "--C", "3", "--gamma", "0.5"],
            "rmthess.theory.layer_gap.layer_spectrum",
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


# ----------------------------------------------------------------------------- report --store
def test_store_with_another_init_is_not_used(tmp_path):
    """A torch-default store was used for a LeCun simulation: only records of the report's
    init (and, for Monte Carlo, its numbers of V and g draws) are taken."""
    from dataclasses import replace

    from rmthess.report import get_config
    from rmthess.report.sections import theory as sec
    from rmthess.sweep import run_sweep
    from rmthess.theory import frobenius_limits

    cfg = get_config("tiny", cases=("linear-ce",))
    Cs = sec.C_grid(cfg, "linear-ce")
    grid = {"case": ["linear-ce"], "C": Cs, "gamma": [cfg.gamma], "init": ["torch-default"]}
    store = tmp_path / "torch"
    run_sweep({"task": "theory", "grid": grid}, store, engine="serial", progress=False)
    res = sec.compute(replace(cfg, store=str(store)))
    assert (res.limits["source"] == "computed").all()  # today: "store", torch-default numbers
    for _, r in res.limits.iterrows():  # independent: a direct LeCun call
        assert r["ratio"] == pytest.approx(frobenius_limits("linear-ce", r["C"], cfg.gamma).ratio)
    grid["init"] = ["lecun"]
    store = tmp_path / "lecun"
    run_sweep({"task": "theory", "grid": grid}, store, engine="serial", progress=False)
    res = sec.compute(replace(cfg, store=str(store)))
    assert (res.limits["source"] == "store").all()


def test_store_monte_carlo_sizes_must_match():
    from rmthess.report.sections.theory import _same

    assert _same({"n_inner": 64.0}, "n_inner", 64) and not _same({"n_inner": 8}, "n_inner", 64)
    assert _same({"m": float("nan")}, "m", None) and not _same({}, "m", 4)


def test_non_theory_store_refused_before_work(tmp_path, capsys, monkeypatch):
    from rmthess.report import runner
    from rmthess.sweep import run_sweep

    store = tmp_path / "sim"
    spec = {
        "task": "simulate",
        "grid": {"case": ["linear-mse"], "C": [2], "d": [4], "N": [8], "trials": [1]},
    }
    run_sweep(spec, store, engine="serial", progress=False)
    monkeypatch.setattr(runner, "_run_sections", lambda *a, **k: pytest.fail("work started"))
    out = tmp_path / "rep"
    rc = main(["report", "--mode", "tiny", "--store", str(store), "--out", str(out)])
    assert rc == 2  # today: a failing report written, exit 1
    assert "holds 'simulate' records, not 'theory'" in capsys.readouterr().err
    assert not out.exists()


def test_section_without_checks_is_not_a_failure(tmp_path, capsys):
    """``--sections theory`` printed "FAIL: 0/0" and exited 1."""
    out = tmp_path / "th"
    rc = main(["report", "--mode", "tiny", "--sections", "theory", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "NO CHECKS: section(s) theory" in text and "FAIL" not in text
    assert "NO CHECKS" in (out / "index.html").read_text()


# ----------------------------------------------------------------------------- N/A verdicts
def test_na_check_is_shown_and_counted_apart():
    from rmthess.report.checks import check_abs, check_na, count_text, format_table

    rows = [check_abs("s", "a", 1, 1, 0.1), check_na("s", "b at step 300", 8, "why not", 9.5)]
    assert rows[1].verdict == "N/A" and rows[1].passed and not rows[1].applies
    assert count_text(rows) == "1/1 checks passed, 1 not applicable (N/A, with the reason)"
    table = format_table(rows)
    assert "N/A" in table and "why not" in table and "b at step 300" in table
    with pytest.raises(ValueError, match="reason"):
        check_na("s", "c", 1, "")


def test_every_measured_state_has_a_verdict():
    """GGN outliers at the last step, the top edge at C > 5 and the trained Figure-1 ratios
    were measured and left off the checks (the reason only in code comments)."""
    from types import SimpleNamespace

    import pandas as pd

    from rmthess.report.config import get_config
    from rmthess.report.sections import layer, real_data

    cfg = get_config("default")
    T = cfg.real.train_steps
    track = pd.DataFrame(
        [
            dict(pixels=p, step=t, outliers_G=o if p == "raw" or t else 0, n_classes=10)
            for p in ("raw", "standardized")
            for t, o in ((0, 9), (T // 6, 9), (T, 8))
        ]
    )
    ratios = pd.DataFrame(
        [
            dict(when=w, blocks=b, ratio_dense=r, z=0.0)
            for w, r in (("init", 0.1), ("trained", 0.3))
            for b in real_data.BLOCKS
        ]
    )
    spectrum = pd.DataFrame(dict(eigenvalue=[1.0], dense=[1.0]))
    res = SimpleNamespace(cfg=cfg, op_error=0.0, ratios=ratios, spectrum=spectrum, track=track)
    checks = real_data.checks(res)
    names = [c.name for c in checks]
    for p in ("raw", "standardized"):
        for t in (0, T // 6, T):
            assert sum(f"({p} pixels) at step {t}" in n for n in names) == 1, (p, t, names)
    std = [c for c in checks if "(standardized pixels)" in c.name]
    assert [c.verdict for c in std] == ["PASS", "FAIL", "N/A"]  # 9 outliers: not bulk only
    last = next(c for c in checks if f"(raw pixels) at step {T}" in c.name)
    assert last.verdict == "N/A" and last.measured == 8 and "early in training" in last.detail
    trained = [c for c in checks if "after" in c.name and "Figure-1" in c.name]
    assert len(trained) == 2 and all(c.verdict == "N/A" and "3x" in c.detail for c in trained)
    assert "0.1 -> 0.3" in real_data._trained_ratios_text(ratios, T)

    table = pd.DataFrame(
        [
            dict(C=C, d=100, N=200, trials=1, ks=0.01, ks_max_trial=0.01, M2=1.0,
                 M2_frobenius=1.0, n_atoms=1024, zero_fraction=1 / C, zero_mass=1 / C,
                 zero_count_min=100, zero_count_max=100, lambda_max=e * 1.15, lambda_max_se=0.0,
                 top_edge=e)
            for C, e in ((2, 1.0), (20, 0.25))
        ]
    )  # fmt: skip
    gap = SimpleNamespace(
        slope={"W1_rel": -1.0}, slope_se={"W1_rel": 0.01}, gaps=[SimpleNamespace(C=2, KS=0.5)]
    )
    solver = dict(C=3, rel_error=0.0, n_atoms=6, n_points=10)
    res = SimpleNamespace(cfg=cfg, table=table, gap=gap, solver=solver)
    edge = [c for c in layer.checks(res) if "top eigenvalue" in c.name]
    assert [c.verdict for c in edge] == ["FAIL", "N/A"]  # C=2 +15 %: fails; C=20: shown
    assert "+15.0%" in edge[1].detail and "C <= 5" in edge[1].detail


# ----------------------------------------------------------------------------- threads, bar
def test_one_thread_policy_for_torch_and_blas(tmp_path, monkeypatch):
    """torch kept 2 intra-op threads while BLAS was capped at 1 during the report."""
    import torch
    from threadpoolctl import threadpool_info

    from rmthess._threads import limit_threads
    from rmthess.report import runner
    from rmthess.report.config import get_config

    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with limit_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        seen = []

        def compute(cfg, **kw):
            blas = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
            seen.append((torch.get_num_threads(), blas))

        monkeypatch.setattr(runner, "plan_sections", lambda names: ([_section(compute)], []))
        runner.run_report(get_config("tiny"), tmp_path / "t", device="cpu", progress=False)
        assert seen and seen[0][0] == 1 and seen[0][1] <= {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n)


def _section(compute, units=1):
    from types import SimpleNamespace

    from rmthess.report.html import Section

    return SimpleNamespace(
        NAME="probe",
        NEEDS=(),
        units=lambda cfg: units,
        compute=compute,
        checks=lambda result: [],
        render=lambda result, out: Section("probe"),
    )


def test_bar_names_the_running_step(tmp_path, monkeypatch):
    """The bar said "real-data trained" (done) for 9 minutes while the spectrum step ran."""
    from rmthess.report import runner
    from rmthess.report.config import get_config

    shown = []

    class Bar:
        n = 0

        def __init__(self, *a, **k):
            pass

        def set_postfix_str(self, s, refresh=True):
            self.text = s

        def update(self, k):
            Bar.n += k

        def close(self):
            pass

    bar = Bar()

    def compute(cfg, *, step, **kw):
        for unit in ("first unit", "second unit"):
            step(unit)
            shown.append((bar.text, Bar.n))  # while the unit runs

    monkeypatch.setattr(runner, "plan_sections", lambda names: ([_section(compute, 2)], []))
    monkeypatch.setattr("tqdm.auto.tqdm", lambda *a, **k: bar)
    runner.run_report(get_config("tiny"), tmp_path / "b", device="cpu", progress=True)
    assert shown == [("running: first unit", 0), ("running: second unit", 1)]
    assert Bar.n == 2  # both units counted once done


def test_quickstart_prints_its_results():
    """``python notebooks/quickstart.py`` printed nothing."""
    path = os.path.join(ROOT, "notebooks", "quickstart.py")
    env = {**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, path], capture_output=True, text=True, env=env)
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) == 6, res.stdout + res.stderr[-2000:]
    # C = 2: the two class blocks of linear-ce are H_12 = -H_11, so r(2) = 1 exactly
    assert lines[0].split() == ["C", "=", "2:", "r(C)", "=", "1.00000,", "C", "r(C)", "=", "2.0000"]


def test_quick_help_promises_no_time_it_does_not_keep(capsys):
    assert main(["report", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "<= 60 s" not in text
    # the figure the README states (one number for help and README)
    readme = (Path(ROOT) / "README.md").read_text()
    quick = re.search(r"<!-- QUICK-TIME -->(.*?)<!-- /QUICK-TIME -->", readme).group(1)
    assert f"measured {quick}" in text


def test_page_lists_na_rows_with_reason(tmp_path):
    from rmthess.report.checks import check_abs, check_na
    from rmthess.report.html import render_html

    checks = [check_abs("s", "ok", 1, 1, 0.1), check_na("s", "late state", 8, "outside the domain")]
    page = render_html("t", checks, [], {}, {}, tmp_path, 1.0)
    assert "ALL CHECKS PASSED: 1/1 passed, 1 not applicable" in page
    i = page.index("Measured states outside a rule")
    assert "late state" in page[i:] and "outside the domain" in page[i:] and "'na'>N/A" in page
    page = render_html("t", [], [], {}, {}, tmp_path, 1.0)
    assert "NO CHECKS" in page and "FAILED" not in page
