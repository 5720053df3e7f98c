"""``rmthess theory`` command line."""

import json
import subprocess
import sys

import pytest

from rmthess.cli import main
from rmthess.theory.frobenius import frobenius_limits

KEYS = {"case", "C", "gamma", "m", "F_diag", "F_off", "ratio", "ratio_se", "method"}


def test_json_linear_ce(capsys):
    assert (
        main(["theory", "--case", "linear-ce", "--C", "10,100,1e3", "--gamma", "0.5", "--json"])
        == 0
    )
    recs = json.loads(capsys.readouterr().out)
    assert [r["C"] for r in recs] == [10, 100, 1000]
    for r in recs:
        assert KEYS <= set(r)
        ref = frobenius_limits("linear-ce", r["C"], 0.5)
        assert r["F_diag"] == ref.F_diag and r["F_off"] == ref.F_off
        assert r["method"] == "quadrature" and r["ratio_se"] == 0.0 and r["m"] is None


def test_table_and_asymptotic(capsys):
    assert (
        main(
            [
                "theory",
                "--case",
                "hidden-mse",
                "--C",
                "10",
                "--gamma",
                "1",
                "--m",
                "4",
                "--asymptotic",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "F_diag" in out and "closed-form" in out and "large C" in out


def test_monte_carlo_options(capsys):
    argv = [
        "theory",
        "--case",
        "output-ce",
        "--C",
        "5",
        "--gamma",
        "0.5",
        "--m",
        "3",
        "--samples",
        "30",
        "--inner",
        "8",
        "--seed",
        "3",
        "--json",
    ]
    assert main(argv) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["method"] == "monte-carlo" and rec["n_samples"] == 30 and rec["seed"] == 3
    assert rec["F_diag_se"] > 0 and rec["ratio_se"] > 0


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--case", "linear-ce", "--C", "1", "--gamma", "0.5"], "C"),
        (["--case", "linear-ce", "--C", "2.5", "--gamma", "0.5"], "C"),
        (["--case", "linear-ce", "--C", "10", "--gamma", "0"], "gamma"),
        (["--case", "linear-ce", "--C", "10", "--gamma", "inf"], "gamma"),
        (["--case", "linear-ce", "--C", "10", "--gamma", "abc"], "gamma"),
        (["--case", "quadratic", "--C", "10", "--gamma", "0.5"], "linear-ce"),
        (["--case", "hidden-ce", "--C", "10", "--gamma", "0.5"], "m"),
        (["--case", "hidden-ce", "--C", "10", "--gamma", "0.5", "--m", "0"], "m"),
        (["--case", "output-ce", "--C", "10", "--gamma", "0.5", "--m", "x"], "m"),
        (["--case", "foo", "--C", "10", "--gamma", "0.5"], "invalid choice: 'foo'"),
        (["--case", "linear-ce", "--C", "10", "--gamma", "0.5", "--m", "8"], "does not apply"),
        (["--case", "linear-ce", "--C", "10", "--gamma", "0.5", "--samples", "50"], "only"),
        (
            ["--case", "hidden-mse", "--C", "10", "--gamma", "0.5", "--m", "4", "--inner", "9"],
            "only",
        ),
        (
            ["--case", "hidden-ce", "--C", "10", "--gamma", "0.5", "--m", "3", "--samples", "1"],
            "samples",
        ),
        (["--case", "linear-ce", "--C", "10", "--gamma", "0.5", "--seed", "-1"], "seed"),
        (
            ["--case", "output-ce", "--C", "10", "--gamma", "0.5", "--m", "2", "--asymptotic"],
            "diverge",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, extra, word):
    assert main(["theory", *extra]) == 2
    err = capsys.readouterr().err
    assert "error" in err and word in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_subprocess_roundtrip():
    cmd = [
        sys.executable,
        "-m",
        "rmthess",
        "theory",
        "--case",
        "linear-ce",
        "--C",
        "2,1e7",
        "--gamma",
        "0.5",
        "--json",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    recs = json.loads(res.stdout)
    assert recs[0]["F_diag"] == pytest.approx(recs[0]["F_off"], rel=1e-12)
    assert recs[1]["C"] == 10**7 and recs[1]["F_off"] > 0
    bad = subprocess.run([*cmd[:-1], "--gamma", "-1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "gamma" in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "rmthess theory: error: argument --gamma: gamma must be a finite number > 0, got -1.0"
    ]


@pytest.mark.parametrize(
    "case, m, want",
    [
        (
            "hidden-mse",
            "4",
            ["F_diag ~ 0.03125 * C^2 (grows)", "F_off ~ 0.01171875 * C^1 (grows)"],
        ),
        ("linear-mse", None, ["F_diag -> 1.5 (constant in C)", "F_off = 0 exactly"]),
        ("output-mse", "4", ["F_off = 0 exactly"]),
        ("linear-ce", None, ["F_diag ~ 2.359140914 * C^-2", "F_off ~ 4.694528049 * C^-4"]),
    ],
)
def test_asymptotic_line_reads_as_math(capsys, case, m, want):
    """No 'C^--2', 'C^-0' or '0 * C^-inf' (what the first version printed)."""
    argv = ["theory", "--case", case, "--C", "10", "--gamma", "0.5", "--asymptotic"]
    assert main(argv + (["--m", m] if m else [])) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("large C")][0]
    for w in want:
        assert w in line
    for bad in ("C^--", "C^-0", "C^0", "inf"):
        assert bad not in line


def test_init_option(capsys):
    argv = "theory --case linear-ce --C 10 --gamma 0.5 --init torch-default --json".split()
    assert main(argv) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    ref = frobenius_limits("linear-ce", 10, 0.5, init="torch-default")
    assert rec["init"] == "torch-default" and rec["F_diag"] == ref.F_diag
    assert ref.F_diag != frobenius_limits("linear-ce", 10, 0.5).F_diag
    assert main("theory --case hidden-mse --C 10 --gamma 0.5 --m 4 --init 2".split()) == 0
    assert "init=sigma=2" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["xavier", "0", "-1"])
def test_init_option_bad(bad, capsys):
    argv = ["theory", "--case", "linear-ce", "--C", "10", "--gamma", "0.5", "--init", bad]
    assert main(argv) == 2
    assert "--init" in capsys.readouterr().err


def test_init_asymptotic_refused_before_work(capsys):
    argv = "theory --case hidden-ce --C 10 --gamma 0.5 --m 8 --init torch-default --asymptotic"
    assert main(argv.split()) == 2
    assert "torch-default" in capsys.readouterr().err


# ------------------------------------------------------------------- --layer-spectrum
def _layer(*extra):
    return ["theory", "--case", "linear-ce", "--layer-spectrum", "--gamma", "0.5", *extra]


def test_layer_spectrum_json_linear_ce(capsys):
    import numpy as np
    from scipy.special import softmax

    assert main(_layer("--C", "2,5", "--n-atoms", "2048", "--json")) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["C"] for r in recs] == [2, 5]
    rng = np.random.default_rng(7)
    for r in recs:
        C = r["C"]
        assert r["zero_mass"] == pytest.approx(1 / C, abs=1e-15)
        assert r["KS"] == pytest.approx(1 / C, abs=1e-9)  # the atom: blocks have none
        assert r["zero_mass_bd"] == 0.0 and r["n_atoms"] == 2048
        # M2 = F_diag + (C-1) F_off: closed form/quadrature vs the law's QMC atoms
        ref = frobenius_limits("linear-ce", C, 0.5)
        assert r["M2_frobenius"] == pytest.approx(ref.F_diag + (C - 1) * ref.F_off, rel=1e-14)
        assert r["M2"] == pytest.approx(r["M2_frobenius"], rel=2e-3)
        # M1 = E tr A / C = (1 - E|p|^2) / C, by plain Monte Carlo of the softmax
        p = softmax(rng.normal(size=(200_000, C)), axis=1)
        v = (1 - (p**2).sum(axis=1)) / C
        assert abs(r["M1"] - v.mean()) < 4 * v.std() / np.sqrt(v.size) + 1e-3 * v.mean()
        lo, hi = r["support"][0][0], r["support"][-1][1]
        assert 0 < lo < hi == pytest.approx(r["top_edge"])
        assert r["edge_gap_rel"] == pytest.approx(r["top_edge"] / r["top_edge_bd"] - 1)


def test_layer_spectrum_table_and_figure(capsys, tmp_path):
    png = tmp_path / "layer.png"
    assert main(_layer("--C", "3", "--n-atoms", "512", "--out", str(png))) == 0
    out = capsys.readouterr().out
    assert "--layer-spectrum: case=linear-ce" in out and "n_atoms=512" in out
    assert "M2_frobenius" in out and "support C=3: [" in out and str(png) in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_layer_spectrum_hidden(capsys):
    argv = "theory --case hidden-mse --layer-spectrum --C 3 --m 2 --gamma 0.5 --n-atoms 64"
    assert main([*argv.split(), "--json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["m"] == 2 and "M2_frobenius" not in rec  # conditional on V: no identity
    assert rec["M1"] > 0 and rec["top_edge"] > 0 and rec["W1"] >= 0


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--C", "5", "--asymptotic"], "--asymptotic does not apply"),
        (["--C", "5", "--samples", "50"], "--samples does not apply"),
        (["--C", "5", "--out", "x.txt"], ".png"),
        (["--C", "5", "--out", "/nonexistent_dir_rmthess/x.png"], "does not exist"),
        (["--C", "5", "--m", "4"], "m does not apply"),
        (["--C", "5", "--n-atoms", "0"], "n-atoms"),
        (["--C", "5,1000"], "n_atoms * C^3"),  # the second C refused before the first runs
    ],
)
def test_layer_spectrum_bad_input(capsys, extra, word):
    assert main(_layer(*extra)) == 2
    err = capsys.readouterr().err
    assert "error" in err and word in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, word",
    [
        ("--case output-ce --m 4 --layer-spectrum", "no whole-layer law"),
        ("--case hidden-ce --layer-spectrum", "needs the hidden width m"),
        ("--case linear-ce --n-atoms 64", "only with --layer-spectrum"),
        ("--case linear-ce --out a.png", "only with --layer-spectrum"),
    ],
)
def test_layer_spectrum_flags_refused(capsys, argv, word):
    assert main(["theory", *argv.split(), "--C", "5", "--gamma", "0.5"]) == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1
