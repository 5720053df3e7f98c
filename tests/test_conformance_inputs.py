"""One generic bad-input test over every public function (scikit-learn's
``parametrize_with_checks``, for arguments).

For every public callable of rmthess (the ``__all__`` of each subpackage) and every
parameter it takes that :data:`BAD` knows, the function is called with valid values for
its other required parameters (:data:`VALID`, by parameter name) and one bad value for
that parameter. It must raise one ``ValueError`` or ``TypeError`` whose one-line message
names the parameter, within :data:`LIMIT_S` seconds (refuse before working: huge sizes
must be refused from the arguments, not after minutes of work or a MemoryError).

Functions that cannot be called from name-keyed values alone get their valid arguments in
:data:`OVERRIDES`; the few that take no validated argument are listed in :data:`SKIP`
with the reason, so that a new public function is covered unless someone says why not.
"""

from __future__ import annotations

import importlib
import inspect
import re
import signal

import numpy as np
import pytest

PACKAGES = (
    "rmthess.cases",
    "rmthess.inits",
    "rmthess.theory",
    "rmthess.simulate",
    "rmthess.curvature",
    "rmthess.data",
    "rmthess.landscape",
    "rmthess.sweep",
    "rmthess.report",
)

LIMIT_S = 20

_HUGE = 10**12
_SIZE = (-1, 2.5, True)  # negative, not an integer, a bool
_SIZE_HUGE = (*_SIZE, _HUGE)  # a size that must be refused from the arguments
_POS_FLOAT = (-1.0, float("nan"), float("inf"))

#: bad values by parameter name; each must give a ValueError/TypeError naming the parameter
BAD: dict[str, tuple] = {
    "C": (*_SIZE_HUGE, 1),
    "d": _SIZE_HUGE,
    "N": _SIZE_HUGE,
    "m": _SIZE_HUGE,
    "hidden": _SIZE_HUGE,
    "probes": _SIZE_HUGE,
    "n_grid": _SIZE_HUGE,
    "n_atoms": _SIZE_HUGE,
    "n_orders": _SIZE_HUGE,
    "samples": _SIZE_HUGE,
    "inner": _SIZE_HUGE,
    "networks": _SIZE_HUGE,
    "draws": _SIZE_HUGE,
    "n_boot": _SIZE,
    "trials": _SIZE,
    "steps": _SIZE,
    "epochs": _SIZE,
    "k": _SIZE,
    "kmax": _SIZE,
    "batch_size": _SIZE,
    "maxiter": _SIZE,
    "matvecs": _SIZE,
    "chunk": _SIZE,
    "gamma": (*_POS_FLOAT, 0.0),
    "sigma": (*_POS_FLOAT, 0.0),
    "lr": (*_POS_FLOAT, 0.0),
    "tol": _POS_FLOAT,
    "rtol": (*_POS_FLOAT, 1e-300),
    "eps": (*_POS_FLOAT, 0.0),
    "level": (-0.5, 1.5, float("nan")),
    "seed": (-1, 1.5, "abc"),
    "progress": ("yes", 1),
    "case": ("nope", 3),
    "init": ("nope", -1.0, float("nan")),
    "dtype": ("float13",),
    "device": ("tpu9",),
    "kind": ("nope",),
    "method": ("nope",),
    "distribution": ("nope",),
    "block": ("nope",),
    "bias": ("no",),
    "centred": ("yes", 1),
    "inputs": ("nope", np.ones(3)),
    "sigma_eigs": (np.array([-1.0, 1.0]), np.array([1.0, np.nan]), "abc", np.zeros(2)),
    "sigma_weights": (np.array([0.9, 0.9]), np.array([1.0]), "abc"),
    "n_scan": _SIZE_HUGE,
    "self_term": ("nope", 3),
}


#: (function, parameter) pairs for which a huge size is a valid input, and why
HUGE_OK = {
    ("rmthess.theory.frobenius_limits", "C"): "linear-ce at any C is exact quadrature (1 s)",
    ("rmthess.theory.conditional_frobenius", "N"): "N only weighs the i = j term (1/N): any N",
    ("rmthess.simulate.n_blocks", "C"): "arithmetic on sizes: a huge answer is right",
    ("rmthess.simulate.n_blocks", "m"): "arithmetic on sizes: a huge answer is right",
    ("rmthess.simulate.block_dim", "d"): "arithmetic on sizes: a huge answer is right",
    ("rmthess.simulate.block_dim", "m"): "arithmetic on sizes: a huge answer is right",
}


