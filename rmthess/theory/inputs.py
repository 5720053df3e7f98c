"""Input statistics for the theory beyond isotropic Gaussian inputs (issue 19).

Every prediction of :mod:`rmthess.theory` assumes ``x ~ N(0, I_d)`` unless it is given an
:class:`InputStats`: the law ``x = mu + Sigma^{1/2} g`` (``g ~ N(0, I_d)``) summarised by
what the theory of the linear model needs (docs/theory.md section 4, "Anisotropic inputs"):

- ``tau_k = tr Sigma^k / d`` (k = 1..4) and ``d_eff = (tr Sigma)^2 / tr Sigma^2 = d tau_1^2 /
  tau_2``: the finite-size corrections of the limits are ``O(C / d_eff)``, not ``O(1/d)``;
- the mean: ``mean_sq = |mu|^2 / d``, ``mean_cov = mu^T Sigma mu / d`` and the spike
  ``mean_spike = |mu|^4 / d`` (it enters the off-diagonal Frobenius norms, and dominates them
  for raw pixels);
- the spectrum itself (``eigenvalues``, descending) and the mean in the eigenbasis of
  ``Sigma`` (``mean_coords``): with a Gaussian (rotation-invariant) weight matrix, the law
  of the Hessian blocks depends on ``(Sigma, mu)`` only through them;
- with labels: class weights, class means, the within-class covariances, ``tau_k`` and
  ``d_eff``. Statistics with class covariances describe the Gaussian mixture ``x | class k ~
  N(mu_k, Sigma_k)`` and select the mixture theory (``level == "mixture"``,
  :mod:`rmthess.theory.mixture_linear`); :meth:`InputStats.pooled` drops the class structure
  (one Gaussian with the pooled mean and covariance).

:func:`input_stats` computes them from data (an array, ``(X, y)`` or any object with ``X``
and ``y`` attributes, such as :class:`rmthess.data.Dataset`); :meth:`InputStats.from_spectrum`
from a covariance spectrum and an optional mean; :meth:`InputStats.from_mixture` from the
components of a Gaussian mixture. numpy only (no torch).

Zero-variance features (constant pixels) are kept: they are zero eigenvalues of ``Sigma``,
count in ``d`` (the Hessian block still has ``d`` rows) and lower ``tau_k``; their number
is ``n_constant`` (features with standard deviation ``<= 1e-12 (1 + |mean|)``, the rule of
:meth:`rmthess.data.Dataset.standardize`) and the rank of ``Sigma`` is ``rank``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rmthess._checks import (
    check_bool,
    check_data_matrix,
    check_int,
    check_memory,
    physical_memory,
)
from rmthess._random import check_seed
from rmthess._stats import json_safe

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

__all__ = ["D_EFF_WARN", "InputStats", "input_stats"]

D_EFF_WARN = 10.0
""":func:`input_stats` and :meth:`InputStats.from_spectrum` warn (``RuntimeWarning``) below
this effective dimension: the logit covariance ``W Sigma W^T`` then fluctuates by more
than ``1/sqrt(d_eff)`` ~ 30 % around ``sigma^2 tau_1 I`` and no limit applies."""
CLASS_COV_RAM = 0.25
""":func:`input_stats` keeps the class covariances (``K d^2`` numbers, the mixture theory)
only where they take at most this fraction of the RAM, else warns and drops them."""
_ZERO_REL = 1e-12  # eigenvalues below this times the largest count as zero (rank)
_NEG_REL = 1e-9  # eigenvalues below -this times the largest: not a covariance


@dataclass(frozen=True, eq=False, repr=False)
class InputStats:
    """Second-order statistics of the inputs ``x = mu + Sigma^{1/2} g`` (module docstring).

    Attributes
    ----------
    d, n : int
        Input dimension; number of samples they were computed from (0 from a spectrum).
    tau1, tau2, tau3, tau4 : float
        ``tr Sigma^k / d``.
    d_eff : float
        ``(tr Sigma)^2 / tr Sigma^2``.
    mean_sq, mean_cov, mean_spike : float
        ``|mu|^2 / d``, ``mu^T Sigma mu / d`` and ``|mu|^4 / d`` (all 0 when centred).
    rank, n_constant : int
        Rank of ``Sigma``; features of zero variance (0 from a spectrum).
    centred : bool
        The mean was set to 0 (``input_stats(..., centred=True)`` or no mean given).
    source : str
        ``"data"``, ``"spectrum"`` or ``"mixture"``.
    eigenvalues : (d,) ndarray
        Spectrum of ``Sigma``, descending (negative round-off clipped to 0).
    mean_coords : (d,) ndarray
        ``U^T mu`` in the eigenbasis ``U`` of ``Sigma`` (zeros when centred).
    class_weights : (K,) ndarray or None
        ``n_k / n`` for each class (labels given only).
    class_means : (K, d) ndarray or None
        Class means in the input coordinates (minus the pooled mean when ``centred``).
    class_tau : (K, 4) ndarray or None
        Within-class ``tau_1..tau_4`` (covariance of each class about its own mean).
    class_d_eff : (K,) ndarray or None
        Within-class effective dimension.
    class_covariances : (K, d, d) ndarray or None
        Within-class covariances (``ddof=0``) in the input coordinates; present, they select
        the mixture theory (:attr:`level`). Classes without samples: weight 0, NaN.
    component_class : (K,) ndarray or None
        The class of each mixture component when the classes were split into k-means
        clusters (``input_stats(X, y, per_class=Q)``, :mod:`rmthess.theory.input_clusters`);
        then the ``class_*`` fields are per component. None: the components are the classes.
    sq_norms : (n,) ndarray or None
        ``|x_i|^2 / d`` of the data's samples (the data route only; centred when
        ``centred``): the empirical norm law behind ``conditional_frobenius(...,
        self_term="data")``.
    """

    d: int
    n: int
    tau1: float
    tau2: float
    tau3: float
    tau4: float
    d_eff: float
    mean_sq: float
    mean_cov: float
    mean_spike: float
    rank: int
    n_constant: int
    centred: bool
    source: str
    eigenvalues: np.ndarray
    mean_coords: np.ndarray
    class_weights: np.ndarray | None = None
    class_means: np.ndarray | None = None
    class_tau: np.ndarray | None = None
    class_d_eff: np.ndarray | None = None
    class_covariances: np.ndarray | None = None
    sq_norms: np.ndarray | None = None
    component_class: np.ndarray | None = None

    # ------------------------------------------------------------------ derived
    @property
    def n_classes(self) -> int:
        """Number of classes (0 without labels)."""
        if self.component_class is not None:
            return int(self.component_class.max()) + 1
        return self.n_components

    @property
    def n_components(self) -> int:
        """Number of mixture components ``K`` (the classes, or their k-means clusters; 0
        without labels)."""
        return 0 if self.class_weights is None else int(self.class_weights.size)

    @property
    def has_mean(self) -> bool:
        """``mu != 0``."""
        return self.mean_sq > 0

    @property
    def isotropic(self) -> bool:
        """``Sigma = tau_1 I`` and ``mu = 0`` (to relative 1e-12): the isotropic theory."""
        lam = self.eigenvalues
        return (not self.has_mean) and bool(lam[0] - lam[-1] <= 1e-12 * lam[0])

    @property
    def level(self) -> str:
        """Which theory these statistics select: ``"mixture"`` (class covariances given: a
        Gaussian mixture with one component per class), else ``"isotropic"`` (``Sigma = I``,
        ``mu = 0``), ``"anisotropic"`` (centred) or ``"mean-aware"`` (``mu != 0``)."""
        if self.class_covariances is not None:
            return "mixture"
        if self.has_mean:
            return "mean-aware"
        if self.isotropic and abs(self.tau1 - 1.0) <= 1e-12:
            return "isotropic"
        return "anisotropic"

    @property
    def pair_moment(self) -> float:
        """``E[(x·x')^2] / d = tau_2 + 2 mean_cov + mean_spike`` for independent ``x, x'``
        (``||Sigma + mu mu^T||_F^2 / d``): the coefficient of ``(E a)^2`` in ``F``."""
        return self.tau2 + 2.0 * self.mean_cov + self.mean_spike

    @property
    def norm_moment(self) -> float:
        """``lim E|x|^4 / d^2 = (tau_1 + mean_sq)^2``: the coefficient of ``gamma E[a^2]``."""
        return (self.tau1 + self.mean_sq) ** 2

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_spectrum(
        cls, eigenvalues: npt.ArrayLike, mean: npt.ArrayLike | None = None
    ) -> InputStats:
        """Statistics of ``x ~ N(mu, Sigma)`` from the eigenvalues of ``Sigma`` (any order)
        and, optionally, the mean ``mu`` written in the eigenbasis of ``Sigma`` (shape
        ``(d,)``; only its coordinates along the eigenvectors matter).

        ``ValueError`` naming ``eigenvalues`` for a non-finite, non-1-D or empty spectrum,
        a negative eigenvalue (not positive semi-definite: below ``-1e-9`` times the
        largest) or a singular one (all eigenvalues 0); ``mean`` of another length or
        non-finite: ``ValueError`` naming ``mean``. Zero eigenvalues are allowed (a
        covariance of rank ``< d``, as data with constant features have). A
        ``RuntimeWarning`` gives ``d_eff`` when it is below :data:`D_EFF_WARN`.
        """
        lam = _spectrum(eigenvalues)
        m = np.zeros_like(lam) if mean is None else _vector("mean", mean, lam.size)
        order = np.argsort(-lam, kind="stable")
        return _build(lam[order], m[order], n=0, centred=mean is None, source="spectrum")

    @classmethod
    def from_mixture(
        cls, weights: npt.ArrayLike, means: npt.ArrayLike, covariances: npt.ArrayLike
    ) -> InputStats:
        """Statistics of the Gaussian mixture ``x | k ~ N(mu_k, Sigma_k)`` with weights
        ``pi_k`` (``weights``: ``(K,)``, >= 0, normalised here), ``means`` ``(K, d)`` and
        ``covariances`` ``(K, d, d)`` (symmetric positive semi-definite): the class fields
        and the pooled ``mu = sum pi_k mu_k``, ``Sigma = sum pi_k (Sigma_k + mu_k mu_k^T) -
        mu mu^T``. ``ValueError`` naming the argument for a bad shape, a non-finite value,
        a negative weight or a non-PSD covariance."""
        from rmthess.theory.mixture_linear import check_mixture

        w, mus, covs = check_mixture(weights, means, covariances)
        mu = w @ mus
        second = np.einsum("k,kij->ij", w, covs) + np.einsum("k,ki,kj->ij", w, mus, mus)
        lam, U = np.linalg.eigh(second - np.outer(mu, mu))
        stats = _build(
            _spectrum(lam[::-1]), U[:, ::-1].T @ mu, n=0, centred=False, source="mixture"
        )
        from rmthess.theory.input_clusters import attach_classes

        return attach_classes(stats, w, mus, covs)

    def pooled(self) -> InputStats:
        """The same statistics without the class covariances: one Gaussian with the pooled
        mean and covariance (level ``"mean-aware"`` or ``"anisotropic"``)."""
        return replace(self, class_covariances=None)

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict:
        """Every scalar, flat and JSON-safe: ``d, n, tau1..tau4, d_eff, mean_sq, mean_cov,
        mean_spike, pair_moment, norm_moment, rank, n_constant, centred, source, level,
        n_classes, lambda_max, lambda_min``. The arrays are in :meth:`to_frame`."""
        lam = self.eigenvalues
        return json_safe(
            {
                "d": self.d,
                "n": self.n,
                "tau1": self.tau1,
                "tau2": self.tau2,
                "tau3": self.tau3,
                "tau4": self.tau4,
                "d_eff": self.d_eff,
                "mean_sq": self.mean_sq,
                "mean_cov": self.mean_cov,
                "mean_spike": self.mean_spike,
                "pair_moment": self.pair_moment,
                "norm_moment": self.norm_moment,
                "rank": self.rank,
                "n_constant": self.n_constant,
                "centred": self.centred,
                "source": self.source,
                "level": self.level,
                "n_classes": self.n_classes,
                "lambda_max": float(lam[0]),
                "lambda_min": float(lam[-1]),
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy ``pandas.DataFrame``: one row per class (``class, weight, mean_sq, tau1..tau4,
        d_eff``: ``mean_sq = |mu_k|^2 / d``) when labels were given, else the one row of
        :meth:`to_dict`; one row per component (a ``component`` column first) when the
        classes were split (``per_class``)."""
        import pandas as pd

        if self.class_weights is None:
            return pd.DataFrame([self.to_dict()])
        assert self.class_means is not None and self.class_tau is not None
        assert self.class_d_eff is not None
        owner = self.component_class
        cols: dict[str, Any] = {
            "class": np.arange(self.n_components) if owner is None else owner,
            "weight": self.class_weights,
            "mean_sq": np.sum(self.class_means**2, axis=1) / self.d,
        }
        for k in range(4):
            cols[f"tau{k + 1}"] = self.class_tau[:, k]
        cols["d_eff"] = self.class_d_eff
        frame = pd.DataFrame(cols)
        if owner is not None:
            frame.insert(0, "component", np.arange(self.n_components))
        return frame

    def __repr__(self) -> str:
        return (
            f"InputStats(d={self.d}, n={self.n}, level={self.level!r}, tau1={self.tau1:.4g}, "
            f"tau2={self.tau2:.4g}, d_eff={self.d_eff:.4g}, mean_sq={self.mean_sq:.4g}, "
            f"mean_spike={self.mean_spike:.4g}, n_classes={self.n_classes})"
        )


def input_stats(
    X: Any,
    y: npt.ArrayLike | None = None,
    *,
    centred: bool = False,
    n_classes: int | None = None,
    per_class: int = 1,
    seed: int = 0,
) -> InputStats:
    """Input statistics of a data set (module docstring).

    Parameters
    ----------
    X : (N, d) array-like, or an object with ``X`` and ``y`` attributes
        The inputs (rows are samples; images flattened), finite, ``N >= 2``. A
        :class:`rmthess.data.Dataset` (or anything with ``.X`` and ``.y``) brings its labels.
    y : (N,) array-like of int, optional
        Labels: the per-class weights, means and within-class ``tau_k`` are computed.
    centred : bool
        True: the mean is dropped (statistics of the centred data, ``mu = 0``); False
        (default): the data as they are, mean included (the mean-aware theory).
    n_classes : int, optional
        Number of classes (default ``max(y) + 1``); classes without samples get weight 0
        and NaN statistics.
    per_class : int in [1, 64]
        Gaussian components per class (default 1: the class mixture). Above 1 each class is
        split into up to ``per_class`` k-means clusters (:mod:`rmthess.theory.input_clusters`;
        needs ``y``), each a component of the mixture with its own weight, mean and
        covariance; :attr:`InputStats.component_class` says which class each belongs to.
    seed : int, seeds the k-means (``per_class > 1``).

    Returns
    -------
    InputStats
        ``Sigma`` is the sample covariance about the sample mean (``ddof=0``).

    Raises ``ValueError`` naming ``X`` (not 2-D, fewer than 2 rows, NaN or inf: the first bad
    row is named), ``y`` (length other than N, a label outside ``[0, n_classes)``) or
    ``n_classes``; ``TypeError`` for non-numeric ``X`` or non-integer labels. A
    ``RuntimeWarning`` gives ``d_eff`` when it is below :data:`D_EFF_WARN`.
    """
    if y is None and hasattr(X, "X") and hasattr(X, "y"):
        if n_classes is None:
            n_classes = getattr(X, "n_classes", None)
        X, y = X.X, X.y
    centred = check_bool("centred", centred)
    per_class = check_int("per_class", per_class, 1, 64)
    seed = check_seed(seed)
    if per_class > 1 and y is None:
        raise ValueError(f"per_class = {per_class} > 1 needs the labels y (it splits classes)")
    Xa = _matrix(X)
    N, d = Xa.shape
    labels = None if y is None else _labels(y, N, n_classes)
    owner = None
    if labels is not None and per_class > 1:
        from rmthess.theory.input_clusters import split_classes

        comp, owner = split_classes(Xa, labels[0], labels[1], per_class, seed)
        labels = (comp, owner.size)
    K = 0 if labels is None else labels[1]
    ram = physical_memory()
    keep = K > 0 and (ram is None or 8.0 * K * d * d <= CLASS_COV_RAM * ram)
    if K and not keep:
        warnings.warn(
            f"input_stats: {K} class covariances of {d} x {d} would take "
            f"{8.0 * K * d * d / 2**30:.3g} GiB, more than {CLASS_COV_RAM:.0%} of the RAM: "
            "they are not kept and the statistics do not select the mixture theory",
            RuntimeWarning,
            stacklevel=2,
        )
    check_memory(
        8.0 * ((4 + (K if keep else 0)) * d * d + N * d),
        f"input statistics of a {N} x {d} data set",
    )
    mu = Xa.mean(axis=0)
    Xc = Xa - mu
    lam, U = np.linalg.eigh(Xc.T @ Xc / N)
    lam, U = lam[::-1], U[:, ::-1]
    sd = Xa.std(axis=0)
    n_constant = int(np.sum(sd <= 1e-12 * (1.0 + np.abs(mu))))
    coords = np.zeros(d) if centred else U.T @ mu
    stats = _build(np.maximum(lam, 0.0), coords, n=N, centred=centred, source="data")
    q = np.sum((Xc if centred else Xa) ** 2, axis=1) / d
    q.flags.writeable = False
    stats = replace(stats, n_constant=n_constant, sq_norms=q)
    if labels is None:
        return stats
    from rmthess.theory.input_clusters import with_classes

    stats = with_classes(stats, Xa, labels, mu if centred else None, keep)
    return stats if owner is None else replace(stats, component_class=owner)


# ---------------------------------------------------------------------- helpers
def _matrix(X) -> np.ndarray:
    return check_data_matrix("X", X, min_rows=2)


def _labels(y, N: int, n_classes) -> tuple[np.ndarray, int]:
    ya = np.asarray(y)
    if ya.dtype.kind == "f" and ya.size and np.all(np.isfinite(ya)) and np.all(ya == np.round(ya)):
        ya = ya.astype(np.int64)
    if ya.dtype.kind not in "biu":
        raise TypeError(f"y must hold integer labels, got dtype {ya.dtype}")
    if ya.shape != (N,):
        raise ValueError(f"y must have shape ({N},) to match X's {N} rows, got {ya.shape}")
    K = int(ya.max()) + 1 if n_classes is None else check_int("n_classes", n_classes, 1)
    if ya.min() < 0 or ya.max() >= K:
        raise ValueError(f"y must hold labels in [0, {K}), got [{ya.min()}, {ya.max()}]")
    return ya.astype(np.int64), K


def _spectrum(eigenvalues) -> np.ndarray:
    try:
        lam = np.asarray(eigenvalues, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"eigenvalues must be a 1-D array of numbers: {exc}") from None
    if lam.ndim != 1 or lam.size < 1 or not np.all(np.isfinite(lam)):
        raise ValueError(
            f"eigenvalues must be a non-empty, finite 1-D array, got shape {lam.shape}"
        )
    top = float(np.max(np.abs(lam)))
    if top == 0.0:
        raise ValueError("eigenvalues are all 0: a singular covariance (no input variance)")
    if lam.min() < -_NEG_REL * top:
        raise ValueError(
            f"eigenvalues must be >= 0 (a covariance is positive semi-definite), got min "
            f"{lam.min():.3g}"
        )
    return np.maximum(lam, 0.0)


def _vector(name: str, value, d: int) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-D array of numbers: {exc}") from None
    if v.shape != (d,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be a finite array of shape ({d},), got shape {v.shape}")
    return v


def _taus(lam: np.ndarray) -> tuple[float, float, float, float, float]:
    d = lam.size
    t = [float(np.sum(lam**k) / d) for k in (1, 2, 3, 4)]
    d_eff = d * t[0] ** 2 / t[1] if t[1] > 0 else 0.0
    return t[0], t[1], t[2], t[3], d_eff


def _build(lam: np.ndarray, coords: np.ndarray, *, n: int, centred: bool, source: str):
    d = lam.size
    if lam[0] <= 0:
        raise ValueError("X has no variance (every feature is constant): Sigma = 0")
    t1, t2, t3, t4, d_eff = _taus(lam)
    msq = float(coords @ coords)
    if d_eff < D_EFF_WARN:
        warnings.warn(
            f"effective dimension d_eff = (tr Sigma)^2 / tr Sigma^2 = {d_eff:.3g} < "
            f"{D_EFF_WARN:g}: the logits W x are far from their limit law (fluctuations "
            f"~1/sqrt(d_eff) = {d_eff**-0.5:.2f}); the limits do not apply",
            RuntimeWarning,
            stacklevel=3,
        )
    lam = lam.copy()
    coords = coords.copy()
    lam.flags.writeable = False
    coords.flags.writeable = False
    return InputStats(
        d=d,
        n=n,
        tau1=t1,
        tau2=t2,
        tau3=t3,
        tau4=t4,
        d_eff=d_eff,
        mean_sq=msq / d,
        mean_cov=float(coords @ (lam * coords)) / d,
        mean_spike=msq * msq / d,
        rank=int(np.sum(lam > _ZERO_REL * lam[0])),
        n_constant=0,
        centred=centred,
        source=source,
        eigenvalues=lam,
        mean_coords=coords,
    )
