"""The task registry: pure functions of one configuration returning a flat record.

A task is ``fn(config: dict, *, seed: int) -> dict``: a pure function of its (validated)
configuration and the seed derived from the configuration hash, returning a flat record
(scalars only, JSON-safe). ``validate(config, *, from_grid) -> dict`` checks a raw
configuration and returns it normalized (types fixed, defaults that change the result
filled in), raising ``ValueError``/``TypeError`` naming the parameter; it runs in the
driver on every configuration before anything is computed.

One source of truth: each built-in validator ends with the checks the library function
itself makes before its work (:func:`rmthess.simulate._plan.plan` for ``simulate``; the
layer laws' argument check and the GMP solver's gamma range for ``layer_gap``; for
``theory`` the exact cases are simply computed, milliseconds, and the Monte-Carlo cases
get ``frobenius_limits``' size and memory checks), and each built-in task calls its
validator first. So a configuration the task would refuse is refused when the spec is
loaded, not after the work and three attempts; a ``ValueError``/``TypeError`` a task
still raises is recorded at once, never retried (:func:`rmthess.sweep.run_sweep`).

Built-in tasks
--------------
``theory``
    ``rmthess.theory.frobenius_limits(case, C, gamma, m, samples=, inner=, seed=seed)``.
    Keys: case, C, gamma (required), m (hidden-*/output-*), samples, inner (Monte-Carlo
    cases and other activations only), init, method, tol, activation (hidden-*/output-*; not
    relu: the Monte-Carlo activation route), threads.
``simulate``
    ``rmthess.simulate.block_frobenius(case, C, d, N, m, trials=, seed=seed, device=,
    dtype=, max_pairs=, unbiased=)`` minus per-trial arrays and its own timing. Keys: case,
    C, d, N (required), m, trials (default 8), device (default "cpu"; "cuda" asks Dask for
    a ``GPU`` resource), dtype (default "float64"), max_pairs, unbiased, init, activation,
    threads.
``layer_gap``
    ``rmthess.theory.block_diagonal_gap(case, C, gamma, m, init=, n_atoms=, seed=seed)``:
    whole-layer law vs its block-diagonal part (W1, KS, top edges and quantiles, zero
    masses). Keys: case (linear-*, hidden-*), C, gamma (required), m (hidden-*), init,
    n_atoms, threads.

``depth``
    ``rmthess.theory.depth_frobenius(loss, C, gamma, widths, activation, init=, N=, samples=,
    inner=, seed=seed)``: per layer ``F_diag_<layer>``, ``F_off_<layer>``, ``ratio_<layer>``
    and their ``*_se``. Keys: loss, C, gamma, widths (required; ``"32x32"``), activation,
    init, N, samples, inner, threads.

(The test suite registers its own tasks, ``_echo`` and ``_fail_if``, from
``tests/sweep/_sweep_tasks.py``; they are not part of the package.)

``threads`` (default 1, every task) pins the BLAS/OpenMP pools (threadpoolctl) and torch's
intra-op pool while the task runs; it is an execution knob but, when written in a
configuration, it is part of that configuration's hash.

A task registered with :func:`register_task` must be a module-level function of an
importable module to run on the ``processes`` and ``dask`` engines (it is pickled by
reference); the worker does not need the registry.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from rmthess._stats import json_safe

__all__ = ["register_task", "get_task", "TASKS", "TaskEntry", "run_chunk"]


@dataclass(frozen=True)
class TaskEntry:
    name: str
    fn: Callable
    validate: Callable


TASKS: dict[str, TaskEntry] = {}


def _allow_any(config: dict, *, from_grid: bool = True) -> dict:
    return dict(config)


def register_task(name: str, fn: Callable, *, validate: Callable | None = None) -> None:
    """Register ``fn(config, *, seed) -> dict`` as task ``name`` (replacing any previous).

    ``validate(config, *, from_grid) -> dict`` (default: accept the configuration as is)
    normalizes a configuration and raises ``ValueError``/``TypeError`` for a bad one.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"task name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"task {name!r}: fn must be callable, got {fn!r}")
    TASKS[name] = TaskEntry(name, fn, validate or _allow_any)


