"""``rmthess simulate`` CLI."""

import json

import pytest

from rmthess.cli import main
from rmthess.simulate.frobenius import block_frobenius

KEYS = [
    "case", "C", "d", "N", "m", "gamma", "trials", "seed", "F_diag", "F_diag_se", "F_off",
    "F_off_se", "ratio", "ratio_se", "n_diag", "n_off", "method", "unbiased", "init",
    "activation", "device", "dtype", "seconds", "flops",
]  # fmt: skip


def test_json_records_match_library(capsys):
    rc = main(
        "simulate --case hidden-ce --C 4,6 --d 16 --N 24 --m 3 --trials 3 --seed 5 "
        "--device cpu --json".split()
    )
    assert rc == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["C"] for r in recs] == [4, 6]
    for r in recs:
        assert list(r) == KEYS
        lib = block_frobenius("hidden-ce", r["C"], 16, 24, 3, trials=3, seed=5, device="cpu")
        assert r["F_diag"] == pytest.approx(lib.F_diag, rel=1e-12)
        assert r["F_off_se"] == pytest.approx(lib.F_off_se, rel=1e-12)
        assert r["ratio"] == pytest.approx(lib.ratio, rel=1e-12)


def test_table_and_csv(capsys, tmp_path):
    out = tmp_path / "t.csv"
    rc = main(
        "simulate --case linear-ce --C 4,8 --d 8 --N 16 --trials 2 --device cpu --csv".split()
        + [str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "F_diag" in text and "ratio" in text
    import pandas as pd

    df = pd.read_csv(out)
    assert list(df["C"]) == [4, 8] and list(df.columns) == KEYS
    lib = block_frobenius("linear-ce", 8, 8, 16, trials=2, seed=0, device="cpu")
    assert df["ratio_se"].iloc[1] == pytest.approx(lib.ratio_se, rel=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary file left


@pytest.mark.parametrize(
    "argv, match",
    [
        ("--case nope", "case"),
        ("--case linear-ce --d 0", "d must be"),
        ("--case linear-ce --N x", "N must be"),
        ("--case linear-ce --C 1,4", "C must be"),
        ("--case linear-ce --trials 0", "trials"),
        ("--case hidden-ce", "m "),
        ("--case hidden-ce --m 2.5", "m must be"),
        ("--case hidden-ce --m 1", "m must be an integer >= 2"),
        ("--case output-ce --m 0", "m must be an integer >= 1"),
        ("--case linear-ce --device tpu", "device"),
        ("--case linear-ce --dtype half", "dtype"),
        ("--case hidden-ce --m 3 --unbiased", "output"),
    ],
)
def test_bad_input_exits_2_with_message(argv, match, capsys):
    rc = main(["simulate", *argv.split()])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error" in err and match in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cuda_absent_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert main("simulate --case linear-ce --device cuda".split()) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and len(err.strip().splitlines()) == 1


def test_unbiased_flag_matches_library(capsys):
    argv = "simulate --case output-ce --C 4 --d 16 --N 24 --m 3 --trials 2 --seed 1 --device cpu"
    assert main([*argv.split(), "--unbiased", "--json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    lib = block_frobenius("output-ce", 4, 16, 24, 3, trials=2, seed=1, device="cpu", unbiased=True)
    plain = block_frobenius("output-ce", 4, 16, 24, 3, trials=2, seed=1, device="cpu")
    assert rec["F_diag"] == pytest.approx(lib.F_diag, rel=1e-12)
    assert rec["F_diag"] != pytest.approx(plain.F_diag, rel=1e-3)


def test_init_option(capsys):
    argv = "simulate --case linear-ce --C 4 --d 24 --N 48 --trials 2 --device cpu --json"
    assert main([*argv.split(), "--init", "torch-default"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    ref = block_frobenius("linear-ce", 4, 24, 48, trials=2, device="cpu", init="torch-default")
    assert rec["init"] == "torch-default" and rec["F_diag"] == ref.F_diag
    assert main([*argv.split(), "--init", "bogus"]) == 2
    assert "--init" in capsys.readouterr().err
