"""notebooks/: jupytext percent notebooks, executed headless at small sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def test_the_three_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.py", "theory_vs_simulation.py", "block_spectra.py"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_jupytext_percent(path):
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(path)
    kinds = [c.cell_type for c in nb.cells]
    assert "markdown" in kinds and "code" in kinds
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless(path, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "RMTHESS_NOTEBOOK_SMALL": "1"}
    res = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def test_quickstart_is_five_lines_of_code():
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(ROOT / "notebooks" / "quickstart.py")
    code = [
        line
        for c in nb.cells
        if c.cell_type == "code"
        for line in c.source.splitlines()
        if line.strip()
    ]
    assert len(code) == 5, code