def get_task(name: str) -> TaskEntry:
    """The registered task ``name``; ``ValueError`` naming the registered tasks otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"task must be a string, got {type(name).__name__} {name!r}")
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(TASKS)}") from None


# ---------------------------------------------------------------------------- validation
def _check_keys(config, allowed, required):
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; allowed: {', '.join(allowed)}")
    missing = [k for k in required if k not in config]
    if missing:
        raise ValueError(f"missing parameter(s) {missing}")


def _common(config, from_grid, allowed, required):
    from rmthess._checks import check_int
    from rmthess.cases import get_case

    cfg = dict(config)
    _check_keys(cfg, allowed, required)
    c = get_case(cfg["case"])
    cfg["case"] = c.name
    cfg["C"] = check_int("C", cfg["C"], 2)
    if from_grid and not c.needs_m:
        cfg.pop("m", None)  # a grid m does not apply to linear-* (documented in spec.py)
    m = c.check_m(cfg.get("m"))
    if m is not None:
        cfg["m"] = m
    if "threads" in cfg:
        cfg["threads"] = check_int("threads", cfg["threads"], 1)
    return cfg, c


def validate_theory(config, *, from_grid=True):
    from rmthess._checks import check_int, check_positive_float
    from rmthess.theory.frobenius import MIN_SAMPLES

    allowed = ("case", "C", "gamma", "m", "samples", "inner", "init", "threads", "method", "tol")
    cfg, c = _common(config, from_grid, (*allowed, "activation"), ("case", "C", "gamma"))
    cfg["gamma"] = check_positive_float("gamma", cfg["gamma"])
    _activation_key(cfg, c)
    smooth = cfg.get("activation", "relu") != "relu"
    for k, lo in (("samples", MIN_SAMPLES), ("inner", 2)):
        if k in cfg:
            if not (c.mc_route or smooth):
                raise ValueError(f"{k} applies to the Monte-Carlo cases only, not {c.name!r}")
            cfg[k] = check_int(k, cfg[k], lo)
    _init_key(cfg)
    _theory_preflight(cfg, c)
    return cfg


def _theory_preflight(cfg, c) -> None:
    """What :func:`rmthess.theory.frobenius_limits` refuses before its work."""
    from rmthess.inits import resolve_init
    from rmthess.theory import frobenius_limits
    from rmthess.theory.frobenius import QUADRATURE_MAX_C, _resolve_method

    args = (c.name, cfg["C"], cfg["gamma"], cfg.get("m"))
    if cfg.get("activation", "relu") != "relu":  # the activation route's own checks
        from rmthess._checks import check_int
        from rmthess.theory import activation_hidden as ah

        for k in ("method", "tol"):
            if k in cfg:
                raise ValueError(f"{k} does not apply with activation={cfg['activation']!r}")
        ah.check_mc_args(c.name, cfg["C"], cfg["gamma"], cfg["activation"],
                         cfg.get("init", "lecun"), cfg.get("samples", ah.DEFAULT_SAMPLES),
                         cfg.get("inner", ah.DEFAULT_INNER), 0, ah.ACTIVATION_CASES)  # fmt: skip
        check_int("m", cfg["m"], 1 if c.layer == "output" else 2, 4096)
        return
    extra = {k: cfg[k] for k in ("samples", "inner", "init", "method", "tol") if k in cfg}
    ini = resolve_init(cfg.get("init", "lecun"))
    used, _ = _resolve_method(
        c, cfg.get("method"), cfg.get("samples"), cfg.get("inner"), ini, cfg.get("tol"),
        cfg.get("m"),
    )  # fmt: skip
    if used == "quadrature" and c.mc_route:  # seconds per point: check, do not run
        if cfg["C"] > QUADRATURE_MAX_C:
            raise ValueError(
                f"C must be <= {QUADRATURE_MAX_C:.0e} for the Gram quadrature of {c.name!r} "
                f"(got {cfg['C']}); use rmthess.theory.asymptotic_constants for larger C"
            )
        return
    if used != "mc":
        frobenius_limits(*args, **extra)  # exact (closed form, quadrature): milliseconds
        return
    from rmthess.theory import hidden_integrals as hi
    from rmthess.theory.frobenius import MC_MAX_C, MIN_SAMPLES

    if cfg["C"] > MC_MAX_C:
        raise ValueError(
            f"C must be <= {MC_MAX_C} for the Monte-Carlo case {c.name!r} (got {cfg['C']}); "
            "use rmthess.theory.asymptotic_constants for larger C"
        )
    C, m = cfg["C"], cfg["m"]
    n_V, n_g = hi.default_sizes(c.name, C, m, cfg.get("samples"), cfg.get("inner"))
    hi.check_memory(
        lambda C, m, samples, inner: hi.estimated_cost(c.name, C, m, samples, inner)[1],
        {"C": C, "m": m, "samples": n_V, "inner": n_g},
        {"C": 2, "m": c.m_min, "samples": MIN_SAMPLES, "inner": 2},
        f"the Monte-Carlo case {c.name!r}",
    )


def _activation_key(cfg, c) -> None:
    """Normalise an ``activation`` key to its name; the linear cases refuse another than
    relu (:meth:`rmthess.cases.Case.check_activation`)."""
    if "activation" in cfg:
        cfg["activation"] = c.check_activation(cfg["activation"])


def _init_key(cfg):
    """Normalise an ``init`` key: a named init keeps its name, a sigma its float value."""
    from rmthess.inits import INITS, resolve_init

    if "init" in cfg:
        ini = resolve_init(cfg["init"])
        cfg["init"] = ini.name if ini.name in INITS else ini.sigma


def validate_layer_gap(config, *, from_grid=True):
    from rmthess._checks import check_int, check_positive_float
    from rmthess.theory.layer_laws import LAYER_CASES

    allowed = ("case", "C", "gamma", "m", "init", "n_atoms", "threads")
    cfg, c = _common(config, from_grid, allowed, ("case", "C", "gamma"))
    if c.name not in LAYER_CASES:
        raise ValueError(f"layer_gap needs one of {', '.join(LAYER_CASES)}, got {c.name!r}")
    cfg["gamma"] = check_positive_float("gamma", cfg["gamma"])
    if "n_atoms" in cfg:
        cfg["n_atoms"] = check_int("n_atoms", cfg["n_atoms"], 1)
    _init_key(cfg)
    # what block_diagonal_gap refuses: its argument check, then the GMP solver's gamma range
    from rmthess.theory.gmp import check_gamma_range
    from rmthess.theory.layer_laws import _check

    _check(c.name, cfg["C"], cfg["gamma"], cfg.get("m"), None, cfg.get("init", "lecun"),
           cfg.get("n_atoms"), 0)  # fmt: skip
    check_gamma_range(cfg["gamma"])
    return cfg


def validate_simulate(config, *, from_grid=True):
    from rmthess._checks import check_bool, check_choice, check_int

    allowed = ("case", "C", "d", "N", "m", "trials", "device", "dtype", "max_pairs")
    allowed += ("unbiased", "init", "threads", "activation")
    cfg, c = _common(config, from_grid, allowed, ("case", "C", "d", "N"))
    _init_key(cfg)
    _activation_key(cfg, c)
    for k in ("d", "N"):
        cfg[k] = check_int(k, cfg[k], 1)
    cfg["trials"] = check_int("trials", cfg.get("trials", 8), 1)
    cfg["device"] = check_choice("device", cfg.get("device", "cpu"), ("cpu", "cuda"))
    cfg["dtype"] = check_choice("dtype", cfg.get("dtype", "float64"), ("float64", "float32"))
    if "max_pairs" in cfg:
        cfg["max_pairs"] = check_int("max_pairs", cfg["max_pairs"], 1)
    if "unbiased" in cfg:
        cfg["unbiased"] = check_bool("unbiased", cfg["unbiased"])
        if cfg["unbiased"] and c.block_dim != "m":
            raise ValueError(f"unbiased applies to the output-* cases only, not {c.name!r}")
    # what block_frobenius refuses before its work (sizes, memory, device availability);
    # "cuda" on a driver without CUDA is checked on the CPU here: the configuration may be
    # meant for the GPU workers of a remote Dask scheduler (run_sweep refuses it otherwise)
    import torch

    from rmthess.simulate._plan import plan

    device = cfg["device"]
    if device == "cuda" and not torch.cuda.is_available():
        device = "cpu"
    extra = {k: cfg[k] for k in ("max_pairs", "unbiased", "init", "activation") if k in cfg}
    plan(c.name, cfg["C"], cfg["d"], cfg["N"], cfg.get("m"), trials=cfg["trials"], seed=0,
         device=device, dtype=cfg["dtype"], **extra)  # fmt: skip
    return cfg


def validate_depth(config, *, from_grid=True):
    """Keys: loss, C, gamma, widths (required; ``"32x32"``, an int or a list), activation,
    init, N, samples, inner, threads; ends with :func:`rmthess.theory.depth.check_depth_args`
    (what ``depth_frobenius`` refuses before its work)."""
    from rmthess._checks import check_int
    from rmthess.theory.depth import check_depth_args

    allowed = ("loss", "C", "gamma", "widths", "activation", "init", "N", "samples", "inner")
    cfg = dict(config)
    _check_keys(cfg, (*allowed, "threads"), ("loss", "C", "gamma", "widths"))
    w = cfg["widths"]
    if isinstance(w, str):
        try:
            w = [int(x) for x in w.lower().split("x")]
        except ValueError:
            raise ValueError(f"widths must look like '32x32' (hidden widths), got {w!r}") from None
    elif isinstance(w, int) and not isinstance(w, bool):
        w = [w]
    if not isinstance(w, (list, tuple)):
        raise TypeError(f"widths must be a string like '32x32', an int or a list, got {w!r}")
    if "threads" in cfg:
        cfg["threads"] = check_int("threads", cfg["threads"], 1)
    _init_key(cfg)
    args = check_depth_args(
        cfg["loss"], cfg["C"], cfg["gamma"], tuple(w), cfg.get("activation", "relu"),
        cfg.get("init", "lecun"), cfg.get("N"), cfg.get("samples", 400), cfg.get("inner", 256),
        0,
    )  # fmt: skip
    cfg.update(loss=args[0], C=args[1], gamma=args[2], widths="x".join(map(str, args[3])))
    if "activation" in cfg:
        cfg["activation"] = args[4].name
    return cfg


# ---------------------------------------------------------------------------- tasks
def flat_record(d: dict) -> dict:
    """Keep the scalar fields of a ``to_dict()``: drop ``*_trials`` and other arrays, split
    a ``*_ci`` pair into ``*_ci_lo``/``*_ci_hi``, non-finite floats -> None."""
    out = {}
    for k, v in d.items():
        if k.endswith("_trials") or getattr(v, "ndim", 0) > 0:
            continue
        if k.endswith("_ci") and isinstance(v, (tuple, list)) and len(v) == 2:
            out[k + "_lo"], out[k + "_hi"] = (float(u) if u is not None else None for u in v)
            continue
        out[k] = v
    return {  # the one JSON-safety path (numpy scalars -> Python, non-finite -> None)
        k: v
        for k, v in json_safe(out).items()
        if v is None or isinstance(v, (bool, int, float, str))
    }


def theory_task(config: dict, *, seed: int) -> dict:
    from rmthess.theory import frobenius_limits

    config = validate_theory(config, from_grid=False)
    keys = ("samples", "inner", "init", "method", "tol", "activation")
    extra = {k: config[k] for k in keys if k in config}
    res = frobenius_limits(
        config["case"], config["C"], config["gamma"], config.get("m"), seed=seed, **extra
    )
    return flat_record(res.to_dict())


def simulate_task(config: dict, *, seed: int) -> dict:
    import torch

    from rmthess.simulate import block_frobenius

    config = validate_simulate(config, from_grid=False)
    torch.set_num_threads(int(config.get("threads", 1)))
    extra = {k: config[k] for k in ("max_pairs", "unbiased", "init", "activation") if k in config}
    res = block_frobenius(
        config["case"], config["C"], config["d"], config["N"], config.get("m"),
        trials=config["trials"], seed=seed, device=config["device"], dtype=config["dtype"],
        **extra,
    )  # fmt: skip
    rec = flat_record(res.to_dict())
    rec.pop("seconds", None)  # timing lives in the store entry, not in the record
    return rec


def layer_gap_task(config: dict, *, seed: int) -> dict:
    from rmthess.theory.layer_gap import block_diagonal_gap

    config = validate_layer_gap(config, from_grid=False)
    extra = {k: config[k] for k in ("init", "n_atoms") if k in config}
    res = block_diagonal_gap(
        config["case"], config["C"], config["gamma"], config.get("m"), seed=seed, **extra
    )
    return flat_record(res.to_dict())


def depth_task(config: dict, *, seed: int) -> dict:
    from rmthess.theory.depth import depth_frobenius

    config = validate_depth(config, from_grid=False)
    extra = {k: config[k] for k in ("activation", "init", "N", "samples", "inner") if k in config}
    widths = tuple(int(x) for x in config["widths"].split("x"))
    res = depth_frobenius(config["loss"], config["C"], config["gamma"], widths, seed=seed, **extra)
    return flat_record(res.to_dict())


register_task("theory", theory_task, validate=validate_theory)
register_task("depth", depth_task, validate=validate_depth)
register_task("simulate", simulate_task, validate=validate_simulate)
register_task("layer_gap", layer_gap_task, validate=validate_layer_gap)


# ---------------------------------------------------------------------------- runner
def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="microseconds")


def run_chunk(fn: Callable, items: list) -> list[dict]:
    """Run ``fn`` on each ``(hash, config, seed)``; one outcome dict per item, in order.

    An exception in one item is caught and reported (``ok`` False, ``message``,
    ``traceback``); it does not stop the others. Runs on the worker.
    """
    from threadpoolctl import threadpool_limits

    out = []
    host = socket.gethostname()
    for h, config, seed in items:
        started, t0 = _now(), time.perf_counter()
        try:
            with threadpool_limits(limits=int(config.get("threads", 1))):
                record = fn(dict(config), seed=seed)
            if not isinstance(record, dict):
                raise TypeError(f"task returned {type(record).__name__}, not a dict record")
            res = {"ok": True, "record": record}
        except Exception as exc:  # reported to the driver, never raised here
            res = {
                "ok": False,
                "message": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
                # a refusal is deterministic given the configuration: not worth a retry
                "retry": not isinstance(exc, (ValueError, TypeError)),
            }
        res.update(hash=h, seconds=time.perf_counter() - t0, started=started, finished=_now())
        res["host"] = host
        out.append(res)
    return out
