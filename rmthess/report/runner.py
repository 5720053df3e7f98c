"""The report pipeline: run the sections in data order and write the report atomically.

:func:`run_report` is the whole of ``rmthess report``. The sections live in
:mod:`rmthess.report.sections` (one module each: ``compute``, ``checks``, ``render``); this
module only wires them: a section that needs another's result gets it as an argument, so
asking for one section runs what it needs first. A section that raises is recorded as a
failed check and the report still renders.

Everything is written to a staging directory and moved into ``out`` at the end
(:mod:`rmthess._outputs`), ``index.html`` last. numpy's BLAS and torch's intra-op pool
run single-threaded during the run (:func:`rmthess._threads.limit_threads`): on small
shared machines their threads oversubscribe the cores (the Monte-Carlo theory integrals ran
6x slower with 2 OpenBLAS threads than with 1 on 2 loaded cores; 100 torch training steps
17.3 s of CPU with 2 threads against 6.5 s with 1).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rmthess._outputs import Staging, prepare_out_dir
from rmthess._stats import json_safe
from rmthess.report.checks import Check, check_error, count_text, format_table
from rmthess.report.config import ReportConfig
from rmthess.report.html import Section, render_html
from rmthess.report.sections import NAMES, SECTIONS
from rmthess.report.sections._base import Output

if TYPE_CHECKING:  # pandas and torch are imported when a report runs
    from collections.abc import Iterator, Sequence

    import pandas as pd

    from rmthess._device import Device

__all__ = [
    "ReportResult",
    "environment",
    "plan_sections",
    "request_stop",
    "run_report",
    "stop_on_signals",
]

_STOP = threading.Event()


def request_stop() -> None:
    """Ask the running report to stop (the CLI's SIGINT/SIGTERM handler calls this).

    The handler also raises ``KeyboardInterrupt`` at once, but an exception raised from a
    signal handler can be lost: it surfaces in whatever Python code runs at that instant,
    and C code that clears errors (a dict lookup calling ``__eq__``, a finalizer, an
    import in progress) swallows it. The run then went on and wrote a complete report
    (a CI run exited 1, not 130, that way). The runner therefore also checks this flag at
    every step, after every section and before the commit, and raises
    ``KeyboardInterrupt`` there; a section that failed while the flag was set is counted
    as interrupted, not as a failed check.
    """
    _STOP.set()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the report run inside the block (``KeyboardInterrupt``
    plus :func:`request_stop`); the previous handlers come back on exit. Outside the main
    thread (where handlers cannot be set) only the flag's earlier state is cleared."""
    _STOP.clear()
    old = {}

    def handler(signum, frame):  # pragma: no cover - signal path
        request_stop()
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread
            pass
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
        _STOP.clear()


def _check_stop() -> None:
    if _STOP.is_set():
        raise KeyboardInterrupt


@dataclass
class ReportResult:
    """What :func:`run_report` returns: the checks, timings and written files."""

    out: Path
    checks: list[Check]
    seconds: float
    section_seconds: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    sections_run: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """No check failed (a run of sections without checks, e.g. ``theory`` alone, passes:
        :meth:`summary` says that nothing was checked)."""
        return all(c.passed for c in self.checks)

    def summary(self) -> str:
        where = f"in {self.seconds:.1f} s; report: {self.out / 'index.html'}"
        if not any(c.applies for c in self.checks):
            names = ", ".join(self.sections_run) or "none"
            return (
                (format_table(self.checks) + "\n" if self.checks else "")
                + f"NO CHECKS: section(s) {names} compute numbers that other sections check "
                f"(run those too to test them) {where}"
            )
        head = "PASS" if self.passed else "FAIL"
        return "\n".join([format_table(self.checks), f"{head}: {count_text(self.checks)} {where}"])

    def to_dict(self) -> dict:
        """Scalars of the run (JSON-safe): where, how long, which sections, how many checks
        applied, passed, failed and were N/A; the checks themselves are :meth:`to_frame`."""
        applied = [c for c in self.checks if c.applies]
        n_pass = sum(c.passed for c in applied)
        return json_safe(
            dict(
                out=str(self.out),
                seconds=float(self.seconds),
                sections=",".join(self.sections_run),
                passed=self.passed,
                n_checks=len(applied),
                n_passed=n_pass,
                n_failed=len(applied) - n_pass,
                n_na=len(self.checks) - len(applied),
            )
        )

    def to_frame(self) -> pd.DataFrame:
        """The checks as a tidy ``pandas.DataFrame`` (one row per check)."""
        import pandas as pd

        return pd.DataFrame([c.to_dict() for c in self.checks])


def plan_sections(names=None) -> tuple[list, list[str]]:
    """Section modules to run for the requested ``names`` (default: all), in data order.

    Returns ``(modules, added)`` where ``added`` names the sections that were not asked
    for but are needed by one that was. Unknown names raise ``ValueError``.
    """
    if names is None:
        return list(SECTIONS), []
    names = list(names)
    bad = sorted(set(names) - set(NAMES))
    if bad:
        raise ValueError(f"unknown report section(s) {bad}; allowed: {', '.join(NAMES)}")
    by_name = {s.NAME: s for s in SECTIONS}
    want: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n not in want:
            want.add(n)
            stack.extend(by_name[n].NEEDS)
    return [s for s in SECTIONS if s.NAME in want], sorted(want - set(names))


def environment(device) -> dict:
    """Versions, device and machine facts recorded in the report."""
    import matplotlib
    import numpy as np
    import pandas
    import scipy
    import torch

    import rmthess

    env = {
        "rmthess": rmthess.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "pandas": pandas.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(device),
        "torch threads": torch.get_num_threads(),
        "cpu count": os.cpu_count(),
    }
    if getattr(device, "type", "") == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _run_sections(cfg, todo, dev, bar, output, log_lines=False):
    """Compute, check and render every section of ``todo``; returns (checks, sections,
    timings). A section whose input section failed is skipped with a failed check."""
    results, checks, rendered, timings = {}, [], [], {}
    running = [False]  # a unit of the bar is open: it counts as done at the next step()

    def close_unit() -> None:
        if running[0]:
            bar.update(1)
            running[0] = False

    def step(label: str) -> None:
        """A unit starts: the previous one is done; the bar names the one now running."""
        _check_stop()
        close_unit()
        running[0] = True
        bar.set_postfix_str(f"running: {label}", refresh=True)

    for i, mod in enumerate(todo):
        t0 = time.perf_counter()
        bar.set_postfix_str(f"running: {mod.NAME}", refresh=True)
        if log_lines:
            print(f"rmthess report: section {i + 1}/{len(todo)}: {mod.NAME}", file=sys.stderr)
        missing = [n for n in mod.NEEDS if n not in results]
        try:
            if missing:
                raise RuntimeError(f"needs section(s) {missing}, which failed")
            inputs = {n: results[n] for n in mod.NEEDS}
            result = mod.compute(cfg, device=dev, step=step, **inputs)
            checks.extend(mod.checks(result))
            sec = mod.render(result, output)
            results[mod.NAME] = result
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # a broken section becomes a failed check
            _check_stop()  # ... unless a stop was asked for: the break may be its trace
            checks.append(check_error(mod.NAME, f"section {mod.NAME} ran", exc))
            sec = Section(f"{mod.NAME}: FAILED", text=[f"{type(exc).__name__}: {exc}"])
        _check_stop()
        close_unit()
        timings[mod.NAME] = sec.seconds = time.perf_counter() - t0
        rendered.append(sec)
    return checks, rendered, timings


def run_report(
    cfg: ReportConfig,
    out: str | os.PathLike[str],
    *,
    device: Device = "auto",
    force: bool = False,
    progress: bool | None = None,
    sections: Sequence[str] | None = None,
) -> ReportResult:
    """Run the sections of the report and write it atomically into ``out``.

    Parameters
    ----------
    cfg : ReportConfig (see :func:`rmthess.report.config.get_config`).
    out : output directory; created if absent; an earlier ``rmthess report`` output there
        (its marker file) is replaced; any other non-empty directory is refused unless
        ``force`` (:func:`rmthess._outputs.prepare_out_dir`).
    device : ``"auto" | "cpu" | "cuda"``; ``cuda`` on a machine without it raises
        ``ValueError`` before anything is written.
    progress : ``True``: a tqdm bar on stderr naming the running step; ``False``: nothing;
        ``None`` (default): the bar when stderr is a terminal, else one plain line per
        section (no carriage-return junk in logs). Nested bars of the computations are
        switched off either way.
    sections : names of the sections to run (default: all of
        :data:`rmthess.report.sections.NAMES`); the sections they need run too
        (:func:`plan_sections`), and the page says so.

    Returns
    -------
    ReportResult. On ``KeyboardInterrupt`` (or any exception) the staging directory is
    removed and nothing claiming success remains.
    """
    from tqdm.auto import tqdm

    from rmthess._checks import check_progress
    from rmthess._threads import limit_threads
    from rmthess.simulate.device import resolve_device

    progress = check_progress(progress)
    log_lines = progress is None and not sys.stderr.isatty()
    progress = sys.stderr.isatty() if progress is None else progress
    dev = resolve_device(device)
    todo, added = plan_sections(sections)
    if cfg.store is not None:
        from rmthess.report.sections.theory import check_store

        check_store(cfg.store)  # a store of other records: refused before any work
    out = prepare_out_dir(out, force=force, marker="report", force_flag="--force")
    t_start = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    bar = tqdm(
        total=sum(s.units(cfg) for s in todo),
        desc="rmthess report",
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not progress,
    )
    try:
        with Staging(out, marker="report") as staging, limit_threads(1):
            output = Output(staging.path)
            checks, rendered, timings = _run_sections(cfg, todo, dev, bar, output, log_lines)
            total = time.perf_counter() - t_start
            result = ReportResult(out, checks, total, timings, [], tuple(s.NAME for s in todo))
            result.to_frame().to_csv(output.tab_dir / "checks.csv", index=False)
            settings = cfg.to_dict()
            settings["device requested"] = str(device)
            settings["sections"] = ", ".join(result.sections_run)
            if added:
                settings["sections added as inputs"] = ", ".join(added)
            settings["started"] = started
            settings.update({f"time {k} (s)": round(v, 2) for k, v in timings.items()})
            settings["total time (s)"] = round(total, 2)
            env = environment(dev)
            record = {"settings": settings, "environment": env}
            record["checks"] = [c.to_dict() for c in checks]
            (staging.path / "run.json").write_text(json.dumps(record, indent=1, default=str))
            title = f"rmthess report ({cfg.mode} mode)"
            page = render_html(title, checks, rendered, settings, env, output.fig_dir, total)
            (staging.path / "index.html").write_text(page, encoding="utf-8")
            _check_stop()
            result.files = staging.commit()
    finally:
        bar.close()
    return result
