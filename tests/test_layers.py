"""Layering rules: theory never imports torch; the CLI answers --help quickly."""

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_theory_does_not_import_torch():
    res = _run("import sys, rmthess.theory, rmthess.theory.cli; print('torch' in sys.modules)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_cli_help_lists_subcommands():
    res = subprocess.run(
        [sys.executable, "-m", "rmthess", "--help"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    for sub in ("theory", "simulate", "bench", "report"):
        assert sub in res.stdout
