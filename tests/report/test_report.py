"""``rmthess report``: outputs, output-directory safety, interruption, devices, checks."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from rmthess._outputs import STAGING_PREFIX, prepare_out_dir
from rmthess.cli import main
from rmthess.report import runner
from rmthess.report.checks import (
    Check,
    all_passed,
    check_abs,
    check_close,
    check_error,
    check_lower,
    check_upper,
    exit_code,
    format_table,
)
from rmthess.report.config import MODES, get_config

FIGURES = {
    "frobenius_vs_C.png",
    "ratio_decay.png",
    "block_spectra.png",
    "heatmap_hidden.png",
    "heatmap_full.png",
    "dynamics.png",
    "real_hessian.png",
    "real_slq.png",
    "clusters.png",
    "depth.png",
    "theory_on_data.png",
    "theory_on_data_hidden.png",
    "landscape_delta.png",
    "layer_spectra.png",
    "layer_gap.png",
}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    res = runner.run_report(get_config("tiny"), out, device="cpu", progress=False)
    return res


def test_tiny_report_writes_everything(tiny_report):
    out = tiny_report.out
    assert (out / "index.html").is_file()
    assert {p.name for p in (out / "figures").iterdir()} == FIGURES
    for p in (out / "figures").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = {p.name for p in (out / "tables").iterdir()}
    assert {
        "checks.csv",
        "theory_limits.csv",
        "simulated_frobenius.csv",
        "decay_fits.csv",
        "spectra.csv",
        "heatmaps.csv",
        "dynamics.csv",
        "real_ratios.csv",
        "real_top_eigs.csv",
        "real_track.csv",
        "clusters.csv",
        "depth.csv",
        "theory_on_data.csv",
        "landscape_fits.csv",
        "landscape_audit.csv",
    } <= tables
    assert not [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)  # viewable offline
    assert "<script" not in html and "http://" not in html and "https://" not in html
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["mode"] == "tiny"
    assert meta["environment"]["device"] == "cpu"
    assert "torch" in meta["environment"]


def test_tiny_report_every_section_ran(tiny_report):
    # a section that raised would appear as a failed "section NAME ran" check
    broken = [c for c in tiny_report.checks if c.name.startswith("section ")]
    assert broken == [], [c.detail for c in broken]
    sections = {c.section for c in tiny_report.checks}
    assert {
        "frobenius",
        "decay",
        "spectra",
        "layer",
        "heatmaps",
        "dynamics",
        "real-data",
    } <= sections
    assert {"clusters", "theory-on-data", "depth", "landscape"} <= sections
    # the MSE cases are exactly block diagonal whatever the size
    zero = [c for c in tiny_report.checks if "exactly block diagonal" in c.name]
    assert len(zero) == 2 and all(c.passed and c.measured == 0.0 for c in zero)


def test_cli_refuses_non_empty_out(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    rc = main(["report", "--mode", "tiny", "--out", str(out), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err and "not an output of 'rmthess report'" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_force_overwrites_and_drops_stale_index(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "index.html").write_text("<html>old report claiming success</html>")
    (out / "keep.txt").write_text("user data")
    rc = main(
        [
            "report",
            "--mode",
            "tiny",
            "--out",
            str(out),
            "--force",
            "--no-progress",
            "--sections",
            "spectra",
        ]
    )
    assert rc in (0, 1)
    assert "old report" not in (out / "index.html").read_text()
    assert (out / "keep.txt").read_text() == "user data"
    assert "checks passed" in capsys.readouterr().out


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_cli_refuses_non_writable_out(tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        rc = main(["report", "--mode", "tiny", "--out", str(out), "--no-progress"])
    finally:
        out.chmod(stat.S_IRWXU)
    assert rc == 2
    assert "not writable" in capsys.readouterr().err


def test_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        prepare_out_dir(f)


def test_cuda_unavailable_is_a_clear_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "cuda"
    rc = main(["report", "--mode", "tiny", "--device", "cuda", "--out", str(out)])
    assert rc == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not out.exists()  # refused before anything was written


def test_unknown_device_and_section(tmp_path, capsys):
    assert main(["report", "--device", "tpu", "--out", str(tmp_path / "a")]) == 2
    assert "device" in capsys.readouterr().err
    assert main(["report", "--sections", "nope", "--out", str(tmp_path / "b")]) == 2
    assert "unknown report section" in capsys.readouterr().err


def _fake_section(name, compute, needs=()):
    """A stand-in section module (the interface of rmthess.report.sections)."""
    from types import SimpleNamespace

    from rmthess.report.html import Section

    return SimpleNamespace(
        NAME=name,
        NEEDS=needs,
        units=lambda cfg: 1,
        compute=compute,
        checks=lambda result: [],
        render=lambda result, out: Section(name),
    )


def _boom(exc):
    def compute(cfg, **kw):
        raise exc

    return compute


def test_interrupted_run_leaves_no_index(tmp_path, monkeypatch):
    from rmthess.report.sections import spectra

    plan = [spectra, _fake_section("dynamics", _boom(KeyboardInterrupt()))]
    monkeypatch.setattr(runner, "plan_sections", lambda names: (plan, []))
    out = tmp_path / "int"
    with pytest.raises(KeyboardInterrupt):
        runner.run_report(get_config("tiny"), out, device="cpu", progress=False)
    assert not out.exists()  # staging and the directory it created removed: no half figures
    rc = main(["report", "--mode", "tiny", "--out", str(tmp_path / "int2"), "--no-progress"])
    assert rc == 130
    assert not (tmp_path / "int2" / "index.html").exists()


def _swallowed_stop(cfg, **kw):
    """What a signal landing in C code that clears errors looks like: the handler ran
    (the stop flag is set), its KeyboardInterrupt was lost and the section then broke."""
    runner.request_stop()
    raise AttributeError("partially imported module has no attribute 'x'")


@pytest.mark.parametrize("where", ["section breaks", "next step", "section returns"])
def test_swallowed_interrupt_still_stops_the_run(tmp_path, monkeypatch, where):
    def quiet(cfg, **kw):  # the stop flag set, the interrupt lost, the section returns
        runner.request_stop()
        return 1

    def two_units(cfg, step, **kw):
        runner.request_stop()
        step("second unit")  # the runner raises here
        raise AssertionError("step() did not honour the stop flag")

    compute = {"section breaks": _swallowed_stop, "next step": two_units}.get(where, quiet)
    plan = [_fake_section("dynamics", compute)]
    monkeypatch.setattr(runner, "plan_sections", lambda names: (plan, []))
    out = tmp_path / "sw"
    try:
        with runner.stop_on_signals(), pytest.raises(KeyboardInterrupt):
            runner.run_report(get_config("tiny"), out, device="cpu", progress=False)
    finally:
        runner._STOP.clear()
    assert not out.exists()
    # the flag is cleared when the block ends: the next run is not stopped by it
    assert not runner._STOP.is_set()


def test_broken_section_is_a_failed_check(tmp_path, monkeypatch):
    plan = [
        _fake_section("dynamics", _boom(RuntimeError("kaput"))),
        _fake_section("after", lambda cfg, **kw: 1, needs=("dynamics",)),
    ]
    monkeypatch.setattr(runner, "plan_sections", lambda names: (plan, []))
    res = runner.run_report(get_config("tiny"), tmp_path / "b", device="cpu", progress=False)
    assert not res.passed
    assert [c.name for c in res.checks] == ["section dynamics ran", "section after ran"]
    assert "kaput" in res.checks[0].detail
    assert "needs section(s) ['dynamics']" in res.checks[1].detail
    assert "CHECK(S) FAILED" in (res.out / "index.html").read_text()


def test_plan_sections_adds_what_a_section_needs():
    def names(plan):
        return [s.NAME for s in plan]

    plan, added = runner.plan_sections(["decay"])
    assert names(plan) == ["theory", "frobenius", "decay"] and added == ["frobenius", "theory"]
    plan, added = runner.plan_sections(["spectra", "theory"])
    assert names(plan) == ["theory", "spectra"] and added == []
    assert len(runner.plan_sections(None)[0]) == 12
    with pytest.raises(ValueError, match="unknown report section"):
        runner.plan_sections(["decay", "nope"])


def test_decay_section_alone_runs_its_inputs(tmp_path, capsys):
    out = tmp_path / "decay"
    rc = main(["report", "--mode", "tiny", "--sections", "decay", "--out", str(out)])
    assert rc in (0, 1)  # tiny sizes: the verdict is not the point
    assert "also running frobenius, theory" in capsys.readouterr().out
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["sections"] == "theory, frobenius, decay"
    assert {c["section"] for c in meta["checks"]} == {"frobenius", "decay"}


def test_report_runs_with_single_threaded_blas(tmp_path, monkeypatch):
    """numpy's BLAS is limited to one thread inside every section (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    seen = []

    def compute(cfg, **kw):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    monkeypatch.setattr(
        runner, "plan_sections", lambda names: ([_fake_section("probe", compute)], [])
    )
    runner.run_report(get_config("tiny"), tmp_path / "t", device="cpu", progress=False)
    if not seen:
        pytest.skip("no BLAS library visible to threadpoolctl")
    assert set(seen) == {1}


