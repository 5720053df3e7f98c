"""Pass/fail checks shared by ``rmthess report`` and the ``validation/`` scripts.

Every check compares a *measured* number with a *predicted* one and records both,
the tolerance and the verdict, so that a report (or a script) can print them.

Tolerance rules
---------------
- :func:`check_close`: ``|measured - predicted| <= k * se + rel_allowance * |predicted|``
  with ``se = sqrt(se_measured^2 + se_predicted^2)``. ``k`` standard errors cover the
  Monte-Carlo noise (normal approximation; k = 4 keeps the false-alarm rate of a report
  with ~50 checks below 1%), the relative allowance covers the finite-size bias of a
  simulation at finite (d, N): for ``H = (1/N) sum_i a_i x_i x_i^T`` with ``a`` independent
  of the Gaussian ``x``, ``E (1/d)||H||_F^2 = gamma E[a^2] (1 + 2/d) + (1 - 1/N) (E a)^2``,
  so the bias is O(1/d + 1/N), and the dependence of ``a`` on ``x`` through the logits
  (whose variance ``|w_k|^2 |x_i|^2 / d`` fluctuates by O(1/sqrt(d))) adds further O(1/d)
  terms. Measured for linear-ce at C = 256, gamma = 1/2 (16 trials): F_diag is high by
  6.9%, 2.8%, 1.9%, 0.8% at d = 64, 128, 256, 512 (about 4.5/d), F_off by about 2x that;
  hence 10% allowance in ``--quick`` (d = 64) and 5% by default (d = 256).
- :func:`check_abs`: ``|measured - predicted| <= tol`` (slopes, exact zeros, KS distances).
- :func:`check_upper` / :func:`check_lower`: ``measured <= bound`` / ``>= bound``
  (one-sided, e.g. a decaying norm; the bound is stored as ``predicted`` and shown as
  ``<= b`` / ``>= b``, the tolerance is nan: there is none).

- :func:`check_na`: a measured state the rule does not apply to (outside the claim's
  stated domain): shown with its number and the reason, verdict ``N/A``; it neither
  passes nor fails, and the summary counts it apart. Every measured state of the report
  appears with a verdict, so no state is silently left out where a claim would fail.

Every :class:`Check` records its ``kind`` (``close``, ``abs``, ``upper``, ``lower``,
``error``, ``na``) so that a table can show each one as what it is.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from dataclasses import asdict, dataclass

KINDS = ("close", "abs", "upper", "lower", "error", "na")
"""How a :class:`Check` compares ``measured`` with ``predicted`` (see the module docstring)."""


@dataclass
class Check:
    """One pass/fail comparison.

    ``measured`` and ``predicted`` are floats (nan if unavailable). ``kind`` says how they
    were compared: ``"close"`` / ``"abs"``: ``|measured - predicted| <= tolerance`` (the
    allowed absolute deviation); ``"upper"`` / ``"lower"``: ``measured <= predicted`` /
    ``>= predicted``, a one-sided bound (``predicted`` holds the bound, ``tolerance`` is
    nan); ``"error"``: the computation raised (``detail`` holds the message); ``"na"``:
    the rule does not apply to this measured state (``detail`` says why; ``passed`` is
    True so that it fails nothing, :attr:`verdict` is ``"N/A"``).
    ``detail`` is a short human explanation.
    """

    section: str
    name: str
    measured: float
    predicted: float
    tolerance: float
    passed: bool
    detail: str = ""
    kind: str = "close"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")

    def to_dict(self) -> dict:
        """Flat, JSON-safe record (non-finite floats -> None)."""
        d = asdict(self)
        for key in ("measured", "predicted", "tolerance"):
            if not math.isfinite(d[key]):
                d[key] = None
        return d

    @property
    def verdict(self) -> str:
        if self.kind == "na":
            return "N/A"
        return "PASS" if self.passed else "FAIL"

    @property
    def applies(self) -> bool:
        """False for an ``N/A`` row (a state outside the rule's domain)."""
        return self.kind != "na"

    @property
    def expected(self) -> str:
        """What the check expects, as text: the prediction, or ``"<= b"`` / ``">= b"``."""
        if self.kind == "error":
            return ""
        if self.kind == "na":
            return "n/a" if not math.isfinite(self.predicted) else format_number(self.predicted)
        prefix = {"upper": "<= ", "lower": ">= "}.get(self.kind, "")
        return prefix + format_number(self.predicted)

    @property
    def tolerance_text(self) -> str:
        """The tolerance as text; blank where it has no meaning (one-sided, error)."""
        return (
            "" if self.kind in ("upper", "lower", "error", "na") else format_number(self.tolerance)
        )


def format_number(x, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits (``"nan"``, ``"inf"`` as such); never cut."""
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def check_close(
    section: str,
    name: str,
    measured,
    predicted,
    se_measured=0.0,
    se_predicted=0.0,
    k: float = 4.0,
    rel_allowance: float = 0.0,
    detail: str = "",
) -> Check:
    """Pass when ``|measured - predicted| <= k*sqrt(se_m^2 + se_p^2) + rel_allowance*|predicted|``.

    Non-finite inputs fail (a nan never passes).
    """
    mv, pv = _f(measured), _f(predicted)
    se = math.sqrt(_f(se_measured) ** 2 + _f(se_predicted) ** 2)
    tol = k * se + rel_allowance * abs(pv)
    ok = all(math.isfinite(v) for v in (mv, pv, tol)) and abs(mv - pv) <= tol
    extra = f"k={k:g} SE (se={se:.3g}) + {rel_allowance:.0%} finite-size allowance"
    det = f"{detail}; {extra}" if detail else extra
    return Check(section, name, mv, pv, tol, bool(ok), det, kind="close")


def check_abs(section: str, name: str, measured, predicted, tol: float, detail: str = "") -> Check:
    """Pass when ``|measured - predicted| <= tol`` (all finite)."""
    mv, pv, tv = _f(measured), _f(predicted), _f(tol)
    ok = all(math.isfinite(v) for v in (mv, pv, tv)) and abs(mv - pv) <= tv
    return Check(section, name, mv, pv, tv, bool(ok), detail, kind="abs")


def check_upper(section: str, name: str, measured, bound: float, detail: str = "") -> Check:
    """Pass when ``measured <= bound`` (one-sided; both finite)."""
    mv, bv = _f(measured), _f(bound)
    ok = math.isfinite(mv) and math.isfinite(bv) and mv <= bv
    return Check(section, name, mv, bv, math.nan, bool(ok), detail, kind="upper")


def check_lower(section: str, name: str, measured, bound: float, detail: str = "") -> Check:
    """Pass when ``measured >= bound`` (one-sided; both finite)."""
    mv, bv = _f(measured), _f(bound)
    ok = math.isfinite(mv) and math.isfinite(bv) and mv >= bv
    return Check(section, name, mv, bv, math.nan, bool(ok), detail, kind="lower")


def check_error(section: str, name: str, exc: BaseException) -> Check:
    """A failed check recording that a section raised ``exc`` (so a report still renders)."""
    msg = f"{type(exc).__name__}: {exc}"
    return Check(section, name, math.nan, math.nan, math.nan, False, msg[:500], kind="error")


def check_na(section: str, name: str, measured, reason: str, reference=math.nan) -> Check:
    """A measured state the rule does not apply to, shown with ``reason`` (verdict N/A).

    ``reference`` (optional) is the number the rule would compare with, shown for context.
    """
    if not reason:
        raise ValueError("check_na needs the reason the rule does not apply")
    return Check(section, name, _f(measured), _f(reference), math.nan, True, reason, kind="na")


def count_text(checks: Iterable[Check]) -> str:
    """``"50/52 checks passed"`` (+ ``", 3 not applicable"``): N/A rows are counted apart."""
    checks = list(checks)
    applied = [c for c in checks if c.applies]
    n_pass = sum(c.passed for c in applied)
    text = f"{n_pass}/{len(applied)} checks passed"
    n_na = len(checks) - len(applied)
    return text + (f", {n_na} not applicable (N/A, with the reason)" if n_na else "")


def all_passed(checks: Iterable[Check]) -> bool:
    """True when every check passed (and there is at least one)."""
    checks = list(checks)
    return bool(checks) and all(c.passed for c in checks)


def format_table(checks: Iterable[Check], width: int = 52) -> str:
    """Fixed-width text table: verdict, section, check, measured, expected, tolerance.

    Numbers are printed to 4 significant digits and never cut: each numeric column is as
    wide as its widest entry. A check name longer than ``width`` characters wraps onto
    continuation lines (at spaces; a single word longer than ``width`` widens the column).
    One-sided checks show their bound as ``<= b`` / ``>= b`` in the ``expected`` column
    with a blank tolerance; a check whose computation raised shows ``error`` there and
    the start of the message on a continuation line; an ``N/A`` row shows its reason there.
    """
    checks = list(checks)
    rows = []
    for c in checks:
        measured = "" if c.kind == "error" else format_number(c.measured)
        expected = "error" if c.kind == "error" else c.expected
        rows.append((c.verdict, c.section, c.name, measured, expected, c.tolerance_text))
    head = ("", "section", "check", "measured", "expected", "tol")
    longest_word = max((len(w) for r in rows for w in r[2].split()), default=0)
    name_w = max(len(head[2]), min(width, max((len(r[2]) for r in rows), default=0)), longest_word)
    widths = [max([len(head[i]), *(len(r[i]) for r in rows)]) for i in range(6)]
    widths[0], widths[2] = max(widths[0], 4), name_w

    def line(cells) -> str:
        v, sec, name, *nums = cells
        out = f"{v:<{widths[0]}}  {sec:<{widths[1]}}  {name:<{widths[2]}}"
        out += "".join(f"  {x:>{w}}" for x, w in zip(nums, widths[3:], strict=True))
        return out.rstrip()

    indent = " " * (widths[0] + widths[1] + 4)
    lines = [line(head)]
    for c, r in zip(checks, rows, strict=True):
        parts = textwrap.wrap(r[2], name_w, break_long_words=False, break_on_hyphens=False) or [""]
        lines.append(line((r[0], r[1], parts[0], *r[3:])))
        lines.extend(indent + p for p in parts[1:])
        if c.kind in ("error", "na") and c.detail:
            msg = c.detail if len(c.detail) <= 200 else c.detail[:197] + "..."
            lines.extend(indent + p for p in textwrap.wrap(msg, max(name_w, 40)))
    return "\n".join(lines)


def exit_code(checks: Iterable[Check], out=None) -> int:
    """Print the table (to ``out`` or stdout) and return 0 if all passed, else 1."""
    import sys

    checks = list(checks)
    stream = out or sys.stdout
    print(format_table(checks), file=stream)
    n_fail = sum(not c.passed for c in checks)
    print(count_text(checks), file=stream)
    return 0 if checks and n_fail == 0 else 1
