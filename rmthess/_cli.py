"""The command-line toolkit shared by every ``rmthess`` sub-command (ground floor).

One convention per option, so that the same flag means the same thing everywhere:

- ``--json``: print machine-readable records instead of the table (:func:`add_json`);
- ``--out``: where files go, checked before any work and written atomically by
  :mod:`rmthess._outputs` (:func:`add_out`);
- ``--no-progress``: ``args.progress`` is ``None`` (a bar on a terminal for long runs)
  or ``False`` (:func:`add_progress`);
- ``--init``: ``lecun`` | ``torch-default`` | a float sigma, resolved by
  :func:`rmthess.inits.resolve_init` (:func:`add_init`);
- numbers and lists: :func:`rmthess._checks.number_arg` and
  :func:`rmthess._checks.int_list_arg` (one-line errors naming the parameter).

Usage errors are one line, ``rmthess COMMAND: error: MESSAGE``, exit status 2 (the parser
class is :class:`rmthess.cli.OneLineErrors`; ValueError/TypeError raised by a command
become the same line). Nothing heavy is imported here, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from rmthess.inits import Init

__all__ = [
    "INIT_HELP",
    "OneLineErrors",
    "add_init",
    "add_json",
    "add_out",
    "add_progress",
    "first_paragraph",
    "init_arg",
    "plain_text",
    "print_table",
]

INIT_HELP = (
    "weight initialisation: lecun (default; normal, variance 1/fan_in), torch-default "
    "(nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in))) or a float SIGMA (normal, variance "
    "SIGMA^2/fan_in)"
)


def init_arg(text: str) -> Init:
    """``argparse`` type of ``--init``: ``lecun``, ``torch-default`` or a float sigma > 0,
    resolved by :func:`rmthess.inits.resolve_init` (its one-line error on bad input)."""
    import argparse

    from rmthess.inits import resolve_init

    try:
        return resolve_init(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


init_arg.__name__ = "init"


def add_init(parser: argparse.ArgumentParser, default: str = "lecun") -> None:
    """``--init`` with :func:`init_arg` as its type."""
    parser.add_argument("--init", default=default, type=init_arg, help=INIT_HELP)


ACTIVATION_NAMES = "relu, leaky-relu, linear, tanh, sigmoid, softplus, gelu"
"""The names of :data:`rmthess.activations.ACTIVATIONS` for help texts (no numpy import on
``--help``; tests/test_cli.py checks that they are the table's)."""


def add_activation(parser: argparse.ArgumentParser, what: str) -> None:
    """``--activation``: a name of :data:`rmthess.activations.ACTIVATIONS` (checked where
    it is used, one ``ValueError`` naming the choices); ``what`` says what it applies to."""
    parser.add_argument(
        "--activation",
        default="relu",
        metavar="PHI",
        help=f"hidden activation of {what}: {ACTIVATION_NAMES} (default relu, the paper's)",
    )


def add_json(parser: argparse.ArgumentParser, what: str = "the results") -> None:
    """``--json``: print ``what`` as JSON (records from ``to_dict()``) instead of a table."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_out(
    parser: argparse.ArgumentParser, what: str = "CSV/PNG/JSON outputs", required: bool = False
) -> None:
    """``--out``: a directory (or file) for ``what``, checked before any work."""
    parser.add_argument(
        "--out",
        default=None,
        required=required,
        help=f"where to write {what} (checked before any work; written atomically)",
    )


def add_progress(
    parser: argparse.ArgumentParser, when: str = "on a terminal, for runs longer than a few seconds"
) -> None:
    """``--no-progress``: ``args.progress`` is None by default (a bar ``when``), else False."""
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help=f"no progress bar (default: one on stderr {when})",
    )


class OneLineErrors(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, ``PROG: error: MESSAGE`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|obj|exc|ref|math|doc):`~?([^`]+)`")


def plain_text(text: str) -> str:
    """A docstring as terminal text: reST roles (``:func:`x```) and literals (````x````)
    become plain ``x``; ``.. code::`` style markers are left alone.

    >>> plain_text(":func:`rmthess.theory.layer_law` of ``C`` classes")
    'rmthess.theory.layer_law of C classes'
    """
    text = _ROLE.sub(r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def first_paragraph(doc: str | None, default: str = "") -> str:
    """The first paragraph of ``doc`` on one line, as plain text (a help line that is not
    cut mid-sentence)."""
    para = (doc or "").strip().split("\n\n")[0]
    return plain_text(" ".join(para.split())) or default


def print_table(cols: list[str], cells: list[list[str]], indent: str = "") -> None:
    """Print a right-aligned text table: the header ``cols`` then the rows ``cells``."""
    table = [cols] + cells
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print(indent + "  ".join(s.rjust(w) for s, w in zip(row, widths, strict=True)))


def print_layer_maps(results: list, what: str) -> None:
    """One table per result of per-layer block maps (:class:`rmthess.theory.DepthLimits` or
    :class:`rmthess.simulate.deep.DepthBlockNorms`: ``layers``, ``rows`` and ``F_diag``,
    ``F_off``, ``ratio`` with ``*_se``), headed ``C=...``; ``what`` is the footnote."""
    from rmthess._stats import format_estimate

    cols = ["layer", "rows", "F_diag", "F_off", "ratio"]
    for r in results:
        print(f"C={r.C}")
        cells = [
            [name, str(rows)]
            + [format_estimate(getattr(r, q)[i], getattr(r, f"{q}_se")[i]) for q in cols[2:]]
            for i, (name, rows) in enumerate(zip(r.layers, r.rows, strict=True))
        ]
        print_table(cols, cells, indent="  ")
    print(what)
