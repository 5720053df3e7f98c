"""rmthess.sweep: specs and hashes, engines agree, resumable store, failures, corruption."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import _sweep_tasks
import numpy as np
import pytest

from rmthess.sweep import config_hash, config_seed, load, load_spec, run_sweep, status
from rmthess.sweep.store import TIMING_COLUMNS

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
TESTS = os.path.dirname(os.path.abspath(__file__))  # tests/sweep, where _sweep_tasks.py is
ROOT = os.path.dirname(os.path.dirname(TESTS))
ENV["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS, ENV.get("PYTHONPATH", "")])
CLI = [sys.executable, os.path.join(TESTS, "_sweep_tasks.py")]  # sweep CLI + test tasks


@pytest.fixture(autouse=True)
def _test_tasks():
    """The test-only tasks _echo and _fail_if, registered for each test (not in rmthess)."""
    with _sweep_tasks.registered():
        yield


def echo_spec(n=8, sleep=0.0, **extra):
    return {"task": "_echo", "grid": {"x": list(range(n)), "sleep": [sleep], **extra}}


def frame(store):
    return load(store).drop(columns=list(TIMING_COLUMNS))


# ---------------------------------------------------------------------------- spec
def test_hash_is_sha256_of_canonical_json_and_stable_across_processes():
    cfg = {"case": "hidden-mse", "C": 4, "gamma": 0.5, "m": 8}
    # independent route: hashlib on hand-written canonical JSON
    text = '["theory",{"C":4,"case":"hidden-mse","gamma":0.5,"m":8}]'
    assert config_hash("theory", cfg) == hashlib.sha256(text.encode()).hexdigest()[:16]
    spec = load_spec({"task": "theory", "grid": {"case": "hidden-mse", "C": 4.0, "gamma": 0.5,
                                                  "m": 8}})  # fmt: skip
    assert spec.configs[0].config == cfg  # C=4.0 normalized to 4: same hash
    code = (
        "from rmthess.sweep import config_hash, config_seed;"
        f"h = config_hash('theory', {cfg!r}); print(h, config_seed(h))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], env=dict(ENV, PYTHONHASHSEED=s), check=True,
            capture_output=True, text=True,
        ).stdout.split()[0:2].__repr__()
        for s in ("1", "2")
    }  # fmt: skip
    h = config_hash("theory", cfg)
    assert outs == {[h, str(config_seed(h))].__repr__()}
    assert 0 <= config_seed(h) < 2**63


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"task": "nope", "grid": {"x": [1]}}, "unknown task"),
        ({"task": "theory", "grid": {"case": ["linear-xx"], "C": [2], "gamma": [1]}}, "case"),
        ({"task": "theory", "grid": {"case": ["linear-ce"], "C": [1, 2], "gamma": [1]}}, "C"),
        ({"task": "theory", "grid": {"case": ["linear-ce"], "C": [2]}}, "gamma"),
        ({"task": "theory", "grid": {"case": ["hidden-ce"], "C": [2], "gamma": [1]}}, "m"),
        ({"task": "theory", "grid": {"case": [], "C": [2], "gamma": [1]}}, "empty"),
        ({"task": "theory", "grid": {"case": "linear-ce", "C": 2, "gamma": -1}}, "gamma"),
        ({"task": "theory", "grid": {"case": "linear-ce", "C": 2, "gamma": 1, "q": 1}}, "q"),
        ({"task": "theory", "configs": [{"case": "linear-ce", "C": 2, "gamma": 1, "m": 4}]}, "m"),
        ({"task": "theory", "gird": {}}, "gird"),
        ({"task": "theory"}, "no configuration"),
        ({"task": "simulate", "grid": {"case": "linear-ce", "C": 2, "d": 0, "N": 4}}, "d"),
        (
            {"task": "theory", "grid": {"case": "linear-ce", "C": 2, "gamma": 1, "init": "x"}},
            "init",
        ),
        ({"task": "layer_gap", "grid": {"case": "output-ce", "C": 2, "gamma": 1, "m": 4}}, "layer"),
        (
            {
                "task": "theory",
                "grid": {"case": "linear-ce", "C": 2, "gamma": 1, "activation": "tanh"},
            },
            "activation does not apply",
        ),  # fmt: skip
        (
            {
                "task": "theory",
                "grid": {
                    "case": "hidden-ce",
                    "C": 2,
                    "gamma": 1,
                    "m": 4,
                    "activation": "tanh",
                    "tol": 1e-5,
                },
            },
            "tol does not apply",
        ),  # fmt: skip
        (
            {
                "task": "simulate",
                "grid": {
                    "case": "hidden-ce",
                    "C": 2,
                    "d": 4,
                    "N": 4,
                    "m": 2,
                    "activation": "swish",
                },
            },
            "activation",
        ),  # fmt: skip
    ],
)
def test_spec_validation_errors(spec, match, tmp_path):
    with pytest.raises((ValueError, TypeError), match=match):
        run_sweep(spec, tmp_path / "s")
    assert not (tmp_path / "s").exists()  # refused before the store is even created


def test_grid_m_dropped_for_linear_and_toml(tmp_path):
    toml = tmp_path / "g.toml"
    toml.write_text(
        'task = "theory"\n[grid]\ncase = ["linear-mse", "hidden-mse"]\nC = [2, 4]\n'
        'gamma = [0.5]\nm = [4, 8]\n[[configs]]\ncase = "linear-ce"\nC = 3\ngamma = 0.5\n'
    )
    spec = load_spec(toml)
    cfgs = [c.config for c in spec.configs]
    assert len(cfgs) == 2 + 4 + 1  # linear-mse: m dropped, m=4/8 coincide -> kept once
    assert all("m" not in c for c in cfgs if c["case"].startswith("linear"))
    res = run_sweep(toml, tmp_path / "s")
    from rmthess.theory import frobenius_limits

    df = load(tmp_path / "s")
    row = df[(df.case == "hidden-mse") & (df.C == 4) & (df.m == 8)].iloc[0]
    assert row.ratio == frobenius_limits("hidden-mse", 4, 0.5, 8).ratio
    assert res.done == 7 and len(df) == 7


def test_layer_gap_task_and_init_key(tmp_path):
    # the store's records equal direct calls (independent: no sweep machinery), per init
    from rmthess.theory import block_diagonal_gap, frobenius_limits

    spec = {
        "task": "layer_gap",
        "grid": {"case": "linear-ce", "C": [3, 5], "gamma": 0.5, "n_atoms": 256},
        "configs": [{"case": "linear-ce", "C": 3, "gamma": 0.5, "n_atoms": 256, "init": 0.5}],
    }
    run_sweep(spec, tmp_path / "g")
    df = load(tmp_path / "g").sort_values(["C", "init"], na_position="first")
    for row in df.itertuples():  # (iterrows would cast the 63-bit seeds to float)
        init = 0.5 if row.init in (0.5, "sigma=0.5") else "lecun"  # config key or record
        ref = block_diagonal_gap("linear-ce", row.C, 0.5, n_atoms=256, init=init, seed=row.seed)
        assert row.W1 == pytest.approx(ref.W1, rel=1e-12) and row.KS == ref.KS
    assert len(df) == 3 and (df["init"] == "lecun").sum() == 2
    theory = {"task": "theory", "grid": {"case": "linear-ce", "C": 5, "gamma": 0.5}}
    theory["grid"]["init"] = ["lecun", "torch-default"]
    run_sweep(theory, tmp_path / "t")
    dt = load(tmp_path / "t").set_index("init")
    for init in ("lecun", "torch-default"):
        assert dt.loc[init, "ratio"] == frobenius_limits("linear-ce", 5, 0.5, init=init).ratio


def test_depth_task_records_every_layer(tmp_path):
    """The store's records equal direct depth_frobenius calls at the recorded seeds."""
    from rmthess.theory import depth_frobenius

    spec = {
        "task": "depth",
        "grid": {"loss": "ce", "C": [3, 5], "gamma": 0.5, "widths": ["6x4", "6"]},
        "configs": [{"loss": "mse", "C": 3, "gamma": 0.5, "widths": "6X4", "samples": 20}],
    }
    spec["grid"]["samples"] = 20
    run_sweep(spec, tmp_path / "d", progress=False)
    df = load(tmp_path / "d")
    assert len(df) == 5 and set(df["widths"]) == {"6x4", "6"}
    for row in df.itertuples():
        ws = tuple(int(w) for w in row.widths.split("x"))
        ref = depth_frobenius(row.loss, row.C, 0.5, ws, samples=20, seed=row.seed)
        assert row.ratio_output == ref.ratio[-1] and row.F_diag_hidden1 == ref.F_diag[0]
    with pytest.raises(ValueError, match="widths"):
        run_sweep({"task": "depth", "grid": {"loss": "ce", "C": 3, "gamma": 1, "widths": "ax"}},
                  tmp_path / "e")  # fmt: skip


# ---------------------------------------------------------------------------- engines
def test_serial_processes_dask_identical(tmp_path):
    spec = echo_spec(8)
    run_sweep(spec, tmp_path / "serial", engine="serial")
    run_sweep(spec, tmp_path / "proc", engine="processes", workers=2, chunk=3)
    run_sweep(spec, tmp_path / "dask", engine="dask", workers=2)
    a = frame(tmp_path / "serial")
    assert len(a) == 8 and a["double"].tolist() == [2 * x for x in range(8)]
    assert a["draw"].nunique() == 8  # seeds differ between configurations
    for other in ("proc", "dask"):
        assert frame(tmp_path / other).equals(a), other


def test_dask_worker_killed_mid_task(tmp_path):
    marker = tmp_path / "died"
    spec = echo_spec(6, 0.1)
    spec["configs"] = [{"x": 99, "die_once": str(marker)}]
    res = run_sweep(spec, tmp_path / "s", engine="dask", workers=2)
    assert marker.exists()  # a worker really died running the task
    assert res.done == 7 and res.failed == 0
    assert sorted(load(tmp_path / "s")["x"]) == [0, 1, 2, 3, 4, 5, 99]


def test_process_pool_worker_killed(tmp_path):
    marker = tmp_path / "died"
    spec = echo_spec(4)
    spec["configs"] = [{"x": 99, "die_once": str(marker)}]
    res = run_sweep(spec, tmp_path / "s", engine="processes", workers=2)
    assert marker.exists() and res.done == 5 and res.failed == 0


