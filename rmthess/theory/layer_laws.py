"""Limiting spectra of a whole layer's Hessian and of its block-diagonal part (issue 11).

The first-layer Hessian of the paper's models is ``H = (1/N) sum_i A_i (x) x_i x_i^T``
(``Kd x Kd``; docs/theory.md 9.1) with the ``K x K`` weight matrix of every block pair:

| case       | K | A_i                                        |
|------------|---|--------------------------------------------|
| linear-mse | C | I                                          |
| linear-ce  | C | diag p - p p^T,  p = softmax(z), z ~ N(0, sigma^2 I_C) |
| hidden-mse | m | D V^T V D,       D = diag 1[g > 0], g ~ N(0, sigma^2 I_m) |
| hidden-ce  | m | D V^T (diag p - p p^T) V D,  p = softmax(V relu(g)) |

(``sigma^2`` the initialisation's variance factor, :mod:`rmthess.inits`). Its limiting law
solves the matrix GMP equation (:mod:`rmthess.theory.matrix_gmp`); the block-diagonal part's
law is the equal mixture of the diagonal blocks' scalar GMP laws.

**Exact reduction for linear-*.** The law of ``A`` is invariant under permutations of the
classes, so the unique solution commutes with them: ``G = a I + b 1 1^T``. The softmax
Hessian annihilates ``1``, hence ``G A = a A`` and ``E[T] = E[A (I + gamma a A)^{-1}]``,
which on ``1^perp`` is ``E_nu'[tau / (1 + gamma a tau)] I`` with ``nu'`` the law of a
uniformly chosen nonzero eigenvalue of ``A``. So ``a`` solves the *scalar* GMP equation of
``nu'`` and

    s_layer(z) = (1/C) (-1/z) + (1 - 1/C) s_GMP(nu', gamma)(z):

the layer law is ``delta_0 / C + (1 - 1/C) GMP(nu', gamma)``, a :class:`MixtureLaw` (checked
against the matrix solver on permutation-symmetrised atoms to 1e-10 in the tests). For
linear-mse it is Marchenko-Pastur. The hidden layers (conditional on ``V``) have no such
symmetry and use the matrix solver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

from rmthess._checks import check_int, check_positive_float
from rmthess.cases import get_case
from rmthess.inits import InitLike, resolve_init
from rmthess.theory.block_laws import _gaussian_qmc, sample_V
from rmthess.theory.law import GMPLaw
from rmthess.theory.matrix_law import MatrixGMPLaw, MixtureLaw

__all__ = [
    "LAYER_CASES",
    "block_diagonal_law",
    "layer_law",
    "layer_weight_law",
    "softmax_hessians",
]

LAYER_CASES = ("linear-mse", "linear-ce", "hidden-mse", "hidden-ce")
_MAX_EIG_WORK = 3e10  # n_atoms * C^3 for the eigenvalues of the softmax Hessians
_HIDDEN_M_MAX = 64


def _check(case, C, gamma, m, V, init, n_atoms, seed):
    c = get_case(case)
    if c.name not in LAYER_CASES:
        raise ValueError(
            f"case {c.name!r} has no whole-layer GMP law (its blocks are m x m); allowed: "
            + ", ".join(LAYER_CASES)
        )
    C = check_int("C", C, 2, 100_000)
    if gamma is not None:
        gamma = check_positive_float("gamma", gamma)
    ini = resolve_init(init)
    seed = check_int("seed", seed, 0)
    if c.needs_m:
        if m is None:
            raise ValueError(f"case {c.name!r} needs the hidden width m (an integer >= 2)")
        m = check_int("m", m, 2, _HIDDEN_M_MAX)
        if V is not None:
            V = np.asarray(V, dtype=float)
            if V.shape != (C, m) or not np.all(np.isfinite(V)):
                raise ValueError(f"V must be a finite array of shape (C, m) = ({C}, {m})")
    else:
        m = c.check_m(m)
        if V is not None:
            raise ValueError(f"case {c.name!r} has no output weights V")
    if n_atoms is None:
        n_atoms = 4096 if c.model == "linear" else 1024
    n_atoms = check_int("n_atoms", n_atoms, 1, 10**7)
    if c.name == "linear-ce" and n_atoms * float(C) ** 3 > _MAX_EIG_WORK:
        raise ValueError(
            f"n_atoms * C^3 = {n_atoms * float(C) ** 3:.3g} exceeds {_MAX_EIG_WORK:g} (the "
            f"eigenvalues of n_atoms {C}x{C} softmax Hessians); lower n_atoms or C"
        )
    return c, C, gamma, m, V, ini, n_atoms, seed


def softmax_hessians(p: np.ndarray) -> np.ndarray:
    """``diag p - p p^T`` for every row of ``p`` (n, C): the (n, C, C) softmax Hessians."""
    p = np.asarray(p, dtype=float)
    return np.einsum("ni,ij->nij", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :]


def _mp_law(gamma, name):
    """Marchenko-Pastur (``A = I``) as a one-component :class:`MixtureLaw`."""
    return MixtureLaw([GMPLaw([1.0], [1.0], gamma)], [1.0], 0.0, name=name)


def _softmax_draws(C, ini, n_atoms, seed):
    return softmax(ini.sigma * _gaussian_qmc(n_atoms, C, seed), axis=-1)


def _hidden_atoms(c, C, m, V, ini, n_atoms, seed):
    if V is None:
        V = sample_V(C, m, seed, init=ini)
    g = ini.sigma * _gaussian_qmc(n_atoms, m, seed)
    D = (g > 0).astype(float)  # (n, m)
    if c.loss == "mse":
        S = np.broadcast_to(np.eye(C), (n_atoms, C, C))
    else:
        S = softmax_hessians(softmax(np.maximum(g, 0.0) @ V.T, axis=-1))
    VD = V[None] * D[:, None, :]  # (n, C, m): V D
    return VD.transpose(0, 2, 1) @ S @ VD, V


def layer_weight_law(
    case: str,
    C: int,
    m: int | None = None,
    *,
    V: np.ndarray | None = None,
    init: InitLike = "lecun",
    n_atoms: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The law of the layer's ``K x K`` weight matrix ``A`` as ``(atoms (n, K, K), weights)``.

    ``n_atoms`` equally weighted scrambled-Sobol draws (default 4096 linear, 1024 hidden;
    linear-mse is the single atom ``I``). Prefer powers of 2: Sobol points are balanced
    only then (``rmthess bench layer``: 1000 atoms are 4x less accurate than 1024). Hidden
    cases are conditional on ``V`` (sampled from ``init`` with ``seed`` when None).
    ``init``: ``"lecun"``, ``"torch-default"`` or ``sigma`` (:mod:`rmthess.inits`): logits
    / pre-activations ``~ N(0, sigma^2)``.
    """
    c, C, _, m, V, ini, n_atoms, seed = _check(case, C, None, m, V, init, n_atoms, seed)
    return _weight_law(c, C, m, V, ini, n_atoms, seed)[:2]


