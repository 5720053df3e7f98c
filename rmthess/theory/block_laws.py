"""Weight laws ``nu`` of the Hessian blocks and their limiting eigenvalue densities.

Every within-layer block of the first layer is ``H = (1/N) sum_i a_i x_i x_i^T`` (docs/theory.md
section 2); with ``a_i`` asymptotically independent of ``x_i`` its eigenvalue distribution
converges to the GMP law of ``nu = law(a)`` with ratio ``gamma = d/N`` (section 3). This
goes beyond the paper, which only uses the second moment ``M_2 = gamma E a^2 + (E a)^2``.

Block ``"diag"`` is ``(0, 0)``, block ``"off"`` is ``(0, 1)`` (any pair is equivalent by
exchangeability, except that ``hidden-*`` laws are conditional on the given ``V``).

| case       | diag: a                         | off: a                                 |
|------------|---------------------------------|----------------------------------------|
| linear-mse | 1                               | 0                                      |
| linear-ce  | p_1 (1 - p_1)                   | -p_1 p_2,   p = softmax(z), z~N(0,I_C) |
| hidden-mse | ||v_0||^2 1[g_0>0]              | (v_0.v_1) 1[g_0>0] 1[g_1>0]            |
| hidden-ce  | v_0^T A v_0 1[g_0>0]            | v_0^T A v_1 1[g_0>0] 1[g_1>0]          |

with ``A = diag p - p p^T``, ``p = softmax(V relu(g))``, ``g ~ N(0, I_m)``, ``v_j`` the
j-th column of ``V`` (``C x m``). Other initialisations (``init``, :mod:`rmthess.inits`;
entries of variance ``sigma^2/fan_in``): the logits are ``z ~ N(0, sigma^2 I_C)``, the
pre-activations ``g ~ N(0, sigma^2 I_m)`` (Gaussian whatever the entry law, as d -> inf)
and ``V`` is sampled from the init law itself (uniform for ``"torch-default"``).
Continuous laws (``linear-ce``, ``hidden-ce``) are
represented by ``n_atoms`` equally weighted scrambled-Sobol quasi-Monte-Carlo draws
(``linear-mse`` and ``hidden-mse`` are exact). Accuracy of the QMC laws: for small C the
moments ``E a``, ``E a^2`` are 10-100x better than Monte Carlo (measured at n_atoms = 4096:
relative errors ~1e-4 at C = 2, 5); the Sobol dimension is C (linear-ce) or m (hidden-ce),
and at C ~ 1000 the error is that of plain Monte Carlo, ~ ``std(a^k) / sqrt(n_atoms)``,
which for the heavy-tailed ``(p_1 p_2)^2`` is tens of percent (measured: E[a^2] of the
linear-ce off block at C = 1000 off by 4-54% over seeds 1-5). Increase ``n_atoms`` there.
Output-layer blocks (``output-*``) are ``m x m`` with ``m`` fixed: they converge to a
deterministic matrix, not to a GMP law: they are refused by the GMP functions, and
:func:`output_block_limit` returns that limiting ``m x m`` matrix instead.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from rmthess._checks import check_choice, check_int, check_positive_float
from rmthess._random import rng
from rmthess.cases import cases_where, get_case
from rmthess.inits import Init, InitLike, resolve_init, sample_weights
from rmthess.theory.case_theory import theory_for
from rmthess.theory.hidden_integrals import check_memory
from rmthess.theory.law import GMPLaw

if TYPE_CHECKING:
    from rmthess.activations import Activation
    from rmthess.theory.inputs import InputStats

__all__ = [
    "BLOCKS",
    "block_weight_law",
    "limiting_density",
    "limiting_law",
    "output_block_limit",
    "sample_V",
]

BLOCKS = ("diag", "off")
_SOBOL_MAX_DIM = 21201


def sample_V(C: int, m: int, seed: int = 0, *, init: InitLike = "lecun") -> np.ndarray:
    """Initialised output weights ``V`` (``C x m``), seeded: entries of the ``init`` law
    with variance ``sigma^2/m`` (LeCun: ``N(0, 1/m)``, the same numbers as before the
    ``init`` keyword; ``"torch-default"``: ``U(-1/sqrt m, 1/sqrt m)``), drawn by
    :func:`rmthess.inits.sample_weights` from ``numpy.random.default_rng(seed)``
    (:func:`rmthess._random.rng` ``(seed)``)."""
    C = check_int("C", C, 2)
    m = check_int("m", m, 1)
    seed = check_int("seed", seed, 0)
    ini = resolve_init(init)
    return sample_weights((C, m), m, ini, rng(seed))


def _gaussian_qmc(n: int, dim: int, seed: int) -> np.ndarray:
    """``n x dim`` standard normals from scrambled Sobol points (pseudo-random past 21201)."""
    from scipy.special import ndtri
    from scipy.stats import qmc

    if dim > _SOBOL_MAX_DIM:
        return rng(seed).standard_normal((n, dim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance-property warning when n is not 2^k
        u = qmc.Sobol(d=dim, scramble=True, seed=seed).random(n)
    return ndtri(np.clip(u, 1e-300, 1.0 - 2.0**-53))


def _scaled(z: np.ndarray, ini: Init) -> np.ndarray:
    """Standard normals ``z`` times ``sigma`` (in place; untouched for sigma = 1)."""
    if ini.sigma != 1.0:
        z *= ini.sigma
    return z


def _ce_weight(p: np.ndarray, block: str) -> np.ndarray:
    """CE weight of block (0, 0) / (0, 1) from softmax rows ``p`` (n, C): ``p_0 (1 - p_0)``
    (``"diag"``) or ``-p_0 p_1`` (``"off"``), i.e. ``[diag p - p p^T]_{0l}``."""
    return p[:, 0] * (1.0 - p[:, 0]) if block == "diag" else -p[:, 0] * p[:, 1]


def _check_V(V: ArrayLike, C: int, m: int) -> np.ndarray:
    try:
        V = np.asarray(V, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("V must be a real array of shape (C, m)") from None
    if V.shape != (C, m):
        raise ValueError(f"V must have shape (C, m) = ({C}, {m}), got {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ValueError("V must be finite")
    return V


def _check_qmc_memory(case, C, m, n, name):
    """Refuse ``n`` quasi-Monte-Carlo draws whose arrays (float64 arrays alive at once: the
    Sobol points, their normal transform and the softmax temporaries; the case's
    ``qmc_bytes``) exceed the memory budget (half the physical RAM)."""
    params = {name: n, "C": C} if m is None else {name: n, "C": C, "m": m}
    theory = theory_for(case)

    def need(**kw):
        return theory.qmc_bytes(kw["C"], kw[name], kw.get("m"))

    check_memory(need, params, {name: 1, "C": 2, "m": 1}, f"the {case!r} weight law")


def _check_common(case, block, C, gamma, m, n_atoms, seed):
    c = get_case(case)
    case = c.name
    block = check_choice("block", block, BLOCKS)
    C = check_int("C", C, 2)
    if gamma is not None:
        gamma = check_positive_float("gamma", gamma)
    n_atoms = check_int("n_atoms", n_atoms, 1)
    seed = check_int("seed", seed, 0)
    if not c.has_gmp_limit:
        raise ValueError(
            f"case {case!r} has no GMP limit: its blocks are m x m (rows of V act on the "
            "m-dimensional h_i, not on R^d), so as d, N -> infinity each block converges to the "
            "deterministic matrix E[a h h^T] (see output_block_limit); limiting spectra exist "
            "only for the first-layer cases linear-mse, linear-ce, hidden-mse, hidden-ce"
        )
    if c.needs_m:
        if m is None:
            raise ValueError(f"case {case!r} needs the hidden width m (an integer >= 1)")
        m = check_int("m", m, 2 if block == "off" else 1)
    else:
        m = c.check_m(m)  # refuses an m for the linear model
    if theory_for(c).uses_qmc:  # the continuous laws: n_atoms QMC draws
        _check_qmc_memory(case, C, m, n_atoms, "n_atoms")
    return case, block, C, gamma, m, n_atoms, seed


def block_weight_law(
    case: str,
    block: str,
    C: int,
    gamma: float | None = None,
    m: int | None = None,
    V: np.ndarray | None = None,
    n_atoms: int = 4096,
    seed: int = 0,
    *,
    init: InitLike = "lecun",
    activation: str = "relu",
) -> tuple[np.ndarray, np.ndarray]:
    """The law ``nu`` of the block weight ``a_i`` as ``(atoms, weights)``.

    Parameters
    ----------
    case : one of ``linear-mse, linear-ce, hidden-mse, hidden-ce`` (``output-*`` refused).
    block : ``"diag"`` (block (0,0)) or ``"off"`` (block (0,1)).
    C : int >= 2, number of classes.
    gamma : float > 0 or None. Not needed for ``nu`` (validated if given).
    m : int, hidden width (hidden cases only; >= 2 for ``"off"``).
    V : array (C, m) or None. Output weights the hidden laws are conditional on; sampled
        with :func:`sample_V` (seed ``seed``) if None.
    n_atoms : int >= 1, number of quasi-Monte-Carlo atoms for continuous laws. Sizes whose
        arrays (~``6 n_atoms C`` floats for linear-ce, ``6 n_atoms m + 3 n_atoms C`` for
        hidden-ce) exceed half the physical RAM are refused with a ``ValueError`` naming
        the largest supported ``n_atoms`` (and ``C``), before any allocation.
    seed : int >= 0, seed of the Sobol scrambling (and of ``V`` when sampled).
    init : weight initialisation (keyword-only; ``"lecun"``, ``"torch-default"`` or a
        float sigma, :func:`rmthess.inits.resolve_init`): logits ``N(0, sigma^2 I_C)``,
        ``g ~ N(0, sigma^2 I_m)``, a sampled ``V`` from the init law (a given ``V`` is
        used as is).
    activation : hidden activation of hidden-* (keyword-only; a name of
        :data:`rmthess.activations.ACTIVATIONS`, default ``"relu"``, the paper's). Another
        activation gives the law of ``a = phi'(g_0) phi'(g_l) v_0^T A v_l + delta_0l
        phi''(g_0) v_0^T r`` (:mod:`rmthess.theory.activation_hidden`, labels uniform and
        independent of ``x``) from ``n_atoms`` scrambled-Sobol draws of ``(g, y)``: signed
        atoms where ``phi'' != 0``.

    Returns
    -------
    atoms, weights : float64 arrays (weights sum to 1). Atoms at 0 (indicators off) are kept:
    they set the atom at 0 of the spectral law.
    """
    case, block, C, gamma, m, n_atoms, seed = _check_common(case, block, C, gamma, m, n_atoms, seed)
    ini = resolve_init(init)
    act = _check_activation(case, activation, C, m, n_atoms, "n_atoms")
    return theory_for(case).weight_law(block, C, m, V, n_atoms, seed, ini, act)


def _check_activation(
    case: str, activation: object, C: int, m: int | None, n: int, name: str
) -> Activation | None:
    """The :class:`~rmthess.activations.Activation` of ``activation`` (None for ReLU, the
    paper's formulas); a ``ValueError`` for the linear cases or ``n`` draws past the memory
    budget."""
    from rmthess.activations import get_activation

    if get_case(case).check_activation(activation) == "relu":
        return None
    _check_qmc_memory("hidden-ce", C, m, n, name)
    return get_activation(activation)


def limiting_law(
    case: str,
    block: str,
    C: int,
    gamma: float,
    m: int | None = None,
    V: np.ndarray | None = None,
    n_atoms: int = 4096,
    seed: int = 0,
    *,
    init: InitLike = "lecun",
    inputs: InputStats | None = None,
    activation: str = "relu",
) -> GMPLaw:
    """The limiting spectral law of the block as a :class:`GMPLaw` (``zero_mass``, ``pdf``,
    ``cdf``, moments...). Arguments as in :func:`block_weight_law` (``activation`` too);
    ``gamma = d/N > 0``.

    ``inputs`` (keyword-only): centred Gaussian inputs ``x = Sigma^{1/2} g`` with these
    statistics (:func:`rmthess.theory.input_stats` with ``centred=True``, or
    :meth:`~rmthess.theory.InputStats.from_spectrum` without a mean), linear-mse and
    linear-ce only: a :class:`~rmthess.theory.separable_law.SeparableGMPLaw` of the weight
    law at logit scale ``sigma sqrt(tau_1)`` (the logits ``W x`` are ``N(0, sigma^2 W Sigma
    W^T / d)`` with ``W Sigma W^T / d -> tau_1 I``, fluctuations ``O(1/sqrt(d_eff))``) and the
    spectrum of ``Sigma`` (docs/theory.md section 3). Non-centred inputs are refused (the
    offset ``W mu`` changes the weight law and does not average out over networks).
    """
    gamma = check_positive_float("gamma", gamma)
    if inputs is not None:
        from rmthess.theory.aniso_linear import check_inputs
        from rmthess.theory.separable_law import SeparableGMPLaw

        stats = check_inputs(inputs, get_case(case).name)
        if stats.level == "mixture":
            raise ValueError(
                "inputs with class structure (level 'mixture') have no separable block "
                "spectrum yet: pass inputs.pooled() (one Gaussian with the pooled covariance)"
            )
        if stats.has_mean:
            raise ValueError(
                "inputs must be centred for the block spectra (mean_sq = "
                f"{stats.mean_sq:.3g} > 0): the logit offset W mu changes the weight law; use "
                "input_stats(X, centred=True) or InputStats.from_spectrum(eigenvalues)"
            )
        scale = resolve_init(init).sigma * math.sqrt(stats.tau1)
        atoms, weights = block_weight_law(case, block, C, gamma, m, V, n_atoms, seed, init=scale)
        return SeparableGMPLaw(atoms, weights, gamma, stats.eigenvalues)
    atoms, weights = block_weight_law(
        case, block, C, gamma, m, V, n_atoms, seed, init=init, activation=activation
    )
    return GMPLaw(atoms, weights, gamma)


def limiting_density(
    case: str,
    block: str,
    x: ArrayLike,
    C: int,
    gamma: float,
    m: int | None = None,
    V: np.ndarray | None = None,
    n_atoms: int = 4096,
    seed: int = 0,
    *,
    init: InitLike = "lecun",
    inputs: InputStats | None = None,
    activation: str = "relu",
) -> np.ndarray:
    """Limiting eigenvalue density of the block: ``gmp_density(x, *block_weight_law(...))``.

    The absolutely continuous part only; the atom at 0 is
    ``limiting_law(...).zero_mass``. Arguments as in :func:`block_weight_law`; ``inputs``
    and ``activation`` as in :func:`limiting_law`.
    """
    law = limiting_law(
        case, block, C, gamma, m, V, n_atoms, seed, init=init, inputs=inputs, activation=activation
    )
    return law.pdf(x)


def output_block_limit(
    case: str,
    block: str,
    C: int,
    m: int,
    V: np.ndarray | None = None,
    n_samples: int = 2**16,
    seed: int = 0,
    *,
    init: InitLike = "lecun",
    activation: str = "relu",
) -> np.ndarray:
    """Limit of the ``m x m`` output-layer block ``(1/N) sum_i a_i h_i h_i^T`` given ``V``.

    ``M = E_g[a h h^T]`` with ``g ~ N(0, I_m)``, ``h = relu(g)``; ``a = 1`` (``output-mse``
    diag), ``0`` (``output-mse`` off), ``p_0 (1 - p_0)`` / ``-p_0 p_1`` with
    ``p = softmax(V h)`` (``output-ce`` diag / off). ``output-mse`` diag is exact:
    ``M = I/2 + (1 - I)/(2 pi)``; ``output-ce`` uses ``n_samples`` scrambled-Sobol points
    (error ~ ``1/n_samples`` for this smooth integrand). Its eigenvalues are the limiting
    spectrum of the block (no ``gamma`` dependence). ``n_samples`` (and ``C``, ``m``) whose
    arrays exceed half the physical RAM are refused with a ``ValueError`` first.
    ``init`` (keyword-only): ``g ~ N(0, sigma^2 I_m)`` and a sampled ``V`` from the init
    law (:mod:`rmthess.inits`); output-mse diag is then ``sigma^2 (I/2 + (1 - I)/(2 pi))``.
    ``activation`` (keyword-only, a name of :data:`rmthess.activations.ACTIVATIONS`): ``h =
    phi(g)``; output-mse diag is then exact, ``M_2 I + M_1^2 (1 - I)`` with ``M_k =
    E[phi(sigma g)^k]`` (the Hessian in ``V`` has no ``phi''`` term).
    """
    case = check_choice("case", case, cases_where(layer="output"))
    block = check_choice("block", block, BLOCKS)
    C = check_int("C", C, 2)
    m = check_int("m", m, 1)
    n_samples = check_int("n_samples", n_samples, 1)
    seed = check_int("seed", seed, 0)
    ini = resolve_init(init)
    theory = theory_for(case)
    if theory.uses_qmc:
        _check_qmc_memory(case, C, m, n_samples, "n_samples")
    act = _check_activation(case, activation, C, m, n_samples, "n_samples")
    return theory.output_block(block, C, m, V, n_samples, seed, ini, act)
