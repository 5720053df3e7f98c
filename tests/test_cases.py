"""The case registry drives generic tests: every fact of a case is checked by an
independent route (the exact Hessian, the theory, the simulation), one table of cases."""

import math

import numpy as np
import pytest

from rmthess.cases import CASES, REGISTRY, Case, cases_where, get_case

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

C, D, N, M = 4, 5, 9, 3


def test_registry_names_and_lookup():
    assert CASES == tuple(REGISTRY) and len(CASES) == 6
    for name, c in REGISTRY.items():
        assert c.name == name and name == f"{c.layer}-{c.loss}"
        assert get_case(name) is c and get_case(c) is c
    with pytest.raises(ValueError, match="allowed: linear-mse"):
        get_case("linear-l1")
    with pytest.raises(TypeError, match="case must be a string"):
        get_case(3)
    assert cases_where(zero_off=True) == ("linear-mse", "output-mse")


@pytest.mark.parametrize("case", CASES)
def test_block_facts_match_the_exact_hessian(case):
    """n_blocks, block_size and zero_off against the closed-form Hessian (itself checked
    against torch.func.hessian in test_hessian.py)."""
    from rmthess.simulate.hessian import hessian_blocks
    from rmthess.simulate.sampling import sample_instance

    c = get_case(case)
    m = M if c.needs_m else None
    inst = sample_instance(c.model, C, D, N, m, trials=1, seed=1, device="cpu")
    Hb = hessian_blocks(case, inst).numpy()
    K, p = c.n_blocks(C, m), c.block_size(D, m)
    assert Hb.shape == (K, K, p, p)
    off = Hb[~np.eye(K, dtype=bool)]
    assert (np.abs(off).max() == 0.0) == c.zero_off


@pytest.mark.parametrize("case", CASES)
def test_theory_method_and_zero_off_match_the_theory(case):
    from rmthess.theory import frobenius_limits

    c = get_case(case)
    m = 8 if c.needs_m else None
    kw = {"samples": 40, "inner": 8} if c.monte_carlo_theory else {}
    lim = frobenius_limits(case, 10, 0.5, m, **kw)
    assert lim.method == c.theory_method
    assert (lim.F_off == 0.0) == c.zero_off
    # an error bar wherever the value is a numerical integral over V (Monte Carlo's
    # standard error, the Gram quadrature's error estimate)
    assert (lim.F_diag_se > 0) == c.mc_route


@pytest.mark.parametrize("case", CASES)
def test_predicted_slope_matches_the_large_C_constants(case):
    """r = sqrt(F_off / F_diag) ~ C^{-(p_off - p_diag)/2} from the asymptotics module."""
    from rmthess.theory import asymptotic_constants

    c = get_case(case)
    m = 8 if c.needs_m else None
    a = asymptotic_constants(case, 0.5, m)
    if c.predicted_slope is None:
        assert a.A_off == 0.0 and math.isinf(a.p_off)
    else:
        assert c.predicted_slope == pytest.approx(-(a.p_off - a.p_diag) / 2)


@pytest.mark.parametrize("case", CASES)
def test_m_rules(case):
    c = get_case(case)
    if not c.needs_m:
        assert c.check_m(None) is None
        with pytest.raises(ValueError, match="does not apply"):
            c.check_m(8)
        with pytest.raises(TypeError, match="m must be an integer"):
            c.check_m("abc")  # a wrong type is a TypeError whatever the case
        return
    assert c.check_m(c.m_min) == c.m_min and c.check_m(8.0) == 8
    for bad in (c.m_min - 1, None):
        with pytest.raises(ValueError, match=f">= {c.m_min}"):
            c.check_m(bad)
    with pytest.raises(ValueError, match=f">= {c.asymptotic_m_min}"):
        c.check_m(c.asymptotic_m_min - 1, asymptotic=True)
    with pytest.raises(TypeError):
        c.check_m("8")
    with pytest.raises(ValueError):
        c.check_m(2.5)


@pytest.mark.parametrize("case", CASES)
def test_asymptotic_m_min_is_where_the_constants_exist(case):
    from rmthess.theory import asymptotic_constants

    c = get_case(case)
    if not c.needs_m:
        return
    a = asymptotic_constants(case, 0.5, c.asymptotic_m_min)
    assert math.isfinite(a.A_diag) and math.isfinite(a.A_off)
    if c.asymptotic_m_min > c.m_min:
        with pytest.raises(ValueError, match="diverge"):
            asymptotic_constants(case, 0.5, c.asymptotic_m_min - 1)


@pytest.mark.parametrize("case", CASES)
def test_decay_fit_accepts_exactly_the_decaying_cases(case):
    from rmthess.simulate.fits import fit_decay

    c = get_case(case)
    m = M if c.needs_m else None
    if not c.decays:
        with pytest.raises(ValueError, match="exactly block diagonal"):
            fit_decay(case, (4, 8), 6, 12, m, trials=2, device="cpu")
        return
    fit = fit_decay(case, (4, 8), 6, 12, m, trials=4, n_boot=20, theory=False, device="cpu")
    assert fit.predicted_slope == c.predicted_slope and math.isfinite(fit.slope)


def test_case_is_frozen_and_serializable():
    c = get_case("hidden-ce")
    with pytest.raises(AttributeError):
        c.m_min = 5
    d = c.to_dict()
    assert (
        d["needs_m"]
        and d["normalization"] == "1/d"
        and isinstance(Case(**{k: v for k, v in d.items() if k in Case.__dataclass_fields__}), Case)
    )
