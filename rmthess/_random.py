"""Seeds: one way to derive independent random streams from ``(seed, *key)`` (ground floor).

Every random draw of rmthess comes from a stream named by a user seed and a *key*: a tuple
of non-negative ints or short strings naming the purpose (``("report", "spectra")``,
``(C, trial)``). The stream is ``numpy.random.SeedSequence(entropy=seed,
spawn_key=key_ints)``, so distinct keys give statistically independent streams (hashing,
no shared prefixes as with ``seed + 7``), and a stream depends only on ``(seed, key)``.

Strings in a key are mapped to ints by CRC-32 of their UTF-8 bytes (stable across runs and
machines, unlike ``hash``).

>>> int(rng(0, "demo").integers(10**6)) == int(rng(0, "demo").integers(10**6))
True
>>> seed_int(0, 3) == seed_int(0, 3) != seed_int(0, 4)
True
"""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["check_seed", "key_ints", "rng", "seed_int", "seed_sequence"]

_MAX_SEED = 2**128 - 1


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` as an int in ``[0, 2**128)``; ``TypeError``/``ValueError`` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        kind = type(seed).__name__
        raise TypeError(f"{name} must be a non-negative integer, got {kind} {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, 2**128), got {seed!r}")
    return seed


def key_ints(key: Iterable[object]) -> tuple[int, ...]:
    """A stream key as non-negative ints (strings by CRC-32 of their UTF-8 bytes)."""
    out = []
    for k in key:
        if isinstance(k, str):
            out.append(zlib.crc32(k.encode()))
        elif isinstance(k, numbers.Integral) and not isinstance(k, bool) and int(k) >= 0:
            out.append(int(k))
        else:
            raise ValueError(f"stream key entries must be ints >= 0 or strings, got {k!r}")
    return tuple(out)


def seed_sequence(seed: object, *key: int | str) -> np.random.SeedSequence:
    """``numpy.random.SeedSequence(entropy=seed, spawn_key=key)`` with ``key`` as ints.

    ``seed`` may also be a ``SeedSequence`` (its entropy and spawn key are extended by
    ``key``) or a ``numpy.random.Generator`` (its bit generator's seed sequence is used).
    """
    import numpy as np

    if isinstance(seed, np.random.Generator):
        seed = seed.bit_generator.seed_seq
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(
            entropy=seed.entropy, spawn_key=(*seed.spawn_key, *key_ints(key))
        )
    return np.random.SeedSequence(entropy=check_seed(seed), spawn_key=key_ints(key))


def rng(seed: object, *key: int | str) -> np.random.Generator:
    """The numpy ``Generator`` of stream ``(seed, *key)``.

    ``seed=None`` gives fresh OS entropy (not reproducible); a ``Generator`` with no key
    is returned as it is (scikit-learn's ``check_random_state`` convention).
    """
    import numpy as np

    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator) and not key:
        return seed
    return np.random.default_rng(seed_sequence(seed, *key))


def seed_int(seed: object, *key: int | str) -> int:
    """A 63-bit int seed of stream ``(seed, *key)`` (for ``torch.Generator.manual_seed``).

    Equals ``SeedSequence(entropy=seed, spawn_key=key).generate_state(1, uint64)[0] >> 1``,
    the seeds of :func:`rmthess.simulate.sampling.trial_seeds`.
    """
    import numpy as np

    state = seed_sequence(seed, *key).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))
