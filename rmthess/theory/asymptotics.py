"""Large-C asymptotic constants of the Frobenius limits (docs/theory.md section 5).

Every case has ``F_diag ~ A_diag * C**(-p_diag)`` and ``F_off ~ A_off * C**(-p_off)`` as
``C -> infinity`` (gamma, m fixed). Conventions:

- A block that is exactly zero (the MSE off-diagonal blocks) has ``A_off = 0.0`` and
  ``p_off = inf`` (so that ``A_off * C**(-p_off) == 0``).
- An exponent may be negative: for hidden-mse ``F_diag`` GROWS like ``C**2``
  (``p_diag = -2``) and ``F_off`` like ``C`` (``p_off = -1``), because the hidden-layer
  blocks carry ``|v_j|^2 ~ C/m``.
- A constant is exact where the fixed-C value is itself a power (linear-mse, output-mse).

The constants ``K1..K4`` (hidden-ce and output-ce) are computed with mpmath to ~1e-15
relative from one-dimensional integrals (see :func:`hidden_ce_K` and :func:`output_ce_K`).
They involve powers ``phi(1/m)^m`` with ``phi(1/m) = 1 + O(1/m)``, so the working precision
is raised with m (``30 + log10(m)`` digits); ``m`` is accepted up to ``ASYMPTOTIC_M_MAX``
= 1e30 (beyond, the evaluation gets slow and the values leave the useful range: the
leading terms are ``K1 ~ e^(1/2) / (4 m^2)``, ``K2 ~ e^(1/(2 pi)) / (16 m^2)``,
``K3 ~ e^(1/(2 pi)) m^2 / (4 pi^2)``, ``K4 ~ e^(1/pi) m^2 / (4 pi^2)``).

Initialisation (``init``, :mod:`rmthess.inits`; entries of variance ``sigma^2/fan_in``).
Where only the variance enters (linear-*, hidden-mse, output-mse) every init is accepted:
linear-ce ``A_diag = 1 + e^{sigma^2} gamma``, ``A_off = 1 + e^{2 sigma^2} gamma``
(``p_k ~ e^{z_k - sigma^2/2}/C``); hidden-mse and output-mse scale by ``sigma^4``. The CE
constants of the one-hidden-layer net come from exponentially tilting a row of ``V``; for a
normal law the tilted row is again normal and, with ``h = sigma h0``, everything is the
LeCun computation at the "temperature" ``tau = sigma^4/m`` in place of ``1/m``:
``K1 = (sigma^4/m^2) ((1+q)/2)^{m-2} ((q/2)(1 + tau q^2))^2``, ``q = (1 - 2 tau)^{-1/2}``;
``K2 = (sigma^4/m^2) phi(tau)^{m-2} (phi_+(tau) + tau phi_+'(tau))^2``;
``K3 = sigma^4 (phi^m)''(tau)``, ``K4 = sigma^4 (phi^m)''(2 tau)``;
``A_diag`` (hidden-ce) ``= sigma^4 (gamma/2 + 1/4)/m^2``. They are finite iff
``tau < 1/2``, i.e. ``m > 2 sigma^4`` (and ``m >= 3``, the registry's minimum). For the
uniform law (``"torch-default"``) the tilted law of a row is not uniform, and the
constants depend on more than the variance (the tilted variance of an entry is no longer
``sigma^2/m``): they are not derived here, and ``asymptotic_constants`` refuses
``torch-default`` for hidden-ce and output-ce with a ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import mpmath as mp

from rmthess._checks import check_positive_float
from rmthess._stats import json_safe
from rmthess.cases import get_case
from rmthess.inits import resolve_init
from rmthess.theory.case_theory import theory_for

if TYPE_CHECKING:  # numpy arrays are accepted, pandas is imported by to_frame
    import numpy as np
    import pandas as pd

    from rmthess.inits import InitLike
    from rmthess.theory.inputs import InputStats

__all__ = [
    "AsymptoticConstants",
    "asymptotic_constants",
    "hidden_ce_K",
    "output_ce_K",
    "relu_product_mgf",
    "ASYMPTOTIC_M_MAX",
]

_DPS = 30
ASYMPTOTIC_M_MAX = 10**30
"""Largest hidden width accepted by the large-C constants (see the module docstring)."""


def _check_asymptotic_m(case: str, m) -> int | None:
    """``get_case(case).check_m(m, asymptotic=True)`` (the one statement of the minimum),
    plus which constant diverges, and the upper bound ``ASYMPTOTIC_M_MAX``."""
    c = get_case(case)
    try:
        m = c.check_m(m, asymptotic=True)
    except ValueError as exc:
        diverges = theory_for(c).diverges
        if diverges and "diverge" in str(exc):
            raise ValueError(f"{exc}: {diverges}") from None
        raise
    if m is not None and m > ASYMPTOTIC_M_MAX:
        raise ValueError(
            f"m must be <= {ASYMPTOTIC_M_MAX:.0e} for the large-C constants of {case!r} "
            f"(working precision grows with log10(m); the constants are ~m^2 or ~1/m^2 "
            f"there), got m={m}"
        )
    return m


def _dps(m: int) -> int:
    """Working digits for width m: ``phi(1/m)^m`` loses ``log10(m)`` digits to the 1."""
    return _DPS + len(str(m))


@dataclass(frozen=True)
class AsymptoticConstants:
    """``F_diag ~ A_diag * C**(-p_diag)``, ``F_off ~ A_off * C**(-p_off)`` as C -> inf.

    ``A_off = 0.0, p_off = inf`` means the off-diagonal block is exactly zero. ``m`` is
    None for the linear cases. For output-* the constants do not depend on ``gamma``.
    ``activation``: the hidden activation they are for (``"relu"``, the paper's).
    """

    case: str
    gamma: float
    m: int | None
    A_diag: float
    p_diag: float
    A_off: float
    p_off: float
    init: str = "lecun"
    inputs: str = "isotropic"
    activation: str = "relu"

    def F_diag_at(self, C: float | np.ndarray) -> float | np.ndarray:
        """The asymptote ``A_diag * C**(-p_diag)``."""
        return self.A_diag * C ** (-self.p_diag)

    def F_off_at(self, C: float | np.ndarray) -> float | np.ndarray:
        """The asymptote ``A_off * C**(-p_off)`` (0 where the block vanishes)."""
        if self.A_off == 0.0:
            return 0.0 * C
        return self.A_off * C ** (-self.p_off)

    def to_dict(self) -> dict:
        """A flat, JSON-safe dict (``p_off = inf`` of an exactly zero block becomes None)."""
        return json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        """A one-row tidy ``pandas.DataFrame`` of :meth:`to_dict`."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


def relu_product_mgf(t, k: int = 0):
    """k-th derivative (k = 0, 1, 2) of ``phi(t) = E[exp(t relu(g) relu(g'))]``.

    ``g, g'`` are independent N(0, 1). Finite exactly for ``t < 1``. Using
    ``int_0^inf e^{a y} phi(y) dy = e^{a^2/2} Phi(a) =: I0(a)``, ``I1 = a I0 + 1/sqrt(2 pi)``,
    ``I2 = I0 + a I1`` (derivatives in ``a``), for ``t < 1``:

    ``phi(t) = 3/4 + int_0^inf phi(x) I0(t x) dx``,
    ``phi^(k)(t) = int_0^inf phi(x) x^k I_k(t x) dx`` (k >= 1),

    evaluated with mpmath (30 digits). Returns an ``mpmath.mpf``.
    """
    if k not in (0, 1, 2):
        raise ValueError(f"k must be 0, 1 or 2, got {k!r}")
    with mp.workdps(max(_DPS, mp.mp.dps)):  # a caller may ask for more digits
        t = mp.mpf(t)
        if not -1 < t < 1:
            raise ValueError(f"t must be in (-1, 1) (phi(t) diverges for t >= 1), got {t}")
        c = 1 / mp.sqrt(2 * mp.pi)
        # phi(x) I_k(t x) = c exp(-(1 - t^2) x^2 / 2) J_k(t x) with
        # J0 = Phi(a), J1 = a Phi(a) + c e^{-a^2/2}, J2 = J0 + a J1.

        def J(a):
            j0 = mp.ncdf(a)
            if k == 0:
                return j0
            j1 = a * j0 + c * mp.exp(-(a**2) / 2)
            return j1 if k == 1 else j0 + a * j1

        s = 1 - t * t

        def f(x):
            return c * mp.exp(-s * x * x / 2) * x**k * J(t * x)

        scale = 1 / mp.sqrt(s)
        val = mp.quad(f, [0, scale, 4 * scale, 12 * scale, mp.inf])
        if k == 0:
            val += mp.mpf(3) / 4
        return val


def _relu_product_plus(t, k):
    """``E[(g g')^k exp(t g g') 1[g>0] 1[g'>0]]`` = derivative of phi without the 3/4."""
    v = relu_product_mgf(t, k)
    return v - mp.mpf(3) / 4 if k == 0 else v


def _tau(m: int, sigma: float, case: str):
    """``tau = sigma^4 / m`` (an mpf), refused unless ``tau < 1/2`` (``m > 2 sigma^4``)."""
    tau = mp.mpf(sigma) ** 4 / m
    if not tau < mp.mpf(1) / 2:
        raise ValueError(
            f"m must be > 2 sigma^4 = {2 * sigma**4:.6g} for the large-C constants of "
            f"{case!r} at init sigma={sigma:g} (K1/K4 = E[e^(2 tau ...)] diverge for "
            f"tau = sigma^4/m >= 1/2), got m={m}"
        )
    return tau


@lru_cache(maxsize=256)
def hidden_ce_K(m: int, sigma: float = 1.0) -> tuple[float, float]:
    """Constants ``(K1(m), K2(m))`` of hidden-ce: ``C F_off -> gamma K1 + K2``.

    ``sigma``: scale of a normal init (V entries ``N(0, sigma^2/m)``, ``g ~ N(0, sigma^2
    I)``); the formulas below are for ``sigma = 1``; general sigma replaces the
    temperature ``1/m`` by ``tau = sigma^4/m`` and multiplies by ``sigma^4`` (module
    docstring); needs ``m > 2 sigma^4``.

    ``K1 = E_g[e^{|h|^2/m} (1/m + h_j^2/m^2)(1/m + h_l^2/m^2) 1[g_j>0] 1[g_l>0]]``
    ``   = (1/2 + r/2)^{m-2} ((r/2)(1/m + r^2/m^2))^2``, ``r = (1 - 2/m)^{-1/2}``;
    ``K2 = E_{g,g'}[e^{h.h'/m} (1/m + h_j h'_j/m^2)(1/m + h_l h'_l/m^2) 1[...]]``
    ``   = phi(1/m)^{m-2} psi^2``, ``psi = phi_+(1/m)/m + phi_+'(1/m)/m^2``, where
    ``phi_+(t) = E[e^{t g g'} 1[g>0] 1[g'>0]]`` (both factorize over coordinates).
    ``g ~ N(0, I_m)``, ``h = relu(g)``, ``j != l``. Requires ``m >= 3`` (K1 diverges for
    ``m <= 2``). Relative accuracy ~1e-15.
    """
    m = _check_asymptotic_m("hidden-ce", m)  # type: ignore[assignment]  # an int here
    with mp.workdps(_dps(m)):
        mm = mp.mpf(m)
        tau = _tau(m, sigma, "hidden-ce")
        s4 = mp.mpf(sigma) ** 4
        r = 1 / mp.sqrt(1 - 2 * tau)
        K1 = (mp.mpf(1) / 2 + r / 2) ** (m - 2) * ((r / 2) * (1 + tau * r**2)) ** 2
        phi0 = relu_product_mgf(tau, 0)
        psi = _relu_product_plus(tau, 0) + tau * _relu_product_plus(tau, 1)
        K2 = phi0 ** (m - 2) * psi**2
        return float(s4 * K1 / mm**2), float(s4 * K2 / mm**2)


@lru_cache(maxsize=256)
def output_ce_K(m: int, sigma: float = 1.0) -> tuple[float, float]:
    """Constants ``(K3(m), K4(m))`` of output-ce: ``C^2 F_diag -> K3``, ``C^4 F_off -> K4``.

    ``sigma`` (normal init): ``K3 = sigma^4 (phi^m)''(tau)``, ``K4 = sigma^4
    (phi^m)''(2 tau)``, ``tau = sigma^4/m`` (needs ``m > 2 sigma^4``); below, sigma = 1.

    ``K3 = E[e^{h.h'/m} (h.h')^2] = (phi^m)''(1/m)``, ``K4 = E[e^{2 h.h'/m} (h.h')^2] =
    (phi^m)''(2/m)`` with ``phi`` of :func:`relu_product_mgf` and
    ``(phi^m)'' = m phi^{m-1} phi'' + m (m-1) phi^{m-2} phi'^2``. Requires ``m >= 3``:
    ``phi(t)`` is infinite for ``t >= 1``, so K4 diverges for ``m <= 2`` (and K3 for
    ``m = 1``). Relative accuracy ~1e-15.
    """
    m = _check_asymptotic_m("output-ce", m)  # type: ignore[assignment]  # an int here
    out = []
    with mp.workdps(_dps(m)):
        tau = _tau(m, sigma, "output-ce")
        s4 = mp.mpf(sigma) ** 4
        for t in (tau, 2 * tau):
            f0 = relu_product_mgf(t, 0)
            f1 = relu_product_mgf(t, 1)
            f2 = relu_product_mgf(t, 2)
            d2 = m * f0 ** (m - 1) * f2 + m * (m - 1) * f0 ** (m - 2) * f1**2
            out.append(float(s4 * d2))
    return out[0], out[1]


def asymptotic_constants(
    case: str,
    gamma: float,
    m: int | None = None,
    *,
    init: InitLike = "lecun",
    inputs: InputStats | None = None,
    activation: str = "relu",
) -> AsymptoticConstants:
    """Large-C constants ``A_diag, p_diag, A_off, p_off`` of one case.

    Parameters
    ----------
    case : str
        One of ``linear-mse, linear-ce, hidden-mse, hidden-ce, output-mse, output-ce``.
    gamma : float
        ``d/N``, finite and > 0 (validated but unused for output-*).
    m : int, optional
        Hidden width, required for hidden-* and output-*, refused for linear-*; the
        minimum is the registry's ``asymptotic_m_min`` (:meth:`rmthess.cases.Case.check_m`
        with ``asymptotic=True``: 2 for hidden-mse, 3 for hidden-ce and output-ce, 1 for
        output-mse), the maximum ``ASYMPTOTIC_M_MAX`` = 1e30.
    init : str, float or Init
        Weight initialisation (:func:`rmthess.inits.resolve_init`; default ``"lecun"``).
        Below, ``sigma = 1``; general sigma: module docstring. ``"torch-default"``
        (uniform V entries) is refused for hidden-ce and output-ce (their constants depend
        on the entry law beyond its variance); hidden-ce/output-ce at a float sigma need
        ``m > 2 sigma^4``.
    inputs : InputStats, optional
        Gaussian inputs ``N(mu, Sigma)`` with these statistics. hidden-*, output-*: centred
        single-Gaussian inputs, the isotropic constants at a rescaled gamma and init times a
        factor (:mod:`rmthess.theory.aniso_scaled`); with a mean or classes (levels
        ``"mean-aware"``, ``"mixture"``) the constants averaged over each network's
        pre-activation offsets (:mod:`rmthess.theory.offset_asymptotics`; ``m`` up to 10**6
        and above ``2 sigma^4`` times the largest pre-activation scale). Linear cases:
        ``A_diag = P e^{sigma^2 |mu|^2/d} + gamma Q e^{sigma^2 (tau_1 + |mu|^2/d)}``,
        ``A_off = P e^{2 sigma^2 |mu|^2/d} + gamma Q e^{2 sigma^2 (tau_1 + |mu|^2/d)}``
        with ``P = tau_2 + 2 mu^T Sigma mu/d + |mu|^4/d``, ``Q = (tau_1 + |mu|^2/d)^2``
        (:func:`rmthess.theory.aniso_linear.aniso_linear_asymptotic`); with class
        covariances (``inputs.level == "mixture"``) the Gaussian mixture of the classes
        (:func:`rmthess.theory.mixture_linear.mixture_linear_asymptotic`).
    activation : str
        Hidden activation of hidden-* and output-* (a name of
        :data:`rmthess.activations.ACTIVATIONS`; ``"relu"``, the paper's, by default and the
        only value the linear cases take). Another activation: the constants of
        :mod:`rmthess.theory.activation_asymptotics` (normal init, isotropic inputs; the
        ``phi''`` term sets hidden-ce's ``A_diag`` and ``p_diag = 0`` stays; linear-growth
        activations need ``m > 2 sigma^4`` for the CE cases).

    Returns
    -------
    AsymptoticConstants
        A ``ValueError`` is raised where a constant exceeds the float64 range (gamma
        near 1e308).

        - linear-mse: ``A_diag = 1 + gamma, p_diag = 0``; ``A_off = 0, p_off = inf``.
        - linear-ce: ``A_diag = 1 + e gamma, p_diag = 2``; ``A_off = 1 + e^2 gamma,
          p_off = 4``.
        - hidden-mse: ``A_diag = (gamma/2 + 1/4)/m^2, p_diag = -2``; ``A_off =
          (gamma/4 + 1/16)/m^2, p_off = -1`` (both GROW with C).
        - hidden-ce: ``A_diag = (gamma/2 + 1/4)/m^2, p_diag = 0``; ``A_off = gamma K1 + K2,
          p_off = 1``.
        - output-mse: ``A_diag = m/4 + m(m-1)/(4 pi^2), p_diag = 0``; ``A_off = 0,
          p_off = inf``.
        - output-ce: ``A_diag = K3, p_diag = 2``; ``A_off = K4, p_off = 4``.

    Examples
    --------
    >>> c = asymptotic_constants("linear-ce", 1.0)   # A_diag = 1 + e gamma, p_diag = 2
    >>> round(c.A_diag, 12), c.p_diag, c.A_off == 1 + math.e**2, c.p_off
    (3.718281828459, 2.0, True, 4.0)
    """
    case = get_case(case).name
    gamma = check_positive_float("gamma", gamma)
    ini = resolve_init(init)
    activation = get_case(case).check_activation(activation)
    if activation != "relu":  # bounded activations have constants down to the case's m_min
        m = get_case(case).check_m(m)
    else:
        m = _check_asymptotic_m(case, m)
    theory = theory_for(case)
    if theory.asymptotic_normal_only and ini.dist != "normal":
        raise ValueError(
            f"init {ini.name!r} ({ini.dist} weight entries) is not supported by the large-C "
            f"constants of {case!r}: they come from exponentially tilting a row of V, and "
            "for a non-normal entry law the tilted law (hence the constants) depends on more "
            "than the variance; use a normal init (lecun or a float sigma), or compare with "
            "frobenius_limits(..., init=...) at fixed C"
        )
    level = "isotropic"
    if activation != "relu":
        from rmthess.theory.activation_asymptotics import activation_constants
        from rmthess.theory.activation_hidden import check_normal_init

        if inputs is not None:
            raise ValueError(
                f"inputs does not apply with activation={activation!r} (its large-C constants "
                "are for isotropic inputs); leave it out"
            )
        check_normal_init(ini)
        assert m is not None
        vals = activation_constants(case, gamma, m, activation, ini.sigma)
        res = AsymptoticConstants(case, gamma, m, *vals, init=ini.name, inputs=level)
        return replace(res, activation=activation)
    if inputs is not None and not case.startswith("linear"):
        from rmthess.theory.aniso_linear import check_inputs
        from rmthess.theory.aniso_scaled import SCALED_CASES, check_scaled_inputs, scaled_setting
        from rmthess.theory.offset_limits import OFFSET_LEVELS

        stats = check_inputs(inputs, case, SCALED_CASES)
        assert m is not None
        offsets = stats.level in OFFSET_LEVELS
        check_scaled_inputs(stats, case, m, ini, offsets=offsets)
        if offsets:
            from rmthess.theory.offset_asymptotics import offset_constants

            vals = offset_constants(case, gamma, m, stats, ini.sigma)
        else:
            factor, gamma2, ini2 = scaled_setting(case, gamma, stats, ini)
            A_d, p_d, A_o, p_o = theory.asymptotic(gamma2, m, ini2)
            vals = (factor * A_d, p_d, factor * A_o, p_o)
        level = stats.level
    elif inputs is not None:
        from rmthess.theory.aniso_linear import aniso_linear_asymptotic, check_inputs

        stats = check_inputs(inputs, case)
        vals = aniso_linear_asymptotic(case, gamma, ini.sigma, stats)
        level = stats.level
    else:
        vals = theory.asymptotic(gamma, m, ini)
    if not (math.isfinite(vals[0]) and math.isfinite(vals[2])):
        raise ValueError(
            f"gamma (or init sigma) is too large for {case!r}: A_diag or A_off exceeds the "
            f"float64 range (they are linear in gamma), got gamma={gamma!r}, init={ini.name}"
        )
    return AsymptoticConstants(case, gamma, m, *vals, init=ini.name, inputs=level)