# ---------------------------------------------------------------------------- failures
def test_failing_configuration_retried_and_recorded(tmp_path):
    spec = {"task": "_fail_if", "grid": {"x": [0, 1, 2, 3]}, "configs": [{"x": 7, "fail": True}]}
    res = run_sweep(spec, tmp_path / "s", retries=2)
    assert (res.done, res.failed) == (4, 1)
    (fail,) = (tmp_path / "s" / "failures").iterdir()
    entry = json.loads(fail.read_text())
    assert entry["attempts"] == 3 and "asked to fail for x=7" in entry["message"]
    assert "RuntimeError" in entry["traceback"]
    st = status(tmp_path / "s")
    assert (st.total, st.done, st.failed, st.pending) == (5, 4, 1, 0)
    assert sorted(load(tmp_path / "s")["x"]) == [0, 1, 2, 3]


# ---------------------------------------------------------------------------- store
def test_corrupt_results_moved_aside_and_recomputed(tmp_path):
    store = tmp_path / "s"
    run_sweep(echo_spec(5), store)
    good = frame(store)
    files = sorted((store / "results").iterdir())
    files[0].write_text(files[0].read_text()[:40])  # half-written
    d = json.loads(files[1].read_text())
    d["record"]["double"] = -1.0  # checksum mismatch
    files[1].write_text(json.dumps(d))
    d = json.loads(files[2].read_text())
    files[2].unlink()
    (store / "results" / ("0" * 16 + ".json")).write_text(json.dumps(d))  # hash mismatch
    st = status(store)
    assert (st.done, st.pending, st.corrupt, st.quarantined) == (2, 3, 3, 0)
    with pytest.warns(RuntimeWarning, match="3 invalid result file"):
        df = load(store)  # never loads them; a reader moves nothing
    assert len(df) == 2 and -1.0 not in df["double"].tolist()
    assert len(df.attrs["corrupt"]) == 3 and not list((store / "corrupt").iterdir())
    res = run_sweep(echo_spec(5), store)  # the driver moves them aside and recomputes
    assert (res.skipped, res.done, res.corrupt) == (2, 3, 3)
    assert len(list((store / "corrupt").iterdir())) == 3
    st = status(store)  # quarantined files are no longer counted as corrupt
    assert (st.done, st.pending, st.corrupt, st.quarantined) == (5, 0, 0, 3)
    assert frame(store).equals(good)


def test_manifest_refuses_other_grid_unless_extend_or_force(tmp_path):
    store = tmp_path / "s"
    run_sweep(echo_spec(2), store)
    with pytest.raises(ValueError, match="extend"):
        run_sweep(echo_spec(3), store)
    assert run_sweep(echo_spec(3), store, extend=True).skipped == 2
    assert status(store).total == 3
    other = {"task": "_fail_if", "grid": {"x": [1]}}
    with pytest.raises(ValueError, match="force"):
        run_sweep(other, store)
    assert run_sweep(other, store, force=True).done == 1