def _torch_fixtures():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    X = torch.randn(12, 4, dtype=torch.float64)
    y = torch.arange(12) % 3
    return {"model": model, "loss_fn": nn.CrossEntropyLoss(), "data": (X, y)}


#: valid values by parameter name (the other arguments of a call)
VALID: dict[str, object] = {
    "case": "linear-ce",
    "block": "diag",
    "C": 3,
    "Cs": [2, 4],
    "gamma": 0.5,
    "m": 4,
    "d": 6,
    "N": 12,
    "x": np.array([0.1, 0.5]),
    "z": np.array([0.5 + 0.1j]),
    "atoms": np.array([1.0, 2.0]),
    "weights": np.array([0.5, 0.5]),
    "sigma_eigs": np.array([1.0, 3.0]),
    "kmax": 2,
    "K": 4,
    "losses": np.linspace(1.0, 2.0, 12),
    "trials": 2,
    "seed": 0,
}

_LAZY_VALID = ("model", "loss_fn", "data")


def _matrix_atoms():
    A = np.stack([np.eye(2), np.diag([1.0, 3.0])])
    return {"atoms": A, "weights": np.array([0.5, 0.5])}


def _dense_A():
    return {"A": np.diag([3.0, 2.0, 1.0, 0.5])}


def _relu_fixtures():
    from rmthess.data import gaussian
    from rmthess.landscape import relu_mlp

    return {"model": relu_mlp(4, 3, 5, 2, seed=0), "data": gaussian(3, 4, 12, seed=0)}


def _dataset():
    from rmthess.data import gaussian

    return {"data": gaussian(3, 4, 12, seed=0)}


#: per-function valid arguments where the name-keyed table is not enough
OVERRIDES = {
    "rmthess.theory.output_block_limit": lambda: {"case": "output-ce"},
    "rmthess.theory.conditional_frobenius": lambda: {
        "inputs": __import__("rmthess.theory").theory.InputStats.from_spectrum(np.ones(16)),
        "N": 32,
        "networks": 2,
        "draws": 16,
    },
    "rmthess.theory.input_stats": lambda: {"X": np.random.default_rng(0).random((20, 12))},
    "rmthess.theory.activation_frobenius": lambda: {"case": "hidden-ce", "m": 4, "samples": 20},
    "rmthess.theory.deep_frobenius": lambda: {
        "case": "hidden-ce",
        "widths": (4, 4),
        "samples": 20,
    },
    "rmthess.theory.offset_frobenius": lambda: {
        "case": "hidden-ce",
        "m": 4,
        "inputs": __import__("rmthess.theory").theory.InputStats.from_spectrum(
            np.ones(40), mean=np.full(40, 0.5)
        ),
        "samples": 20,
        "inner": 8,
    },
    "rmthess.theory.depth_frobenius": lambda: {
        "loss": "ce",
        "widths": (4, 4),
        "samples": 20,
        "inner": 8,
    },
    "rmthess.theory.depth_limiting_law": lambda: {
        "loss": "ce",
        "block": "diag",
        "widths": (4, 3),
        "n_atoms": 64,
    },
    "rmthess.theory.depth_block_limit": lambda: {
        "loss": "ce",
        "layer": 2,
        "block": "diag",
        "widths": (4, 3),
        "n_samples": 64,
    },
    "rmthess.theory.sample_network": lambda: {"widths": (4, 3)},
    "rmthess.simulate.sample_instance": lambda: {"model": "hidden", "m": 4},
    "rmthess.simulate.depth_block_frobenius": lambda: {
        "loss": "ce",
        "d": 8,
        "N": 16,
        "widths": (4, 3),
        "trials": 2,
    },
    "rmthess.landscape.hessian_bound_audit": _relu_fixtures,
    "rmthess.landscape.per_sample_curvature": _relu_fixtures,
    "rmthess.landscape.per_sample_hessian_norms": _relu_fixtures,
    "rmthess.theory.matrix_gmp_density": _matrix_atoms,
    "rmthess.theory.matrix_gmp_moments": _matrix_atoms,
    "rmthess.theory.matrix_gmp_stieltjes": _matrix_atoms,
    "rmthess.theory.matrix_gmp_zero_mass": _matrix_atoms,
    "rmthess.curvature.hessian_trace": _dense_A,
    "rmthess.curvature.top_eigenvalues": _dense_A,
    "rmthess.curvature.spectral_density": _dense_A,
    "rmthess.curvature.condition_number": _dense_A,
    "rmthess.curvature.outliers": lambda: {"A_or_density": np.diag([3.0, 2.0, 1.0, 0.5])},
    "rmthess.curvature.probe_variance": lambda: {"M": np.diag([3.0, 2.0, 1.0, 0.5])},
    "rmthess.landscape.relu_mlp": lambda: {"d": 4, "C": 3, "hidden": 5, "layers": 2},
    "rmthess.landscape.train_mlp": lambda: {**_dataset(), "hidden": 5, "layers": 2},
    "rmthess.curvature.mlp": lambda: {"d": 4, "C": 3},
    "rmthess.data.gaussian": lambda: {"C": 3, "d": 4, "N": 12},
    "rmthess.data.clustered": lambda: {"C": 3, "d": 4, "N": 12},
    "rmthess.simulate.select_blocks": lambda: {"K": 4},
}