def _weight_law(c, C, m, V, ini, n_atoms, seed):
    if c.name == "linear-mse":
        return np.eye(C)[None], np.ones(1), None
    if c.name == "linear-ce":
        A = softmax_hessians(_softmax_draws(C, ini, n_atoms, seed))
        return A, np.full(n_atoms, 1.0 / n_atoms), None
    A, V = _hidden_atoms(c, C, m, V, ini, n_atoms, seed)
    return A, np.full(n_atoms, 1.0 / n_atoms), V


def layer_law(
    case: str,
    C: int,
    gamma: float,
    m: int | None = None,
    *,
    V: np.ndarray | None = None,
    init: InitLike = "lecun",
    n_atoms: int | None = None,
    seed: int = 0,
) -> Any:  # MixtureLaw (linear-*) or MatrixGMPLaw (hidden-*, with .V)
    """Limiting spectral law of the whole layer's Hessian (``Kd x Kd``) at initialisation.

    Returns a law object (``pdf``, ``cdf``, ``stieltjes``, ``moment``, ``support``,
    ``edges``, ``zero_mass``): a :class:`MixtureLaw` for linear-* (exact reduction, module
    docstring: ``delta_0 / C + (1 - 1/C) GMP(nu')``; linear-mse is Marchenko-Pastur) and a
    :class:`MatrixGMPLaw` for hidden-* (matrix solver, conditional on ``V``).
    ``zero_mass``: ``max(1/C, 1 - (C - 1)/(gamma C))`` for linear-ce (the all-ones vector
    is in the kernel of every ``A_i``), ``max(0, 1 - E[rank A]/(gamma m))`` for hidden-*.
    Arguments as in :func:`layer_weight_law`; ``gamma = d/N > 0``.

    >>> law = layer_law("linear-ce", 5, 0.5, n_atoms=512)
    >>> round(law.zero_mass, 12), round(law.moment(0), 12)
    (0.2, 1.0)
    """
    c, C, gamma, m, V, ini, n_atoms, seed = _check(case, C, gamma, m, V, init, n_atoms, seed)
    if c.name == "linear-mse":
        return _mp_law(gamma, "linear-mse layer")
    A, w, V = _weight_law(c, C, m, V, ini, n_atoms, seed)
    if c.name == "linear-ce":
        lam = np.linalg.eigvalsh(A)[:, 1:].ravel()  # drop the zero eigenvalue (on 1)
        comp = GMPLaw(lam, np.full(lam.size, 1.0 / lam.size), gamma)
        return MixtureLaw([comp], [1.0 - 1.0 / C], 1.0 / C, name="linear-ce layer")
    law = MatrixGMPLaw(A, w, gamma)
    law.V = V  # type: ignore[attr-defined]  # the V the law is conditional on
    return law


def block_diagonal_law(
    case: str,
    C: int,
    gamma: float,
    m: int | None = None,
    *,
    V: np.ndarray | None = None,
    init: InitLike = "lecun",
    n_atoms: int | None = None,
    seed: int = 0,
) -> MixtureLaw:
    """Limiting law of the block-diagonal part of the layer's Hessian: the equal mixture of
    the ``K`` diagonal blocks' GMP laws (``law(A_kk)``). Same draws as :func:`layer_law`
    (linear-ce pools the ``C`` exchangeable diagonal entries of every draw)."""
    c, C, gamma, m, V, ini, n_atoms, seed = _check(case, C, gamma, m, V, init, n_atoms, seed)
    if c.name == "linear-mse":
        return _mp_law(gamma, "linear-mse blocks")
    A, w, _ = _weight_law(c, C, m, V, ini, n_atoms, seed)
    diag = np.diagonal(A, axis1=1, axis2=2)  # (n, K)
    if c.name == "linear-ce":
        a = diag.ravel()
        return MixtureLaw(
            [GMPLaw(a, np.full(a.size, 1.0 / a.size), gamma)], [1.0], 0.0, name="linear-ce blocks"
        )
    K = diag.shape[1]
    comps = [GMPLaw(diag[:, k], w, gamma) for k in range(K)]
    return MixtureLaw(comps, np.full(K, 1.0 / K), 0.0, name=f"{c.name} blocks")
