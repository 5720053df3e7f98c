"""The sample size at which a ``Delta_k`` curve (Monte Carlo or exact) falls below a target."""

from __future__ import annotations

import numpy as np

from rmthess._checks import check_choice, check_positive_float
from rmthess.landscape.delta import DeltaCurve, DeltaExpected

__all__ = ["sample_size_for"]


_SIZE_ON = {
    DeltaCurve: ("mean", "rms", "q95", "ema"),
    DeltaExpected: ("rms", "mean_abs", "mean_abs_upper"),
}


def sample_size_for(
    curve_or_expected: DeltaCurve | DeltaExpected, eps: float, *, on: str | None = None
) -> int:
    """Smallest ``k`` from which the curve stays below ``eps`` (over the computed ``k``).

    For a :class:`DeltaExpected` the default ``on="rms"`` (``sqrt E Delta_k^2 =
    S/sqrt(k(k+1))``, an upper bound on ``E|Delta_k|``, so the answer is conservative);
    ``"mean_abs"`` (large-k form) or ``"mean_abs_upper"`` may be asked for. For a
    :class:`DeltaCurve` the default is its ``"mean"`` (a noisy estimate: the answer is
    where its last crossing of ``eps`` lies); ``"rms"``, ``"q95"``, ``"ema"`` also work.
    ``ValueError`` if the curve is still >= eps at its last ``k``.
    """
    kind = type(curve_or_expected)
    if kind not in _SIZE_ON:
        raise TypeError(
            f"curve_or_expected must be a DeltaCurve or a DeltaExpected, got {kind.__name__}"
        )
    eps = check_positive_float("eps", eps)
    on = check_choice("on", _SIZE_ON[kind][0] if on is None else on, _SIZE_ON[kind])
    y = getattr(curve_or_expected, on)
    if y is None:
        raise ValueError('on="ema" needs a smoothed curve: delta_curve(..., ema=0.99)')
    k = np.asarray(curve_or_expected.k)
    above = np.flatnonzero(np.asarray(y) >= eps)
    if above.size and above[-1] == k.size - 1:
        raise ValueError(
            f"eps = {eps:g} is never reached: {on} is {y[-1]:.4g} at the last k = {k[-1]} "
            f"(min {np.min(y):.4g}); more samples are needed"
        )
    return int(k[0] if not above.size else k[above[-1] + 1])
