import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmthess._checks import check_case, check_int, check_positive_float, parse_int_list
from rmthess.report.checks import (
    Check,
    check_abs,
    check_close,
    check_error,
    check_lower,
    check_upper,
    format_table,
)


def test_check_int_accepts_integral_floats_and_rejects_others():
    assert check_int("C", 1e7, 2) == 10_000_000
    with pytest.raises(ValueError, match="C must be an integer"):
        check_int("C", 2.5, 2)
    with pytest.raises(ValueError, match=">= 2"):
        check_int("C", 1, 2)
    with pytest.raises(TypeError, match="C"):
        check_int("C", "10", 2)
    with pytest.raises(TypeError):
        check_int("C", True, 2)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_check_positive_float_rejects(bad):
    with pytest.raises(ValueError, match="gamma"):
        check_positive_float("gamma", bad)


def test_check_case_lists_allowed():
    with pytest.raises(ValueError, match="linear-ce"):
        check_case("nope")


def test_parse_int_list():
    assert parse_int_list("C", "10, 100,1e3") == [10, 100, 1000]
    with pytest.raises(ValueError, match="C"):
        parse_int_list("C", "10,abc")


# --------------------------------------------- rmthess.report.checks: kinds and the table
_finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
_words = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_/()=0123456789", min_size=1, max_size=14),
    min_size=1,
    max_size=12,
)


@given(
    words=_words,
    section=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20),
    measured=_finite_or_not,
    predicted=_finite_or_not,
    tol=_finite_or_not,
    C=st.integers(0, 10**12),
    width=st.integers(8, 60),
)
def test_format_table_never_cuts_a_number_or_a_name(
    words, section, measured, predicted, tol, C, width
):
    name = " ".join(words) + f" (worst C={C})"
    checks = [
        check_abs(section, name, measured, predicted, tol),
        check_upper(section, name, measured, predicted),
        check_lower(section, name, measured, predicted),
    ]
    text = format_table(checks, width=width)
    tokens = text.split()
    for v in (measured, predicted, tol):
        assert f"{v:.4g}" in tokens
    for prefix in ("<=", ">="):
        assert prefix in tokens
    assert section in tokens
    assert f"C={C})" in tokens  # the number in a name is whole too
    for w in words:
        assert w in tokens
    assert "~" not in text


def test_format_table_regression_worst_C_256():
    c = check_close("frobenius", "hidden-mse F_diag sim vs theory (worst C=256)", 0.015, 0.016)
    text = format_table([c])
    assert "C=256)" in text and "C=25~" not in text


def test_one_sided_checks_show_their_bound_not_a_prediction():
    up = check_upper("dynamics", "fraction last / first", 1.01, 0.5)
    lo = check_lower("dynamics", "fraction at init", 0.9, 0.5)
    assert (up.kind, lo.kind) == ("upper", "lower")
    assert up.expected == "<= 0.5" and lo.expected == ">= 0.5"
    assert up.tolerance_text == "" and lo.tolerance_text == ""
    assert up.to_dict()["tolerance"] is None and up.to_dict()["predicted"] == 0.5
    text = format_table([up, lo]).splitlines()
    header = text[0].split()
    assert "expected" in header and "predicted" not in header
    assert text[1].split()[-2:] == ["<=", "0.5"]  # the bound is the last cell: no tolerance
    assert text[2].split()[-2:] == [">=", "0.5"]
    close = check_close("s", "two-sided", 1.0, 1.1, 0.01)
    assert close.kind == "close" and close.expected == "1.1" and close.tolerance_text == "0.04"
    assert check_abs("s", "x", 1, 1, 0.1).kind == "abs"


def test_check_kind_and_to_dict():
    err = check_error("s", "section s ran", ValueError("bad C"))
    assert err.kind == "error" and err.expected == ""
    rec = err.to_dict()
    assert rec["measured"] is None and rec["kind"] == "error"
    assert all(not isinstance(v, (dict, list, tuple)) for v in rec.values())  # flat
    text = format_table([err])
    assert "error" in text and "bad C" in text
    assert Check("a", "b", 1.0, 1.0, 0.1, True).kind == "close"  # positional use unchanged
    with pytest.raises(ValueError, match="kind"):
        Check("a", "b", 1.0, 1.0, 0.1, True, kind="two-sided")


def test_format_table_of_no_checks_is_the_header():
    assert format_table([]).split() == ["section", "check", "measured", "expected", "tol"]