def test_driver_sigkill_then_resume(tmp_path):
    toml = tmp_path / "g.toml"
    toml.write_text('task = "_echo"\n[grid]\nx = [' + ", ".join(map(str, range(16))) + "]\n"
                    "sleep = [0.2]\n")  # fmt: skip
    store = tmp_path / "s"
    cmd = CLI + ["run", str(toml), "--store", str(store)]
    cmd += ["--no-progress"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = store / "results"
    t0 = time.monotonic()
    while not (results.is_dir() and len(list(results.glob("*.json"))) >= 4):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - t0 < 30
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: (p.stat().st_mtime_ns, json.loads(p.read_text())["finished"])
              for p in results.glob("*.json")}  # fmt: skip
    assert 4 <= len(before) < 16
    out = subprocess.run(cmd + ["--json"], env=ENV, capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    assert summary["skipped"] == len(before) and summary["done"] == 16 - len(before)
    for name, (mtime, finished) in before.items():  # not recomputed
        p = results / name
        assert (p.stat().st_mtime_ns, json.loads(p.read_text())["finished"]) == (mtime, finished)
    df = frame(store)
    assert len(df) == 16 and df["hash"].is_unique
    run_sweep(toml, tmp_path / "ref", engine="processes", workers=2)
    assert df.equals(frame(tmp_path / "ref"))


def test_cli_status_and_plot(tmp_path):
    from rmthess.sweep.cli import main

    spec = {"task": "theory", "grid": {"case": ["linear-mse", "hidden-mse"], "C": [2, 8, 64],
                                       "gamma": [0.5], "m": [8]}}  # fmt: skip
    run_sweep(spec, tmp_path / "s")
    assert main(["status", str(tmp_path / "s"), "--json"]) == 0
    out = tmp_path / "r.png"
    assert main(["plot", str(tmp_path / "s"), "--y", "F_diag", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    assert main(["plot", str(tmp_path / "s"), "--y", "nope", "--out", str(out)]) == 2
    assert main(["status", str(tmp_path / "missing")]) == 2


def test_report_theory_section_reads_a_store(tmp_path, monkeypatch):
    """The report takes the limits a theory sweep stored instead of recomputing them."""
    import rmthess.theory as th
    from rmthess.report import get_config
    from rmthess.report.sections import theory as sec
    from rmthess.sweep import run_sweep

    cfg = get_config("tiny", cases=("linear-ce", "hidden-mse"))
    Cs = {c: sec.C_grid(cfg, c) for c in cfg.cases}
    spec = {
        "task": "theory",
        "grid": {"case": ["linear-ce"], "C": Cs["linear-ce"], "gamma": [cfg.gamma]},
    }
    store = tmp_path / "store"
    run_sweep(spec, store, engine="serial", progress=False)
    plain = sec.compute(cfg)
    calls = []
    real = th.frobenius_limits

    def spy(case, *a, **k):
        calls.append(case)
        return real(case, *a, **k)

    monkeypatch.setattr(th, "frobenius_limits", spy)
    res = sec.compute(replace_store(cfg, store))
    assert "linear-ce" not in calls and "hidden-mse" in calls  # stored: not recomputed
    got = res.limits.set_index(["case", "C"])
    ref = plain.limits.set_index(["case", "C"])
    assert (got.loc["linear-ce", "source"] == "store").all()
    assert (got.loc["hidden-mse", "source"] == "computed").all()
    for q in ("F_diag", "F_off", "ratio"):
        assert np.allclose(got[q].astype(float), ref.loc[got.index, q].astype(float), rtol=1e-12)


def replace_store(cfg, store):
    from dataclasses import replace

    return replace(cfg, store=str(store))


def test_sweep_grid_toml_without_run_subcommand(tmp_path, capsys):
    """`rmthess sweep GRID.toml --store DIR` (the issue's form) is `rmthess sweep run ...`."""
    from rmthess.cli import main

    toml = tmp_path / "g.toml"
    toml.write_text('task = "theory"\n[grid]\ncase = ["linear-mse"]\nC = [2, 3]\ngamma = [0.5]\n')
    store = tmp_path / "s"
    assert main(["sweep", str(toml), "--store", str(store), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 2
    assert len(load(store)) == 2


@pytest.mark.parametrize("name", ["sweep_theory.toml", "sweep_simulate.toml", "sweep_depth.toml"])
def test_example_specs_load(name):
    """The shipped examples are valid specs (every configuration passes its validator)."""
    from pathlib import Path

    spec = load_spec(Path(__file__).parents[2] / "examples" / name)
    assert len(spec.configs) > 0


def test_theory_and_simulate_tasks_take_an_activation():
    """The ``activation`` key reaches frobenius_limits / block_frobenius (same numbers as the
    direct calls; the name normalised)."""
    from rmthess.simulate import block_frobenius
    from rmthess.sweep.tasks import simulate_task, theory_task
    from rmthess.theory import frobenius_limits

    rec = theory_task({"case": "output-mse", "C": 3, "gamma": 0.5, "m": 4,
                       "activation": "tanh"}, seed=0)  # fmt: skip
    assert rec["F_diag"] == frobenius_limits("output-mse", 3, 0.5, 4, activation="tanh").F_diag
    rec = simulate_task({"case": "hidden-ce", "C": 3, "d": 10, "N": 20, "m": 3, "trials": 2,
                         "activation": "gelu"}, seed=5)  # fmt: skip
    ref = block_frobenius("hidden-ce", 3, 10, 20, 3, trials=2, seed=5, device="cpu",
                          activation="gelu")  # fmt: skip
    assert rec["activation"] == "gelu" and rec["F_diag"] == ref.F_diag
