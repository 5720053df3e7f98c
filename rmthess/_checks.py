"""Input validation shared by every layer (pure Python, no heavy imports).

Each checker raises ``TypeError`` for the wrong type and ``ValueError`` for a value
outside the allowed range, always naming the parameter and the allowed range.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rmthess.cases import get_case

if TYPE_CHECKING:
    import numpy as np


def check_int(
    name: str, value: object, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``value`` as ``int``; it must be an integer (bool excluded) in [minimum, maximum].

    Floats with an integral value (``1e7``) are accepted; ``2.5`` is not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Integral):
        ivalue = int(value)
    else:
        fvalue = float(value)
        if not math.isfinite(fvalue) or fvalue != int(fvalue):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        ivalue = int(fvalue)
    if minimum is not None and ivalue < minimum:
        hi = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be an integer >= {minimum}{hi}, got {value!r}")
    if maximum is not None and ivalue > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value!r}")
    return ivalue


def check_float(
    name: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    closed: str = "both",
) -> float:
    """Return ``value`` as a finite float in the interval from ``lo`` to ``hi``.

    ``closed`` says which ends belong to the interval: ``"both"`` (``[lo, hi]``),
    ``"left"`` (``[lo, hi)``), ``"right"`` (``(lo, hi]``) or ``"neither"`` (``(lo, hi)``);
    a missing end (None) is unbounded. Bools are refused (``TypeError``); NaN, infinities
    and out-of-range values raise one ``ValueError`` naming ``name`` and the interval
    (scikit-learn's ``Interval`` constraint, as a function).

    >>> check_float("gamma", 0.5, 0, None, closed="neither")
    0.5
    >>> check_float("gamma", 0, 0, None, closed="neither")
    Traceback (most recent call last):
    ...
    ValueError: gamma must be a finite number > 0, got 0
    """
    if closed not in ("both", "left", "right", "neither"):
        raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    fvalue = float(value)
    lo_in = closed in ("both", "left")
    hi_in = closed in ("both", "right")
    ok = math.isfinite(fvalue)
    if ok and lo is not None:
        ok = fvalue >= lo if lo_in else fvalue > lo
    if ok and hi is not None:
        ok = fvalue <= hi if hi_in else fvalue < hi
    if not ok:
        raise ValueError(f"{name} must be {_interval_text(lo, hi, lo_in, hi_in)}, got {value!r}")
    return fvalue


def _interval_text(lo: float | None, hi: float | None, lo_in: bool, hi_in: bool) -> str:
    if lo is None and hi is None:
        return "a finite number"
    if hi is None:
        return f"a finite number {'>=' if lo_in else '>'} {lo:g}"
    if lo is None:
        return f"a finite number {'<=' if hi_in else '<'} {hi:g}"
    return f"a number in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a finite float > 0: ``check_float(name, value, 0, closed="neither")``."""
    return check_float(name, value, 0, None, closed="neither")


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool (numpy bools accepted); ``TypeError`` otherwise."""
    if type(value).__name__ == "bool_":
        value = bool(value)
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_progress(progress: object, name: str = "progress") -> bool | None:
    """Validate a ``progress`` argument: ``True`` (bar), ``False`` (none) or ``None`` (a bar
    on a terminal for long runs only); ``TypeError`` otherwise."""
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"{name} must be True, False or None, got {progress!r}")
    return progress


def _stderr_is_terminal() -> bool:
    import os
    import sys

    tty = getattr(sys.stderr, "isatty", None)
    return bool(tty and tty()) and os.environ.get("TERM") != "dumb"


def want_progress(progress: bool | None, predicted_s: float, after_s: float = 5.0) -> bool:
    """Whether to show a progress bar: ``progress`` if it is a bool, else (``None``) when
    stderr is a terminal and the whole run is predicted to take over ``after_s`` seconds.

    >>> want_progress(False, 1e9), want_progress(True, 0.0)
    (False, True)
    """
    progress = check_progress(progress)
    if progress is not None:
        return progress
    return _stderr_is_terminal() and predicted_s > after_s


def progress_bar(
    progress: bool | None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
) -> Any:
    """A tqdm bar on stderr after :func:`check_progress`: shown for ``progress=True``, hidden
    (a disabled bar: ``update``/``close`` still work) for ``False``, and for ``None`` shown
    when stderr is a terminal (not ``TERM=dumb``). ``total=None``: a counter without end."""
    import sys

    from tqdm.auto import tqdm

    progress = check_progress(progress)
    if progress is None:
        progress = _stderr_is_terminal()
    return tqdm(
        total=total, initial=initial, desc=desc, unit=unit, disable=not progress, file=sys.stderr
    )


def check_data_matrix(name: str, X: object, min_rows: int = 1) -> np.ndarray:
    """``X`` as a C-contiguous float64 array of shape (N, d), ``N >= min_rows``, ``d >= 1``,
    all finite: a ``TypeError`` for non-real data, one ``ValueError`` naming ``name`` (and
    the first row holding NaN or inf) otherwise. The one check of a data matrix, shared by
    :class:`rmthess.data.Dataset` and :func:`rmthess.theory.input_stats`."""
    import numpy as np

    try:
        Xa = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of shape (N, d), got {type(X).__name__}") from exc
    if Xa.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {Xa.dtype}")
    if Xa.ndim != 2 or Xa.shape[0] < min_rows or Xa.shape[1] < 1:
        raise ValueError(
            f"{name} must be a 2-D array (N, d) with N >= {min_rows}, d >= 1, got shape {Xa.shape}"
        )
    Xa = np.ascontiguousarray(Xa, dtype=np.float64)
    finite = np.isfinite(Xa).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(f"{name} must be finite; row {row} holds NaN or inf: {Xa[row][:8]}")
    return Xa


def check_memory(need_bytes: float, what: str, hint: str = "", fraction: float = 0.5) -> None:
    """Refuse, before any work, a computation that needs more than ``fraction`` of the
    machine's RAM: one ``ValueError`` saying ``what`` needs how many GiB, and ``hint``
    (which parameter to lower). Does nothing where the RAM size is unreported."""
    total = physical_memory()
    if total is None or need_bytes <= fraction * total:
        return
    tail = f"; {hint}" if hint else ""
    raise ValueError(
        f"{what} needs about {need_bytes / 2**30:.3g} GiB, more than "
        f"{fraction:.0%} of this machine's {total / 2**30:.0f} GiB of RAM{tail}"
    )


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(choices)}")
    return value


def check_case(case: object) -> str:
    """Validate a Hessian case name (one of :data:`rmthess.CASES`); return the name."""
    return get_case(case).name


def parse_int_list(name: str, text: str, minimum: int = 1) -> list[int]:
    """Parse a comma-separated CLI list such as ``"10,100,1e3"`` into checked ints."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            num = float(part)
        except ValueError:
            raise ValueError(
                f"{name} must be a comma-separated list of integers, got {text!r}"
            ) from None
        out.append(check_int(name, int(num) if num.is_integer() else num, minimum))
    if not out:
        raise ValueError(f"{name} must list at least one integer, got {text!r}")
    return out


# ----------------------------------------------------------------------------- memory limits
def physical_memory() -> int | None:
    """Physical RAM in bytes (``SC_PHYS_PAGES * SC_PAGE_SIZE``), None where unreported."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def largest_fitting(fits: Callable[..., bool], lo: int, hi: int) -> int:
    """Largest integer ``x`` in ``[lo, hi]`` with ``fits(x)``, for a monotone ``fits``
    (true up to some point, false after); ``lo - 1`` when none fits. Bisection.

    >>> largest_fitting(lambda x: x * x <= 50, 1, 100)
    7
    """
    if hi < lo or not fits(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


# ----------------------------------------------------------------------------- argparse types
def _number_from_text(text: str, kind: str) -> int | float:
    """``"1e3"`` -> 1000 for ints (integral floats accepted), float for floats; else raise."""
    if not isinstance(text, str):
        return text
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        pass
    value = float(text)  # "1e3", "2.5": raises ValueError for non-numbers
    return int(value) if kind == "int" and value.is_integer() else value


def number_arg(
    kind: str = "int", *, name: str, minimum: int | None = None, maximum: int | None = None
) -> Callable[[str], int | float]:
    """The one ``argparse`` ``type=`` factory for numbers of the command line.

    ``kind="int"``: an integer in ``[minimum, maximum]`` (``1e3`` accepted);
    ``kind="float"``: a finite float ``> 0`` (the only float range the CLI needs).
    Errors name ``name`` and the allowed range (argparse prefixes the flag).

    >>> number_arg("int", name="C", minimum=2)("1e3")
    1000
    """
    import argparse

    check_choice("kind", kind, ("int", "float"))

    def parse(text: str) -> int | float:
        try:
            value = _number_from_text(text, kind)
        except ValueError:
            what = "an integer" if kind == "int" else "a finite number > 0"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        try:
            if kind == "int":
                return check_int(name, value, minimum, maximum)
            return check_positive_float(name, value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def int_arg(name: str, minimum: int | None = None, maximum: int | None = None) -> Callable:
    """``number_arg("int", name=name, minimum=minimum, maximum=maximum)``: the ``type=`` of
    an integer option (the CLIs' shorthand).

    >>> int_arg("C", 2)("1e3")
    1000
    """
    return number_arg("int", name=name, minimum=minimum, maximum=maximum)


def int_list_arg(*, name: str, minimum: int = 1) -> Callable[[str], list[int]]:
    """``argparse`` ``type=`` for a comma-separated list of integers (``"10,100,1e3"``)."""
    import argparse

    def parse(text: str) -> list[int]:
        try:
            return parse_int_list(name, text, minimum)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse
