"""Large-C asymptotic constants (STUB: being written)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class AsymptoticConstants:
    case: str
    gamma: float
    m: int | None
    A_diag: float
    p_diag: float
    A_off: float
    p_off: float


def asymptotic_constants(case, gamma, m=None):
    raise NotImplementedError
