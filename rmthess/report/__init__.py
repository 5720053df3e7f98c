"""The report: theory and simulation side by side (HTML, PNG, CSV).

- :mod:`rmthess.report.config`: one :class:`ReportConfig` per mode (tiny/quick/default/full).
- :mod:`rmthess.report.runner`: :func:`run_report`, the whole of ``rmthess report``.
- :mod:`rmthess.report.sections`: one module per section (compute, checks, render).
- :mod:`rmthess.report.checks`: pass/fail checks (also used by ``validation/``).
- :mod:`rmthess.report.figures`: matplotlib figures from plain arrays / DataFrames.
- :mod:`rmthess.report.html`: the self-contained ``index.html``.

Names are imported lazily so that ``rmthess --help`` stays fast.
"""

from __future__ import annotations

from rmthess._lazy import lazy_exports

_LAZY = {
    "ReportConfig": "rmthess.report.config",
    "get_config": "rmthess.report.config",
    "MODES": "rmthess.report.config",
    "run_report": "rmthess.report.runner",
    "ReportResult": "rmthess.report.runner",
    "Check": "rmthess.report.checks",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
