"""A self-contained HTML page for the report (figures embedded as base64 PNG).

The page needs no network and no JavaScript: it opens offline from any copy of the
report directory (the PNG and CSV files beside it are linked as well).

Layout: a summary (pass/fail banner, counts per section, the failed checks) first, then
each section's prose, figures and tables, then the full check table (collapsed) and the
run settings. Tables scroll sideways inside their own box; numbers show 4 significant
digits; every missing value (None, nan, pandas NA) shows as an en dash.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rmthess.report.checks import format_number

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.tablewrap{max-width:100%;overflow-x:auto;margin:.6em 0}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td.l,th.l{text-align:left} td.w{white-space:normal;min-width:20em}
.pass{color:#0a7a2f;font-weight:bold} .fail{color:#b00020;font-weight:bold}
.na{color:#8a5a00;font-weight:bold}
.banner{padding:.6em 1em;border-radius:6px;font-size:1.1em;margin:.8em 0}
.banner.ok{background:#e6f4ea;border:1px solid #0a7a2f}
.banner.bad{background:#fdecea;border:1px solid #b00020}
figure{margin:1em 0} img{max-width:100%;border:1px solid #eee} .note{color:#555;font-size:.9em}
summary{cursor:pointer;font-weight:bold;margin:.4em 0}
code{background:#f5f5f5;padding:0 .2em}
"""


@dataclass
class Section:
    """One report section: prose, figures (PNG paths) and tables (DataFrame, CSV name)."""

    title: str
    text: list[str] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    tables: list[tuple[str, object, str]] = field(default_factory=list)
    seconds: float = 0.0


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = html.escape(Path(path).name)
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f'<figcaption class="note">{html.escape(alt)} (<a href="figures/{name}">{name}</a>)'
        "</figcaption></figure>"
    )


MISSING = "\u2013"
"""How every missing value (None, nan, pandas NA / NaT) is shown: an en dash."""


def _is_missing(x) -> bool:
    if x is None:
        return True
    if isinstance(x, numbers.Real) and not isinstance(x, numbers.Integral):
        return math.isnan(float(x))
    if isinstance(x, str | bytes | numbers.Number):
        return False
    try:
        import pandas as pd

        return bool(pd.isna(x)) if pd.api.types.is_scalar(x) else False
    except (ImportError, TypeError, ValueError):
        return False


def _fmt(x) -> str:
    """One table cell: missing -> an en dash; floats to 4 significant digits (integral
    floats below 1e6 as integers, so that C = 16384.0 reads 16384); the rest as text."""
    if _is_missing(x):
        return MISSING
    if isinstance(x, bool | np.bool_):
        return str(bool(x))
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if isinstance(x, numbers.Real):
        v = float(x)
        if math.isfinite(v) and v.is_integer() and abs(v) < 1e6:
            return str(int(v))
        return format_number(v)
    return html.escape(str(x))


def _wrap(inner: str) -> str:
    """A table inside a horizontally scrolling container (wide tables never widen the page)."""
    return f"<div class='tablewrap'>{inner}</div>"


def _table(df, csv_name: str | None, max_rows: int = 60) -> str:
    """A DataFrame as an HTML table (first ``max_rows`` rows), read column by column so that
    integer columns stay integers, with a link to its CSV."""
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    shown = df.head(max_rows)
    values = [shown[c].tolist() for c in cols]
    rows = []
    for i in range(len(shown)):
        cells = []
        for col in values:
            v = col[i]
            cls = ' class="l"' if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(df) > max_rows:
        more = f'<p class="note">{len(df) - max_rows} more rows in the CSV.</p>'
    link = (
        f' <a href="tables/{html.escape(csv_name)}">{html.escape(csv_name)}</a>' if csv_name else ""
    )
    table = _wrap(f"<table><tr>{head}</tr>{''.join(rows)}</table>")
    return f"{table}{more}<p class='note'>CSV:{link}</p>"


def _checks_table(checks) -> str:
    heads = ("", "section", "check", "measured", "expected", "tolerance", "detail")
    head = "".join(
        f"<th{' class=l' if h in ('section', 'check', 'detail') else ''}>{h}</th>" for h in heads
    )
    rows = []
    for c in checks:
        cls = "na" if not c.applies else "pass" if c.passed else "fail"
        expected = "error" if c.kind == "error" else c.expected
        rows.append(
            f"<tr><td class='{cls}'>{c.verdict}</td><td class=l>{html.escape(c.section)}</td>"
            f"<td class=l>{html.escape(c.name)}</td><td>{_fmt(c.measured)}</td>"
            f"<td>{html.escape(expected) or MISSING}</td>"
            f"<td>{html.escape(c.tolerance_text) or MISSING}</td>"
            f"<td class='l w'>{html.escape(c.detail)}</td></tr>"
        )
    return _wrap(f"<table><tr>{head}</tr>{''.join(rows)}</table>")


