"""validation/ scripts: each runs at small sizes (--quick) and exits 0; a wrong
prediction makes a script exit non-zero."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = ROOT / "validation"
SCRIPTS = sorted(p.name for p in VALIDATION.glob("*.py") if not p.name.startswith("_"))


def test_one_script_per_claim():
    assert set(SCRIPTS) == {
        "theorem1_linear_ce.py",
        "theorem2_hidden.py",
        "theorem2_output.py",
        "block_diagonal_mse.py",
        "binary_case.py",
        "cross_layer_circulant.py",
        "theory_doc_numbers.py",
        "init_comparison.py",
        "layer_outliers.py",
        "curvature_estimators.py",
        "landscape_delta.py",
        "landscape_bounds.py",
        "output_ce_quadrature.py",
        "hidden_ce_quadrature.py",
        "theory_on_data_linear.py",
        "theory_on_data_hidden.py",
        "separable_gmp.py",
        "activation_hidden.py",
        "fanout_first_layer.py",
        "depth_layers.py",
        "offset_constants.py",
        "depth_study.py",
        "binary_training.py",
        "simulate_activations.py",
        "activation_constants.py",
        "curvature_peers.py",
    }


SLOW_SCRIPTS = {
    "fanout_first_layer.py",
    "theory_on_data_hidden.py",
    "offset_constants.py",
    "depth_study.py",
    "binary_training.py",
    "theorem2_hidden.py",
    "simulate_activations.py",
    "curvature_peers.py",
}
"""Quick runs of 7-35 s each, in the slow tier to keep CI under its 20 minutes (theorem2_hidden:
its simulation-vs-theory claim is also checked by tests/simulate/test_sim_vs_theory.py and the
tiny report's frobenius section, its quadrature by tests/theory/test_hidden_quadrature.py); their
theory is covered by unit tests (test_depth, test_inputs_hidden, test_theory_on_data,
test_offset_asymptotics, test_report_depth; simulate_activations: test_activation_sim,
test_deep_sim, test_depth_laws; curvature_peers: test_graph_hvp) and their full runs are
recorded in benchmarks/."""


@pytest.mark.parametrize(
    "script",
    [pytest.param(s, marks=pytest.mark.slow) if s in SLOW_SCRIPTS else s for s in SCRIPTS],
)
def test_script_quick_passes(script):
    res = subprocess.run(
        [sys.executable, str(VALIDATION / script), "--quick", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "checks passed" in res.stdout
    assert "FAIL" not in res.stdout


def _load(name):
    sys.path.insert(0, str(VALIDATION))
    try:
        spec = importlib.util.spec_from_file_location(name, VALIDATION / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(VALIDATION))
    return mod


def test_wrong_theory_makes_theorem1_fail(monkeypatch, capsys):
    """Scale the theory by 1.3: the script must notice and exit 1."""
    import rmthess.theory

    mod = _load("theorem1_linear_ce")
    real = rmthess.theory.frobenius_limits

    def wrong(case, C, gamma, m=None, **kw):
        lim = real(case, C, gamma, m=m, **kw)
        return type(lim)(**{**lim.__dict__, "F_diag": 1.3 * lim.F_diag})

    monkeypatch.setattr(rmthess.theory, "frobenius_limits", wrong)
    assert mod.main(["--quick", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out


def test_bad_device_is_usage_error():
    res = subprocess.run(
        [sys.executable, str(VALIDATION / "block_diagonal_mse.py"), "--quick", "--device", "tpu"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert res.returncode == 2
    assert "device" in res.stderr and "Traceback" not in res.stderr


def test_wrong_depth_theory_makes_depth_layers_fail(monkeypatch, capsys):
    """Scale every layer's predicted r by 1.3: the depth script must exit 1."""
    import rmthess.theory

    mod = _load("depth_layers")
    real = rmthess.theory.depth_frobenius

    def wrong(*a, **kw):
        res = real(*a, **kw)
        res.ratio = 1.3 * res.ratio
        return res

    monkeypatch.setattr(rmthess.theory, "depth_frobenius", wrong)
    assert mod.main(["--quick", "--device", "cpu"]) == 1
    assert "FAIL" in capsys.readouterr().out
