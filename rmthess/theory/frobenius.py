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
- ``hidden-ce``, ``output-ce``: nested Monte Carlo over V (init law) and g with unbiased
  per-draw estimates and honest standard errors (:mod:`rmthess.theory.hidden_integrals`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass

from rmthess._checks import check_int, check_positive_float
from rmthess._stats import json_safe, ratio_stderr
from rmthess.cases import cases_where, get_case
from rmthess.inits import resolve_init

__all__ = [
    "FrobeniusLimits",
    "frobenius_limits",
    "ratio_stderr",
    "DEFAULT_INNER",
    "MC_MAX_C",
    "MIN_SAMPLES",
    "PROGRESS_AFTER_S",
    "KURTOSIS",
]

KURTOSIS = {"normal": 3.0, "uniform": 9.0 / 5.0}
"""``E v^4 / (E v^2)^2`` of a weight entry, by entry law (:attr:`rmthess.inits.Init.dist`)."""

DEFAULT_INNER = 64
"""Default number of g draws per V draw for the Monte-Carlo cases (the V noise dominates)."""
MC_MAX_C = 100_000
"""Largest C accepted by the Monte-Carlo cases (cost grows linearly in C)."""
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
_LOG_FLOAT_MAX = math.log(sys.float_info.max)


@dataclass(frozen=True)
class FrobeniusLimits:
    """Limiting Frobenius norms of one case at fixed ``(C, gamma, m)``.

    Attributes
    ----------
    F_diag, F_off : float
        The limits (see the module docstring for the normalization).
    F_diag_se, F_off_se : float
        Their standard errors (0.0 where the value is exact).
    ratio : float
        ``sqrt(F_off / F_diag)`` (0.0 where ``F_off == 0``).
    ratio_se : float
        Standard error of ``ratio`` (delta method with the covariance of the two
        estimates over independent V draws); 0.0 where the value is exact.
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

    def to_dict(self) -> dict:
        """A flat, JSON-safe dict (non-finite floats become None): the CLI's record."""
        return json_safe(asdict(self))

    def to_frame(self):
        """A one-row tidy ``pandas.DataFrame`` of :meth:`to_dict`."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


def _ratio(F_diag, F_off):
    return math.sqrt(F_off / F_diag) if F_off > 0 else 0.0


def frobenius_limits(
    case,
    C,
    gamma,
    m=None,
    *,
    samples: int | None = None,
    inner: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    init="lecun",
) -> FrobeniusLimits:
    """Limits ``F_diag``, ``F_off`` and ``ratio = sqrt(F_off/F_diag)`` at fixed C.

    Parameters
    ----------
    case : str
        One of ``linear-mse, linear-ce, hidden-mse, hidden-ce, output-mse, output-ce``.
    C : int
        Number of classes, an integer >= 2 (``1e7`` accepted); at most 1e20 for linear-ce
        and ``MC_MAX_C`` for the Monte-Carlo cases.
    gamma : float
        ``d/N``, finite and > 0 (unused by output-*, whose blocks have fixed size m). The
        limits are linear in gamma and are computed without overflow for every finite
        gamma (1e-300 and 1e300 included); a ``ValueError`` is raised only where the limit
        itself exceeds the float64 range (hidden-mse, which grows like ``gamma C^2``).
    m : int, optional
        Hidden width: required for hidden-* (``m >= 2``) and output-* (``m >= 1``);
        refused for linear-* (:meth:`rmthess.cases.Case.check_m`).
    samples, inner : int, optional
        Monte-Carlo cases (hidden-ce, output-ce) only; a ``ValueError`` for the other
        cases. ``samples``: independent V draws, >= ``MIN_SAMPLES`` (below it the
        standard errors are not trustworthy, see ``MIN_SAMPLES``); default: as many as a
        budget of ~1.5e10 flops allows, between 200 and 10000
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
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")
    ini = resolve_init(init)
    sig2 = ini.sigma2
    mc_cases = ", ".join(cases_where(monte_carlo_theory=True))
    for name, value in (("samples", samples), ("inner", inner)):
        if value is not None and not c.monte_carlo_theory:
            check_int(name, value)  # a wrong type is a TypeError whatever the case
            raise ValueError(
                f"{name} applies only to the Monte-Carlo cases ({mc_cases}); case {case!r} "
                f"is computed exactly ({c.theory_method}): leave {name} out, got {value!r}"
            )
    exact: dict = dict(init=ini.name)
    if case == "linear-mse":
        return FrobeniusLimits(
            case, C, gamma, m, 1.0 + gamma, 0.0, 0.0, 0.0, "closed-form", **exact
        )
    if case == "linear-ce":
        from rmthess.theory.softmax_moments import SIGMA_MAX, linear_ce_frobenius

        if ini.sigma > SIGMA_MAX:
            raise ValueError(
                f"init sigma must be <= {SIGMA_MAX:g} for linear-ce (the quadrature tables "
                f"grow like sigma^2 and the softmax is one-hot beyond), got {ini.name!r}"
            )
        Fd, Fo = (float(x) for x in linear_ce_frobenius(C, gamma, sigma=ini.sigma))
        return FrobeniusLimits(
            case, C, gamma, m, Fd, Fo, _ratio(Fd, Fo), 0.0, "quadrature", **exact
        )
    if case == "hidden-mse":
        return _hidden_mse(C, gamma, m, ini, exact)
    if case == "output-mse":
        Fd = sig2 * sig2 * (m / 4 + m * (m - 1) / (4 * math.pi**2))
        if not math.isfinite(Fd):
            raise ValueError(f"init sigma is too large for output-mse: F_diag overflows, got {ini}")
        return FrobeniusLimits(case, C, gamma, m, Fd, 0.0, 0.0, 0.0, "closed-form", **exact)
    # Monte-Carlo cases: every check before any work
    if C > MC_MAX_C:
        raise ValueError(
            f"C must be <= {MC_MAX_C} for the Monte-Carlo case {case!r} (got {C}); "
            "use rmthess.theory.asymptotic_constants for larger C"
        )
    from threadpoolctl import threadpool_limits

    from rmthess.theory import hidden_integrals as hi

    if samples is not None:
        samples = check_int("samples", samples)
        if samples < MIN_SAMPLES:
            raise ValueError(
                f"samples must be an integer >= {MIN_SAMPLES}, got {samples}: with fewer V "
                "draws the standard error is too noisy to be trusted (measured: the ratio "
                f"spreads up to 1.3x its reported SE below {MIN_SAMPLES} draws; MIN_SAMPLES)"
            )
    if inner is not None:
        inner = check_int("inner", inner, 2)
    n_V, n_g = hi.default_sizes(case, C, m, samples, inner)
    hi.check_memory(
        lambda C, m, samples, inner: hi.estimated_cost(case, C, m, samples, inner)[1],
        {"C": C, "m": m, "samples": n_V, "inner": n_g},
        {"C": 2, "m": c.m_min, "samples": MIN_SAMPLES, "inner": 2},
        f"the Monte-Carlo case {case!r}",
    )
    show = progress
    if show is None:
        show = hi.estimated_cost(case, C, m, n_V, n_g)[0] > PROGRESS_AFTER_S
    fn = hi.hidden_ce_mc if case == "hidden-ce" else hi.output_ce_mc
    with threadpool_limits(limits=1, user_api="blas"):
        est = fn(C, m, n_V, n_g, seed, progress=show, init=ini)
    s, Fd, Fo, sd, so, cov = est.scaled_summary(gamma)
    ratio = _ratio(Fd, Fo)  # scale-free: computed on F/s, no overflow
    ratio_se = ratio_stderr(Fd, Fo, sd**2, so**2, cov)
    Fd, Fo, sd, so = (x * s for x in (Fd, Fo, sd, so))
    if not (math.isfinite(Fd) and math.isfinite(Fo)):
        raise ValueError(
            f"gamma must be smaller for {case} at C={C}, m={m}: the limit exceeds the float64 "
            f"range, got {gamma!r}"
        )
    return FrobeniusLimits(
        case, C, gamma, m, Fd, Fo, ratio, ratio_se, "monte-carlo", sd, so, n_V, n_g, seed,
        ini.name,
    )  # fmt: skip


def _hidden_mse(C, gamma, m, ini, exact) -> FrobeniusLimits:
    """Exact hidden-mse limits for V entries of variance ``s2 = sigma^2/m``, kurtosis kappa.

    ``F(V) = |v_j|^4 (gamma/2 + 1/4)`` (diag), ``(v_j . v_l)^2 (gamma/4 + 1/16)`` (off):
    the ReLU indicators are Bernoulli(1/2) / (1/4) whatever sigma. ``E|v_j|^4 =
    C E v^4 + C(C-1) s2^2 = s2^2 C^2 (1 + (kappa - 1)/C)`` and ``E (v_j . v_l)^2 = C s2^2``.
    ``F_diag`` grows like ``sigma^4 gamma C^2``: it is checked against the float64 range
    in log space, and the ratio comes from its overflow-free closed form.
    """
    k1 = KURTOSIS[ini.dist] - 1.0
    log_s4 = 4.0 * math.log(ini.sigma)
    log_unit = log_s4 + 2 * (math.log(C) - math.log(m)) + math.log1p(k1 / C)
    if log_unit + math.log(gamma / 2 + 0.25) >= _LOG_FLOAT_MAX:
        g_max = 2 * math.exp(_LOG_FLOAT_MAX - log_unit) - 0.5
        raise ValueError(
            f"gamma must be <= {g_max:.3g} for hidden-mse at C={C}, m={m}, init={ini}: "
            f"F_diag = sigma^4 (C/m)^2 (1 + (kappa-1)/C)(gamma/2 + 1/4) exceeds the float64 "
            f"range, got {gamma!r}"
        )
    Fd = math.exp(log_unit) * (gamma / 2 + 0.25)
    Fo = math.exp(log_s4 + math.log(C) - 2 * math.log(m)) * (gamma / 4 + 1 / 16)
    r = math.sqrt((gamma / 4 + 1 / 16) / (gamma / 2 + 0.25) / (C + k1))
    return FrobeniusLimits("hidden-mse", C, gamma, m, Fd, Fo, r, 0.0, "closed-form", **exact)
