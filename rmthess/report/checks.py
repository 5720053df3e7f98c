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
  (one-sided, e.g. a decaying norm).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass
class Check:
    """One pass/fail comparison.

    ``measured`` and ``predicted`` are floats (nan if unavailable), ``tolerance`` the
    allowed absolute deviation (or bound), ``detail`` a short human explanation.
    """

    section: str
    name: str
    measured: float
    predicted: float
    tolerance: float
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


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
    return Check(section, name, mv, pv, tol, bool(ok), f"{detail}; {extra}" if detail else extra)


def check_abs(section: str, name: str, measured, predicted, tol: float, detail: str = "") -> Check:
    """Pass when ``|measured - predicted| <= tol`` (all finite)."""
    mv, pv, tv = _f(measured), _f(predicted), _f(tol)
    ok = all(math.isfinite(v) for v in (mv, pv, tv)) and abs(mv - pv) <= tv
    return Check(section, name, mv, pv, tv, bool(ok), detail)


def check_upper(section: str, name: str, measured, bound: float, detail: str = "") -> Check:
    """Pass when ``measured <= bound`` (one-sided; both finite)."""
    mv, bv = _f(measured), _f(bound)
    ok = math.isfinite(mv) and math.isfinite(bv) and mv <= bv
    return Check(section, name, mv, bv, bv, bool(ok), detail)


def check_lower(section: str, name: str, measured, bound: float, detail: str = "") -> Check:
    """Pass when ``measured >= bound`` (one-sided; both finite)."""
    mv, bv = _f(measured), _f(bound)
    ok = math.isfinite(mv) and math.isfinite(bv) and mv >= bv
    return Check(section, name, mv, bv, bv, bool(ok), detail)


def check_error(section: str, name: str, exc: BaseException) -> Check:
    """A failed check recording that a section raised ``exc`` (so a report still renders)."""
    msg = f"{type(exc).__name__}: {exc}"
    return Check(section, name, math.nan, math.nan, math.nan, False, msg[:500])


def all_passed(checks: Iterable[Check]) -> bool:
    """True when every check passed (and there is at least one)."""
    checks = list(checks)
    return bool(checks) and all(c.passed for c in checks)


def format_table(checks: Iterable[Check], width: int = 44) -> str:
    """Fixed-width text table: verdict, section, name, measured, predicted, tolerance."""
    lines = [
        f"{'':4}  {'section':<10} {'check':<{width}} {'measured':>11} {'predicted':>11} {'tol':>9}"
    ]
    for c in checks:
        name = c.name if len(c.name) <= width else c.name[: width - 1] + "~"
        lines.append(
            f"{c.verdict:<4}  {c.section:<10.10} {name:<{width}} {c.measured:>11.4g} "
            f"{c.predicted:>11.4g} {c.tolerance:>9.2g}"
        )
    return "\n".join(lines)


def exit_code(checks: Iterable[Check], out=None) -> int:
    """Print the table (to ``out`` or stdout) and return 0 if all passed, else 1."""
    import sys

    checks = list(checks)
    stream = out or sys.stdout
    print(format_table(checks), file=stream)
    n_fail = sum(not c.passed for c in checks)
    print(f"{len(checks) - n_fail}/{len(checks)} checks passed", file=stream)
    return 0 if checks and n_fail == 0 else 1
