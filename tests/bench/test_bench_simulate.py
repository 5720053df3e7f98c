"""``rmthess bench simulate --quick`` (the full run is measured by hand; see BENCHMARKS.md)."""

import json

import pytest

from rmthess.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def test_quick_bench_json(capsys):
    rc = main("bench simulate --quick --json --device cpu".split())
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["case"] == "linear-ce" and res["device"] == "cpu"
    for row in res["compare"]:
        # both routes computed the same block norms from the same instance
        assert row["max_rel_diff"] < 1e-9
        assert row["gram_s"] > 0 and row["autograd_s"] > 0
        assert row["speedup"] == row["autograd_s"] / row["gram_s"]
    for route in ("gram", "autograd"):
        lg = res["largest"][route]
        assert lg["stopped"]
        assert lg["history"], route
    g = res["gflops"]
    assert g["gram_route_gflops"] > 0 and g["matmul_gflops"] > 0
    assert g["total_flops"] > g["gram_flops"] > 0


def test_quick_bench_table(capsys):
    assert main("bench simulate --quick --device cpu".split()) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "GFLOP/s" in out and "Largest" in out


def test_bench_bad_input(capsys):
    assert main("bench simulate --quick --time-limit -1".split()) == 2
    assert "time-limit" in capsys.readouterr().err
    assert main("bench simulate --quick --C 1".split()) == 2