#: public callables with no argument this test can check, and why
SKIP = {
    "rmthess.report.run_report": "takes a ReportConfig; the CLI's tests cover its arguments",
    "rmthess.report.get_config": "mode only; tested in test_report",
    "rmthess.landscape.landscape_experiment": "minutes of training per call; CLI tests cover it",
}


def _public_callables():
    seen = set()
    out = []
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.isclass(obj) or not callable(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((f"{pkg}.{name}", obj))
    return out


def _cases():
    for qual, fn in _public_callables():
        if qual in SKIP:
            continue
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        for pname in params:
            for bad in BAD.get(pname, ()):
                if bad is _HUGE and (qual, pname) in HUGE_OK:
                    continue
                yield pytest.param(qual, fn, pname, bad, id=f"{qual}-{pname}={bad!r}")


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # pragma: no cover - only when a call overruns
    raise _Timeout


def _call_with(qual, fn, pname, bad):
    params = inspect.signature(fn).parameters
    kwargs = {}
    extra = OVERRIDES.get(qual, dict)()
    need_torch = any(
        p in _LAZY_VALID and p not in extra and p != pname and v.default is inspect.Parameter.empty
        for p, v in params.items()
    )
    torch_vals = _torch_fixtures() if need_torch else {}
    for p, v in params.items():
        if p == pname or v.kind in (v.VAR_POSITIONAL, v.VAR_KEYWORD):
            continue
        if p in extra:
            kwargs[p] = extra[p]
        elif v.default is not inspect.Parameter.empty:
            continue
        elif p in torch_vals:
            kwargs[p] = torch_vals[p]
        elif p in VALID:
            kwargs[p] = VALID[p]
        else:
            pytest.skip(f"no valid value for required parameter {p!r} (add it to OVERRIDES)")
    kwargs[pname] = bad
    return fn(**kwargs)


@pytest.mark.parametrize("qual, fn, pname, bad", list(_cases()))
def test_bad_argument_gives_one_clear_error(qual, fn, pname, bad):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        with pytest.raises((ValueError, TypeError)) as info:
            _call_with(qual, fn, pname, bad)
    except _Timeout:
        pytest.fail(f"{qual}({pname}={bad!r}) ran > {LIMIT_S} s instead of refusing")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    msg = str(info.value)
    assert "\n" not in msg.strip(), f"multi-line error: {msg!r}"
    assert re.search(rf"(?<![A-Za-z0-9_]){re.escape(pname)}(?![A-Za-z0-9_])", msg), (
        f"{qual}({pname}={bad!r}) raised {type(info.value).__name__}({msg!r}), "
        f"which does not name {pname!r}"
    )
