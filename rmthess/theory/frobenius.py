"""Frobenius limits of the Hessian blocks at fixed C (Theorems 1 and 2; docs/theory.md section 4).

``F_diag = lim (1/d) ||H_kk||_F^2`` and ``F_off = lim (1/d) ||H_kl||_F^2`` (k != l) for the
d x d blocks (linear-*, hidden-*); ``F = lim ||H_kl||_F^2`` with NO 1/d for the m x m
output-layer blocks (output-*). For the one-hidden-layer cases the limit is also averaged
over the output weights ``V`` and over the equivalent blocks. ``ratio = sqrt(F_off/F_diag)``.

Initialisation (``init``, :mod:`rmthess.inits`): weight entries i.i.d. with variance
``sigma^2 / fan_in`` (``"lecun"``: normal, ``sigma = 1``, the paper's; ``"torch-default"``:
uniform, ``sigma^2 = 1/3``; a float: normal). As d -> inf the logits of the linear model
are ``N(0, sigma^2 I_C)`` and the hidden pre-activations ``N(0, sigma^2 I_m)`` whatever the
entry law; ``V`` keeps its entry law, with kurtosis ``kappa = E v^4 / (E v^2)^2`` = 3
(normal) or 9/5 (uniform). Methods (LeCun: ``sigma = 1, kappa = 3``):

- ``linear-mse``: ``F_diag = 1 + gamma``, ``F_off = 0`` (exact; no weight enters).
- ``linear-ce``: exact quadrature of the softmax moments of ``z ~ N(0, sigma^2 I_C)``
  (:mod:`rmthess.theory.softmax_moments`), relative error ~1e-12 for 2 <= C <= 1e20,
  ``sigma <= 5``.
- ``hidden-mse``: ``F_diag = sigma^4 (C/m)^2 (1 + (kappa - 1)/C)(gamma/2 + 1/4)``,
  ``F_off = sigma^4 (C/m^2)(gamma/4 + 1/16)`` (exact; needs m >= 2); the ratio
  ``sqrt((gamma/4 + 1/16) / ((gamma/2 + 1/4)(C + kappa - 1)))`` depends on the V entry
  law through ``kappa`` only.
- ``output-mse``: ``F_diag = sigma^4 (m/4 + m(m-1)/(4 pi^2))``, ``F_off = 0`` (exact).
- ``output-ce``: exact deterministic quadrature over the Gram matrix of two ReLU vectors
  (:mod:`rmthess.theory.ce_quadrature`, normal inits), relative error below ``tol``
  (default 1e-6) with an error estimate; ``method="mc"`` (and every non-normal init, whose
  V is not Gaussian) uses nested Monte Carlo.
- ``hidden-ce``: nested Monte Carlo over V (init law) and g with unbiased per-draw
  estimates and standard errors (:mod:`rmthess.theory.hidden_integrals`) by default;
  ``method="quadrature"`` (normal inits) computes it exactly by the same Gram reduction
  with the V columns of the block integrated by parts
  (:mod:`rmthess.theory.hidden_quadrature`), at a cost of about a minute per point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from rmthess._checks import check_int, check_positive_float, check_progress
from rmthess._stats import json_safe, ratio_stderr
from rmthess.cases import cases_where, get_case
from rmthess.inits import resolve_init
from rmthess.theory.case_theory import KURTOSIS, theory_for

if TYPE_CHECKING:  # pandas is imported by to_frame
    import pandas as pd

    from rmthess.inits import InitLike
    from rmthess.theory.inputs import InputStats

__all__ = [
    "FrobeniusLimits",
    "frobenius_limits",
    "ratio_stderr",
    "DEFAULT_INNER",
    "MC_MAX_C",
    "QUADRATURE_MAX_C",
    "QUADRATURE_MAX_M",
    "DEFAULT_TOL",
    "METHODS",
    "MIN_SAMPLES",
    "PROGRESS_AFTER_S",
    "KURTOSIS",
]

DEFAULT_INNER = 64
"""Default number of g draws per V draw for the Monte-Carlo cases (the V noise dominates)."""
MC_MAX_C = 100_000
"""Largest C accepted by the Monte-Carlo cases (cost grows linearly in C)."""
QUADRATURE_MAX_C = 10**12
"""Largest C accepted by the Gram quadrature (its cost does not grow with C; checked
against the large-C constants up to 1e12)."""
QUADRATURE_MAX_M = 64
"""Largest hidden width of the Gram quadrature: its sign patterns grow like ``m^3/6``
(41k at m = 64, 176k at m = 128); measured 16 s and 1.3 GB at m = 64 (output-ce, C = 10).
Above it the default is Monte Carlo and ``method="quadrature"`` is refused."""
DEFAULT_TOL = 1e-6
"""Default relative tolerance of the Gram quadrature."""
METHODS = ("quadrature", "mc")
"""Values of ``method`` for the cases with a Monte-Carlo route (``Case.mc_route``)."""
MIN_SAMPLES = 30
"""Fewest V draws accepted by the Monte-Carlo cases. The standard errors are sample
standard deviations of the per-draw estimates over sqrt(samples) (delta method for
``ratio``); with few draws they are too noisy to trust. Measured (200-400 seeds each,
spread of the estimates / RMS of the reported SE, hidden-ce and output-ce at
(C, m, inner) = (10, 4, 64), (100, 8, 64), (1000, 8, 16)): for ``ratio`` up to 1.36 at
5 draws, 1.26 at 10, 1.29 at 20 (output-ce, C = 1000), and within 0.95-1.11 for every
quantity from 30 draws on. Caveat: at m = 3 and large C the per-draw estimates are
heavy-tailed (the C -> inf limit has infinite variance for m <= 4), and ``ratio``'s SE
stays ~20% optimistic at 30-50 draws; use the default sizes (>= 200 draws) there."""
PROGRESS_AFTER_S = 5.0
"""``progress=None`` shows a bar when the predicted run time exceeds this (seconds)."""


@dataclass(frozen=True)
class FrobeniusLimits:
    """Limiting Frobenius norms of one case at fixed ``(C, gamma, m)``.

    Attributes
    ----------
    F_diag, F_off : float
        The limits (see the module docstring for the normalization).
    F_diag_se, F_off_se : float
        Their standard errors (Monte Carlo), their error estimates (the Gram quadrature of
        output-ce: the change between its last two resolutions) or 0.0 (exact to
        rounding).
    ratio : float
        ``sqrt(F_off / F_diag)`` (0.0 where ``F_off == 0``).
    ratio_se : float
        Standard error of ``ratio`` (delta method with the covariance of the two
        estimates over independent V draws); for the Gram quadrature the error bound
        ``ratio (F_off_se/F_off + F_diag_se/F_diag) / 2``; 0.0 where the value is exact.
    method : str
        ``"closed-form"``, ``"quadrature"`` or ``"monte-carlo"``.
    n_samples : int
        Number of independent V draws (0 where exact).
    n_inner : int
        Number of g draws per V draw (0 where exact).
    seed : int or None
        Seed of the Monte-Carlo estimate (None where exact).
    init : str
        Name of the initialisation (``"lecun"``, ``"torch-default"``, ``"sigma=<s>"``).
    tol : float or None
        Relative tolerance of the Gram quadrature (None for the other methods).
    inputs : str
        The input law: ``"isotropic"`` (``x ~ N(0, I_d)``, the default), ``"anisotropic"``
        (centred, covariance Sigma), ``"mean-aware"`` (mean and covariance) or ``"mixture"``
        (a Gaussian per class); :attr:`rmthess.theory.InputStats.level`, with ``"+norms"``
        where the ``i = j`` terms come from the data's sample norms
        (``conditional_frobenius(..., self_term="data")``).
    activation : str
        The hidden activation (``"relu"``, the paper's, unless
        :func:`rmthess.theory.activation_frobenius` computed it).
    widths : tuple of int or None
        The hidden widths of a deeper net (:func:`rmthess.theory.deep_frobenius`: ``(m1,
        m2)``, the blocks of the first layer); None for the one-hidden-layer cases.
    """

    case: str
    C: int
    gamma: float
    m: int | None
    F_diag: float
    F_off: float
    ratio: float
    ratio_se: float
    method: str
    F_diag_se: float = 0.0
    F_off_se: float = 0.0
    n_samples: int = 0
    n_inner: int = 0
    seed: int | None = None
    init: str = "lecun"
    tol: float | None = None
    inputs: str = "isotropic"
    activation: str = "relu"
    widths: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        """A flat, JSON-safe dict (non-finite floats become None): the CLI's record."""
        return json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        """A one-row tidy ``pandas.DataFrame`` of :meth:`to_dict`."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


def frobenius_limits(
    case: str,
    C: int | float,
    gamma: float,
    m: int | None = None,
    *,
    samples: int | None = None,
    inner: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    init: InitLike = "lecun",
    method: str | None = None,
    tol: float | None = None,
    inputs: InputStats | None = None,
    activation: str = "relu",
) -> FrobeniusLimits:
    """Limits ``F_diag``, ``F_off`` and ``ratio = sqrt(F_off/F_diag)`` at fixed C.

    Parameters
    ----------
    case : str
        One of ``linear-mse, linear-ce, hidden-mse, hidden-ce, output-mse, output-ce``.
    C : int
        Number of classes, an integer >= 2 (``1e7`` accepted); at most 1e20 for linear-ce,
        ``QUADRATURE_MAX_C`` = 1e12 for the Gram quadrature and ``MC_MAX_C`` for Monte
        Carlo.
    gamma : float
        ``d/N``, finite and > 0 (unused by output-*, whose blocks have fixed size m). The
        limits are linear in gamma and are computed without overflow for every finite
        gamma (1e-300 and 1e300 included); a ``ValueError`` is raised only where the limit
        itself exceeds the float64 range (hidden-mse, which grows like ``gamma C^2``).
    m : int, optional
        Hidden width: required for hidden-* (``m >= 2``) and output-* (``m >= 1``);
        refused for linear-* (:meth:`rmthess.cases.Case.check_m`).
    samples, inner : int, optional
        Monte-Carlo route only (hidden-ce; output-ce with ``method="mc"``, which giving
        either implies); a ``ValueError`` for the other cases and methods. ``samples``:
        independent V draws, >= ``MIN_SAMPLES`` (below it the standard errors are not
        trustworthy, see ``MIN_SAMPLES``); default: as many as a budget of ~1.5e10 flops
        allows, between 200 and 10000
        (:func:`rmthess.theory.hidden_integrals.default_sizes`). ``inner``: g draws per
        V, >= 2, default ``DEFAULT_INNER`` = 64. Sizes whose arrays would not fit in the
        memory budget (half the physical RAM) are refused before any work, naming the
        largest supported value.
    seed : int
        Seed of the Monte-Carlo cases (results are deterministic given it).
    progress : bool or None
        Monte-Carlo cases: a tqdm progress bar with ETA on stderr. ``None`` (default):
        shown when the predicted run time
        (:func:`rmthess.theory.hidden_integrals.estimated_cost`) exceeds
        ``PROGRESS_AFTER_S`` = 5 s. Long runs are not refused: the bar tells the user
        how long it will take (for C beyond ~1e4 the large-C asymptote,
        :func:`rmthess.theory.asymptotic_constants`, is instantaneous and accurate).
        The exact cases take milliseconds and never show a bar.
    init : str, float or Init
        Weight initialisation (:func:`rmthess.inits.resolve_init`): ``"lecun"``
        (default), ``"torch-default"`` or a float ``sigma > 0`` (module docstring for how
        each case depends on it); linear-ce needs ``sigma <= 5``
        (:data:`rmthess.theory.softmax_moments.SIGMA_MAX`).

    method : {"quadrature", "mc"} or None
        Cases with a Monte-Carlo route (``Case.mc_route``: hidden-ce, output-ce) only.
        ``None`` (default): the case's default, ``Case.theory_method`` (the Gram
        quadrature for both), except that ``samples``/``inner`` or a
        non-normal init (``torch-default``: uniform V, for which the Gram reduction does
        not hold), or ``m > QUADRATURE_MAX_M`` = 64, select ``"mc"``. ``"quadrature"``
        needs a normal init and ``m <= 64``.
    tol : float, optional
        Relative tolerance of the Gram quadrature, in [1e-7, 1e-2] (default
        ``DEFAULT_TOL`` = 1e-6); a ``ValueError`` for the other methods. The resolution
        is raised until two successive levels agree to ``tol``; where the finest level
        does not, a ``RuntimeWarning`` gives the error reached.
    inputs : InputStats, optional
        Gaussian inputs ``x ~ N(mu, Sigma)`` with these statistics
        (:func:`rmthess.theory.input_stats`) instead of ``N(0, I_d)``. hidden-* and
        output-*: centred single-Gaussian inputs give the isotropic limit at a rescaled
        gamma and init (:mod:`rmthess.theory.aniso_scaled`); a mean or classes give the
        limit averaged over each network's pre-activation offsets ``W mu_k``, by Monte
        Carlo (:func:`rmthess.theory.offset_frobenius`; ``samples``, ``inner``, ``seed``
        apply, ``method`` must be ``"mc"`` or left out). Linear cases:
        ``F = gamma (tau_1 + |mu|^2/d)^2 E[a^2] +
        (tau_2 + 2 mu^T Sigma mu/d + |mu|^4/d) E[a a']`` with the logits at scale ``sigma
        sqrt(tau_1 + |mu|^2/d)`` and ``a, a'`` two samples of one network (sharing the
        offset ``W mu``; :mod:`rmthess.theory.aniso_linear`). A ``RuntimeWarning`` when ``C /
        d_eff > 0.1`` (corrections ``O(C/d_eff)``; :func:`rmthess.theory.conditional_frobenius`
        is exact at finite d). ``Sigma = I, mu = 0`` gives the default numbers. With class
        covariances (``input_stats(X, y)``, ``inputs.level == "mixture"``): the Gaussian
        mixture of the classes, ``F = gamma sum_k pi_k v_k^2 E_k[a^2] + sum_kl pi_k pi_l R_kl
        E_kl[a a']`` (:mod:`rmthess.theory.mixture_linear`; ``d_eff`` the smallest
        within-class one).

    activation : str
        Hidden activation of hidden-* and output-* (a name of
        :data:`rmthess.activations.ACTIVATIONS`; ``"relu"``, the paper's, is the default and
        the only value the linear cases take). Another activation routes to
        :func:`rmthess.theory.activation_frobenius` (:attr:`rmthess.cases.Case.activation_method`:
        Monte Carlo for hidden-* and output-ce with ``samples`` (default 2000), ``inner``
        (default 256) and ``seed``, the closed form of the Gaussian moments for
        output-mse); ``method``, ``tol`` and ``inputs`` are then refused.

    Returns
    -------
    FrobeniusLimits

    Notes
    -----
    The Monte-Carlo kernels run with single-threaded BLAS whatever the environment
    (``threadpoolctl.threadpool_limits(1, "blas")``): they are many small matrix products,
    for which BLAS threads only add synchronisation (measured 4-20x slower on a loaded
    2-core machine).

    Examples
    --------
    >>> r = frobenius_limits("linear-mse", 10, 0.5)   # closed form F_diag = 1 + gamma
    >>> r.F_diag, r.F_off, r.ratio, r.method
    (1.5, 0.0, 0.0, 'closed-form')
    """
    c = get_case(case)
    case = c.name
    C = check_int("C", C, 2)
    gamma = check_positive_float("gamma", gamma)
    m = c.check_m(m)
    seed = check_int("seed", seed, 0)
    progress = check_progress(progress)
    ini = resolve_init(init)
    activation = c.check_activation(activation)
    if activation != "relu":
        return _activation(c, C, gamma, m, ini, activation, samples, inner, seed, method, tol,
                           inputs)  # fmt: skip
    if inputs is not None and c.layer != "linear" and _has_offsets(inputs):
        return _offsets(case, C, gamma, m, ini, inputs, samples, inner, seed, method, tol)
    method, tol = _resolve_method(c, method, samples, inner, ini, tol, m)
    if inputs is not None and c.layer != "linear":
        return _scaled(case, C, gamma, m, ini, inputs, samples, inner, seed, progress, method, tol)
    if inputs is not None:
        from rmthess.theory.aniso_linear import aniso_linear_limits, check_inputs

        stats = check_inputs(inputs, case)
        out = aniso_linear_limits(case, C, gamma, ini.sigma, stats)
        return FrobeniusLimits(
            case, C, gamma, m, method=method, init=ini.name, inputs=stats.level, **out
        )
    if method == "quadrature" and c.mc_route:
        tol = DEFAULT_TOL if tol is None else tol
        if C > QUADRATURE_MAX_C:
            raise ValueError(
                f"C must be <= {QUADRATURE_MAX_C:.0e} for the Gram quadrature of {case!r} "
                f"(got {C}); use rmthess.theory.asymptotic_constants for larger C"
            )
        out = theory_for(c).quadrature(C, gamma, m, ini, tol)
        return FrobeniusLimits(
            case, C, gamma, m, method="quadrature", init=ini.name, tol=tol, **out
        )
    out = theory_for(c).frobenius(
        C, gamma, m, ini, samples=samples, inner=inner, seed=seed, progress=progress
    )
    name = "monte-carlo" if c.mc_route else c.theory_method
    return FrobeniusLimits(case, C, gamma, m, method=name, init=ini.name, **out)


def _activation(c, C, gamma, m, ini, activation, samples, inner, seed, method, tol, inputs):
    """Another activation than ReLU: :func:`rmthess.theory.activation_frobenius`."""
    from rmthess.theory.activation_hidden import (
        DEFAULT_INNER,
        DEFAULT_SAMPLES,
        activation_frobenius,
    )

    for name, value in (("method", method), ("tol", tol), ("inputs", inputs)):
        if value is not None:
            raise ValueError(
                f"{name} does not apply with activation={activation!r} (its limits are "
                f"{c.activation_method}, isotropic inputs); leave it out, got {name}={value!r}"
            )
    samples = DEFAULT_SAMPLES if samples is None else samples
    inner = DEFAULT_INNER if inner is None else inner
    return activation_frobenius(c.name, C, gamma, m, activation, init=ini, samples=samples,
                                inner=inner, seed=seed)  # fmt: skip


def _scaled(case, C, gamma, m, ini, inputs, samples, inner, seed, progress, method, tol):
    """hidden-*/output-* with centred anisotropic inputs: the isotropic limit at the
    rescaled gamma and init, times a factor (:mod:`rmthess.theory.aniso_scaled`)."""
    from dataclasses import replace

    from rmthess.theory.aniso_linear import check_inputs
    from rmthess.theory.aniso_scaled import SCALED_CASES, check_scaled_inputs, scaled_setting

    stats = check_inputs(inputs, case, SCALED_CASES)
    check_scaled_inputs(stats, case, m, ini)
    factor, gamma2, ini2 = scaled_setting(case, gamma, stats, ini)
    iso = frobenius_limits(
        case, C, gamma2, m, samples=samples, inner=inner, seed=seed, progress=progress,
        init=ini2, method=method, tol=tol,
    )  # fmt: skip
    scaled = {k: factor * getattr(iso, k) for k in ("F_diag", "F_off", "F_diag_se", "F_off_se")}
    return replace(iso, gamma=gamma, init=ini.name, inputs=stats.level, **scaled)


def _has_offsets(inputs) -> bool:
    """Statistics with a mean or classes (the hidden/output limits average over offsets)."""
    from rmthess.theory.inputs import InputStats
    from rmthess.theory.offset_limits import OFFSET_LEVELS

    return isinstance(inputs, InputStats) and inputs.level in OFFSET_LEVELS


def _offsets(case, C, gamma, m, ini, inputs, samples, inner, seed, method, tol):
    """hidden-*/output-* with a mean or classes: :func:`rmthess.theory.offset_frobenius`
    (Monte Carlo over networks and their pre-activation offsets)."""
    from rmthess.theory import offset_limits as ol

    if method not in (None, "mc"):
        raise ValueError(
            f"method must be 'mc' (or left out) for {case!r} with inputs that have a mean or "
            f"classes (the limit is a Monte Carlo over the offsets), got {method!r}"
        )
    if tol is not None:
        raise ValueError(f"tol does not apply to {case!r} with a mean or classes (Monte Carlo)")
    return ol.offset_frobenius(
        case, C, gamma, m, inputs, init=ini, seed=seed,
        samples=ol.DEFAULT_SAMPLES if samples is None else samples,
        inner=ol.DEFAULT_INNER if inner is None else inner,
    )  # fmt: skip


def _resolve_method(c, method, samples, inner, ini, tol, m=None) -> tuple[str, float | None]:
    """``(method, tol)`` that :func:`frobenius_limits` uses for case ``c`` (a
    :class:`rmthess.cases.Case`) given its arguments: ``"quadrature"``, ``"mc"`` or the
    case's exact method, and the checked tolerance (None unless given). Checks
    ``method``, ``tol`` and that ``samples``/``inner`` fit the method (``ValueError``,
    ``TypeError``), before any work."""
    from rmthess._checks import check_choice, check_float

    case = c.name
    for name, value in (("samples", samples), ("inner", inner)):
        if value is not None:
            check_int(name, value)  # a wrong type is a TypeError whatever the case
    mc_given = samples is not None or inner is not None
    if not c.mc_route:
        if method is not None and method != c.theory_method:
            raise ValueError(
                f"method applies only to the Monte-Carlo cases "
                f"({', '.join(cases_where(mc_route=True))}); case {case!r} is computed "
                f"exactly ({c.theory_method}): leave method out, got {method!r}"
            )
        for name, value in (("samples", samples), ("inner", inner), ("tol", tol)):
            if value is not None:
                raise ValueError(
                    f"{name} applies only to the Monte-Carlo cases "
                    f"({', '.join(cases_where(mc_route=True))}); case {case!r} is computed "
                    f"exactly ({c.theory_method}): leave {name} out, got {value!r}"
                )
        return c.theory_method, None
    normal = ini.dist == "normal"
    wide = m is not None and m > QUADRATURE_MAX_M
    if method is None:
        if mc_given or not normal or c.theory_method == "monte-carlo" or wide:
            method = "mc"
        else:
            method = "quadrature"
    method = check_choice("method", method, METHODS)
    if method == "quadrature":
        if not normal:
            raise ValueError(
                f"method='quadrature' needs a normal init (the Gram reduction integrates over "
                f"Gaussian output weights), got init={ini.name!r} ({ini.dist} entries): use "
                "method='mc'"
            )
        if wide:
            raise ValueError(
                f"m must be <= {QUADRATURE_MAX_M} for method='quadrature' (its sign patterns "
                f"grow like m^3/6: 16 s and 1.3 GB at m = 64), got m={m}: use method='mc' "
                "(the default above it)"
            )
        if mc_given:
            raise ValueError(
                "samples and inner apply only to method='mc' (Monte Carlo); the Gram "
                "quadrature is deterministic: leave them out or pass method='mc'"
            )
        if tol is not None:
            tol = check_float("tol", tol, 1e-7, 1e-2)
    elif tol is not None:
        raise ValueError(
            f"tol applies only to method='quadrature'; method='mc' reports a standard error "
            f"(set its size with samples): leave tol out, got {tol!r}"
        )
    return method, tol
