"""Theory on a data set: measured Hessian block norms of the linear model, or of the hidden
layer of a one-hidden-layer ReLU net, next to every level of the theory (issue 19;
docs/theory.md section 9.4).

For the linear model ``z = W x`` (``mlp(d, C, hidden=(), bias=False)``, LeCun init) on a data
set ``(X, y)`` with ``C`` classes, :func:`theory_on_data` measures the block norms of the
paper's normalisation,

    F_diag = mean_k (1/d)||H_kk||_F^2,   F_off = mean_{k != l} (1/d)||H_kl||_F^2,
    r = sqrt(F_off / F_diag),

exactly (:func:`rmthess.curvature.block_norms`, ``blocks="output-rows"``, ``exact=True``) for
``networks`` independent initialisations (mean over networks, standard errors over them;
``r`` by the delta method, :func:`rmthess._stats.summarize_pairs`), and puts next to them what
the theory predicts at each level of input statistics (:data:`LEVELS`):

- ``isotropic``: ``frobenius_limits(case, C, d/N)`` (``x ~ N(0, I_d)``, the paper);
- ``gaussian``: ``conditional_frobenius(case, C, input_stats(X, y).pooled(), N)``, one
  Gaussian with the data's mean and covariance, exact at finite ``d``;
- ``mixture-limit``: ``frobenius_limits(case, C, d/N, inputs=input_stats(X, y))``, one
  Gaussian per class, ``d_eff -> inf``;
- ``mixture``: ``conditional_frobenius(case, C, input_stats(X, y), N)``, the class mixture
  exact at finite ``d``;
- ``clusters``: the same route on a finer mixture, each class split into ``per_class``
  k-means clusters (``input_stats(X, y, per_class=4)``, :mod:`rmthess.theory.input_clusters`):
  real classes are a few clouds, not one ellipsoid, and their pair terms show it;
- ``mixture+norms``: the class mixture with ``self_term="data"`` (the ``i = j`` terms from
  the data's own sample norms; a diagnostic: they are counted twice, docs/theory.md 9.4).

With ``hidden=(m,)`` the model is ``f(x) = V relu(W x)`` (``mlp(d, C, hidden=(m,),
bias=False)``, LeCun init) and the blocks are the ``m x m`` map of the first layer's ``d x d``
row blocks (``blocks="hidden-rows"``; theory cases ``hidden-ce`` / ``hidden-mse``). Its levels
are ``isotropic`` (``frobenius_limits(case, C, d/N, m)``), ``gaussian``, ``mixture`` and
``clusters`` (``conditional_frobenius(..., m=m)``, exact at finite ``d``,
:mod:`rmthess.theory.aniso_hidden`); the limit and data-norm levels are for the linear model
only (:data:`HIDDEN_LEVELS`).

``loss="mse"`` is the theory's ``linear-mse``: the Hessian of ``(1/(2N)) sum_i |z_i - e_{y_i}|^2``
(torch's ``MSELoss`` mean times ``C/2``, so the blocks are ``(1/N) sum_i x_i x_i^T`` on the
diagonal and 0 off it), ``F_off = 0`` and ``r = 0``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from rmthess._checks import check_choice, check_int, check_progress, progress_bar, want_progress
from rmthess._random import check_seed, seed_int
from rmthess._stats import json_safe, summarize_pairs

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from rmthess.curvature._types import Data, Widths
    from rmthess.data import Dataset
    from rmthess.theory.frobenius import FrobeniusLimits

__all__ = ["HIDDEN_LEVELS", "LEVELS", "TheoryOnData", "theory_on_data"]

LEVELS = ("isotropic", "gaussian", "mixture-limit", "mixture", "clusters", "mixture+norms")
"""The theory levels of :func:`theory_on_data`, from the paper's isotropic inputs to the
class mixture with the data's own sample norms (module docstring)."""
LEVEL_TEXT = {
    "measured": "measured (exact block norms)",
    "isotropic": "isotropic N(0, I) limit",
    "gaussian": "one Gaussian (exact)",
    "mixture-limit": "class mixture (limit)",
    "mixture": "class mixture (exact)",
    "clusters": "k-means sub-clusters of each class (exact)",
    "mixture+norms": "mixture + data norms (exact)",
}
HIDDEN_LEVELS = ("isotropic", "gaussian", "mixture", "clusters")
"""The levels there are for the hidden layer (``hidden=(m,)``)."""
QUANTITIES = ("F_diag", "F_off", "ratio")
MAX_NETWORKS = 10**6
_SECONDS_PER_ENTRY = 2e-6  # measured: exact blocks cost ~2e-6 s per (parameter x sample)