def _summary(checks, total_seconds: float) -> list[str]:
    """Banner, pass/fail/N-A counts per section, the failed and the N/A checks listed."""
    n_fail = sum(not c.passed for c in checks)
    applied = [c for c in checks if c.applies]
    if not applied:
        head, cls = "NO CHECKS (these sections compute numbers other sections check)", "ok"
    else:
        ok = n_fail == 0
        head = "ALL CHECKS PASSED" if ok else f"{n_fail} CHECK(S) FAILED"
        cls = "ok" if ok else "bad"
    n_na = len(checks) - len(applied)
    na = f", {n_na} not applicable (N/A, with the reason)" if n_na else ""
    parts = [
        f"<div class='banner {cls}'>{head}: {len(applied) - n_fail}/{len(applied)} passed{na}; "
        f"run time {total_seconds:.1f} s</div>"
    ]
    counts: dict[str, list[int]] = {}
    for c in checks:
        counts.setdefault(c.section, [0, 0, 0])[2 if not c.applies else 0 if c.passed else 1] += 1
    if counts:
        cells = "".join(
            f"<tr><td class=l>{html.escape(sec)}</td><td>{p}</td>"
            f"<td class='{'fail' if f else ''}'>{f}</td><td>{n}</td></tr>"
            for sec, (p, f, n) in counts.items()
        )
        parts.append(
            "<h2 id='summary'>Summary</h2>"
            + _wrap(
                "<table><tr><th class=l>section</th><th>passed</th><th>failed</th>"
                f"<th>N/A</th></tr>{cells}</table>"
            )
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        parts.append(f"<h3>Failed checks ({len(failed)})</h3>")
        parts.append(_checks_table(failed))
    na = [c for c in checks if not c.applies]
    if na:
        parts.append(
            f"<h3>Measured states outside a rule's domain (N/A, {len(na)})</h3>"
            "<p class='note'>Shown with the number and the reason the rule does not apply; "
            "they neither pass nor fail.</p>"
        )
        parts.append(_checks_table(na))
    parts.append(
        "<p class='note'>Every check, passed or not, is listed in <a href='#checks'>All "
        "checks</a> below and in <a href='tables/checks.csv'>checks.csv</a>.</p>"
    )
    return parts


def render_html(
    title: str,
    checks,
    sections: list[Section],
    settings: dict,
    environment: dict,
    figures_dir: Path,
    total_seconds: float,
    collapse_rows: int = 20,
) -> str:
    """Return the report page as one HTML string (figures read from ``figures_dir``).

    Order: summary (banner, pass/fail per section, the failed checks), then the sections
    (prose, figures, tables; a table longer than ``collapse_rows`` rows is collapsed in a
    ``<details>``), then the full check table (collapsed), run settings and environment.
    """
    checks = list(checks)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='note'>Random-matrix theory of neural-network Hessian blocks (Dong, Zhang, "
        "Yao, Sun, <i>Towards Quantifying the Hessian Structure of Neural Networks</i>): "
        "exact limits from <code>rmthess.theory</code> against Monte-Carlo Hessians from "
        "<code>rmthess.simulate</code>.</p>",
        *_summary(checks, total_seconds),
    ]
    if sections:
        links = "".join(
            f"<li><a href='#sec{i}'>{html.escape(sec.title)}</a></li>"
            for i, sec in enumerate(sections)
        )
        parts.append(
            f"<p class='note'>Contents:</p><ul class='note'>{links}"
            "<li><a href='#checks'>All checks</a></li></ul>"
        )
    for i, sec in enumerate(sections):
        parts.append(f"<h2 id='sec{i}'>{html.escape(sec.title)}</h2>")
        if sec.seconds:
            parts.append(f"<p class='note'>section time: {sec.seconds:.1f} s</p>")
        for para in sec.text:
            parts.append(f"<p>{html.escape(para)}</p>")
        for alt, path in sec.figures:
            parts.append(_img(figures_dir / Path(path).name, alt))
        for caption, df, csv_name in sec.tables:
            table = _table(df, csv_name)
            if len(df) > collapse_rows:
                parts.append(
                    f"<details><summary>{html.escape(caption)} ({len(df)} rows)</summary>"
                    f"{table}</details>"
                )
            else:
                parts.append(f"<h3>{html.escape(caption)}</h3>{table}")
    parts.append(
        f"<h2 id='checks'>All checks</h2><details><summary>All {len(checks)} checks "
        "(measured, expected, tolerance, detail)</summary>"
    )
    parts.append(_checks_table(checks))
    parts.append("<p class='note'>Table: <a href='tables/checks.csv'>checks.csv</a>.</p>")
    parts.append("</details>")
    for heading, items in (("Run settings", settings), ("Environment", environment)):
        rows = "".join(
            f"<tr><th class=l>{html.escape(str(k))}</th><td class='l w'>{_fmt(v)}</td></tr>"
            for k, v in items.items()
        )
        parts.append(f"<h2>{heading}</h2>" + _wrap(f"<table>{rows}</table>"))
    parts.append("</body></html>")
    return "\n".join(parts)
