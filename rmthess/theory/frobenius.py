"""Frobenius limits (STUB: being written)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FrobeniusLimits:
    case: str
    C: int
    gamma: float
    m: int | None
    F_diag: float
    F_off: float
    ratio: float
    stderr: float
    method: str


def frobenius_limits(case, C, gamma, m=None, **kwargs):
    raise NotImplementedError
