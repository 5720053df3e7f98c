"""Theory layer at its limits: BLAS threads, long runs, huge inputs, extreme gamma, inputs
that do not apply, tiny Monte-Carlo sizes (issue 7, section 2)."""

import math
import os
import time
import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from rmthess.cases import get_case
from rmthess.theory import block_laws as bl
from rmthess.theory import hidden_integrals as hi
from rmthess.theory.frobenius import MIN_SAMPLES, PROGRESS_AFTER_S, frobenius_limits
from rmthess.theory.softmax_moments import softmax_moments

MC = ["hidden-ce", "output-ce"]
ALL = ["linear-mse", "linear-ce", "hidden-mse", "hidden-ce", "output-mse", "output-ce"]
_BATCH = {"hidden-ce": "_hidden_ce_batch", "output-ce": "_output_ce_batch"}


def _blas_threads():
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


# ---------------------------------------------------------------- 1. BLAS threads
@pytest.mark.parametrize("case", MC)
def test_monte_carlo_runs_on_one_blas_thread(case, monkeypatch):
    seen = []
    kernel = getattr(hi, _BATCH[case])

    def spy(V, g):
        seen.extend(_blas_threads())
        return kernel(V, g)

    monkeypatch.setattr(hi, _BATCH[case], spy)
    with threadpool_limits(limits=2, user_api="blas"):  # a user with threaded BLAS
        assert set(_blas_threads()) == {2}
        frobenius_limits(case, 10, 0.5, 4, samples=MIN_SAMPLES, inner=8)
        assert set(_blas_threads()) == {2}  # restored afterwards
    assert seen and set(seen) == {1}


# ---------------------------------------------------------------- 2. long runs
def _bar_text(capsys):
    return capsys.readouterr().err


@pytest.mark.parametrize("case", MC)
def test_progress_bar_forced_and_off(case, capsys):
    frobenius_limits(case, 10, 0.5, 4, samples=MIN_SAMPLES, inner=8, progress=True)
    err = _bar_text(capsys)
    assert f"{case} C=10" in err and f"{MIN_SAMPLES}/{MIN_SAMPLES}" in err
    frobenius_limits(case, 10, 0.5, 4, samples=MIN_SAMPLES, inner=8, progress=False)
    assert _bar_text(capsys) == ""


def test_progress_auto_follows_the_cost_estimate(capsys, monkeypatch):
    # quick run: no bar by default
    frobenius_limits("hidden-ce", 10, 0.5, 4, samples=MIN_SAMPLES, inner=8)
    assert _bar_text(capsys) == ""
    # the same run predicted to be long: a bar by default, none with progress=False
    monkeypatch.setattr(hi, "estimated_cost", lambda *a: (10 * PROGRESS_AFTER_S, 1.0))
    frobenius_limits("hidden-ce", 10, 0.5, 4, samples=MIN_SAMPLES, inner=8)
    assert "hidden-ce C=10" in _bar_text(capsys)
    frobenius_limits("hidden-ce", 10, 0.5, 4, samples=MIN_SAMPLES, inner=8, progress=False)
    assert _bar_text(capsys) == ""


def test_cost_estimate_flags_the_reported_long_run():
    # the issue: hidden-ce at C = 1e5 (m = 8, default sizes) ran 457 s with no output
    n_V, n_g = hi.default_sizes("hidden-ce", 10**5, 8)
    assert hi.estimated_cost("hidden-ce", 10**5, 8, n_V, n_g)[0] > 10 * PROGRESS_AFTER_S
    # ... while the everyday C = 10 run stays quiet
    n_V, n_g = hi.default_sizes("hidden-ce", 10, 8)
    assert hi.estimated_cost("hidden-ce", 10, 8, n_V, n_g)[0] < PROGRESS_AFTER_S


