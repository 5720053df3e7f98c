"""`rmthess bench solver`: runs small, prints the documented JSON keys, meets accuracy."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rmthess.bench.solver import eigvalsh_density, mpmath_reference, run_bench
from rmthess.theory.gmp import gmp_stieltjes


def test_run_bench_small():
    r = run_bench(n_atoms=64, n_grid=200, n_ref=6, repeat=1, big_d=0, ref_dps=25)
    assert set(r) >= {"law", "grid", "threads", "solver", "reference", "eigvalsh_equal_time"}
    assert set(r["solver"]) >= {"wall_s", "max_abs_err", "max_rel_err", "uncertified_points"}
    assert "max_abs_err_interior" in r["eigvalsh_equal_time"]
    assert set(r["eigvalsh_equal_time"]) >= {"d", "N", "wall_s", "bins", "max_abs_err"}
    assert r["solver"]["max_abs_err"] < 1e-8
    assert r["solver"]["uncertified_points"] == 0
    assert 6 <= r["reference"]["n_points"] <= 6 + 2 * 2 * len(r["law"]["support"])
    assert r["eigvalsh_large"] is None
    # self-explanatory output: what the reference is, and the units of every number
    assert "mpmath" in r["reference"]["method"]
    assert {"wall_s", "max_abs_err", "max_rel_err", "eigvalsh"} <= set(r["units"])


def test_run_bench_no_density():
    """nu = delta_0 (linear-mse off block): a clear ValueError, not an IndexError."""
    with pytest.raises(ValueError, match="no density"):
        run_bench(case="linear-mse", block="off", n_grid=10, n_ref=2, repeat=1, big_d=0)


def test_cli_json():
    cmd = [sys.executable, "-m", "rmthess", "bench", "solver", "--json", "--n-atoms", "32"]
    cmd += ["--n-grid", "100", "--n-ref", "4", "--repeat", "1", "--big-d", "100"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["law"]["n_atoms"] == 32 and r["grid"]["n"] == 100
    assert r["eigvalsh_large"]["d"] == 100
    assert r["solver"]["max_abs_err"] < 1e-8


def test_cli_table_and_bad_input():
    cmd = [sys.executable, "-m", "rmthess", "bench", "solver", "--n-atoms", "16"]
    cmd += ["--n-grid", "50", "--n-ref", "2", "--repeat", "1", "--big-d", "0"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "GMP solver" in res.stdout and "eigvalsh" in res.stdout
    bad = [sys.executable, "-m", "rmthess", "bench", "solver", "--gamma", "-1"]
    res = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "gamma" in res.stderr


def test_mpmath_reference_matches_mp_closed_form():
    """The reference itself, against the closed-form MP Stieltjes transform."""
    g = 0.5
    x = np.array([0.3, 1.0, 2.5, 3.5])
    s0 = gmp_stieltjes(x + 0j, [1.0], [1.0], g) + 0.01j  # perturbed start
    s, resid = mpmath_reference(x, [1.0], [1.0], g, s0, dps=25)
    A, B = g * x, x + g - 1
    disc = np.sqrt(B * B - 4 * A + 0j)
    r1, r2 = (-B + disc) / (2 * A), (-B - disc) / (2 * A)
    # inside the support: the root with Im > 0; right of it (x = 3.5): the real root of
    # smaller modulus (s ~ -1/x as x -> infinity)
    ref = np.where(r1.imag > 0, r1, np.where(np.abs(r1) < np.abs(r2), r1, r2))
    ref = np.where(np.abs(r2.imag) > 0, np.where(r2.imag > 0, r2, r1), ref)
    np.testing.assert_allclose(s.real, ref.real, atol=1e-12)
    np.testing.assert_allclose(s.imag, np.abs(ref.imag), atol=1e-12)
    assert resid < 1e-20


def test_eigvalsh_density_normalized():
    x = np.linspace(-1, 4, 2001)
    dens, wall, bins = eigvalsh_density(np.array([1.0]), np.array([1.0]), 0.5, 200, x)
    assert wall > 0 and bins >= 8
    # the histogram integrates to 1; the Riemann sum on x misplaces up to half a grid step
    # (0.0025) at each of the 13 bin edges, times the density jump there (< 0.82): random
    # signs give ~ sqrt(13) * 0.5 * 0.0025 * 0.4 ~ 2e-3 typical (observed 2.6e-4, seed 0)
    assert abs(np.sum(dens) * (x[1] - x[0]) - 1) < 5e-3
