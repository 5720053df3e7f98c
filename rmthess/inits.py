"""Weight initialisations of the paper's models (docs/theory.md section 9.1.5).

Every weight matrix of fan-in ``n`` (``W``: ``n = d``; ``V``: ``n = m``) has i.i.d. entries
with mean 0 and variance ``sigma^2 / n``:

=================== ================ ========================================================
``init``            law of an entry  ``sigma^2``
=================== ================ ========================================================
``"lecun"``         normal           1 (LeCun normal; the paper's convention)
``"torch-default"`` uniform          1/3: ``nn.Linear``'s default ``kaiming_uniform_(a=sqrt 5)``
                                     is ``U(-1/sqrt n, 1/sqrt n)``, variance ``1/(3 n)``
a float ``sigma>0`` normal           ``sigma^2`` (``sigma = 1`` is ``"lecun"``)
=================== ================ ========================================================

What the theory needs (``x ~ N(0, I_d)``, ``d -> infinity``): the logits of the linear model
and the hidden pre-activations ``g = W x`` are, conditionally on ``x``, sums of ``d``
independent terms, hence Gaussian in the limit (exactly Gaussian for a normal law) with
variance ``sigma^2 ||x||^2 / d -> sigma^2`` whatever the entry law. The output weights ``V``
(``C x m``, ``m`` fixed) keep their entry law: theory that conditions on or averages over
``V`` samples it with :func:`sample_weights`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rmthess._checks import check_float, check_int

if TYPE_CHECKING:
    import numpy as np

__all__ = ["INITS", "Init", "InitLike", "resolve_init", "sample_weights"]

INITS = ("lecun", "torch-default")
"""Named initialisations; a positive float ``sigma`` is also accepted everywhere."""


@dataclass(frozen=True)
class Init:
    """A resolved initialisation: entries i.i.d. ``dist`` with variance ``sigma**2 / fan_in``.

    ``name`` is ``"lecun"``, ``"torch-default"`` or ``"sigma=<value>"``; ``dist`` is
    ``"normal"`` or ``"uniform"``; ``sigma2 = sigma**2``.
    """

    name: str
    sigma: float
    dist: str

    @property
    def sigma2(self) -> float:
        return self.sigma**2

    def std(self, fan_in: int) -> float:
        """Standard deviation of one entry of a weight matrix with this fan-in (an integer
        >= 1; ``ValueError`` otherwise)."""
        return self.sigma / math.sqrt(check_int("fan_in", fan_in, 1))

    def __str__(self) -> str:
        return self.name


_NAMED = {
    "lecun": Init("lecun", 1.0, "normal"),
    "torch-default": Init("torch-default", 1.0 / math.sqrt(3.0), "uniform"),
}


InitLike = str | float | Init
"""What every ``init=`` argument accepts: a name (``"lecun"``, ``"torch-default"``), a float
``sigma`` or an :class:`Init` (:func:`resolve_init`)."""


def resolve_init(init: str | float | Init = "lecun") -> Init:
    """``"lecun"``, ``"torch-default"``, a float ``sigma > 0`` or an :class:`Init` -> ``Init``.

    Raises ``ValueError`` for an unknown name or a ``sigma`` outside ``(0, 1e6]``, and
    ``TypeError`` for anything else (``bool`` included)."""
    if isinstance(init, Init):
        return init
    if isinstance(init, str):
        key = init.strip().lower().replace("_", "-")
        if key in _NAMED:
            return _NAMED[key]
        try:  # "0.5" from a command line or a TOML grid
            return resolve_init(float(key))
        except ValueError:
            pass
        raise ValueError(
            f"init must be one of {', '.join(INITS)} or a float sigma in (0, 1e6], got {init!r}"
        )
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        sigma = check_float("init sigma", init, 0.0, 1e6, closed="right")
        if sigma == 1.0:
            return _NAMED["lecun"]
        return Init(f"sigma={sigma:g}", sigma, "normal")
    raise TypeError(
        f"init must be one of {', '.join(INITS)} or a float sigma > 0, got {type(init).__name__}"
    )


def sample_weights(
    shape: int | tuple[int, ...],
    fan_in: int,
    init: str | float | Init = "lecun",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Numpy weights of ``shape`` with i.i.d. entries of the ``init`` law and fan-in ``fan_in``.

    ``shape``: an integer >= 0 or a tuple of them. ``fan_in``: an integer >= 1 (the
    entries have variance ``sigma^2 / fan_in``). ``rng``: a ``numpy.random.Generator``, a
    seed (an integer >= 0: ``numpy.random.default_rng(seed)``, the stream
    :func:`rmthess._random.rng` gives it) or None (fresh entropy). Normal laws draw
    ``rng.normal(scale=sigma/sqrt(fan_in))``; the uniform law draws
    ``rng.uniform(-b, b)`` with ``b = sigma sqrt(3 / fan_in)`` (variance ``sigma^2/fan_in``).
    Bad arguments raise one ``TypeError``/``ValueError`` naming the parameter, before any
    draw.

    >>> sample_weights((2, 3), 3, rng=0).shape
    (2, 3)
    """
    from rmthess._random import check_seed
    from rmthess._random import rng as _rng

    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        if isinstance(shape, (str, bytes, int)):  # int: only a bool is left here
            raise TypeError
        shape = tuple(shape)
    except TypeError:
        raise TypeError(
            f"shape must be an integer >= 0 or a tuple of them, got {type(shape).__name__} "
            f"{shape!r}"
        ) from None
    shape = tuple(check_int("shape entry", n, 0) for n in shape)
    fan_in = check_int("fan_in", fan_in, 1)
    ini = resolve_init(init)
    if isinstance(rng, (numbers.Number, str, bool)):
        check_seed(rng, "rng")
    rng = _rng(rng)
    std = ini.std(fan_in)
    if ini.dist == "uniform":
        b = std * math.sqrt(3.0)
        return rng.uniform(-b, b, size=shape)
    return rng.normal(scale=std, size=shape)
