"""The sections of ``rmthess report``, one module each, in data order.

Every section module defines

- ``NAME`` and ``NEEDS`` (names of the sections whose results :func:`compute` takes, as
  keyword arguments of the same names);
- ``units(cfg) -> int``: progress-bar steps it will report;
- ``compute(cfg, *, device, step, **needs) -> Result``: the numbers (a typed dataclass
  holding everything the other two functions need); it calls ``step(label)`` when a unit
  *starts* (the bar names the running unit; the previous one counts as done);
- ``checks(result) -> list[Check]``: pass/fail comparisons;
- ``render(result, out) -> Section``: figures, CSV tables and prose
  (``out`` is a :class:`rmthess.report.sections._base.Output`).

:mod:`rmthess.report.runner` only wires them together.
"""

from rmthess.report.sections import (
    clusters,
    decay,
    depth,
    dynamics,
    frobenius,
    heatmaps,
    landscape,
    layer,
    real_data,
    spectra,
    theory,
    theory_on_data,
)

SECTIONS = (
    theory,
    frobenius,
    decay,
    spectra,
    layer,
    heatmaps,
    dynamics,
    real_data,
    clusters,
    theory_on_data,
    depth,
    landscape,
)
"""Section modules in data order (a section's needs come before it)."""

NAMES = tuple(s.NAME for s in SECTIONS)

__all__ = [
    "NAMES",
    "SECTIONS",
    "clusters",
    "decay",
    "depth",
    "dynamics",
    "frobenius",
    "heatmaps",
    "landscape",
    "layer",
    "real_data",
    "spectra",
    "theory",
    "theory_on_data",
]