def test_config_modes():
    assert set(MODES) == {"tiny", "quick", "default", "full"}
    for mode in MODES:
        cfg = get_config(mode)
        assert cfg.gamma == cfg.d / cfg.N
        assert cfg.m >= 3  # hidden-ce needs m >= 3
        assert min(cfg.Cs) >= 2 and len(cfg.Cs) >= 3
    # the slope-vs-large-C check needs C >= 8 in the default run
    assert min(get_config("default").Cs) >= 8
    with pytest.raises(ValueError, match="unknown mode"):
        get_config("huge")
    with pytest.raises(ValueError, match="unknown report setting"):
        get_config("quick", dd=3)
    assert get_config("quick", seed=5).seed == 5


# ------------------------------------------------------------------------------ checks
def test_check_close_rule():
    ok = check_close("s", "x", 1.05, 1.0, se_measured=0.01, k=4, rel_allowance=0.02)
    assert ok.passed and math.isclose(ok.tolerance, 0.06)
    bad = check_close("s", "x", 1.07, 1.0, se_measured=0.01, k=4, rel_allowance=0.02)
    assert not bad.passed
    # standard errors of both sides combine in quadrature
    assert math.isclose(check_close("s", "x", 0, 0, 3.0, 4.0, k=1).tolerance, 5.0)
    assert not check_close("s", "x", float("nan"), 1.0, 1.0).passed
    assert not check_close("s", "x", 1.0, float("inf"), 1.0).passed


