"""Report section ``layer`` (issue 11): the quick-mode section runs and its checks pass;
each check fails on a wrong value; the solver check detects a wrong solver."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from rmthess.report import runner
from rmthess.report.config import MODES, get_config
from rmthess.report.sections import NAMES, layer
from rmthess.report.sections._base import Output


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    cfg = get_config("quick")
    res = layer.compute(cfg, device="cpu")
    out = tmp_path_factory.mktemp("layer")
    sec = layer.render(res, Output(out))
    return res, sec, out


def _by_name(checks, text):
    hits = [c for c in checks if text in c.name]
    assert hits, [c.name for c in checks]
    return hits


def test_quick_section_checks_pass(quick):
    res, _, _ = quick
    cs = layer.checks(res)
    failed = [(c.name, c.measured, c.expected, c.detail) for c in cs if not c.passed]
    assert failed == []
    # (a) one KS check per C, (b), (c), (d) x 2, (e), (f) for C <= 5 (larger C: N/A rows)
    assert len(_by_name(cs, "KS of whole-layer")) == len(res.cfg.layer.Cs)
    edge = _by_name(cs, "mean top eigenvalue")
    assert [c.verdict == "N/A" for c in edge] == [
        C > res.cfg.layer.edge_C_max for C in res.cfg.layer.Cs
    ]
    for text in ("M2 of the layer law", "matrix GMP solver", "slope of W1_rel", "= 1/C", "zero"):
        assert len(_by_name(cs, text)) == 1


def test_quick_section_numbers(quick):
    res, _, _ = quick
    df = res.table
    # exact kernel 1 (x) R^d: exactly d zero eigenvalues in every trial
    assert (df["zero_count_min"] == df["d"]).all() and (df["zero_count_max"] == df["d"]).all()
    assert np.allclose(df["zero_mass"], 1.0 / df["C"], rtol=0, atol=1e-15)
    # second moment of the simulated eigenvalues: the finite-size expectation of
    # tr H^2 / (C d) is within O(1/d) of the limit (4.5/d measured for F_diag, section
    # frobenius); a loose independent check of the pipeline
    assert np.allclose(df["ev_m2"], df["M2_frobenius"], rtol=0.15)
    g = res.gap.to_frame()
    assert np.allclose(g["KS"], 1.0 / g["C"], rtol=0, atol=1e-9)


def test_quick_section_writes_figures_and_tables(quick):
    _, sec, out = quick
    figs = {p.name for p in (out / "figures").iterdir()}
    assert figs == {"layer_spectra.png", "layer_gap.png"}
    for p in (out / "figures").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    ks = pd.read_csv(out / "tables" / "layer_ks.csv")
    assert list(ks["C"]) == list(get_config("quick").layer.Cs)
    gap = pd.read_csv(out / "tables" / "layer_gap.csv")
    assert {"case", "C", "W1_rel", "KS", "edge_gap_rel"} <= set(gap.columns)
    assert len(sec.figures) == 2 and len(sec.tables) == 2


def _wrong(res, **cols):
    bad = copy.copy(res)
    bad.table = res.table.copy()
    for k, v in cols.items():
        bad.table[k] = v(bad.table)
    return bad


@pytest.mark.parametrize(
    ("cols", "text"),
    [
        ({"ks": lambda t: t["ks"] + 0.1}, "KS of whole-layer"),
        ({"M2": lambda t: t["M2"] * 1.01}, "M2 of the layer law"),
        ({"zero_fraction": lambda t: t["zero_fraction"] + 1.0 / (t["C"] * t["d"])}, "zero"),
        ({"lambda_max": lambda t: t["top_edge"] * 1.5}, "mean top eigenvalue"),
    ],
)
def test_each_check_fails_on_a_wrong_value(quick, cols, text):
    res, _, _ = quick
    bad = layer.checks(_wrong(res, **cols))
    assert any(not c.passed for c in _by_name(bad, text))


def test_gap_checks_fail_on_a_wrong_curve(quick):
    from dataclasses import replace

    res, _, _ = quick
    bad = copy.copy(res)
    bad.gap = replace(res.gap, slope={**res.gap.slope, "W1_rel": -0.8})
    assert not _by_name(layer.checks(bad), "slope of W1_rel")[0].passed
    bad.gap = replace(res.gap, gaps=[replace(g, KS=g.KS + 1e-6) for g in res.gap.gaps])
    assert not _by_name(layer.checks(bad), "= 1/C")[0].passed


def test_solver_check_detects_a_wrong_solver(monkeypatch):
    import rmthess.theory.matrix_gmp as mg

    good = layer.solver_vs_reduction(3, 0.5, 4, 0)
    assert good["rel_error"] < layer.SOLVER_RTOL and good["n_atoms"] == 24
    real = mg.matrix_gmp_stieltjes
    monkeypatch.setattr(mg, "matrix_gmp_stieltjes", lambda *a, **k: real(*a, **k) * (1 + 1e-6))
    assert layer.solver_vs_reduction(3, 0.5, 4, 0)["rel_error"] > 1e-7


def test_zero_tolerance_separates_the_exact_kernel():
    # H = B (x) S with B = I - 11^T/3 (kernel 1) and S Wishart: 10 exact zeros
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 40))
    B = np.eye(3) - 1.0 / 3
    ev = np.linalg.eigvalsh(np.kron(B, X @ X.T / 40))
    assert np.sum(np.abs(ev) <= layer.zero_tolerance(ev)) == 10
    assert layer.zero_tolerance(np.array([])) == 0.0


def test_one_torch_thread_restores():
    import torch

    n = torch.get_num_threads()
    with layer._one_torch_thread("cpu"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


def test_config_and_registration():
    assert NAMES.index("layer") == NAMES.index("spectra") + 1
    for mode in MODES:
        cfg = get_config(mode)
        assert len(cfg.layer.Cs) == len(cfg.layer.d) == len(cfg.layer.trials)
        assert min(cfg.layer.gap_Cs) >= 2 and len(cfg.layer.gap_Cs) >= 3
        assert all(
            t >= 2
            for C, t in zip(cfg.layer.Cs, cfg.layer.trials, strict=True)
            if C <= cfg.layer.edge_C_max
        )  # the top-edge check needs an SE
    with pytest.raises(ValueError, match="same length"):
        layer._sizes(get_config("quick", layer_d=(100, 100)))


def test_layer_section_in_a_tiny_report(tmp_path):
    out = tmp_path / "rep"
    res = runner.run_report(
        get_config("tiny"), out, device="cpu", progress=False, sections=["layer"]
    )
    assert [c for c in res.checks if c.kind == "error"] == []
    assert {c.section for c in res.checks} == {"layer"}
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["sections"] == "layer"
    assert math.isfinite(meta["settings"]["time layer (s)"])
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 2
