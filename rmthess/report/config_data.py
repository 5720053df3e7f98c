"""Settings of the report's data sections (``real-data``, ``clusters``, ``theory-on-data``):
one frozen dataclass each, held by :class:`rmthess.report.config.ReportConfig` as ``cfg.real``,
``cfg.spectrum``, ``cfg.cluster`` and ``cfg.ondata``."""

from __future__ import annotations

from dataclasses import dataclass

from rmthess._checks import check_float, check_int

__all__ = ["ClusterConfig", "OnDataConfig", "RealConfig", "SpectrumConfig"]


@dataclass(frozen=True)
class RealConfig:
    """Settings of the Figure-1 analogue on digits (section ``real-data``).

    Attributes
    ----------
    n, hidden, train_steps, probes : int
        Images, hidden width, Adam steps, probes per block.
    """

    n: int = 128
    hidden: int = 8
    train_steps: int = 300
    probes: int = 20


@dataclass(frozen=True)
class SpectrumConfig:
    """Settings of the trained digits MLP whose spectrum is measured (section ``real-data``).

    Attributes
    ----------
    hidden, k : int
        Hidden width and number of top eigenvalues.
    """

    hidden: int = 32
    k: int = 20


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of the clustered-data ablation (section ``clusters``).

    Attributes
    ----------
    Cs, counts : tuple of int
        Class counts and clusters per class.
    d, m, per_class : int
        Input dimension, hidden width and samples per class.
    """

    Cs: tuple[int, ...] = (2, 4, 8, 16, 32)
    counts: tuple[int, ...] = (1, 2, 4)
    d: int = 64
    m: int = 8
    per_class: int = 20


@dataclass(frozen=True)
class OnDataConfig:
    """Settings of the section ``theory-on-data``: measured block norms of the linear model
    on data next to the theory's levels (:func:`rmthess.curvature.theory_on_data`).

    Attributes
    ----------
    Cs : tuple of int
        Class counts of the digits runs (the images of digits ``0 .. C-1``), distinct, in
        ``[3, 10]``: at ``C = 2`` the two class blocks are ``+-`` one matrix, so
        ``F_off = F_diag`` and ``r = 1`` exactly, whatever the data (no test of the theory).
    n : int or None
        Images per digits run (stratified subset of the ``C`` classes; at most all of
        them); None: every image of the ``C`` classes (about 180 per class).
    networks, draws : int
        LeCun networks measured (also the networks of the exact theory routes) and logit
        draws per network of the exact routes (even, >= 16).
    cluster_C, cluster_d, cluster_per_class, cluster_clusters : int
        The one ``rmthess.data.clustered`` set: classes, dimension, samples per class and
        clusters per class.
    rel_allowance : float
        Checks: allowed relative deviation on top of ``k_se`` combined standard errors.
    gap_C : int
        Standardised digits with ``C >= gap_C``: the closeness checks are N/A (a measured
        gap of the class-mixture theory that is still open; the section says by how much).
    hidden_m : int
        Width of the one-hidden-layer ReLU net whose first-layer blocks are measured too
        (``theory_on_data(hidden=(m,))``), in ``[2, 256]``; 0: no hidden-layer runs.
    hidden_Cs : tuple of int
        Class counts of its digits runs (raw and standardised), distinct, in ``[3, 10]``.
    hidden_networks : int
        Networks per hidden-layer run (the exact levels run on the same networks: paired).
    """

    Cs: tuple[int, ...] = (3, 5, 10)
    n: int | None = None
    networks: int = 12
    draws: int = 1024
    cluster_C: int = 10
    cluster_d: int = 64
    cluster_per_class: int = 50
    cluster_clusters: int = 2
    rel_allowance: float = 0.05
    gap_C: int = 10
    hidden_m: int = 16
    hidden_Cs: tuple[int, ...] = (5, 10)
    hidden_networks: int = 10

    def __post_init__(self):
        if not isinstance(self.Cs, tuple) or not self.Cs:
            raise ValueError(
                f"ondata.Cs must be a non-empty tuple of class counts, got {self.Cs!r}"
            )
        Cs = tuple(check_int("ondata.Cs", C, 3, 10) for C in self.Cs)
        if len(set(Cs)) != len(Cs):
            raise ValueError(f"ondata.Cs must be distinct, got {Cs}")
        object.__setattr__(self, "Cs", tuple(sorted(Cs)))
        if self.n is not None:
            check_int("ondata.n", self.n, 2 * max(Cs), 10**6)
        check_int("ondata.networks", self.networks, 2, 10**6)
        check_int("ondata.draws", self.draws, 16, 10**7)
        if self.draws % 2:
            raise ValueError(f"ondata.draws must be even, got {self.draws}")
        check_int("ondata.cluster_C", self.cluster_C, 3, 1000)
        check_int("ondata.cluster_d", self.cluster_d, 1, 10**5)
        check_int("ondata.cluster_per_class", self.cluster_per_class, 2, 10**5)
        check_int("ondata.cluster_clusters", self.cluster_clusters, 1, 1000)
        check_float("ondata.rel_allowance", self.rel_allowance, 0.0, 10.0)
        check_int("ondata.gap_C", self.gap_C, 3, 1001)
        if self.hidden_m != 0:
            check_int("ondata.hidden_m", self.hidden_m, 2, 256)
        if not isinstance(self.hidden_Cs, tuple) or not self.hidden_Cs:
            raise ValueError(
                f"ondata.hidden_Cs must be a non-empty tuple of class counts, got "
                f"{self.hidden_Cs!r}"
            )
        hCs = tuple(check_int("ondata.hidden_Cs", C, 3, 10) for C in self.hidden_Cs)
        if len(set(hCs)) != len(hCs):
            raise ValueError(f"ondata.hidden_Cs must be distinct, got {hCs}")
        object.__setattr__(self, "hidden_Cs", tuple(sorted(hCs)))
        check_int("ondata.hidden_networks", self.hidden_networks, 2, 10**6)


@dataclass(frozen=True)
class DepthConfig:
    """Settings of the section ``depth``: every layer's block map of MLPs at init against
    :func:`rmthess.theory.depth_frobenius` (issue 20).

    Attributes
    ----------
    cells : tuple of (widths, C, activation)
        The networks: hidden widths (a tuple), classes and activation.
    d, N : int
        Gaussian inputs ``x ~ N(0, I_d)``, ``N`` samples, uniform labels.
    networks : int
        Measured networks per cell (the SE is over them).
    samples : int
        Monte-Carlo networks of the theory per cell.
    tol : float
        Relative allowance of the ratio check (the issue's 10 %), on top of 3 combined SEs.
    """

    cells: tuple = (
        ((32,), 10, "relu"),
        ((32, 32), 2, "relu"),
        ((32, 32), 10, "relu"),
        ((32, 32, 32), 10, "relu"),
        ((16, 4), 10, "relu"),
        ((16, 64), 10, "relu"),
        ((32, 32), 10, "tanh"),
    )
    d: int = 128
    N: int = 256
    networks: int = 12
    samples: int = 300
    tol: float = 0.10