def test_one_sided_and_abs_checks():
    assert check_abs("s", "x", -0.95, -1.0, 0.1).passed
    assert not check_abs("s", "x", -0.85, -1.0, 0.1).passed
    assert check_upper("s", "x", 0.4, 0.5).passed and not check_upper("s", "x", 0.6, 0.5).passed
    assert check_lower("s", "x", 0.6, 0.5).passed and not check_lower("s", "x", 0.4, 0.5).passed
    err = check_error("s", "x", ValueError("bad C"))
    assert not err.passed and "bad C" in err.detail


def test_exit_code_and_table(capsys):
    good = [Check("a", "one", 1.0, 1.0, 0.1, True)]
    assert exit_code(good) == 0
    assert exit_code(good + [Check("a", "two", 2.0, 1.0, 0.1, False)]) == 1
    assert exit_code([]) == 1  # no check is not a pass
    out = capsys.readouterr().out
    assert "FAIL" in out and "1/2 checks passed" in out
    assert not all_passed([]) and all_passed(good)
    assert "PASS" in format_table(good)


def test_wrong_prediction_fails_the_report_check(tiny_report):
    """The checker must catch a theory that is off by 30% at the report's sizes."""
    cfg = get_config("quick")
    from rmthess.simulate.frobenius import block_frobenius
    from rmthess.theory import frobenius_limits

    sim = block_frobenius("linear-ce", 16, cfg.d, cfg.N, trials=cfg.trials, seed=3, device="cpu")
    th = frobenius_limits("linear-ce", 16, cfg.gamma)
    args = dict(k=cfg.k_se, rel_allowance=cfg.rel_allowance)
    assert check_close("t", "right", sim.F_diag, th.F_diag, sim.F_diag_se, **args).passed
    assert not check_close("t", "wrong", sim.F_diag, 1.3 * th.F_diag, sim.F_diag_se, **args).passed


