"""The README's CPU install keeps the user's CPU torch (issue 17, section 4, first bullet).

After ``pip install torch==2.13.0`` from the PyTorch CPU index, ``pip install -e ".[dev]"``
alone resolves curvlinops -> backpack -> torchvision to its newest release, which requires a
newer torch: pip plans to replace the CPU build by the CUDA one and ~17 ``nvidia-*`` wheels.
With ``-c constraints-cpu.txt`` it must plan neither.

The test asks pip for the plan (``--dry-run --report``) in a throwaway environment holding
only the metadata of ``torch 2.13.0+cpu`` (what the first command leaves; no wheel is
installed). It needs the package index (PyPI or a mirror): slow-marked, run by ``.ci/run``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints-cpu.txt"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_constraints_pin_the_matching_pair() -> None:
    pins = _pins(CONSTRAINTS)
    assert pins == {"torch": "2.13.0", "torchvision": "0.28.0"}, pins


@pytest.fixture
def cpu_torch_env(tmp_path: Path) -> Path:
    """A venv (no pip of its own) whose only distribution is torch 2.13.0+cpu's metadata."""
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    info = Path(purelib) / "torch-2.13.0+cpu.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cpu\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    return python


def _plan(python: Path, *extra: str, report: Path) -> dict[str, str]:
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run"]
    cmd += ["--quiet", "--report", str(report), "-e", f"{ROOT}[dev]", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    plan = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in plan}


@pytest.mark.slow
def test_cpu_install_hint_keeps_cpu_torch(cpu_torch_env: Path, tmp_path: Path) -> None:
    pip_version = tuple(int(x) for x in version("pip").split(".")[:2])
    if pip_version < (22, 3):
        pytest.skip(f"pip {version('pip')} has no --python option (22.3+)")
    plan = _plan(cpu_torch_env, "-c", str(CONSTRAINTS), report=tmp_path / "plan.json")
    assert "rmthess" in plan  # the dry run did resolve the project
    assert "torch" not in plan, f"pip would replace torch 2.13.0+cpu by {plan['torch']}"
    assert plan.get("torchvision") == "0.28.0", plan.get("torchvision")
    cuda = sorted(name for name in plan if name.startswith("nvidia-"))
    assert not cuda, f"pip would install CUDA packages: {cuda}"
