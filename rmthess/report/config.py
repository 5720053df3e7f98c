"""Run configurations of ``rmthess report``: one frozen :class:`ReportConfig` per mode.

Modes
-----
``tiny``
    Hidden, for the test suite: every section runs, at sizes too small for the
    statistical checks to mean much (a few seconds).
``quick``
    ``--quick``: small sizes, target <= 60 s on 2 CPU cores.
``default``
    No flag: moderate sizes, target <= 5 min on 2 CPU cores.
``full``
    ``--full``: the paper's sizes where affordable; for a GPU or patience.

All modes use ``gamma = d / N`` (dimension over samples, docs/theory.md section 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from rmthess._checks import check_choice
from rmthess.cases import CASES
from rmthess.report.config_data import (
    ClusterConfig,
    DepthConfig,
    OnDataConfig,
    RealConfig,
    SpectrumConfig,
)

MODES = ("tiny", "quick", "default", "full")


@dataclass(frozen=True)
class TheoryConfig:
    """Settings of the ``theory`` section (exact Frobenius limits).

    Attributes
    ----------
    C_points : int
        Points of the exact theory curve between ``min(Cs)`` and ``max(Cs)`` (log grid);
        the cases with costly limits (hidden-ce, output-ce: Gram quadrature, about a
        second a point) are integrated at ``Cs`` only.
    samples : int or None
        Monte-Carlo sample size passed to the theory layer for a case whose default
        theory is Monte Carlo (none since hidden-ce and output-ce are exact; None: the
        theory layer's default).
    """

    C_points: int
    samples: int | None


@dataclass(frozen=True)
class SpectraConfig:
    """Settings of the ``spectra`` section (block-spectrum overlay, linear-ce blocks).

    Attributes
    ----------
    C, d, N : int
        Class count, data dimension and sample count.
    """

    C: int
    d: int
    N: int


@dataclass(frozen=True)
class HeatmapConfig:
    """Settings of the ``heatmaps`` section.

    Attributes
    ----------
    Cs : tuple of int
        Class counts of the hidden-layer heatmaps (paper Figure 6: 10, 100, 1000).
    d, N, m : int
        Sizes of the heatmaps (the hidden block is ``(m d) x (m d)``).
    full_C, train_steps : int
        Class count of the whole-Hessian heatmap (paper Figures 2-3), drawn at
        initialization and after ``train_steps`` Adam steps.
    """

    Cs: tuple[int, ...]
    d: int
    N: int
    m: int
    full_C: int
    train_steps: int


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the ``dynamics`` section.

    Full-batch Adam, cosine schedule, CE loss, random labels.

    Attributes
    ----------
    C, d, N, steps, record_every : int
        Class count, data dimension, sample count, Adam steps, recording interval.
    lr : float
        Learning rate.
    """

    C: int
    d: int
    N: int
    steps: int
    lr: float
    record_every: int


@dataclass(frozen=True)
class LandscapeConfig:
    """Settings of the loss-landscape experiment (section ``landscape``, seed 000).

    Attributes
    ----------
    hidden, layers : tuple of int
        Widths at L = 3 and depths L at width 16.
    orders, epochs, audit_samples : int
        Random orders, training epochs, samples per state in the Hessian-bound audit.
    """

    hidden: tuple[int, ...] = (4, 8, 16, 32, 64)
    layers: tuple[int, ...] = (1, 3, 5)
    orders: int = 100
    epochs: int = 10
    audit_samples: int = 200


@dataclass(frozen=True)
class LayerConfig:
    """Settings of the whole-layer spectra (section ``layer``, linear-ce).

    Attributes
    ----------
    Cs, d, trials : tuple of int
        The class counts of the figure panels, the data dimension and the number of
        simulated layers per panel (aligned; ``N = d / gamma``; dense eigvalsh of
        ``C d x C d``, so the largest C may get a smaller d).
    gamma : float
        ``d / N`` of the whole-layer section.
    n_atoms, gap_n_atoms : int
        QMC softmax draws of the layer laws (figure and checks) and of the gap curve.
    gap_Cs : tuple of int
        Class counts of the gap curve (linear-ce) and its slope fit.
    solver_n_base : int
        Softmax draws (times 3! permutations) of the matrix-solver check at C = 3.
    hidden_cases, hidden_m, hidden_Cs, hidden_n_atoms
        Hidden layers added to the gap figure (matrix GMP solver, ~5 s per C at m = 4 and
        256 atoms; empty in the quick mode).
    ks_tol : float
        Allowed KS distance of the simulated whole-layer eigenvalues to the layer law.
    edge_C_max : int
        Top-eigenvalue check only for C up to this (no outliers there; above, the law's
        edge is set by the largest atoms and outliers can appear).
    """

    Cs: tuple[int, ...] = (2, 5, 20)
    d: tuple[int, ...] = (400, 400, 200)
    trials: tuple[int, ...] = (8, 4, 1)
    gamma: float = 0.5
    n_atoms: int = 4096
    gap_Cs: tuple[int, ...] = (2, 3, 4, 5, 7, 10, 14, 20, 28, 35, 50)
    gap_n_atoms: int = 1024
    solver_n_base: int = 64
    hidden_cases: tuple[str, ...] = ("hidden-ce",)
    hidden_m: int = 4
    hidden_Cs: tuple[int, ...] = (2, 4, 8, 16)
    hidden_n_atoms: int = 256
    ks_tol: float = 0.03
    edge_C_max: int = 5


#: section name -> settings class: ``cfg.<name>`` holds that section's settings
SECTIONS: dict[str, Any] = {
    "theory": TheoryConfig,
    "spectra": SpectraConfig,
    "heatmap": HeatmapConfig,
    "train": TrainConfig,
    "real": RealConfig,
    "spectrum": SpectrumConfig,
    "cluster": ClusterConfig,
    "ondata": OnDataConfig,
    "depth": DepthConfig,
    "landscape": LandscapeConfig,
    "layer": LayerConfig,
}


@dataclass(frozen=True)
class ReportConfig:
    """Sizes, grids and tolerances of one report run: shared settings, one block per section.

    Attributes
    ----------
    mode : str
        One of :data:`MODES`.
    d, N : int
        Data dimension and sample count of the simulated blocks (``gamma = d / N``).
    d_output, N_output : int
        Sizes for the output-layer cases. Their m x m blocks carry no 1/d and no gamma;
        their finite-size bias is O(m^2/N + m^2/d) (a (1/N) variance term
        ``(E[a^2 |h|^4] - ||E[a h h^T]||^2)/N`` and the fluctuation of ``W W^T`` around
        ``I_m``): about 13% at d = 64, N = 128, m = 8, hence larger sizes (cheap: p = m).
    m : int
        Hidden width of the one-hidden-layer net (minimum per case: ``rmthess.cases``).
    Cs : tuple of int
        Class counts C of the Frobenius sweep (every case; also the slope fit).
    trials : int
        Independent (X, W, V) draws per (case, C) for the linear/output cases.
    trials_hidden : int
        Draws for the hidden-layer cases (their averages over V are heavy-tailed).
    n_boot : int
        Bootstrap resamples of the slope fit.
    theory : TheoryConfig
        ``C_points`` (exact theory curve) and ``samples`` (Monte-Carlo theory size).
    spectra : SpectraConfig
        ``C``, ``d``, ``N`` of the block-spectrum overlay.
    heatmap : HeatmapConfig
        ``Cs``, ``d``, ``N``, ``m``, ``full_C``, ``train_steps`` of the heatmaps.
    train : TrainConfig
        ``C``, ``d``, ``N``, ``steps``, ``lr``, ``record_every`` of the training dynamics.
    real : RealConfig
        ``n``, ``hidden``, ``train_steps``, ``probes`` of the Figure-1 analogue on digits.
    spectrum : SpectrumConfig
        ``hidden``, ``k`` of the trained digits MLP whose spectrum is measured.
    cluster : ClusterConfig
        ``Cs``, ``counts``, ``d``, ``m``, ``per_class`` of the clustered-data ablation.
    ondata : OnDataConfig
        Digits class counts, networks, draws and the clustered set of ``theory-on-data``.
    depth : DepthConfig
        The MLP cells, data sizes, networks and tolerance of ``depth``.
    landscape : LandscapeConfig
        ``hidden``, ``layers``, ``orders``, ``epochs``, ``audit_samples`` of the
        loss-landscape experiment.
    layer : LayerConfig
        Whole-layer spectra: ``Cs``, ``d``, ``trials``, ``gamma``, the atoms, the gap
        curve, the hidden layers of the gap figure and the layer checks' tolerances.
    k_se : float
        Checks: allowed deviation in combined standard errors.
    rel_allowance : float
        Checks: stated finite-size allowance, relative to the theory value
        (corrections are O(1/d) + O(1/N); see :mod:`rmthess.report.checks`).
    slope_tol : float
        Checks: allowed ``|fitted slope - predicted slope|``.
    ks_tol : float
        Checks: allowed Kolmogorov-Smirnov distance between simulated block eigenvalues
        and the limiting law (finite-d fluctuation plus edge effects).
    seed : int
        Base seed; every section derives its own seed from it.
    store : str or None
        A ``rmthess sweep`` result store of ``theory`` records: the theory section takes
        every limit it finds there (same case, C, gamma, m and Monte-Carlo samples) instead
        of recomputing it, and computes the rest.
    cases : tuple of str
        The cases of the Frobenius sweep (default: every case of ``rmthess.cases``).
    """

    mode: str
    d: int
    N: int
    m: int
    d_output: int
    N_output: int
    Cs: tuple[int, ...]
    trials: int
    trials_hidden: int
    n_boot: int
    theory: TheoryConfig
    spectra: SpectraConfig
    heatmap: HeatmapConfig
    train: TrainConfig
    real: RealConfig = field(default_factory=RealConfig)
    spectrum: SpectrumConfig = field(default_factory=SpectrumConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    ondata: OnDataConfig = field(default_factory=OnDataConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    layer: LayerConfig = field(default_factory=LayerConfig)
    k_se: float = 4.0
    rel_allowance: float = 0.05
    slope_tol: float = 0.1
    ks_tol: float = 0.05
    seed: int = 0
    store: str | None = None
    cases: tuple[str, ...] = field(default=CASES)

    @property
    def gamma(self) -> float:
        """``gamma = d / N``."""
        return self.d / self.N

    def to_dict(self) -> dict:
        """The settings as one flat JSON-safe dict: a section's settings as ``"layer.Cs"``."""
        out: dict = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in SECTIONS:
                out.update({f"{f.name}.{k}": u for k, u in asdict(v).items()})
            else:
                out[f.name] = v
        out["gamma"] = self.gamma
        return out


_CONFIGS = {
    "tiny": ReportConfig(
        mode="tiny",
        d=24,
        N=48,
        m=4,
        d_output=24,
        N_output=96,
        Cs=(4, 8, 16),
        trials=4,
        trials_hidden=8,
        n_boot=50,
        theory=TheoryConfig(C_points=12, samples=30),
        spectra=SpectraConfig(C=5, d=60, N=120),
        heatmap=HeatmapConfig(Cs=(10, 100), d=5, N=20, m=3, full_C=4, train_steps=5),
        train=TrainConfig(C=8, d=8, N=32, steps=20, lr=1e-2, record_every=5),
        real=RealConfig(n=40, hidden=4, train_steps=20, probes=10),
        spectrum=SpectrumConfig(hidden=8, k=12),
        cluster=ClusterConfig(Cs=(2, 6), counts=(1, 2), d=16, m=4, per_class=5),
        ondata=OnDataConfig(
            Cs=(3,),
            n=90,
            networks=2,
            draws=16,
            cluster_C=3,
            cluster_d=16,
            hidden_m=6,
            hidden_Cs=(3,),
            hidden_networks=2,
        ),
        depth=DepthConfig(
            cells=(((6, 6), 3, "relu"),), d=24, N=48, networks=3, samples=40, tol=0.5
        ),
        landscape=LandscapeConfig(hidden=(4,), layers=(1,), orders=10, epochs=1, audit_samples=5),
        layer=LayerConfig(
            d=(30, 30, 20),
            trials=(2, 2, 1),
            n_atoms=256,
            gap_Cs=(2, 4, 8),
            gap_n_atoms=256,
            solver_n_base=8,
            hidden_cases=(),
            ks_tol=0.3,
        ),
        # tiny sizes: every check runs but they are not expected to be meaningful
        rel_allowance=0.5,
        slope_tol=0.5,
        ks_tol=0.3,
    ),
    "quick": ReportConfig(
        mode="quick",
        d=64,
        N=128,
        m=8,
        d_output=128,
        N_output=1024,
        Cs=(4, 8, 16, 32, 64),
        trials=16,
        trials_hidden=64,
        n_boot=200,
        theory=TheoryConfig(C_points=24, samples=60),
        spectra=SpectraConfig(C=5, d=200, N=400),
        heatmap=HeatmapConfig(Cs=(10, 100, 1000), d=8, N=64, m=4, full_C=10, train_steps=50),
        train=TrainConfig(C=32, d=32, N=320, steps=150, lr=2e-2, record_every=25),
        real=RealConfig(train_steps=150),
        # the C - 1 outliers of the GGN separate from the bulk only from width ~32 (measured:
        # gap ratio 0.2-0.5 at h = 16, 1.7-2.4 at h = 32, 4-7 at h = 64; docs/theory.md 9.2)
        cluster=ClusterConfig(Cs=(2, 4, 8, 16), counts=(1, 2)),
        ondata=OnDataConfig(
            Cs=(3, 5),
            networks=5,
            draws=512,
            cluster_C=5,
            cluster_per_class=40,
            hidden_Cs=(5,),
            hidden_networks=6,
        ),
        depth=DepthConfig(
            cells=(((16, 16), 10, "relu"), ((16, 16, 16), 5, "relu"), ((16, 16), 5, "tanh")),
            d=96,
            N=192,
            networks=8,
            samples=200,
        ),
        landscape=LandscapeConfig(hidden=(4, 16, 64), layers=(1, 3), epochs=3, audit_samples=50),
        layer=LayerConfig(
            d=(120, 120, 100),
            trials=(4, 4, 1),
            n_atoms=1024,
            gap_Cs=(2, 3, 5, 8, 12, 20),
            gap_n_atoms=512,
            solver_n_base=16,
            hidden_cases=(),
            ks_tol=0.05,
        ),
        rel_allowance=0.10,
        ks_tol=0.06,
    ),
    "default": ReportConfig(
        mode="default",
        d=256,
        N=512,
        m=8,
        d_output=256,
        N_output=2048,
        Cs=(8, 16, 32, 64, 128, 256, 512, 1024),
        trials=16,
        trials_hidden=96,
        n_boot=1000,
        theory=TheoryConfig(C_points=32, samples=None),
        spectra=SpectraConfig(C=10, d=800, N=1600),
        heatmap=HeatmapConfig(Cs=(10, 100, 1000), d=16, N=160, m=8, full_C=10, train_steps=300),
        train=TrainConfig(C=20, d=50, N=200, steps=500, lr=1e-2, record_every=25),
    ),
    "full": ReportConfig(
        mode="full",
        d=1024,
        N=2048,
        m=8,
        d_output=1024,
        N_output=8192,
        Cs=(8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        trials=64,
        trials_hidden=256,
        n_boot=2000,
        theory=TheoryConfig(C_points=48, samples=None),
        spectra=SpectraConfig(C=10, d=2000, N=4000),
        heatmap=HeatmapConfig(Cs=(10, 100, 1000), d=20, N=200, m=8, full_C=20, train_steps=1000),
        train=TrainConfig(C=50, d=100, N=500, steps=1000, lr=1e-2, record_every=50),
        rel_allowance=0.03,
        ks_tol=0.03,
    ),
}


def _section_of(name: str) -> tuple[str, str] | None:
    """``"layer_Cs"`` -> ``("layer", "Cs")``: a flat prefixed setting name and its section."""
    for sec, cls in SECTIONS.items():
        sub = name.removeprefix(sec + "_")
        if sub != name and sub in cls.__dataclass_fields__:
            return sec, sub
    return None


def get_config(mode: str = "default", **overrides: Any) -> ReportConfig:
    """Return the :class:`ReportConfig` of ``mode`` (one of :data:`MODES`), with overrides.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`.
    **overrides
        A shared setting (``seed=5``), a whole section (``layer=LayerConfig(...)``) or one
        setting of a section by its prefixed name (``layer_Cs=(2, 5)`` sets ``layer.Cs``).

    Raises
    ------
    ValueError
        Unknown mode, or an override that is not a setting of :class:`ReportConfig`.
    """
    check_choice("mode", mode, MODES)
    cfg = _CONFIGS[mode]
    if not overrides:
        return cfg
    top: dict = {}
    per_section: dict[str, dict] = {}
    bad = []
    for name, value in overrides.items():
        sec = _section_of(name)
        if sec is not None:
            per_section.setdefault(sec[0], {})[sec[1]] = value
        elif name in cfg.__dataclass_fields__:
            top[name] = value
        else:
            bad.append(name)
    if bad:
        allowed = [f for f in cfg.__dataclass_fields__ if f not in SECTIONS]
        allowed += [f"{s}_{f}" for s, cls in SECTIONS.items() for f in cls.__dataclass_fields__]
        raise ValueError(
            f"unknown report setting(s) {sorted(bad)}; allowed: {sorted(allowed)} "
            f"and the sections {sorted(SECTIONS)}"
        )
    for name, values in per_section.items():
        top[name] = replace(top.get(name, getattr(cfg, name)), **values)
    return replace(cfg, **top)