def test_spectra_ks_uses_the_atom_of_the_law():
    """The spectra section's KS distance counts the atom at zero: Wishart eigenvalues with
    d > N against the Marchenko-Pastur law; without an atom it is scipy's kstest."""
    from scipy.stats import kstest

    from rmthess.report.sections.spectra import ks_statistic
    from rmthess.theory import GMPLaw

    rng = np.random.default_rng(0)
    d, N = 400, 200  # gamma = 2: half the eigenvalues are exactly 0 in the limit
    X = rng.normal(size=(d, N))
    ev = np.linalg.eigvalsh(X @ X.T / N)
    ev[np.abs(ev) < 1e-9] = 0.0
    law = GMPLaw([1.0], [1.0], d / N)
    assert law.zero_mass == pytest.approx(0.5, abs=1e-12)
    assert ks_statistic(ev, law) < 0.02
    assert kstest(ev, law.cdf).statistic > 0.45  # scipy takes the law as continuous
    # the same eigenvalues against a wrong law (gamma = 1.5) are rejected
    assert ks_statistic(ev, GMPLaw([1.0], [1.0], 1.5)) > 0.1
    # no atom: identical to scipy's kstest
    X = rng.normal(size=(200, 400))
    ev = np.linalg.eigvalsh(X @ X.T / 400)
    law = GMPLaw([1.0], [1.0], 0.5)
    assert ks_statistic(ev, law) == pytest.approx(kstest(ev, law.cdf).statistic, abs=1e-12)


def test_block_ratio():
    from rmthess.simulate.heatmaps import block_ratio

    K, p = 3, 4
    H = np.kron(np.eye(K), np.ones((p, p)))
    assert block_ratio(H, K, p) == 0.0
    assert math.isclose(block_ratio(np.ones((K * p, K * p)), K, p), 1.0)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_real_signal_leaves_no_index(tmp_path, sig):
    """Ctrl-C (SIGINT) or SIGTERM during a run: exit 130, nothing claiming success."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rmthess",
            "report",
            "--mode",
            "tiny",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the run has started writing
        if out.is_dir() and any(p.name.startswith(STAGING_PREFIX) for p in out.iterdir()):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the report never created its staging directory")
    time.sleep(0.5)
    proc.send_signal(getattr(signal, sig))
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout[-2000:], err[-2000:])
    assert "interrupted" in err
    assert not out.exists() or list(out.iterdir()) == []


def test_entry_leaves_an_interrupted_run_by_os_exit(monkeypatch):
    """rmthess.cli.entry: status 130 ends the process by os._exit(130) (signals ignored, streams
    flushed), so nothing at interpreter exit can turn it into a death by SIGINT; other statuses
    go through sys.exit."""
    import os
    import signal

    import rmthess.cli as cli

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    ignored = []
    monkeypatch.setattr(signal, "signal", lambda sig, h: ignored.append((sig, h)))
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(cli, "main", lambda: 130)
    with pytest.raises(Exited) as info:
        cli.entry()
    assert info.value.args == (130,)
    assert {s for s, h in ignored if h == signal.SIG_IGN} == {signal.SIGINT, signal.SIGTERM}
    monkeypatch.setattr(cli, "main", lambda: 0)
    with pytest.raises(SystemExit) as ok:
        cli.entry()
    assert ok.value.code == 0
