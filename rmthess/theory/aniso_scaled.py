"""Centred anisotropic Gaussian inputs ``x ~ N(0, Sigma)`` for the hidden-* and output-* cases:
the limits are the isotropic ones at a rescaled init and gamma (issue 19; docs/theory.md 9.4).

Given ``W`` (``m x d``, entries ``N(0, sigma^2/d)``) the pre-activations ``g = W x`` are
``N(0, W Sigma W^T)`` and ``W Sigma W^T -> sigma^2 tau_1 I_m`` (fluctuations
``O(1/sqrt(d_eff))``): in the limit ``g`` has the isotropic law at scale ``sigma sqrt(tau_1)``.
ReLU is positively homogeneous and its mask scale-free, so with ``kappa = tau_2 / tau_1^2
= d / d_eff`` (>= 1) and ``sigma' = sigma tau_1^(1/4)`` (the init at which the isotropic
logits ``sigma'^2 V_1 relu(g_1)`` have the scale ``sigma^2 sqrt(tau_1)`` of the anisotropic
ones):

    hidden-mse:  F(gamma; sigma) = tau_1^2 kappa F_iso(gamma / kappa; sigma),
    hidden-ce:   F(gamma; sigma) = tau_1 kappa F_iso(gamma / kappa; sigma'),
    output-mse:  F = tau_1^2 F_iso(sigma),
    output-ce:   F = tau_1 F_iso(sigma').

Derivation (hidden): ``F = gamma tau_1^2 E[a^2] + tau_2 E_V[(E_g a)^2]`` (the linear model's
decoupling, ``|x|^4/d^2 -> tau_1^2``, ``E(x.x')^2/d = tau_2``) with the weights of the
anisotropic net; the isotropic net at init ``sigma'`` has weights ``sqrt(tau_1)`` times larger
(``a`` carries ``v_k . v_l``, i.e. ``sigma'^2``) at the same logit law, so ``E[a^2]`` and the
pair moment are ``1/tau_1`` times the isotropic ones at ``sigma'``, and ``F_iso(gamma) =
gamma E[a^2] + E_V[(E_g a)^2]`` is linear in gamma. Output: the blocks are
``E[a h h^T]`` with ``h = relu(g)`` (no gamma, no ``tau_2``); ``h`` is ``tau_1^(1/4)`` times the
isotropic one at ``sigma'``, hence ``tau_1`` in ``F``. The ratio ``r`` is unchanged by the
common factor. The large-C constants scale the same way (the exponents do not change).

Only centred single-Gaussian inputs (``input_stats(X, centred=True)``, level
``"anisotropic"``): a mean gives each network an offset ``W mu`` of its pre-activations that
the isotropic limits do not average over, and classes do likewise per class; for those,
:func:`rmthess.theory.offset_frobenius` averages over the offsets (large C:
:mod:`rmthess.theory.offset_asymptotics`; and
:func:`rmthess.theory.conditional_frobenius` is exact at finite ``d`` for hidden-*). Neglected:
terms of relative order ``m / d_eff``.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from rmthess.inits import Init

if TYPE_CHECKING:
    from rmthess.theory.inputs import InputStats

__all__ = ["SCALED_CASES", "check_scaled_inputs", "scaled_setting"]

SCALED_CASES = ("hidden-mse", "hidden-ce", "output-mse", "output-ce")
FINITE_SIZE_WARN = 0.1
"""A ``RuntimeWarning`` when ``m / d_eff`` exceeds this."""


def check_scaled_inputs(
    stats: InputStats, case: str, m: int, ini: Init, *, offsets: bool = False
) -> None:
    """``ValueError`` (naming ``inputs``) unless the statistics are centred and of one
    Gaussian (any level with ``offsets=True``, the route of
    :func:`rmthess.theory.offset_frobenius`) and the init is normal; a ``RuntimeWarning``
    when ``m / d_eff > 0.1`` (the smallest class ``d_eff`` for a mixture)."""
    if not offsets and stats.level not in ("anisotropic", "isotropic"):
        raise ValueError(
            f"inputs for {case!r} must be centred and of one Gaussian (input_stats(X, "
            f"centred=True), level 'anisotropic') for the rescaled limit, got level "
            f"{stats.level!r}: a mean or classes shift each network's pre-activations; "
            f"rmthess.theory.offset_frobenius (fixed C; frobenius_limits(inputs=) routes "
            f"there) and rmthess.theory.offset_asymptotics (large C) average over those "
            f"offsets"
        )
    if ini.dist != "normal":
        raise ValueError(
            f"init must be a normal init (lecun or a float sigma) for {case!r} with inputs "
            f"(the limit rescales sigma), got {ini.name!r}"
        )
    d_eff = stats.d_eff
    if stats.level == "mixture" and stats.class_d_eff is not None:
        assert stats.class_weights is not None
        d_eff = float(np.min(stats.class_d_eff[stats.class_weights > 0]))
    ratio = m / d_eff if d_eff > 0 else math.inf
    if ratio > FINITE_SIZE_WARN:
        warnings.warn(
            f"m / d_eff = {m}/{d_eff:.3g} = {ratio:.2g} > {FINITE_SIZE_WARN}: the "
            "limit's finite-size corrections O(m/d_eff) are not small for these inputs",
            RuntimeWarning,
            stacklevel=4,
        )


def scaled_setting(case: str, gamma: float, stats: InputStats, ini: Init) -> tuple:
    """``(factor, gamma', init')``: ``F(gamma; ini) = factor * F_iso(gamma'; init')`` for
    centred inputs with ``tau_1 = stats.tau1``, ``kappa = tau_2 / tau_1^2`` (module docstring);
    the large-C ``A`` constants scale by the same factor."""
    t1 = stats.tau1
    kappa = stats.tau2 / (t1 * t1)
    tilted = Init(f"sigma={ini.sigma * t1**0.25:g}", ini.sigma * t1**0.25, "normal")
    if case == "hidden-mse":
        return t1 * t1 * kappa, gamma / kappa, ini
    if case == "hidden-ce":
        return t1 * kappa, gamma / kappa, tilted
    if case == "output-mse":
        return t1 * t1, gamma, ini
    if case == "output-ce":
        return t1, gamma, tilted
    raise ValueError(f"case must be one of {SCALED_CASES}, got {case!r}")  # pragma: no cover
