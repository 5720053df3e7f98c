"""Grid specifications: parse, validate and expand into hashed configurations.

A spec is a TOML file or the same content as a dict::

    task = "theory"            # a name in the task registry (rmthess.sweep.tasks)
    [grid]                     # lists per parameter; a scalar means a one-element list
    case = ["linear-ce", "hidden-mse"]
    C = [2, 4, 8]
    gamma = [0.5]
    m = [8]
    [[configs]]                # optional explicit extra configurations
    case = "hidden-ce"
    C = 10
    gamma = 0.5
    m = 8

Expansion: the cartesian product of the grid lists (in the order the keys are written,
last key fastest), then the explicit configurations; every configuration is validated
and normalized by its task's validator (e.g. ``C`` becomes an ``int``, defaults are filled
in) BEFORE anything runs, and the first bad one raises a single ``ValueError`` /
``TypeError`` naming the configuration. Parameters that do not apply are dropped *for
grid configurations only*: a grid ``m = [8]`` crossed with a linear-* case gives that
configuration no ``m`` (the linear model has no hidden width; ask
``rmthess.cases.get_case(case).needs_m``). An explicit ``[[configs]]`` entry is taken
literally: ``m`` on a linear-* case there is an error. Configurations that coincide after
this (same hash) are kept once, first occurrence first.

Each configuration has a stable hash, :func:`config_hash`: the first 16 hex digits of the
sha256 of the canonical JSON (sorted keys, no spaces, ASCII) of ``[task, config]``; its
seed, :func:`config_seed`, is drawn from the stream of ``int(hash, 16)``
(:func:`rmthess._random.seed_sequence`, a ``numpy.random.SeedSequence``), so a
configuration gives the same result wherever and whenever it runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Spec", "load_spec", "canonical_json", "config_hash", "config_seed", "Config"]

_TOP_KEYS = ("task", "grid", "configs")


def canonical_json(obj) -> str:
    """Canonical JSON text: sorted keys, no whitespace, ASCII, NaN/inf refused."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def config_hash(task: str, config: dict) -> str:
    """First 16 hex digits of sha256(canonical_json([task, config]))."""
    return hashlib.sha256(canonical_json([task, config]).encode("ascii")).hexdigest()[:16]


def config_seed(hash_: str) -> int:
    """A non-negative 63-bit seed derived from a configuration hash.

    The stream :func:`rmthess._random.seed_sequence` ``(int(hash_, 16))`` (that is,
    ``numpy.random.SeedSequence(int(hash_, 16))``); its first two 32-bit words ``w0, w1``
    give ``(w0 << 31) | (w1 >> 1)``. This packing predates :func:`rmthess._random.seed_int`
    (which packs the same words as ``((w1 << 32) | w0) >> 1``) and is kept: every stored
    seed, hence every stored Monte-Carlo result, stays the same across versions.
    """
    import numpy as np

    from rmthess._random import seed_sequence

    if not isinstance(hash_, str):
        raise TypeError(f"hash_ must be a hex string, got {type(hash_).__name__} {hash_!r}")
    state = seed_sequence(int(hash_, 16)).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) | (int(state[1]) >> 1))


@dataclass(frozen=True)
class Config:
    """One expanded configuration: its hash, normalized parameters and derived seed."""

    hash: str
    config: dict
    seed: int


@dataclass(frozen=True)
class Spec:
    """A validated grid spec. ``configs`` is the expansion (a tuple of :class:`Config`)."""

    task: str
    grid: dict
    explicit: tuple
    configs: tuple

    def to_dict(self) -> dict:
        """The spec as given (task, grid, configs), JSON-safe: what the manifest records."""
        return {"task": self.task, "grid": self.grid, "configs": list(self.explicit)}

    @property
    def hashes(self) -> tuple[str, ...]:
        return tuple(c.hash for c in self.configs)


def _scalar_ok(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def load_spec(spec: Spec | dict[str, Any] | str | os.PathLike[str]) -> Spec:
    """Parse, validate and expand a spec: a :class:`Spec`, a dict, or a TOML file path.

    Raises ``ValueError``/``TypeError`` (naming the key or the configuration) for an unknown
    task, an unknown top-level key, an empty or non-list grid entry, a non-scalar value, an
    empty expansion, or any configuration its task refuses.
    """
    from rmthess.sweep.tasks import get_task

    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        import tomllib

        path = os.fspath(spec)
        if not os.path.isfile(path):
            raise ValueError(f"spec file {path!r} does not exist")
        try:
            with open(path, "rb") as fh:
                spec = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"spec file {path!r} is not valid TOML: {exc}") from None
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict or a TOML file path, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"unknown spec key(s) {unknown}; allowed: {', '.join(_TOP_KEYS)}")
    if "task" not in spec:
        raise ValueError("spec needs a 'task' (e.g. task = \"theory\")")
    task = spec["task"]
    entry = get_task(task)
    grid = spec.get("grid", {}) or {}
    explicit = spec.get("configs", []) or []
    if not isinstance(grid, dict):
        raise TypeError(f"spec 'grid' must be a table of lists, got {type(grid).__name__}")
    if not isinstance(explicit, list) or not all(isinstance(c, dict) for c in explicit):
        raise TypeError("spec 'configs' must be a list of tables ([[configs]])")
    lists = {}
    for key, values in grid.items():
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise ValueError(f"grid parameter {key!r} has an empty list")
        for v in values:
            if not _scalar_ok(v):
                raise TypeError(f"grid parameter {key!r}: values must be scalars, got {v!r}")
        lists[key] = list(values)
    for cfg in explicit:
        for k, v in cfg.items():
            if not _scalar_ok(v):
                raise TypeError(f"configs entry {cfg!r}: {k!r} must be a scalar, got {v!r}")
    raw = []
    if lists:
        keys = list(lists)
        combos = itertools.product(*lists.values())
        raw += [(dict(zip(keys, combo, strict=True)), True) for combo in combos]
    raw += [(dict(c), False) for c in explicit]
    if not raw:
        raise ValueError("spec expands to no configuration: give a [grid] or [[configs]]")
    out, seen = [], set()
    for cfg, from_grid in raw:
        try:
            norm = entry.validate(cfg, from_grid=from_grid)
        except (ValueError, TypeError) as exc:
            where = "grid configuration" if from_grid else "configs entry"
            raise type(exc)(f"task {task!r}, {where} {cfg!r}: {exc}") from None
        h = config_hash(task, norm)
        if h not in seen:
            seen.add(h)
            out.append(Config(h, norm, config_seed(h)))
    return Spec(task=task, grid=lists, explicit=tuple(explicit), configs=tuple(out))
