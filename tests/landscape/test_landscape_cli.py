"""``rmthess landscape`` and ``landscape_experiment`` end to end at small sizes."""

import json
import os

import numpy as np
import pytest

from rmthess.cli import main

SMALL = ["--n", "300", "--hidden", "4,8", "--depths", "1,2", "--orders", "20"]
SMALL += ["--epochs", "1", "--audit-samples", "5", "--no-progress"]


def test_json_matches_the_python_api(capsys):
    from rmthess.data import digits
    from rmthess.landscape import landscape_experiment, paper_pixels

    assert main(["landscape", *SMALL, "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    ds = paper_pixels(digits().subset(300, seed=0))
    res = landscape_experiment(
        ds, hidden=(4, 8), layers=(1, 2), orders=20, epochs=1, audit_samples=5, progress=False
    )
    df = res.to_frame()
    assert [f["slope"] for f in rec["fits"]] == pytest.approx(list(df["slope"]), rel=1e-9)
    assert {r["state"] for r in rec["audit"]} == {"init", "trained", "small-init"}
    assert len(df) == 4 and set(df["panel"]) == {"hidden", "depth"}
    # every slope of E|Delta_k| is near -1 and the Monte-Carlo z is finite
    assert np.all(np.abs(df["slope"] + 1) < 0.3) and np.all(np.isfinite(df["mc_vs_exact_z"]))


def test_out_writes_tables_and_figure(tmp_path, capsys):
    out = tmp_path / "land"
    assert main(["landscape", *SMALL, "--out", str(out)]) == 0
    assert {"fits.csv", "audit.csv", "delta.png"} <= set(os.listdir(out))
    assert "Hessian-bound audit" in capsys.readouterr().out
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".rmthess")]


@pytest.mark.parametrize(
    "args,match",
    [
        (["--data", "cifar"], "--data"),
        (["--n", "100000"], "--n"),
        (["--limit", "300"], "--n"),
        (["--layers", "1,3"], "--depths"),
        (["--idx-images", "x.gz"], "--idx-images"),
        (["--orders", "1"], "orders"),
        (["--hidden", "0"], "hidden"),
    ],
)
def test_bad_arguments_fail_with_one_line(args, match, capsys):
    assert main(["landscape", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


def test_mc_vs_exact_pooled_z_is_informative():
    """The odd-k pooled statistic is not the (deterministic) all-k Welford sum."""
    from rmthess.landscape import delta_curve, delta_expected
    from rmthess.landscape.experiment import _mc_vs_exact

    losses = np.random.default_rng(0).exponential(size=400)
    c, e = delta_curve(losses, 200, seed=1), delta_expected(losses)
    k = c.k.astype(float)
    Y_all = (c.delta_trials**2 * (k * (k + 1))).sum(axis=1) / (len(losses) - 1)
    assert np.allclose(Y_all, e.variance, rtol=1e-10)  # Welford: the same for every order
    zs = [_mc_vs_exact(delta_curve(losses, 100, seed=s), e) for s in range(30)]
    assert 0.6 < np.std(zs) < 1.5 and abs(np.mean(zs)) < 4 / np.sqrt(30) + 0.3


def test_bench_landscape_quick(capsys):
    assert main(["bench", "landscape", "--quick", "--json", "--hessian-samples", "4"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["max_abs_diff"] < 1e-12 and res["hessian_samples"] == 4
    assert res["P"] == 784 * 16 + 16 * 16 * 5 + 16 * 10