@dataclass
class TheoryOnData:
    """Measured block norms of the linear model (or of a hidden layer) on a data set and the
    theory's levels.

    Attributes
    ----------
    loss, case : ``"ce"``/``"mse"`` and the theory case (``"linear-ce"``, ``"hidden-mse"``, ...).
    name, N, d, C : the data set (``C`` classes = outputs).
    d_eff : float, effective dimension ``tau_1^2 / tau_2`` of the pooled covariance.
    F_diag, F_off, ratio : measured, mean over ``networks`` (``ratio`` of the means).
    F_diag_se, F_off_se, ratio_se : their standard errors over networks.
    levels : ``{level: FrobeniusLimits}``, the theory at each requested level
        (:data:`LEVELS`).
    networks, draws, seed : the sizes (``draws``: logit draws per network of the exact
        routes) and the seed; network ``t`` is ``mlp(d, C, hidden=hidden, bias=False,
        seed=rmthess._random.seed_int(seed, "theory-on-data", t))``.
    m : hidden width (``None``: the linear model).
    per_class : k-means components per class of the ``clusters`` level.
    seconds : dict, wall time of ``"measured"`` and ``"theory"``.
    """

    loss: str
    case: str
    name: str
    N: int
    d: int
    C: int
    d_eff: float
    F_diag: float
    F_off: float
    ratio: float
    F_diag_se: float
    F_off_se: float
    ratio_se: float
    levels: dict = field(default_factory=dict)
    networks: int = 0
    draws: int = 0
    seed: int = 0
    seconds: dict = field(default_factory=dict)
    m: int | None = None
    per_class: int = 4
    per_network: dict = field(default_factory=dict, repr=False)

    def err_se(self, level: str, quantity: str) -> float:
        """Standard error of :meth:`rel_err`. Where the level was computed on the measured
        networks' own weights (``per_network`` holds both; the hidden layer's exact levels),
        the jackknife over networks of the paired ratio; otherwise the two independent
        estimates' relative SEs in quadrature (a deterministic level: the measured one
        alone)."""
        check_choice("level", level, tuple(self.levels))
        check_choice("quantity", quantity, QUANTITIES)
        if level in self.per_network and "measured" in self.per_network:
            return _jackknife_rel(self.per_network[level], self.per_network["measured"], quantity)
        lim = self.levels[level]
        T, M = float(getattr(lim, quantity)), float(getattr(self, quantity))
        if T == 0 or M == 0:
            return 0.0 if T == M else math.nan
        sT, sM = float(getattr(lim, f"{quantity}_se")), float(getattr(self, f"{quantity}_se"))
        return abs(T / M) * math.hypot(sT / T, sM / M)

    def rel_err(self, level: str, quantity: str) -> float:
        """``level / measured - 1`` of ``quantity`` (``F_diag``, ``F_off`` or ``ratio``); 0
        where both are 0 (mse's ``F_off``), NaN where only the measured one is."""
        check_choice("level", level, tuple(self.levels))
        check_choice("quantity", quantity, QUANTITIES)
        return _rel(getattr(self.levels[level], quantity), getattr(self, quantity))

    def to_dict(self) -> dict:
        """JSON-safe scalars: the data set and sizes, the measured ``F_diag``, ``F_off``,
        ``ratio`` (and ``*_se``) and, per level, ``<quantity>_<level>``, its ``*_se`` and
        ``err_<quantity>_<level>`` (the relative error vs measured); the table is
        :meth:`to_frame`."""
        keys = ("loss", "case", "name", "N", "d", "C", "m", "d_eff", "networks", "draws")
        d: dict = {k: getattr(self, k) for k in (*keys, "seed", "per_class")}
        for q in QUANTITIES:
            d[q], d[f"{q}_se"] = getattr(self, q), getattr(self, f"{q}_se")
        for level, lim in self.levels.items():
            for q in QUANTITIES:
                d[f"{q}_{level}"] = getattr(lim, q)
                d[f"{q}_se_{level}"] = getattr(lim, f"{q}_se")
                d[f"err_{q}_{level}"] = self.rel_err(level, q)
                d[f"err_{q}_se_{level}"] = self.err_se(level, q)
        d.update({f"seconds_{k}": v for k, v in self.seconds.items()})
        return json_safe(d)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per level (``measured`` first): ``level, description,
        F_diag, F_diag_se, F_off, F_off_se, ratio, ratio_se, err_F_diag, err_F_off,
        err_ratio, method, inputs``."""
        import pandas as pd

        rows = [
            {
                "level": "measured",
                "description": LEVEL_TEXT["measured"],
                **{k: getattr(self, k) for q in QUANTITIES for k in (q, f"{q}_se")},
                **{f"err_{q}": 0.0 for q in QUANTITIES},
                **{f"err_{q}_se": 0.0 for q in QUANTITIES},
                "method": "block_norms",
                "inputs": "data",
            }
        ]
        for level, lim in self.levels.items():
            rows.append(
                {
                    "level": level,
                    "description": LEVEL_TEXT[level],
                    **{k: float(getattr(lim, k)) for q in QUANTITIES for k in (q, f"{q}_se")},
                    **{f"err_{q}": self.rel_err(level, q) for q in QUANTITIES},
                    **{f"err_{q}_se": self.err_se(level, q) for q in QUANTITIES},
                    "method": lim.method,
                    "inputs": lim.inputs,
                }
            )
        return pd.DataFrame(rows)


def _rel_of_means(T: np.ndarray, M: np.ndarray, quantity: str) -> float:
    """``quantity`` of the means of per-network ``(F_diag, F_off)`` rows, theory over
    measured, minus 1."""
    (td, to), (md, mo) = T.mean(axis=0), M.mean(axis=0)
    if quantity == "F_diag":
        return _rel(td, md)
    if quantity == "F_off":
        return _rel(to, mo)
    rt = math.sqrt(to / td) if td > 0 else math.nan
    rm = math.sqrt(mo / md) if md > 0 else math.nan
    return _rel(rt, rm)


def _jackknife_rel(T: np.ndarray, M: np.ndarray, quantity: str) -> float:
    """Jackknife SE over networks of :func:`_rel_of_means` for paired rows."""
    n = len(M)
    loo = np.array(
        [_rel_of_means(np.delete(T, t, 0), np.delete(M, t, 0), quantity) for t in range(n)]
    )
    return float(math.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def _rel(value: float, ref: float) -> float:
    if ref == 0:
        return 0.0 if value == 0 else math.nan
    return float(value) / float(ref) - 1.0


def _check_model(hidden: object, bias: object) -> int | None:
    """The hidden width (``None`` for the linear model)."""
    if bias is not False:
        raise ValueError(f"bias must be False (the theory's models have no bias), got {bias!r}")
    if isinstance(hidden, tuple | list) and len(hidden) == 0:
        return None
    if isinstance(hidden, tuple | list) and len(hidden) == 1:
        return check_int("hidden[0]", hidden[0], 2, 4096)
    raise ValueError(
        f"hidden must be () (the linear model z = W x) or (m,) with m in [2, 4096] (one "
        f"hidden ReLU layer), got {hidden!r}: deeper nets have no theory on data yet"
    )


def _dataset(data: object) -> tuple[Dataset, int]:
    from rmthess.data import Dataset
    from rmthess.data.coerce import as_xy

    if isinstance(data, Dataset):
        ds = data
    else:
        X, y = as_xy(cast("Any", data))
        if X.ndim != 2:
            raise ValueError(f"data: X must be 2-D (N, d), got shape {X.shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(f"data: y must be 1-D integer class labels, got {y.dtype} {y.shape}")
        ds = Dataset(np.asarray(X, dtype=np.float64), y)
    counts = ds.class_counts()
    C = int(counts.size)
    if C < 2:
        raise ValueError(f"data must have at least 2 classes (C >= 2), got {C}")
    if counts.min() < 2:
        k = int(np.argmin(counts))
        raise ValueError(
            f"data: class {k} has {int(counts[k])} samples; the class mixture needs at least 2 "
            "per class (drop empty classes or relabel)"
        )
    return ds, C


def _check_levels(levels: object, allowed: tuple[str, ...] = LEVELS) -> tuple[str, ...]:
    if levels is None:
        return allowed
    if isinstance(levels, str) or not hasattr(levels, "__iter__"):
        raise TypeError(
            f"levels must be None or a sequence of names from {allowed}, got {levels!r}"
        )
    out = tuple(check_choice("levels", v, allowed) for v in levels)
    if len(set(out)) != len(out):
        raise ValueError(f"levels must be distinct, got {list(out)}")
    return tuple(v for v in LEVELS if v in out)


def _measure(ds: Dataset, C: int, loss: str, networks: int, seed: int, bar, m=None):
    """(networks, 2) per-network ``(F_diag, F_off)`` by exact ``block_norms`` (the output
    rows of the linear model, or the hidden rows of ``V relu(W x)`` when ``m`` is given),
    and the networks' ``(W, V)`` as float64 arrays (hidden net; ``[]`` for the linear)."""
    from rmthess.curvature.blocks import block_norms
    from rmthess.curvature.models import mlp

    d = ds.d
    data = ds.tensors()
    scale = (C / 2.0) ** 2 if loss == "mse" else 1.0  # torch's MSELoss mean -> the theory's
    off = np.eye(C if m is None else m) == 0
    hidden, blocks = ((), "output-rows") if m is None else ((m,), "hidden-rows")
    per = np.empty((networks, 2))
    nets = []
    for t in range(networks):
        net = mlp(d, C, hidden=hidden, bias=False, init="lecun", seed=network_seed(seed, t))
        if m is not None:  # the weights, for the theory on the same networks
            layers = cast("Any", net)
            weights = (layers.hidden1.weight, layers.output.weight)
            nets.append(tuple(w.detach().cpu().double().numpy() for w in weights))
        bm = block_norms(net, loss, data, blocks=blocks, exact=True, progress=False)
        F = bm.sq_norm * (scale / d)
        per[t] = np.mean(np.diag(F)), np.mean(F[off])
        bar.update(1)
    return per, nets


def network_seed(seed: int, t: int) -> int:
    """The ``mlp`` seed of network ``t`` of :func:`theory_on_data` with ``seed``."""
    return seed_int(seed, "theory-on-data", t)


def _theory(ds, C, case, levels, networks, draws, seed, bar, m=None, nets=(), per_class=4):
    """The levels, the per-network values of the paired ones, ``d_eff`` and the warnings
    they gave, once each (``(category, text)``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if m is None:
            out, d_eff = _levels(ds, C, case, levels, networks, draws, seed, bar, per_class)
            paired: dict = {}
        else:
            out, paired, d_eff = _hidden_levels(
                ds, C, case, levels, m, nets, draws, seed, bar, per_class
            )
    seen = dict.fromkeys((w.category, str(w.message)) for w in caught)
    return out, paired, d_eff, list(seen)


def _clusters(ds, C: int, per_class: int, seed: int):
    """The ``clusters`` level's statistics (:mod:`rmthess.theory.input_clusters`)."""
    from rmthess.theory import input_stats

    return input_stats(ds.X, ds.y, n_classes=C, per_class=per_class, seed=seed)


def _hidden_levels(ds, C, case, levels, m, nets, draws, seed, bar, per_class):
    """The hidden layer's levels: ``isotropic`` (the limit), and the exact ``gaussian`` /
    ``mixture`` levels on the measured networks' own weights (paired: the per-network
    values are returned too)."""
    from rmthess._random import rng
    from rmthess.inits import resolve_init
    from rmthess.theory import frobenius_limits, input_stats
    from rmthess.theory.aniso_hidden import hidden_per_network
    from rmthess.theory.aniso_linear import conditional_result

    N = ds.n
    stats = input_stats(ds.X, ds.y, n_classes=C)
    out: dict[str, FrobeniusLimits] = {}
    paired: dict[str, np.ndarray] = {}
    for level in levels:
        if level == "isotropic":
            out[level] = frobenius_limits(case, C, ds.d / N, m)
        else:
            gen = rng(seed, "theory-on-data", level)
            ini = resolve_init("lecun")
            pool = level == "gaussian"
            st = _clusters(ds, C, per_class, seed) if level == "clusters" else stats
            per = hidden_per_network(case, C, m, st, N, ini, len(nets), draws, gen, nets, pool)
            paired[level] = per
            inputs = stats.pooled().level if pool else stats.level
            out[level] = conditional_result(case, C, ds.d / N, m, per, draws, seed, "lecun", inputs)
        bar.update(1)
    return out, paired, float(stats.d_eff)


