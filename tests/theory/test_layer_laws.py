"""Whole-layer laws and the block-diagonal gap (rmthess.theory.layer_laws / layer_gap).

Independent routes: the Frobenius limits (second moment), the generic matrix solver (the
exact reduction of linear-ce), the scalar block laws, and the real Hessians of
rmthess.simulate (A depends on x there)."""

import json

import numpy as np
import pytest

from rmthess.report.sections.spectra import ks_statistic
from rmthess.simulate.layer import layer_eigenvalues
from rmthess.theory import frobenius_limits, limiting_law
from rmthess.theory.layer_gap import block_diagonal_gap, gap_vs_C
from rmthess.theory.layer_laws import block_diagonal_law, layer_law, layer_weight_law
from rmthess.theory.matrix_gmp import matrix_gmp_stieltjes


@pytest.mark.parametrize("init", ["lecun", "torch-default"])
@pytest.mark.parametrize("C", [2, 5, 20])
def test_second_moment_is_F_diag_plus_off(C, init):
    # (1/(Cd)) tr H^2 = F_diag + (C - 1) F_off (exact quadrature; QMC atoms ~1e-4)
    law = layer_law("linear-ce", C, 0.5, init=init)
    F = frobenius_limits("linear-ce", C, 0.5, init=init)
    assert law.moment(2) == pytest.approx(F.F_diag + (C - 1) * F.F_off, rel=2e-3)
    assert law.moment(0) == pytest.approx(1.0, abs=1e-12)


def test_linear_ce_reduction_matches_the_matrix_solver():
    # the exact reduction (module docstring) against the generic Newton solver on the same
    # draws: they differ only by the draws' departure from exchangeability (~1/sqrt(n))
    law = layer_law("linear-ce", 3, 0.5, n_atoms=2048)
    A, w = layer_weight_law("linear-ce", 3, n_atoms=2048)
    z = np.array([0.05 + 0.02j, 0.2 + 0.01j, 1 + 1j])
    s = matrix_gmp_stieltjes(z, A, w, 0.5)
    assert np.abs(s - law.stieltjes(z)).max() < 5e-3 * np.abs(s).max()


def test_zero_masses_and_edges():
    law = layer_law("linear-ce", 5, 0.5)
    assert law.zero_mass == pytest.approx(0.2)  # max(1/C, 1 - (C-1)/(gamma C))
    assert layer_law("linear-ce", 5, 2.0).zero_mass == pytest.approx(1 - 4 / 10)
    bd = block_diagonal_law("linear-ce", 5, 0.5)
    assert bd.zero_mass == 0.0
    # the block-diagonal law of linear-ce is the diagonal block's law
    ref = limiting_law("linear-ce", "diag", 5, 0.5)
    x = np.linspace(0, 0.5, 11)
    assert np.abs(bd.cdf(x) - ref.cdf(x)).max() < 5e-3
    assert law.edges()[1] > bd.edges()[1]  # whole layer reaches further


def test_linear_mse_has_no_gap():
    g = block_diagonal_gap("linear-mse", 4, 0.5)
    assert g.W1 == 0.0 and g.KS == 0.0 and g.edge_gap_rel == 0.0


def test_gap_falls_like_one_over_C():
    cur = gap_vs_C("linear-ce", [5, 10, 20], 0.5, n_atoms=1024)
    df = cur.to_frame()
    assert np.all(np.diff(df["W1_rel"]) < 0)
    assert np.allclose(df["KS"], 1 / df["C"], rtol=1e-6)  # the atom 1/C at 0 dominates
    assert cur.slope["W1_rel"] == pytest.approx(-1.0, abs=0.1)
    rec = json.loads(json.dumps(cur.to_dict(), allow_nan=False))  # slopes flattened
    assert rec["slope_W1_rel"] == cur.slope["W1_rel"]
    assert rec["slope_W1_rel_se"] == cur.slope_se["W1_rel"]
    assert (rec["n_C"], rec["C_min"], rec["C_max"], rec["case"]) == (3, 5, 20, "linear-ce")


def test_layer_law_against_the_real_hessian():
    # A_i depends on x_i here (real network at init): the law still describes the bulk
    sp = layer_eigenvalues("linear-ce", 5, 160, 320, trials=2, seed=3)
    ev = sp.eigenvalues.ravel()
    ev[np.abs(ev) < 1e-9] = 0.0  # the d exact zeros: the atom 1/C
    assert ks_statistic(ev, layer_law("linear-ce", 5, 0.5)) < 0.03


def test_hidden_layer_law_moments_and_mass():
    law = layer_law("hidden-mse", 3, 0.5, 4, n_atoms=64)
    # hidden-mse: M_2 = F_diag + (m - 1) F_off conditional on V, by hand from the atoms
    A, w = layer_weight_law("hidden-mse", 3, 4, n_atoms=64)
    EA = np.einsum("n,nij->ij", w, A)
    EA2 = np.einsum("n,nij,njk->ik", w, A, A)
    assert law.moment(2) == pytest.approx((0.5 * np.trace(EA2) + np.trace(EA @ EA)) / 4)
    assert law.ac_mass() + law.zero_mass == pytest.approx(1.0, abs=1e-4)


def test_errors():
    with pytest.raises(ValueError, match="output-ce"):
        layer_law("output-ce", 5, 0.5, 4)
    with pytest.raises(ValueError, match="hidden width m"):
        layer_law("hidden-ce", 5, 0.5)
    with pytest.raises(ValueError, match="V must"):
        layer_law("hidden-ce", 5, 0.5, 4, V=np.ones((4, 5)))
    with pytest.raises(ValueError, match="init"):
        layer_law("linear-ce", 5, 0.5, init="xavier")
    with pytest.raises(ValueError, match="gamma"):
        layer_law("linear-ce", 5, -0.5)


def test_gap_from_prebuilt_laws_equals_the_full_call():
    # laws= only skips rebuilding: the same draws give the same gap, bit for bit
    kw = dict(n_atoms=256, seed=2)
    law = layer_law("linear-ce", 4, 0.5, **kw)
    bd = block_diagonal_law("linear-ce", 4, 0.5, **kw)
    g1 = block_diagonal_gap("linear-ce", 4, 0.5, **kw)
    g2 = block_diagonal_gap("linear-ce", 4, 0.5, laws=(law, bd), **kw)
    assert g1 == g2
