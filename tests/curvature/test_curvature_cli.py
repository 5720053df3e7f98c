"""``rmthess curvature`` and the curvature benchmarks, end to end at small sizes."""

import json
import os

import pytest

from rmthess.cli import main

SMALL = ["--data", "digits", "--n", "120", "--hidden", "4", "--k", "3", "--probes", "4"]


def test_json_summary_matches_the_python_api(capsys):
    from rmthess.curvature import curvature_summary, mlp
    from rmthess.data import digits

    assert main(["curvature", *SMALL, "--json", "--trace-rtol", "0.2"]) == 0
    rec = json.loads(capsys.readouterr().out)
    ds = digits().subset(120, seed=0)
    model = mlp(ds.d, ds.n_classes, (4,), seed=0)
    s = curvature_summary(model, "ce", ds.tensors(), k=3, probes=4, trace_rtol=0.2, seed=0)
    assert rec["n_params"] == s.n_params == 64 * 4 + 4 + 4 * 10 + 10
    arrays = rec.pop("arrays")
    assert arrays["eigenvalues"] == pytest.approx([float(x) for x in s.eigenvalues], rel=1e-10)
    assert len(arrays["eigen_residuals"]) == 3 and max(arrays["eigen_residuals"]) < 1e-6
    ref = s.to_dict()  # the same scalar record (timings aside)
    assert set(rec) == set(ref)
    for key, v in ref.items():
        if not key.startswith("seconds_"):
            assert rec[key] == (v if isinstance(v, str) else pytest.approx(v, rel=1e-8)), key
    assert rec["lambda_max"] == pytest.approx(float(s.eigenvalues[0]), rel=1e-10)
    assert rec["trace"] == pytest.approx(float(s.trace.trace), rel=1e-10)
    assert rec["ratio"] == pytest.approx(s.blocks.ratio, rel=1e-10)
    assert arrays["blocks"] == ["hidden1", "output"] and rec["n_blocks"] == 2


def test_out_writes_tables_and_figures(tmp_path, capsys):
    out = tmp_path / "curv"
    args = [*SMALL, "--train-steps", "5", "--blocks", "output-rows", "--density"]
    assert main(["curvature", *args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-3 eigenvalues" in text and "off/diag ratio" in text and "trained 5 steps" in text
    names = set(os.listdir(out))
    assert {"summary.json", "blocks.csv", "eigenvalues.csv", "block_map.png"} <= names
    assert {"density.png", "hessian.png"} <= names
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".rmthess")]  # no temp left


@pytest.mark.parametrize(
    "args,match",
    [
        (["--kind", "fisher"], "kind"),
        (["--blocks", "rows"], "blocks"),
        (["--data", "cifar"], "--data"),
        (["--n", "5000"], "--n"),
        (["--loss", "hinge"], "--loss"),
        (["--hidden", "0"], "hidden"),
    ],
)
def test_bad_arguments_fail_with_one_line(args, match, capsys):
    code = main(["curvature", "--data", "digits", "--n", "50", "--hidden", "2", *args])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


def test_bad_blocks_fail_before_training(capsys, monkeypatch):
    import rmthess.curvature.models as models

    def boom(*a, **k):
        raise AssertionError("training started before --blocks was checked")

    monkeypatch.setattr(models, "train", boom)
    assert main(["curvature", *SMALL, "--train-steps", "10", "--blocks", "nope"]) == 2


def test_bench_hvp_and_curvature_quick(capsys):
    assert main(["bench", "hvp", "--quick", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["hidden"] for r in res["hvp"]] == [8, 32]
    assert all(r["hvp_over_grad"] > 0 for r in res["hvp"])
    assert main(["bench", "curvature", "--quick", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows
