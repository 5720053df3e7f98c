import math

import pytest

from rmthess._checks import check_case, check_int, check_positive_float, parse_int_list


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
