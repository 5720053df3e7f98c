"""Lanczos stopped at a residual tolerance (rmthess.curvature.lanczos, issue 21): against
numpy.linalg.eigh, its recurrence residuals against measured ones, fewer products than
ARPACK, low-rank operators, the fallback to ARPACK."""

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator

from rmthess.curvature import top_eigenvalues
from rmthess.curvature.lanczos import lanczos_extreme


def _decaying(P=400, seed=0):
    """A symmetric matrix with a Hessian-like spectrum: outliers on both sides of a bulk (a
    clustered end, like the bulk's, is ARPACK's job: the fallback test)."""
    gen = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(gen.standard_normal((P, P)))
    out = [40, 25, 18, 12, 9, 7, 6, 5.5, 5, 4.6, -30, -20, -14, -10, -7]  # outliers both sides
    ev = np.concatenate([out, gen.uniform(-0.5, 2.0, P - len(out))])
    return (Q * ev) @ Q.T, np.sort(ev)


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_matches_eigh_and_its_residuals_are_measured_ones(which, tol):
    A, ev = _decaying()
    r = top_eigenvalues(aslinearoperator(A), 5, which=which, tol=tol, return_vectors=True)
    assert r.method == "lanczos"
    want = {"LA": ev[::-1][:5], "SA": ev[:5], "LM": ev[np.argsort(-np.abs(ev))][:5]}[which]
    scale = np.abs(ev).max()
    # Ritz values converge quadratically: error <= residual^2 |lambda|^2 / gap (+ round-off)
    assert np.allclose(r.eigenvalues, want, rtol=0, atol=max(1e-12, 100 * tol**2) * scale)
    measured = np.linalg.norm(A @ r.vectors - r.vectors * r.eigenvalues, axis=0)
    measured /= np.abs(r.eigenvalues)
    assert np.all(r.residuals <= tol) and np.all(measured <= 2 * tol + 1e-13)
    np.testing.assert_allclose(measured, r.residuals, rtol=0.05, atol=1e-13)


def test_fewer_products_than_arpack_at_machine_precision():
    A, _ = _decaying(800, 1)
    lz = top_eigenvalues(aslinearoperator(A), 10, tol=1e-8)
    ar = top_eigenvalues(aslinearoperator(A), 10, tol=0)
    assert lz.method == "lanczos" and ar.method == "arpack"
    assert lz.n_matvecs < ar.n_matvecs
    np.testing.assert_allclose(lz.eigenvalues, ar.eigenvalues, rtol=1e-12)


def test_low_rank_operator_restarts_after_breakdown():
    gen = np.random.default_rng(2)
    U = np.linalg.qr(gen.standard_normal((300, 3)))[0]
    A = (U * np.array([5.0, 2.0, 1.0])) @ U.T  # rank 3: the Krylov space closes after 3 steps
    r = top_eigenvalues(aslinearoperator(A), 5, tol=1e-10, return_vectors=True)
    np.testing.assert_allclose(r.eigenvalues, [5, 2, 1, 0, 0], atol=1e-12)
    assert np.allclose(r.vectors.T @ r.vectors, np.eye(5), atol=1e-10)


def test_not_converged_falls_back_to_arpack(monkeypatch):
    A, ev = _decaying()
    theta, V, res, ok = lanczos_extreme(lambda X: A @ X, 400, 5, "LA", 1e-12, 6, 0)
    assert not ok and len(theta) == 5 and np.any(res > 1e-12)
    import rmthess.curvature.lanczos as lz

    monkeypatch.setattr(lz, "lanczos_extreme", lambda *a: (theta, V, res, False))
    r = top_eigenvalues(aslinearoperator(A), 5, tol=1e-8)
    assert r.method == "arpack"
    np.testing.assert_allclose(r.eigenvalues, ev[::-1][:5], rtol=1e-9)
    with pytest.raises(ValueError, match="method"):
        top_eigenvalues(A, 5, method="power")