# ---------------------------------------------------------------- 3. huge inputs
HUGE = [
    (lambda: frobenius_limits("hidden-ce", 10, 0.5, 100_000), "m"),
    (lambda: frobenius_limits("hidden-ce", 10, 0.5, 8, inner=10**9), "inner"),
    (lambda: frobenius_limits("output-ce", 10, 0.5, 8, inner=10**9), "inner"),
    (lambda: frobenius_limits("hidden-ce", 10, 0.5, 8, samples=10**12), "samples"),
    (lambda: frobenius_limits("output-ce", 10, 0.5, 8, samples=10**12), "samples"),
    (lambda: bl.block_weight_law("linear-ce", "off", 10, n_atoms=10**9), "n_atoms"),
    (lambda: bl.block_weight_law("hidden-ce", "off", 10, m=4, n_atoms=10**9), "n_atoms"),
    (lambda: bl.limiting_law("linear-ce", "diag", 10**7, 0.5), "C"),
    (lambda: bl.output_block_limit("output-ce", "off", 10, 4, n_samples=10**12), "n_samples"),
]


@pytest.mark.parametrize("call, name", HUGE)
def test_huge_inputs_fail_fast_naming_the_parameter(call, name):
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=rf"{name} must be <= \d+ here") as exc:
        call()
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "GiB" in str(exc.value) and len(str(exc.value).splitlines()) == 1
    assert elapsed < 2.0 and peak < 20e6  # before any work or big allocation


def test_memory_budget_is_half_the_ram():
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert hi.memory_budget() == pytest.approx(ram / 2)


def test_stated_maximum_is_the_largest_that_fits(monkeypatch):
    monkeypatch.setattr(hi, "memory_budget", lambda: 2.0**30)
    with pytest.raises(ValueError, match=r"m must be <= (\d+) here") as exc:
        frobenius_limits("hidden-ce", 10, 0.5, 5000, samples=MIN_SAMPLES)
    top = int(exc.value.args[0].split("m must be <= ")[1].split()[0])
    need = [hi.estimated_cost("hidden-ce", 10, mm, MIN_SAMPLES, 64)[1] for mm in (top, top + 1)]
    assert need[0] <= 2.0**30 < need[1]


