"""What the report sections share: the output writer and the per-C check aggregator."""

from __future__ import annotations

import math
from pathlib import Path

from rmthess.report.checks import Check
from rmthess.report.html import Section

__all__ = ["Output", "Section", "worst_of", "m_for"]


class Output:
    """Writes a section's figures (``figures/*.png``) and tables (``tables/*.csv``)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.fig_dir = self.root / "figures"
        self.tab_dir = self.root / "tables"
        self.fig_dir.mkdir(exist_ok=True)
        self.tab_dir.mkdir(exist_ok=True)

    def figure(self, fig, name: str) -> Path:
        """Save (and close) a matplotlib figure as ``figures/<name>``."""
        from rmthess.report.figures import save

        path = self.fig_dir / name
        save(fig, path)
        return path

    def table(self, df, name: str) -> str:
        """Write a DataFrame as ``tables/<name>``; returns the CSV's name."""
        df.to_csv(self.tab_dir / name, index=False)
        return name


def section_seed(cfg, *key) -> int:
    """The integer seed of one random stream of the report: ``(cfg.seed, "report", *key)``
    through :func:`rmthess._random.seed_int` (named keys: independent streams, no
    ``seed + 7`` offsets that collide between sections)."""
    from rmthess._random import seed_int

    return seed_int(cfg.seed, "report", *key)


def m_for(case: str, m: int):
    """The hidden width to pass for ``case``: None for the linear model."""
    from rmthess.cases import get_case

    return m if get_case(case).needs_m else None


def _score(c: Check) -> float:
    if not (math.isfinite(c.measured) and math.isfinite(c.predicted)):
        return math.inf
    if c.tolerance > 0:
        return abs(c.measured - c.predicted) / c.tolerance
    return 0.0 if c.measured == c.predicted else math.inf


def worst_of(rows: list[tuple[int, Check]], section: str, label: str) -> Check:
    """Aggregate per-C checks into one: the C with the largest |deviation| / tolerance.

    Passes only if every per-C check passed; the detail says how many did not.
    """
    C, worst = max(rows, key=lambda t: _score(t[1]))
    n_fail = sum(not c.passed for _, c in rows)
    detail = (
        f"{len(rows)} C values, {n_fail} outside tolerance; worst at C={C} "
        f"({_score(worst):.2f} x tol); {worst.detail}"
    )
    return Check(
        section,
        f"{label} (worst C={C})",
        worst.measured,
        worst.predicted,
        worst.tolerance,
        n_fail == 0,
        detail,
        kind=worst.kind,
    )
