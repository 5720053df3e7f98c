"""A self-contained HTML page for the report (figures embedded as base64 PNG).

The page needs no network and no JavaScript: it opens offline from any copy of the
report directory (the PNG and CSV files beside it are linked as well).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.pass{color:#0a7a2f;font-weight:bold} .fail{color:#b00020;font-weight:bold}
.banner{padding:.6em 1em;border-radius:6px;font-size:1.1em;margin:.8em 0}
.banner.ok{background:#e6f4ea;border:1px solid #0a7a2f}
.banner.bad{background:#fdecea;border:1px solid #b00020}
img{max-width:100%;border:1px solid #eee} .note{color:#555;font-size:.9em}
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


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return html.escape(str(x))


def _table(df, csv_name: str | None, max_rows: int = 60) -> str:
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    rows = []
    for _, row in df.head(max_rows).iterrows():
        cells = []
        for c in cols:
            v = row[c]
            cls = ' class="l"' if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(df) > max_rows:
        more = f'<p class="note">{len(df) - max_rows} more rows in the CSV.</p>'
    link = (
        f' <a href="tables/{html.escape(csv_name)}">{html.escape(csv_name)}</a>' if csv_name else ""
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}<p class='note'>CSV:{link}</p>"


def _checks_table(checks) -> str:
    head = "".join(
        f"<th{' class=l' if h in ('section', 'check', 'detail') else ''}>{h}</th>"
        for h in ("", "section", "check", "measured", "predicted", "tolerance", "detail")
    )
    rows = []
    for c in checks:
        cls = "pass" if c.passed else "fail"
        rows.append(
            f"<tr><td class='{cls}'>{c.verdict}</td><td class=l>{html.escape(c.section)}</td>"
            f"<td class=l>{html.escape(c.name)}</td><td>{_fmt(c.measured)}</td>"
            f"<td>{_fmt(c.predicted)}</td><td>{_fmt(c.tolerance)}</td>"
            f"<td class=l>{html.escape(c.detail)}</td></tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_html(
    title: str,
    checks,
    sections: list[Section],
    settings: dict,
    environment: dict,
    figures_dir: Path,
    total_seconds: float,
) -> str:
    """Return the report page as one HTML string (figures read from ``figures_dir``)."""
    n_fail = sum(not c.passed for c in checks)
    ok = bool(checks) and n_fail == 0
    banner = (
        f"<div class='banner {'ok' if ok else 'bad'}'>"
        f"{'ALL CHECKS PASSED' if ok else f'{n_fail} CHECK(S) FAILED'}: "
        f"{len(checks) - n_fail}/{len(checks)} passed; run time {total_seconds:.1f} s</div>"
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='note'>Random-matrix theory of neural-network Hessian blocks (Dong, Zhang, "
        "Yao, Sun, <i>Towards Quantifying the Hessian Structure of Neural Networks</i>): "
        "exact limits from <code>rmthess.theory</code> against Monte-Carlo Hessians from "
        "<code>rmthess.simulate</code>.</p>",
        banner,
        "<h2>Checks</h2>",
        _checks_table(checks),
        "<p class='note'>Tables: <a href='tables/checks.csv'>checks.csv</a>.</p>",
    ]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.seconds:
            parts.append(f"<p class='note'>section time: {sec.seconds:.1f} s</p>")
        for para in sec.text:
            parts.append(f"<p>{html.escape(para)}</p>")
        for alt, path in sec.figures:
            parts.append(_img(figures_dir / Path(path).name, alt))
        for caption, df, csv_name in sec.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(_table(df, csv_name))
    parts.append("<h2>Run settings</h2><table>")
    for k, v in settings.items():
        parts.append(f"<tr><th class=l>{html.escape(str(k))}</th><td class=l>{_fmt(v)}</td></tr>")
    parts.append("</table><h2>Environment</h2><table>")
    for k, v in environment.items():
        parts.append(f"<tr><th class=l>{html.escape(str(k))}</th><td class=l>{_fmt(v)}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