@pytest.mark.parametrize(
    "case, C, m, n_V, n_g",
    [("hidden-ce", 10, 150, 3, 64), ("hidden-ce", 2000, 8, 64, 64), ("output-ce", 10, 8, 8, 600)],
)
def test_memory_model_bounds_the_measured_peak(case, C, m, n_V, n_g):
    # independent route: tracemalloc sees every numpy allocation of a real run
    fn = hi.hidden_ce_mc if case == "hidden-ce" else hi.output_ce_mc
    tracemalloc.start()
    fn(C, m, n_V, n_g, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    est = hi.estimated_cost(case, C, m, n_V, n_g)[1]
    assert peak <= est < 4 * peak


# ---------------------------------------------------------------- 4. extreme gamma
@pytest.mark.parametrize("gamma", [1e-300, 1e300])
@pytest.mark.parametrize("case", ALL)
def test_extreme_gamma(case, gamma):
    m = 4 if get_case(case).needs_m else None
    kw = {"samples": MIN_SAMPLES, "inner": 8, "seed": 3} if case in MC else {}
    r = frobenius_limits(case, 10, gamma, m, **kw)
    assert all(math.isfinite(x) for x in (r.F_diag, r.F_off, r.ratio, r.ratio_se))
    assert all(math.isfinite(x) for x in (r.F_diag_se, r.F_off_se))
    # limits: F = gamma * a + b, so F/gamma -> a (gamma -> inf) and F -> b (gamma -> 0)
    if case in MC:
        fn = hi.hidden_ce_mc if case == "hidden-ce" else hi.output_ce_mc
        est = fn(10, 4, MIN_SAMPLES, 8, 3)
        a = (est.diag_sq.mean(), est.off_sq.mean())
        b = (est.diag_mean2.mean(), est.off_mean2.mean())
    elif case == "linear-ce":
        mom = softmax_moments(10)
        a = (mom.p[2] - 2 * mom.p[3] + mom.p[4], mom.pp[2])
        b = ((0.1 - mom.p[2]) ** 2, mom.pp[1] ** 2)
    elif case == "hidden-mse":
        a = ((10 / 4) ** 2 * 1.2 / 2, 10 / 16 / 4)
        b = ((10 / 4) ** 2 * 1.2 / 4, 10 / 16 / 16)
    elif case == "linear-mse":
        a, b = (1.0, 0.0), (1.0, 0.0)
    else:  # output-mse: no gamma
        a, b = (0.0, 0.0), (4 / 4 + 12 / (4 * math.pi**2), 0.0)
    for F, ai, bi in ((r.F_diag, a[0], b[0]), (r.F_off, a[1], b[1])):
        want = gamma * ai + bi
        assert F == pytest.approx(want, rel=1e-12, abs=0 if want else 1e-300)
    if case == "hidden-ce" and gamma > 1:
        assert r.ratio == pytest.approx(math.sqrt(a[1] / a[0]), rel=1e-12)


def test_hidden_mse_beyond_float64_refused_with_gamma_range():
    # F_diag = (C/m)^2 (1 + 2/C)(gamma/2 + 1/4) > 1.8e308 at C = 1e5, m = 2, gamma = 1e300
    with pytest.raises(ValueError, match=r"gamma must be <= 1.4\d*e\+299"):
        frobenius_limits("hidden-mse", 10**5, 1e300, 2)
    r = frobenius_limits("hidden-mse", 10**5, 1.4e299, 2)
    assert math.isfinite(r.F_diag) and r.ratio == pytest.approx(
        math.sqrt((1.4e299 / 4) / (1.4e299 / 2) / (10**5 + 2)), rel=1e-12
    )


# ---------------------------------------------------------------- 5. inputs that do not apply
@pytest.mark.parametrize(
    "kwargs, err, word",
    [
        (dict(m="abc"), TypeError, "m must be an integer"),
        (dict(samples="abc"), TypeError, "samples"),
        (dict(inner=[8]), TypeError, "inner"),
        (dict(samples=100), ValueError, "samples applies only to the Monte-Carlo cases"),
        (dict(inner=8), ValueError, "inner applies only to the Monte-Carlo cases"),
        (dict(progress="yes"), TypeError, "progress"),
    ],
)
@pytest.mark.parametrize("case", ["linear-ce", "linear-mse", "hidden-mse", "output-mse"])
def test_parameters_that_do_not_apply(case, kwargs, err, word):
    m = 4 if get_case(case).needs_m else None
    kwargs = {"m": m, **kwargs}
    with pytest.raises(err, match=word):
        frobenius_limits(case, 10, 0.5, **kwargs)


def test_issue_example_refused():
    with pytest.raises(TypeError, match="m must be"):
        frobenius_limits("linear-ce", 10, 0.5, m="abc", samples="abc")


@pytest.mark.parametrize("case", MC)
def test_wrong_types_for_monte_carlo_cases(case):
    for kw in (dict(samples="abc"), dict(inner=2.5j), dict(progress=1)):
        with pytest.raises(TypeError):
            frobenius_limits(case, 10, 0.5, 4, **kw)
    with pytest.raises(TypeError, match="m must be"):
        frobenius_limits(case, 10, 0.5, "4")


# ---------------------------------------------------------------- 7. honest SE at small sizes
@pytest.mark.parametrize("case", MC)
def test_too_few_samples_refused_with_the_reason(case):
    with pytest.raises(ValueError, match=rf"samples must be an integer >= {MIN_SAMPLES}.*standard"):
        frobenius_limits(case, 10, 0.5, 4, samples=MIN_SAMPLES - 1)
    frobenius_limits(case, 10, 0.5, 4, samples=MIN_SAMPLES, inner=8)


def test_standard_error_honest_at_the_minimum_size():
    # output-ce, C = 300, m = 8, inner = 16 at samples = MIN_SAMPLES over 100 seeds: the
    # spread of the estimates over the RMS reported SE is ~1 (its own sampling error is
    # ~1/sqrt(2 * 99) = 7%, bounds ~ +-3.5 of it). At 10 draws the ratio's spread was
    # 1.26x its SE (MIN_SAMPLES docstring).
    runs = [
        frobenius_limits("output-ce", 300, 0.5, 8, samples=MIN_SAMPLES, inner=16, seed=500 + s)
        for s in range(100)
    ]
    for val, se in (("F_diag", "F_diag_se"), ("F_off", "F_off_se"), ("ratio", "ratio_se")):
        x = np.array([getattr(r, val) for r in runs])
        e = np.array([getattr(r, se) for r in runs])
        assert 0.75 < x.std(ddof=1) / np.sqrt(np.mean(e**2)) < 1.25, val
