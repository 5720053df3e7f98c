"""The README's Python snippet runs and shows what its comments claim."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def test_python_snippet_runs_and_its_comments_hold():
    text = README.read_text()
    (code,) = re.findall(r"## Python API in short.*?```python\n(.*?)```", text, flags=re.S)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["get_case"]("hidden-ce").n_blocks(C=10, m=8) == 8
    fit = ns["fit"]
    assert fit.slope_ci[0] < fit.slope < fit.slope_ci[1]
    assert abs(fit.theory_slope + 0.986) < 0.005 and fit.predicted_slope == -1.0
    assert abs(fit.slope - fit.theory_slope) < 0.1
    assert "ratio_theory" in fit.to_frame()
    assert ns["hm"].values.shape == (128, 128) and 0 < ns["hm"].block_ratio() < 1
    sim = ns["sim"]
    assert len(sim.to_frame()) == 8 and sim.F_diag_se > 0
    assert ns["H"].shape == (1210, 1210) and ns["tr"].trace_se <= 0.05 * abs(ns["tr"].trace)
    bm = ns["bm"]
    assert len(bm.names) == 10 and len(bm.to_frame()) == 100 and 0 < bm.ratio < 1
