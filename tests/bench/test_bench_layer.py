"""`rmthess bench layer`: runs at tiny sizes, documented keys, errors checked independently."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rmthess.bench.layer import _cont_cdf, _richardson, _sim_density, run_bench
from rmthess.theory.gmp import gmp_stieltjes
from rmthess.theory.layer_laws import layer_law

_SMALL = dict(C=4, n_atoms=64, n_grid=120, ref_atoms=256, n_mp=3, n_matrix=4, n_ladder=2)


@pytest.fixture(scope="module")
def small():
    return run_bench(**_SMALL, repeat=1, max_d=32)


def test_run_bench_small_keys_and_accuracy(small):
    r = small
    assert set(r) >= {"law", "grid", "threads", "route1_reduction", "route2_generic"}
    assert set(r) >= {"reference", "simulation", "goal", "units"}
    r1, r2 = r["route1_reduction"], r["route2_generic"]
    assert r["threads"]["numba"] == 1 and r["threads"]["torch"] == 1
    # the scalar solver against mpmath and the eta ladder: far below the 1e-6 goal
    assert r1["solver_err_mpmath"] < 1e-10 and r1["solver_err_ladder"] < 1e-8
    assert r1["uncertified_points"] == 0 and r2["uncertified_points"] == 0
    assert r2["solver_err_ladder"] < 1e-7
    # the generic solver solves the same (unreduced) law: close to the reduction, not equal
    assert r2["diff_vs_reduction_rel"] < 0.05
    assert r2["extrapolated_grid_s"] >= r2["first_point_s"]
    assert [s["budget_factor"] for s in r["simulation"]] == [1, 10]
    for s in r["simulation"]:
        assert s["N"] == 2 * s["d"] and s["matrix_size"] == 4 * s["d"]
        assert s["ratio_l1"] == pytest.approx(s["sim_l1"] / s["route1_l1_same_bins"])
    assert r["law"]["zero_mass"] == pytest.approx(0.25, abs=1e-14)
    json.dumps(r)  # JSON-safe


def test_discretisation_error_matches_direct_difference(small):
    """The reported Linf discretisation error is the plain difference of the two laws' pdfs."""
    r = small
    x = np.linspace(r["grid"]["lo"], r["grid"]["hi"], r["grid"]["n"])
    a = layer_law("linear-ce", 4, 0.5, n_atoms=64).pdf(x)
    b = layer_law("linear-ce", 4, 0.5, n_atoms=256).pdf(x)
    assert r["route1_reduction"]["discretisation_linf"] == pytest.approx(np.abs(a - b).max())


def test_richardson_against_mp_closed_form():
    """The eta-ladder check itself, against the Marchenko-Pastur closed form (g = 1/2)."""
    g = 0.5
    x = np.array([0.3, 1.0, 2.5])
    s = _richardson(lambda z: gmp_stieltjes(z, [1.0], [1.0], g), x, 1e-9)
    # MP: g x s^2 - (1 - g - x) s + 1 = 0; inside the bulk the roots are conjugate
    disc = np.sqrt((1 - g - x) ** 2 - 4 * g * x + 0j)
    mp = (1 - g - x + disc) / (2 * g * x)
    mp = np.where(mp.imag > 0, mp, np.conj(mp))
    assert np.max(np.abs(s - mp)) < 1e-9
    # without the extrapolation the O(eta s') bias is far larger at eta = 1e-6
    s1 = gmp_stieltjes(x + 1e-6j, [1.0], [1.0], g)
    assert np.max(np.abs(s1 - mp)) > 1e-8


def test_sim_density_and_cont_cdf_masses():
    """Histogram (kernel dropped) and reference bin masses both total the continuous mass."""
    C, d = 3, 40
    law = layer_law("linear-ce", C, 0.5, n_atoms=128)
    lo, hi = law.edges()
    edges = np.linspace(0.5 * lo, hi * 2.0, 30)
    dens = _sim_density(C, d, 0.5, edges, seed=1)
    assert np.sum(dens * np.diff(edges)) == pytest.approx(1 - 1 / C, abs=1e-12)
    ref = np.diff(_cont_cdf(law, edges))
    assert ref.sum() == pytest.approx(1 - 1 / C, abs=1e-9)


@pytest.mark.parametrize(
    "kw, name",
    [(dict(C=1), "C"), (dict(gamma=-1.0), "gamma"), (dict(n_atoms=100, ref_atoms=50), "ref_atoms")],
)
def test_bad_input(kw, name):
    with pytest.raises(ValueError, match=name):
        run_bench(**kw)


def test_cli_table():
    cmd = [sys.executable, "-m", "rmthess", "bench", "layer", "--C", "3", "--n-atoms", "32"]
    cmd += ["--n-grid", "60", "--ref-atoms", "64", "--n-mp", "2", "--n-matrix", "3"]
    cmd += ["--n-ladder", "1", "--repeat", "1", "--max-d", "16"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "route 1" in res.stdout and "simulation x10" in res.stdout
    bad = [sys.executable, "-m", "rmthess", "bench", "layer", "--gamma", "-1"]
    res = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "gamma" in res.stderr
