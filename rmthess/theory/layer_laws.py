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

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import softmax

from rmthess._checks import check_int, check_memory, check_positive_float
from rmthess.cases import Case, cases_where, get_case
from rmthess.inits import Init, InitLike, resolve_init
from rmthess.theory.block_laws import _gaussian_qmc, sample_V
from rmthess.theory.law import GMPLaw
from rmthess.theory.matrix_law import MatrixGMPLaw, MixtureLaw
from rmthess.theory.softmax_moments import SIGMA_MAX

__all__ = [
    "LAYER_CASES",
    "block_diagonal_law",
    "layer_law",
    "layer_weight_law",
    "matrix_law_seconds",
    "softmax_hessians",
]

LAYER_CASES = cases_where(has_gmp_limit=True)
"""Cases with a whole-layer GMP law: d x d blocks (``rmthess.cases``, ``has_gmp_limit``)."""

_MAX_EIG_WORK = 3e10  # n_atoms * C^3 for the eigenvalues of the softmax Hessians
_HIDDEN_M_MAX = 64
MAX_SECONDS = 1800.0
"""Longest predicted time of one hidden-layer law (:func:`matrix_law_seconds`) accepted."""


def matrix_law_seconds(n_atoms: int, K: int) -> float:
    """Predicted seconds to build one :class:`MatrixGMPLaw` (support, quadrature) from
    ``n_atoms`` atoms of size ``K x K``: about 3000 Newton steps (scan, edge ladders,
    quadrature), each ``1e-3`` s of overhead plus ``4e-9 n_atoms K^4`` (the Jacobian
    ``E[T (x) T]``) plus ``1.2e-7 K^6`` s (its solve and the eigenvalues of the
    ``K^2 x K^2`` branch test). Fitted on the shared 2-core machine (m = 4, 256 atoms:
    ~15 s; m = 8, 64 atoms: ~290 s per scan round, under a load of ~5) and divided by 3
    for an unloaded core; a refinement round of the support check doubles it."""
    return 3000.0 * (1e-3 + 4e-9 * float(n_atoms) * K**4 + 1.2e-7 * float(K) ** 6)


@dataclass(frozen=True)
class _Spec:
    """Validated arguments of one whole-layer law (:func:`_check`)."""

    case: Case
    C: int
    gamma: float | None
    m: int | None
    V: np.ndarray | None
    init: Init
    n_atoms: int
    seed: int

    def key(self) -> dict:
        """What identifies the law built from these arguments (``law.spec``)."""
        return dict(
            case=self.case.name,
            C=self.C,
            gamma=self.gamma,
            m=self.m,
            init=str(self.init),
            n_atoms=self.n_atoms,
            seed=self.seed,
        )


def softmax_hessians(p: ArrayLike) -> np.ndarray:
    """``diag p - p p^T`` for every row of ``p`` (n, C): the (n, C, C) softmax Hessians."""
    p = np.asarray(p, dtype=float)
    return np.einsum("ni,ij->nij", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :]


def _mp_law(gamma, name):
    """Marchenko-Pastur (``A = I``) as a one-component :class:`MixtureLaw`."""
    return MixtureLaw([GMPLaw([1.0], [1.0], gamma)], [1.0], 0.0, name=name)


def _refuse_large_sigma(s: _Spec) -> None:
    if s.init.sigma > SIGMA_MAX:
        raise ValueError(
            f"init sigma must be <= {SIGMA_MAX:g} for {s.case.name} (the softmax is one-hot "
            f"beyond: its Hessians span hundreds of decades), got {s.init.name!r}"
        )