def _levels(ds, C, case, levels, networks, draws, seed, bar, per_class) -> tuple[dict, float]:
    from rmthess.theory import conditional_frobenius, frobenius_limits, input_stats

    N = ds.n
    gamma = ds.d / N
    stats = input_stats(ds.X, ds.y, n_classes=C)
    cond = dict(networks=networks, draws=draws, seed=seed)
    make = {
        "isotropic": lambda: frobenius_limits(case, C, gamma),
        "gaussian": lambda: conditional_frobenius(case, C, stats.pooled(), N, **cond),
        "mixture-limit": lambda: frobenius_limits(case, C, gamma, inputs=stats),
        "mixture": lambda: conditional_frobenius(case, C, stats, N, **cond),
        "clusters": lambda: conditional_frobenius(
            case, C, _clusters(ds, C, per_class, seed), N, **cond
        ),
        "mixture+norms": lambda: conditional_frobenius(case, C, stats, N, **cond, self_term="data"),
    }
    out: dict[str, FrobeniusLimits] = {}
    for level in levels:
        out[level] = make[level]()
        bar.update(1)
    return out, float(stats.d_eff)


def theory_on_data(
    data: Data,
    loss: str = "ce",
    *,
    networks: int = 20,
    draws: int = 4096,
    seed: int = 0,
    levels: Sequence[str] | None = None,
    hidden: Widths = (),
    bias: bool = False,
    per_class: int = 4,
    progress: bool | None = None,
) -> TheoryOnData:
    """Measured block norms ``F_diag``, ``F_off``, ``r`` of the linear model (or of the hidden
    layer of ``V relu(W x)``) on ``data`` next to the theory's levels (module docstring), with
    relative errors.

    Parameters
    ----------
    data : an :class:`rmthess.data.Dataset` or ``(X, y)`` (``X`` (N, d), ``y`` integer labels
        in ``[0, C)``, ``C >= 2`` classes, every class with at least 2 samples).
    loss : ``"ce"`` (theory ``linear-ce`` / ``hidden-ce``) or ``"mse"`` (``linear-mse`` /
        ``hidden-mse``).
    networks : int in [2, 1e6], LeCun networks measured; also the networks of the exact
        (conditional) theory routes.
    draws : even int in [16, 1e7], logit draws per network of the exact routes.
    seed : seeds the networks (:func:`network_seed`) and the theory's Monte Carlo.
    levels : a subset of :data:`LEVELS` (default all; with ``hidden=(m,)`` of
        :data:`HIDDEN_LEVELS`).
    hidden : ``()`` (default: the linear model ``z = W x``) or ``(m,)``: one hidden ReLU
        layer of width ``m`` in [2, 4096], the blocks of its ``m`` rows. Deeper nets: a
        ``ValueError``.
    bias : only ``False`` (the theory's models have no bias).
    per_class : int in [1, 64], k-means components per class of the ``clusters`` level
        (default 4; on standardised digits 1 leaves F_off 7-14 % low, 2 about half that,
        4 within 4 %, docs/theory.md 9.4).
    progress : a tqdm bar over the networks and levels (``None``: on a terminal when the run
        is predicted to take over 5 s).

    Cost: ``networks`` exact block maps, about ``2e-6 K d N`` seconds each (``K = C`` rows,
    or ``m``; digits, C = 10: 2.4 s), plus, per exact level, ~0.1 s per network (mixture,
    C = 10, d = 64; hidden, m = 16: ~0.3 s; clusters: 0.2 s linear, 0.8 s hidden, at 4 per
    class). Every argument is checked before any of it.

    Returns
    -------
    TheoryOnData
    """
    m = _check_model(hidden, bias)
    loss = check_choice("loss", loss, ("ce", "mse"))
    networks = check_int("networks", networks, 2, MAX_NETWORKS)
    draws = check_int("draws", draws, 16, 10**7)
    if draws % 2:
        raise ValueError(f"draws must be even (two independent halves), got {draws}")
    seed = check_seed(seed)
    per_class = check_int("per_class", per_class, 1, 64)
    levels_t = _check_levels(levels, LEVELS if m is None else HIDDEN_LEVELS)
    progress = check_progress(progress)
    ds, C = _dataset(data)
    case = f"{'linear' if m is None else 'hidden'}-{loss}"
    d, N = ds.d, ds.n
    rows = C if m is None else m
    predicted = networks * (_SECONDS_PER_ENTRY * rows * d * N + 0.1 * len(levels_t))
    show = want_progress(progress, predicted)
    with progress_bar(show, total=networks + len(levels_t), desc="theory_on_data") as bar:
        t0 = time.perf_counter()
        per, nets = _measure(ds, C, loss, networks, seed, bar, m)
        t1 = time.perf_counter()
        lev, paired, d_eff, caught = _theory(
            ds, C, case, levels_t, networks, draws, seed, bar, m, nets, per_class
        )
        t2 = time.perf_counter()
    for category, text in caught:  # the theory's warnings (d_eff small: C/d_eff), once each
        warnings.warn(text, category, stacklevel=2)
    return TheoryOnData(
        loss=loss,
        case=case,
        name=ds.name,
        N=N,
        d=d,
        C=C,
        d_eff=d_eff,
        **summarize_pairs(per),
        levels=lev,
        networks=networks,
        draws=draws,
        seed=seed,
        seconds={"measured": t1 - t0, "theory": t2 - t1},
        m=m,
        per_class=per_class,
        per_network={"measured": per, **paired} if paired else {},
    )
