"""Sphinx configuration of the rmthess documentation site.

Build (offline, warnings as errors; CI runs this line)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Sources: the README (``index.md`` includes it), ``theory.md``, the API reference generated
from the numpy-style docstrings (``api.rst``: autosummary + numpydoc) and the notebooks
(``notebooks/*.py``, jupytext percent format), converted to ``docs/notebooks/*.ipynb`` at
build time and executed by myst-nb (see ``NOT_EXECUTED`` for the ones that are not).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import rmthess  # noqa: E402

project = "rmthess"
author = "rmthess developers"
copyright = "rmthess developers"  # noqa: A001
release = rmthess.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
html_theme = "alabaster"
html_title = f"rmthess {release}"
html_static_path: list[str] = []

# --- API reference -------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's public names are its __all__
autodoc_typehints = "none"  # numpydoc shows the types written in the docstrings
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False  # dataclass fields are described in the class docstring
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

# --- MyST (theory.md, README, notebooks) ---------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4
suppress_warnings = [
    # the README and theory.md are read on GitHub too: their section numbers jump levels
    "myst.header",
]

# --- notebooks -----------------------------------------------------------------------------
# Wall times of `python notebooks/NAME.py` on the project's 2-core machine (shared, load ~10
# when measured): quickstart 1 s, theory_vs_simulation 13 s, block_spectra 27 s,
# layer_spectra 153 s, landscape 242 s, curvature_real_data 455 s. CI (.ci/run) must stay
# under 20 minutes: the three slow ones are rendered with a note instead of outputs.
NOT_EXECUTED: dict[str, str] = {
    "layer_spectra": "it takes about 2.5 minutes on a 2-core machine",
    "landscape": "it takes about 4 minutes on a 2-core machine",
    "curvature_real_data": "it takes about 7.5 minutes on a 2-core machine",
}

nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_excludepatterns = [f"notebooks/{name}.ipynb" for name in NOT_EXECUTED]
nb_merge_streams = True
# figures as inline PNG outputs, whatever MPLBACKEND the caller set (CI sets Agg)
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
# the kernel imports this checkout's rmthess, not an installed copy
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)


def _convert_notebooks() -> None:
    """notebooks/NAME.py (jupytext percent) -> docs/notebooks/NAME.ipynb, written only when
    the source changed; a notebook in NOT_EXECUTED gets a first cell saying why it has no
    outputs."""
    import jupytext
    import nbformat

    out_dir = HERE / "notebooks"
    out_dir.mkdir(exist_ok=True)
    sources = sorted((ROOT / "notebooks").glob("*.py"))
    for stale in out_dir.glob("*.ipynb"):
        if stale.stem not in {s.stem for s in sources}:
            stale.unlink()
    for src in sources:
        nb = jupytext.read(src, fmt="py:percent")
        why = NOT_EXECUTED.get(src.stem)
        if why:
            note = (
                "```{note}\nThis notebook is shown without outputs: the documentation "
                f"build does not execute it ({why}). Run it with "
                f"`python notebooks/{src.name}` or open it with "
                f"`jupytext --to ipynb notebooks/{src.name}`.\n```"
            )
            nb.cells.insert(1, nbformat.v4.new_markdown_cell(note))
        text = nbformat.writes(nb)
        dst = out_dir / f"{src.stem}.ipynb"
        if not dst.exists() or dst.read_text() != text:
            dst.write_text(text)


_convert_notebooks()


# --- docstring plain-text conventions -> reST -----------------------------------------------
# The docstrings name case families as ``hidden-*`` and formulas as "(*)", "(**)" in plain
# text (they read well in help()); in reST a bare ``*`` opens emphasis. Outside inline
# literals, these are written as literals / escaped stars here, for every docstring at once.
_FAMILY = re.compile(r"(?<![\w`*\\])((?:linear|hidden|output)-\*(?:/\w+-\*)*)(?![\w*`])")
_FORM = re.compile(r"\((\*{1,2})\)")


def _rest_stars(text: str) -> str:
    parts = text.split("``")
    for i in range(0, len(parts), 2):  # even parts lie outside ``literals``
        parts[i] = _FAMILY.sub(r"``\1``", parts[i])
        parts[i] = _FORM.sub(lambda m: "(" + "\\*" * len(m.group(1)) + ")", parts[i])
    return "``".join(parts)


def _process_docstring(app, what, name, obj, options, lines) -> None:
    if lines and "*" in "".join(lines) and not any(".. math::" in line for line in lines):
        lines[:] = _rest_stars("\n".join(lines)).split("\n")


def setup(app) -> None:
    # numpydoc connects at the default priority 500; the rewrite runs before it
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