# ------------------------------------------------------------------ one object per case
class _LayerCase:
    """One case's whole-layer theory: its weight law, layer law and block-diagonal law
    (scipy.stats' one class per distribution, behind the public functions below)."""

    default_atoms = 1024

    def check(self, s: _Spec, solve: bool) -> None:
        """Refuse what this case cannot do, before any work (memory, time, init)."""

    def weight_law(self, s: _Spec) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(atoms (n, K, K), weights (n,), V or None)``."""
        raise NotImplementedError

    def layer(self, s: _Spec) -> MixtureLaw | MatrixGMPLaw:
        raise NotImplementedError

    def blocks(self, s: _Spec) -> MixtureLaw:
        A, w, _ = self.weight_law(s)
        diag = np.diagonal(A, axis1=1, axis2=2)  # (n, K)
        K = diag.shape[1]
        assert s.gamma is not None  # laws are built with gamma (only layer_weight_law has none)
        comps = [GMPLaw(diag[:, k], w, s.gamma) for k in range(K)]
        return MixtureLaw(comps, np.full(K, 1.0 / K), 0.0, name=f"{s.case.name} blocks")


class _LinearMSE(_LayerCase):
    """``A = I_C``: the layer law is Marchenko-Pastur, as is each block's."""

    default_atoms = 4096

    def weight_law(self, s):
        check_memory(8.0 * s.C**2, f"the {s.C} x {s.C} identity atom", "lower C")
        return np.eye(s.C)[None], np.ones(1), None

    def layer(self, s):
        return _mp_law(s.gamma, "linear-mse layer")

    def blocks(self, s):
        return _mp_law(s.gamma, "linear-mse blocks")


class _LinearCE(_LayerCase):
    """``A = diag p - p p^T``: exact reduction to a scalar GMP law (module docstring)."""

    default_atoms = 4096

    def check(self, s, solve):
        _refuse_large_sigma(s)
        if s.n_atoms * float(s.C) ** 3 > _MAX_EIG_WORK:
            raise ValueError(
                f"n_atoms * C^3 = {s.n_atoms * float(s.C) ** 3:.3g} exceeds {_MAX_EIG_WORK:g} "
                f"(the eigenvalues of n_atoms {s.C}x{s.C} softmax Hessians); lower n_atoms or C"
            )
        check_memory(24.0 * s.n_atoms * s.C**2, "the softmax Hessian atoms", "lower n_atoms or C")

    def weight_law(self, s):
        p = softmax(s.init.sigma * _gaussian_qmc(s.n_atoms, s.C, s.seed), axis=-1)
        return softmax_hessians(p), np.full(s.n_atoms, 1.0 / s.n_atoms), None

    def layer(self, s):
        A, _, _ = self.weight_law(s)
        lam = np.linalg.eigvalsh(A)[:, 1:].ravel()  # drop the zero eigenvalue (on 1)
        comp = GMPLaw(lam, np.full(lam.size, 1.0 / lam.size), s.gamma)
        return MixtureLaw([comp], [1.0 - 1.0 / s.C], 1.0 / s.C, name="linear-ce layer")

    def blocks(self, s):
        A, _, _ = self.weight_law(s)
        a = np.diagonal(A, axis1=1, axis2=2).ravel()  # the C exchangeable entries pooled
        return MixtureLaw(
            [GMPLaw(a, np.full(a.size, 1.0 / a.size), s.gamma)], [1.0], 0.0, name="linear-ce blocks"
        )


class _Hidden(_LayerCase):
    """``A = D V^T S V D`` (``S = I`` for MSE, the softmax Hessian for CE), conditional on
    ``V``: the matrix solver (:class:`MatrixGMPLaw`)."""

    def check(self, s, solve):
        if s.case.loss == "ce":
            _refuse_large_sigma(s)
            check_memory(
                24.0 * s.n_atoms * s.C**2, "the softmax Hessians of the atoms", "lower n_atoms or C"
            )
        check_memory(
            8.0 * s.n_atoms * (2 * s.C * s.m + s.m**2), "the hidden-layer atoms",
            "lower n_atoms, C or m",
        )  # fmt: skip
        secs = matrix_law_seconds(s.n_atoms, s.m)
        if solve and secs > MAX_SECONDS:
            raise ValueError(
                f"the {s.case.name} layer law with m = {s.m} and n_atoms = {s.n_atoms} would "
                f"take about {secs / 3600:.2g} h (the matrix solver costs ~n_atoms m^4 + m^6 "
                f"per Newton step; limit {MAX_SECONDS / 60:g} min): lower m or n_atoms"
            )

    def weight_law(self, s):
        V = s.V if s.V is not None else sample_V(s.C, s.m, s.seed, init=s.init)
        g = s.init.sigma * _gaussian_qmc(s.n_atoms, s.m, s.seed)
        D = (g > 0).astype(float)  # (n, m)
        VD = V[None] * D[:, None, :]  # (n, C, m): V D
        if s.case.loss == "mse":  # V D times the identity: no C x C array needed
            A = VD.transpose(0, 2, 1) @ VD
        else:
            S = softmax_hessians(softmax(np.maximum(g, 0.0) @ V.T, axis=-1))
            A = VD.transpose(0, 2, 1) @ S @ VD
        return A, np.full(s.n_atoms, 1.0 / s.n_atoms), V

    def layer(self, s):
        A, w, V = self.weight_law(s)
        law = MatrixGMPLaw(A, w, s.gamma)
        law.V = V
        return law


