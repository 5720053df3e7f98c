"""Layering rules, checked over every module of the package.

Each part of the package stands on a whole-numbered floor (``LAYERS``)::

    6  cli
    5  report, bench
    4  sweep                          (runs the landscape and simulate tasks)
    3  landscape                      (imports curvature)
    2  simulate, curvature
    1  theory, data, _device, _threads
    0  ground floor (cases, _checks, _stats, _random, inits, ...)

A module may import its own part and the floors below, never a floor above nor a sibling
part on its own floor (the cli alone may import any floor). ``rmthess.theory`` never
imports torch; the ground floor imports nothing heavy; importing the simulation layer
does not pull numba or mpmath (the theory's compiled kernels).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rmthess

PKG = Path(rmthess.__file__).parent
LAYERS = {
    "ground": 0,
    "theory": 1,
    "data": 1,
    "_device": 1,
    "_threads": 1,  # caps torch's pool too, so not ground (which never imports torch)
    "simulate": 2,
    "curvature": 2,
    "landscape": 3,  # imports curvature
    "sweep": 4,  # runs landscape and simulate tasks
    "bench": 5,
    "report": 5,
    "cli": 6,
}
GROUND = {
    "rmthess",
    "rmthess.cases",
    "rmthess._checks",
    "rmthess._stats",
    "rmthess._random",
    "rmthess._cli",
    "rmthess._lazy",
    "rmthess._outputs",
    "rmthess.inits",
    "rmthess.activations",
}


def _layer(module: str) -> str:
    if module in GROUND:
        return "ground"
    if module in ("rmthess.cli", "rmthess.__main__"):
        return "cli"
    return module.split(".")[1]


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        yield (name[: -len(".__init__")] if name.endswith(".__init__") else name), path


def _imports(path: Path):
    """Every ``rmthess.*`` module imported anywhere in the file (lazy imports included)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


MODULES = list(_modules())


def test_floors_are_whole_numbers_without_gaps():
    floors = sorted(set(LAYERS.values()))
    assert all(type(f) is int for f in floors), floors
    assert floors == list(range(len(floors))), floors


def test_every_module_has_a_layer():
    for name, _ in MODULES:
        assert _layer(name) in LAYERS, name


@pytest.mark.parametrize("name,path", MODULES, ids=[n for n, _ in MODULES])
def test_imports_point_down(name, path):
    mine = LAYERS[_layer(name)]
    for mod, line in _imports(path):
        if mod.startswith("rmthess"):
            other = _layer(mod)
            assert LAYERS[other] <= mine or _layer(name) == "cli", (
                f"{name} (layer {_layer(name)}) imports {mod} (layer {other}) at line {line}"
            )
            if _layer(name) != "cli" and LAYERS[other] == mine:
                assert other == _layer(name), f"{name} imports the sibling layer {mod}"
        if _layer(name) in ("ground", "theory"):
            assert mod.split(".")[0] != "torch", f"{name} imports torch at line {line}"


def test_module_sizes():
    """No module of the package is over 500 lines."""
    for name, path in MODULES:
        n = len(path.read_text().splitlines())
        assert n <= 500, f"{name} has {n} lines"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_theory_does_not_import_torch():
    res = _run("import sys, rmthess.theory, rmthess.theory.cli; print('torch' in sys.modules)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_ground_floor_is_light():
    res = _run(
        "import sys, rmthess, rmthess.cases, rmthess._checks, rmthess._stats, rmthess._lazy, "
        "rmthess.inits; "
        "print(sorted(m for m in ('numpy', 'torch', 'numba', 'mpmath', 'scipy') "
        "if m in sys.modules))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_simulate_does_not_pull_the_theory_kernels():
    res = _run(
        "import sys, rmthess.simulate.frobenius, rmthess.simulate.fits, "
        "rmthess.simulate.heatmaps, rmthess.simulate.training; "
        "print(sorted(m for m in ('numba', 'mpmath') if m in sys.modules))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_curvature_is_independent_of_simulate_and_theory_kernels():
    res = _run(
        "import sys, rmthess.curvature.operators, rmthess.curvature.models; "
        "print(sorted(m for m in ('numba', 'mpmath', 'rmthess.simulate', 'rmthess.theory') "
        "if m in sys.modules))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_cli_help_lists_subcommands_and_examples():
    res = subprocess.run(
        [sys.executable, "-m", "rmthess", "--help"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    for sub in ("theory", "simulate", "bench", "report"):
        assert sub in res.stdout
    assert "examples:" in res.stdout and "rmthess theory" in res.stdout
    assert "random-matrix theory" in res.stdout
