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

from dataclasses import asdict, dataclass, field, replace

from rmthess._checks import check_choice
from rmthess.cases import CASES

MODES = ("tiny", "quick", "default", "full")


@dataclass(frozen=True)
class ReportConfig:
    """Sizes, grids and tolerances of one report run.

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
    theory_C_points : int
        Points of the exact theory curve between ``min(Cs)`` and ``max(Cs)`` (log grid);
        the Monte-Carlo theory cases (hidden-ce, output-ce) are integrated at ``Cs`` only.
    theory_samples : int or None
        Monte-Carlo sample size passed to the theory layer for hidden-ce/output-ce
        (None: the theory layer's default).
    spectra_C, spectra_d, spectra_N : int
        Setting of the block-spectrum overlay (linear-ce blocks).
    heatmap_Cs : tuple of int
        Class counts of the hidden-layer heatmaps (paper Figure 6: 10, 100, 1000).
    heatmap_d, heatmap_N, heatmap_m : int
        Sizes of the heatmaps (the hidden block is ``(m d) x (m d)``).
    heatmap_full_C, heatmap_train_steps : int
        Class count of the whole-Hessian heatmap (paper Figures 2-3), drawn at
        initialization and after ``heatmap_train_steps`` Adam steps.
    train_C, train_d, train_N, train_steps, train_lr, train_record_every : int/float
        Training-dynamics setting (full-batch Adam, cosine schedule, CE, random labels).
    n_boot : int
        Bootstrap resamples of the slope fit.
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
    real_n, real_hidden, real_train_steps, real_probes : int
        Figure-1 analogue on digits: images, hidden width, Adam steps, probes per block.
    spectrum_hidden, spectrum_k : int
        Trained digits MLP whose spectrum is measured: hidden width, top eigenvalues.
    cluster_Cs, cluster_counts : tuple of int
        Clustered-data ablation: class counts and clusters per class.
    cluster_d, cluster_m, cluster_per_class : int
        Its input dimension, hidden width and samples per class.
    landscape_hidden, landscape_layers : tuple of int
        Loss-landscape experiment (seed 000): widths at L = 3 and depths L at width 16.
    landscape_orders, landscape_epochs, landscape_audit_samples : int
        Random orders, training epochs, samples per state in the Hessian-bound audit.
    layer_Cs, layer_d, layer_trials : tuple of int
        Whole-layer spectra (section ``layer``, linear-ce): the class counts of the figure
        panels, the data dimension and the number of simulated layers per panel (aligned;
        ``N = d / layer_gamma``; dense eigvalsh of ``C d x C d``, so the largest C may get
        a smaller d).
    layer_gamma : float
        ``d / N`` of the whole-layer section.
    layer_n_atoms, layer_gap_n_atoms : int
        QMC softmax draws of the layer laws (figure and checks) and of the gap curve.
    layer_gap_Cs : tuple of int
        Class counts of the gap curve (linear-ce) and its slope fit.
    layer_solver_n_base : int
        Softmax draws (times 3! permutations) of the matrix-solver check at C = 3.
    layer_hidden_cases, layer_hidden_m, layer_hidden_Cs, layer_hidden_n_atoms
        Hidden layers added to the gap figure (matrix GMP solver, ~5 s per C at m = 4 and
        256 atoms; empty in the quick mode).
    layer_ks_tol : float
        Allowed KS distance of the simulated whole-layer eigenvalues to the layer law.
    layer_edge_C_max : int
        Top-eigenvalue check only for C up to this (no outliers there; above, the law's
        edge is set by the largest atoms and outliers can appear).
    seed : int
        Base seed; every section derives its own seed from it.
    store : str or None
        A ``rmthess sweep`` result store of ``theory`` records: the theory section takes
        every limit it finds there (same case, C, gamma, m and Monte-Carlo samples) instead
        of recomputing it, and computes the rest.
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
    theory_C_points: int
    theory_samples: int | None
    spectra_C: int
    spectra_d: int
    spectra_N: int
    heatmap_Cs: tuple[int, ...]
    heatmap_d: int
    heatmap_N: int
    heatmap_m: int
    heatmap_full_C: int
    heatmap_train_steps: int
    train_C: int
    train_d: int
    train_N: int
    train_steps: int
    train_lr: float
    train_record_every: int
    n_boot: int
    k_se: float = 4.0
    rel_allowance: float = 0.05
    slope_tol: float = 0.1
    ks_tol: float = 0.05
    real_n: int = 128
    real_hidden: int = 8
    real_train_steps: int = 300
    real_probes: int = 20
    spectrum_hidden: int = 32
    spectrum_k: int = 20
    cluster_Cs: tuple[int, ...] = (2, 4, 8, 16, 32)
    cluster_counts: tuple[int, ...] = (1, 2, 4)
    cluster_d: int = 64
    cluster_m: int = 8
    cluster_per_class: int = 20
    landscape_hidden: tuple[int, ...] = (4, 8, 16, 32, 64)
    landscape_layers: tuple[int, ...] = (1, 3, 5)
    landscape_orders: int = 100
    landscape_epochs: int = 10
    landscape_audit_samples: int = 200
    layer_Cs: tuple[int, ...] = (2, 5, 20)
    layer_d: tuple[int, ...] = (400, 400, 200)
    layer_trials: tuple[int, ...] = (8, 4, 1)
    layer_gamma: float = 0.5
    layer_n_atoms: int = 4096
    layer_gap_Cs: tuple[int, ...] = (2, 3, 4, 5, 7, 10, 14, 20, 28, 35, 50)
    layer_gap_n_atoms: int = 1024
    layer_solver_n_base: int = 64
    layer_hidden_cases: tuple[str, ...] = ("hidden-ce",)
    layer_hidden_m: int = 4
    layer_hidden_Cs: tuple[int, ...] = (2, 4, 8, 16)
    layer_hidden_n_atoms: int = 256
    layer_ks_tol: float = 0.03
    layer_edge_C_max: int = 5
    seed: int = 0
    store: str | None = None
    cases: tuple[str, ...] = field(default=CASES)

    @property
    def gamma(self) -> float:
        """``gamma = d / N``."""
        return self.d / self.N

    def to_dict(self) -> dict:
        out = asdict(self)
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
        theory_C_points=12,
        theory_samples=30,
        spectra_C=5,
        spectra_d=60,
        spectra_N=120,
        heatmap_Cs=(10, 100),
        heatmap_d=5,
        heatmap_N=20,
        heatmap_m=3,
        heatmap_full_C=4,
        heatmap_train_steps=5,
        train_C=8,
        train_d=8,
        train_N=32,
        train_steps=20,
        train_lr=1e-2,
        train_record_every=5,
        n_boot=50,
        real_n=40,
        real_hidden=4,
        real_train_steps=20,
        real_probes=10,
        spectrum_hidden=8,
        spectrum_k=12,
        cluster_Cs=(2, 6),
        cluster_counts=(1, 2),
        cluster_d=16,
        cluster_m=4,
        cluster_per_class=5,
        landscape_hidden=(4,),
        landscape_layers=(1,),
        landscape_orders=10,
        landscape_epochs=1,
        landscape_audit_samples=5,
        layer_d=(30, 30, 20),
        layer_trials=(2, 2, 1),
        layer_n_atoms=256,
        layer_gap_Cs=(2, 4, 8),
        layer_gap_n_atoms=256,
        layer_solver_n_base=8,
        layer_hidden_cases=(),
        layer_ks_tol=0.3,
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
        theory_C_points=24,
        theory_samples=60,
        spectra_C=5,
        spectra_d=200,
        spectra_N=400,
        heatmap_Cs=(10, 100, 1000),
        heatmap_d=8,
        heatmap_N=64,
        heatmap_m=4,
        heatmap_full_C=10,
        heatmap_train_steps=50,
        train_C=32,
        train_d=32,
        train_N=320,
        train_steps=150,
        train_lr=2e-2,
        train_record_every=25,
        n_boot=200,
        real_train_steps=150,
        # the C - 1 outliers of the GGN separate from the bulk only from width ~32 (measured:
        # gap ratio 0.2-0.5 at h = 16, 1.7-2.4 at h = 32, 4-7 at h = 64; docs/theory.md 9.2)
        cluster_Cs=(2, 4, 8, 16),
        cluster_counts=(1, 2),
        landscape_hidden=(4, 16, 64),
        landscape_layers=(1, 3),
        landscape_epochs=3,
        landscape_audit_samples=50,
        layer_d=(120, 120, 100),
        layer_trials=(4, 4, 1),
        layer_n_atoms=1024,
        layer_gap_Cs=(2, 3, 5, 8, 12, 20),
        layer_gap_n_atoms=512,
        layer_solver_n_base=16,
        layer_hidden_cases=(),
        layer_ks_tol=0.05,
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
        theory_C_points=32,
        theory_samples=None,
        spectra_C=10,
        spectra_d=800,
        spectra_N=1600,
        heatmap_Cs=(10, 100, 1000),
        heatmap_d=16,
        heatmap_N=160,
        heatmap_m=8,
        heatmap_full_C=10,
        heatmap_train_steps=300,
        train_C=20,
        train_d=50,
        train_N=200,
        train_steps=500,
        train_lr=1e-2,
        train_record_every=25,
        n_boot=1000,
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
        theory_C_points=48,
        theory_samples=None,
        spectra_C=10,
        spectra_d=2000,
        spectra_N=4000,
        heatmap_Cs=(10, 100, 1000),
        heatmap_d=20,
        heatmap_N=200,
        heatmap_m=8,
        heatmap_full_C=20,
        heatmap_train_steps=1000,
        train_C=50,
        train_d=100,
        train_N=500,
        train_steps=1000,
        train_lr=1e-2,
        train_record_every=50,
        n_boot=2000,
        rel_allowance=0.03,
        ks_tol=0.03,
    ),
}


def get_config(mode: str = "default", **overrides) -> ReportConfig:
    """Return the :class:`ReportConfig` of ``mode`` (one of :data:`MODES`), with overrides.

    Raises
    ------
    ValueError
        Unknown mode, or an override that is not a field of :class:`ReportConfig`.
    """
    check_choice("mode", mode, MODES)
    cfg = _CONFIGS[mode]
    if overrides:
        fields = set(cfg.__dataclass_fields__)
        bad = sorted(set(overrides) - fields)
        if bad:
            raise ValueError(f"unknown report setting(s) {bad}; allowed: {sorted(fields)}")
        cfg = replace(cfg, **overrides)
    return cfg
