"""Validation and memory plan of one simulated configuration (before any allocation).

:func:`plan` checks every argument of :func:`rmthess.simulate.block_frobenius` at the
public edge, picks the trial batch and the route, estimates the peak memory
(:func:`rmthess.simulate.gram.peak_bytes`) and refuses, with a ``ValueError`` naming the
parameters that drive it and the largest values that would fit, a configuration that
does not fit in the machine's memory (:func:`rmthess.simulate.device.machine_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rmthess._checks import check_choice, check_int, largest_fitting
from rmthess.cases import Case, get_case
from rmthess.inits import Init, resolve_init
from rmthess.simulate import device as _device
from rmthess.simulate.device import Device, DType, resolve_device, resolve_dtype
from rmthess.simulate.gram import DEFAULT_MAX_BYTES, check_unbiased, choose_method, peak_bytes
from rmthess.simulate.sampling import trial_seeds

MAX_DIAG = 256
"""Default cap on the number of diagonal blocks averaged per trial (uniform sample)."""

MAX_PAIRS = 256
"""Default cap on the number of off-diagonal pairs averaged per trial (uniform sample)."""

MAX_SIZE = 2**31 - 1
"""Largest accepted C, d, N, m, max_diag, max_pairs (torch's 32-bit index range; the
memory check refuses far smaller sizes on real machines)."""

MAX_TRIALS = 10**6
"""Largest accepted ``trials``: every trial is a full draw of data and weights, so 10^6
trials is already days of CPU time at modest sizes."""

# parameters that drive each part of peak_bytes (first: the one to name first)
_DRIVERS = {
    "data X": ("d", "N"),
    "weights W, V": ("C", "d", "m"),
    "hidden activations": ("m", "N"),
    "logits and softmax": ("C", "N"),
    "block weights a_i": ("N", "max_pairs", "max_diag"),
    "Gram chunk": ("N", "max_bytes"),
    "direct-route chunk": ("m", "N", "max_bytes"),
    "i != j correction": ("N", "max_pairs"),
}


def check_size(name: str, value, lo: int, hi: int = MAX_SIZE) -> int:
    """An integer in ``[lo, hi]``, with the range in the message."""
    v = check_int(name, value, lo)
    if v > hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return v


@dataclass(frozen=True)
class Plan:
    """A validated configuration of :func:`rmthess.simulate.block_frobenius`."""

    case: Case
    C: int
    d: int
    N: int
    m: int | None
    trials: int
    seed: int
    dev: torch.device
    dt: torch.dtype
    method: str
    max_diag: int
    max_pairs: int
    trial_batch: int
    max_bytes: int
    unbiased: bool
    K: int
    p: int
    P: int
    blocks_seed: int
    peak_bytes: int
    init: Init = resolve_init("lecun")
    activation: str = "relu"


def _memory(c: Case, v: dict, item: int, method: str, auto_batch: bool):
    """``(total, parts, trial_batch, method)`` of the sizes in ``v``."""
    K = c.n_blocks(v["C"], v["m"])
    P = min(K, v["max_diag"]) + min(K * (K - 1) // 2, v["max_pairs"])
    p = c.block_size(v["d"], v["m"])
    used = choose_method(method, v["N"], p, P)
    kw = dict(P=P, item=item, max_bytes=v["max_bytes"], method=used, unbiased=v["unbiased"])
    tb = v["trial_batch"]
    if auto_batch:
        one = peak_bytes(c, v["C"], v["d"], v["N"], v["m"], trial_batch=1, **kw)
        chunk = [k for k in one if "chunk" in k][0]
        per_trial = sum(one.values()) - one[chunk]
        tb = max(1, min(v["trials"], v["max_bytes"] // max(per_trial, 1)))
    parts = peak_bytes(c, v["C"], v["d"], v["N"], v["m"], trial_batch=tb, **kw)
    return sum(parts.values()), parts, tb, used


def _join(words, last: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _gb(b: float) -> str:
    return f"{b / 1e9:.3g} GB"


def _memory_error(caller, c, v, item, method, auto_batch, user, avail, what) -> ValueError:
    total, parts, tb, _ = _memory(c, v, item, method, auto_batch)
    big = max(parts, key=parts.get)
    names = list(_DRIVERS[big])
    if not auto_batch and tb > 1:
        names.insert(0, "trial_batch")
    names = [n for n in names if v.get(n) is not None and (n != "max_bytes" or n in user)]
    lows = {"C": 2, "m": max(c.m_min, 1)}

    def fits(w):
        return _memory(c, w, item, method, auto_batch)[0] <= avail

    fixes = []
    for n in names:
        lo = lows.get(n, 1)
        best = largest_fitting(lambda x, n=n: fits({**v, n: x}), lo, v[n] - 1)
        if best >= lo:
            fixes.append(f"{n} <= {best}")
    shown = ", ".join(f"{n}={v[n]}" for n in ("C", "d", "N", "m") if v[n] is not None)
    msg = (
        f"{caller}: {c.name} with {shown} (trial batch {tb}) needs about {_gb(total)} of "
        f"memory (largest part: {big}, {_gb(parts[big])}, driven by {_join(names, 'and')}), "
        f"but the {what} is {_gb(avail)}; "
    )
    if fixes:
        msg += f"reduce it: {_join(fixes, 'or')} would fit"
    else:
        msg += f"reduce {_join(names, 'or')}"
    return ValueError(msg)


def plan(
    case,
    C,
    d,
    N,
    m=None,
    *,
    trials=8,
    seed=0,
    device: Device = "auto",
    dtype: DType = "float64",
    method="auto",
    max_diag=MAX_DIAG,
    max_pairs=MAX_PAIRS,
    trial_batch=None,
    max_bytes=None,
    unbiased=False,
    init="lecun",
    caller="block_frobenius",
    activation="relu",
) -> Plan:
    """Validate the arguments of :func:`rmthess.simulate.block_frobenius`; see there."""
    c = get_case(case)
    C = check_size("C", C, 2)
    d = check_size("d", d, 1)
    N = check_size("N", N, 1)
    m = c.check_m(m)
    if m is not None:
        m = check_size("m", m, c.m_min)
    trials = check_size("trials", trials, 1, MAX_TRIALS)
    seed = check_int("seed", seed, 0)
    method = check_choice("method", method, ("auto", "gram", "direct"))
    max_diag = check_size("max_diag", max_diag, 1)
    max_pairs = check_size("max_pairs", max_pairs, 1)
    check_unbiased(c, N, unbiased)
    ini = resolve_init(init)
    activation = c.check_activation(activation)
    user = set()
    if trial_batch is not None:
        trial_batch = min(check_size("trial_batch", trial_batch, 1, MAX_TRIALS), trials)
        user.add("trial_batch")
    if max_bytes is not None:
        max_bytes = check_int("max_bytes", max_bytes, 1)
        user.add("max_bytes")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    avail, what = _device.machine_memory(dev)
    if max_bytes is None:
        max_bytes = min(DEFAULT_MAX_BYTES.get(dev.type, DEFAULT_MAX_BYTES["cpu"]), avail // 8)
    item = torch.empty((), dtype=dt).element_size()
    v = dict(C=C, d=d, N=N, m=m, trials=trials, max_diag=max_diag, max_pairs=max_pairs,
             trial_batch=trial_batch, max_bytes=max_bytes, unbiased=unbiased)  # fmt: skip
    auto_batch = trial_batch is None
    total, _parts, tb, used = _memory(c, v, item, method, auto_batch)
    if total > avail:
        raise _memory_error(caller, c, v, item, method, auto_batch, user, avail, what)
    K = c.n_blocks(C, m)
    return Plan(
        case=c, C=C, d=d, N=N, m=m, trials=trials, seed=seed, dev=dev, dt=dt, method=used,
        max_diag=max_diag, max_pairs=max_pairs, trial_batch=tb, max_bytes=max_bytes,
        unbiased=unbiased, K=K, p=c.block_size(d, m),
        P=min(K, max_diag) + min(K * (K - 1) // 2, max_pairs),
        blocks_seed=trial_seeds(seed, 1, key=(C, 1))[0], peak_bytes=total, init=ini,
        activation=activation,
    )  # fmt: skip
