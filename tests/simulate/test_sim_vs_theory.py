"""Simulated F_diag, F_off (Gram route) against the exact limits of rmthess.theory.

Criterion: |sim - theory| <= 3 * sqrt(se_sim^2 + se_theory^2) + allowance * theory.

Finite-size allowance (relative), ``c_d / d + c_N / N``, with its numerical reason:

- d x d blocks (linear-*, hidden-*): c_d = 8, c_N = 2. Measured bias of the simulated
  mean relative to the limit (linear-ce, where the limit is exact to 1e-12 and the
  simulation's standard error is ~0.1%): F_diag +1.7%, +0.9%, +0.4%, +0.2% and F_off +5.2%,
  +2.8%, +0.9%, +0.4% at d = 100, 200, 400, 800 (N = 2d, C = 32): O(1/d), coefficient <= 5.
  Source: the rows of W are orthonormal only to O(d^-1/2) and a_i depends on x_i through
  W x_i. linear-mse has the exact finite-size value 1 + (d+1)/N, i.e. a 1/N term.
- m x m output blocks (output-*): c_d = 8, c_N = 40. ||(1/N) sum_i M_i||^2 has the exact
  finite-N bias (E||M||^2 - ||E M||^2)/N; measured +2.7% (F_diag), +4.5% (F_off) at N = 800,
  C = 32, m = 8 (coefficients 22 and 36). The output tests therefore use a larger N.
- output blocks with ``unbiased=True`` (the U-statistic drops the i = j terms, which ARE
  that exact 1/N bias): c_d = 8, c_N = 0; so N can stay small (N = 2d).
"""

import math

import pytest

from rmthess.cases import get_case
from rmthess.simulate.frobenius import block_frobenius
from rmthess.theory import frobenius_limits

ALLOW = {"d": (8.0, 2.0), "output": (8.0, 40.0), "output-unbiased": (8.0, 0.0)}


def _allowance(case, d, N, unbiased=False):
    key = "d" if get_case(case).block_dim == "d" else "output-unbiased" if unbiased else "output"
    c_d, c_N = ALLOW[key]
    return c_d / d + c_N / N


def _check(case, C, d, N, m, trials, seed, samples=None, unbiased=False):
    sim = block_frobenius(
        case, C, d, N, m, trials=trials, seed=seed, device="cpu", unbiased=unbiased
    )
    kw = {} if samples is None else {"samples": samples}
    if get_case(case).monte_carlo_theory:
        th = frobenius_limits(case, C, d / N, m, seed=seed + 1000, **kw)
    else:
        th = frobenius_limits(case, C, d / N, m)
    allow = _allowance(case, d, N, unbiased)
    msgs = []
    for name, s, se, t, tse in [
        ("F_diag", sim.F_diag, sim.F_diag_se, th.F_diag, th.F_diag_se),
        ("F_off", sim.F_off, sim.F_off_se, th.F_off, th.F_off_se),
    ]:
        tol = 3 * math.hypot(se, tse) + allow * abs(t)
        if t == 0:  # exactly block diagonal: the simulation must be exactly 0 too
            ok = s == 0
        else:
            ok = abs(s - t) <= tol
        msgs.append((ok, f"{case} C={C} {name}: sim {s:.6g} +- {se:.2g}, theory {t:.6g} "
                         f"+- {tse:.2g}, tol {tol:.2g}"))  # fmt: skip
    bad = [m_ for ok, m_ in msgs if not ok]
    assert not bad, "\n".join(bad)


FAST = [
    ("linear-mse", 8, 200, 400, None, 16),
    ("linear-ce", 8, 200, 400, None, 32),
    ("hidden-mse", 8, 200, 400, 8, 128),
    ("hidden-ce", 8, 200, 400, 8, 128),
    ("output-mse", 8, 200, 2000, 8, 32),
    ("output-ce", 8, 200, 2000, 8, 64),
]


@pytest.mark.parametrize("case, C, d, N, m, trials", FAST)
def test_sim_matches_theory_fast(case, C, d, N, m, trials):
    _check(case, C, d, N, m, trials, seed=7)


@pytest.mark.parametrize("case", ["output-mse", "output-ce"])
def test_unbiased_output_sim_matches_theory_at_small_N(case):
    # with the i = j terms dropped, N = 2d suffices and the allowance has no 1/N term
    _check(case, 8, 200, 400, 8, 64, seed=7, unbiased=True)


SLOW = [
    (case, C, d, N, m, trials)
    for C in (8, 32)
    for case, d, N, m, trials in [
        ("linear-mse", 400, 800, None, 32),
        ("linear-ce", 400, 800, None, 64),
        ("hidden-mse", 400, 800, 8, 256),
        ("hidden-ce", 400, 800, 8, 256),
        ("output-mse", 400, 4000, 8, 64),
        ("output-ce", 400, 4000, 8, 128),
    ]
]


@pytest.mark.slow
@pytest.mark.parametrize("case, C, d, N, m, trials", SLOW)
def test_sim_matches_theory_moderate_sizes(case, C, d, N, m, trials):
    _check(case, C, d, N, m, trials, seed=11, samples=1000)