_LAYER: dict[str, _LayerCase] = {
    "linear-mse": _LinearMSE(),
    "linear-ce": _LinearCE(),
    "hidden-mse": _Hidden(),
    "hidden-ce": _Hidden(),
}
assert set(_LAYER) == set(LAYER_CASES)


def _spec(
    case: str | Case,
    C: int,
    gamma: float | None,
    m: int | None,
    V: ArrayLike | None,
    init: InitLike,
    n_atoms: int | None,
    seed: int,
    *,
    solve: bool = True,
) -> _Spec:
    """Validate every argument of a whole-layer law and bound its cost, before any work."""
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
    impl = _LAYER[c.name]
    if n_atoms is None:
        n_atoms = impl.default_atoms
    n_atoms = check_int("n_atoms", n_atoms, 1, 10**7)
    s = _Spec(c, C, gamma, m, V, ini, n_atoms, seed)
    impl.check(s, solve and gamma is not None)
    return s


def _check(case, C, gamma, m, V, init, n_atoms, seed):
    """Tuple form of :func:`_spec` (kept for callers in other modules)."""
    s = _spec(case, C, gamma, m, V, init, n_atoms, seed)
    return s.case, s.C, s.gamma, s.m, s.V, s.init, s.n_atoms, s.seed


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
    only then (``rmthess bench layer``: 1000 atoms are 4x less accurate than 1024). The
    laws built on these draws are solved to ~1e-10 (solver error), but they differ from
    the law of the continuous ``A`` by the discretisation error of the draws, which
    dominates (Linf 0.15 density units at 1000 draws, 0.013 at 4096, near the edges;
    BENCHMARKS.md). Hidden
    cases are conditional on ``V`` (sampled from ``init`` with ``seed`` when None).
    ``init``: ``"lecun"``, ``"torch-default"`` or ``sigma`` (:mod:`rmthess.inits`): logits
    / pre-activations ``~ N(0, sigma^2)``. Arrays that would take more than half the RAM
    are refused before they are built.
    """
    s = _spec(case, C, None, m, V, init, n_atoms, seed, solve=False)
    return _LAYER[s.case.name].weight_law(s)[:2]


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
) -> MixtureLaw | MatrixGMPLaw:  # MixtureLaw (linear-*) or MatrixGMPLaw (hidden-*, with .V)
    """Limiting spectral law of the whole layer's Hessian (``Kd x Kd``) at initialisation.

    Returns a law object (``pdf``, ``cdf``, ``stieltjes``, ``moment``, ``support``,
    ``edges``, ``zero_mass``): a :class:`MixtureLaw` for linear-* (exact reduction, module
    docstring: ``delta_0 / C + (1 - 1/C) GMP(nu')``; linear-mse is Marchenko-Pastur) and a
    :class:`MatrixGMPLaw` for hidden-* (matrix solver, conditional on ``V``; refused when
    :func:`matrix_law_seconds` predicts more than :data:`MAX_SECONDS`).
    ``zero_mass``: ``max(1/C, 1 - (C - 1)/(gamma C))`` for linear-ce (the all-ones vector
    is in the kernel of every ``A_i``), ``max(0, 1 - E[rank A]/(gamma m))`` for hidden-*.
    Arguments as in :func:`layer_weight_law`; ``gamma = d/N > 0``; CE cases need
    ``sigma <= 5``. ``law.spec`` records the arguments (checked by
    :func:`~rmthess.theory.layer_gap.block_diagonal_gap`).

    >>> law = layer_law("linear-ce", 5, 0.5, n_atoms=512)
    >>> round(law.zero_mass, 12), round(law.moment(0), 12)
    (0.2, 1.0)
    """
    s = _spec(case, C, gamma, m, V, init, n_atoms, seed)
    law = _LAYER[s.case.name].layer(s)
    law.spec = s.key()
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
    s = _spec(case, C, gamma, m, V, init, n_atoms, seed)
    law = _LAYER[s.case.name].blocks(s)
    law.spec = s.key()
    return law
