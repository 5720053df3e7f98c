r"""Audit of the loss-landscape paper's Hessian bounds (Theorem 1, Lemma 1) and corrected ones.

Setting (Kiselev & Grabovoy, section 4): a bias-free ReLU MLP with ``L`` weight matrices
``W^(1..L)``, logits ``z``, cross-entropy, per-sample Hessian ``H_i`` and its Gauss-Newton
part ``G_i = J_i^T A_i J_i`` (:mod:`rmthess.landscape.per_sample`). Notation:
``s_p = ||W^(p)||_2``, ``M_W = max_p s_p``, ``M_x = max_i ||x_i||_2`` over the data,
``M = max |w|`` over all weights, ``h`` the hidden width.

The paper's statements, exactly (``paper/main.tex``):

- Theorem 1: "Suppose ``||W^(p)||_2 <= M_W`` and ``||x_i||_2 <= M_x`` for all layers
  ``p = 1..L`` in network and for all objects ``i = 1..m``. Then, for any object
  ``||H_i(theta)||_2 <= L sqrt(2) M_x^2 M_W^{2L} + sqrt(2) M_W^2 (M_W^{2L} - 1) / (M_W^2 - 1)``."
- Lemma 1: "If ``|w_ij^(p)| <= M`` for all ``i, j = 1..h`` and all layers, then
  ``||H_i||_2 <= L sqrt(2) M_x^2 (hM)^{2L} + sqrt(2) (hM)^2 ((hM)^{2L} - 1) / ((hM)^2 - 1)``."
- The proof's last per-layer line (appendix), here ``theorem1_layers``:
  ``||H_i||_2 <= sqrt(2) sum_p (||x_i||^2 prod_{s<p} s_s^2 + 1) prod_{s>=p} s_s^2``.

What the proof does (and where it breaks), derived in docs (section 9.3):

1. It bounds ``G_i`` only (``H_i ~ F^T A F``); the residual part
   ``R_i = sum_k r_k grad^2 z_k`` (``r = p - e_y``) is dropped, but for ``L >= 2`` it is
   nonzero (ReLU nets are multilinear in the weights between kinks) and dominates
   ``H_i`` at initialisation.
2. ``||A||_2 <= sqrt 2`` is valid but loose: ``||A||_2 <= 1/2`` (Gershgorin,
   ``2 p_k (1 - p_k) <= 1/2``; equality for ``K = 2``, ``p = (1/2, 1/2)``).
3. ``||G^(p)||_2 <= prod_{s=p}^{L} s_s`` is false: ``G^(p) = dz/dz^(p)`` contains
   ``W^(p+1..L)`` only, so the bound has one factor ``s_p^2`` too many in every term; it fails
   when the weights are small (``M_W < 1``).
4. The ``+1`` terms (the geometric sum) are the bias rows of ``F``; a bias-free net has none,
   so they only loosen the bound. The closed form is ``0/0`` at ``M_W = 1``; its limit
   ``L`` is used (the sum ``sum_{j=1}^{L} M_W^{2j}`` is evaluated directly).
5. Lemma 1 uses ``||W||_2 <= h M``, true for ``h x h`` matrices only: the first layer is
   ``h x n`` and the last ``K x h``, where ``||W||_2`` can reach ``M sqrt(n h)``.

Corrected bounds (proved in the docs, tested here), with ``B`` the ``L x L`` matrix with zero
diagonal and ``B_pq = prod_{s != p, q} s_s``:

- ``corrected_ggn_i``: ``||G_i||_2 <= (1/2) ||x_i||^2 sum_p prod_{s != p} s_s^2``;
- ``corrected_i``: ``||H_i||_2 <= corrected_ggn_i + sqrt(2) ||x_i|| lambda_max(B)``
  (``||r||_2 <= sqrt 2``);
- ``corrected``: the same with ``s_p <= M_W``, ``||x_i|| <= M_x``:
  ``(1/2) L M_x^2 M_W^{2(L-1)} + sqrt(2) (L-1) M_x M_W^{L-2}``;
- ``corrected_lemma1``: ``corrected`` with ``M_W = M max_p sqrt(d_{p-1} d_p)``
  (``||W||_2 <= ||W||_F``).

A bound "holds" at sample ``i`` when ``bound >= (1 - margin) exact`` with ``margin = 1e-8``
(Lanczos stops at relative residual 1e-10; float64 round-off of the exact norms ~1e-14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from rmthess._checks import check_choice, check_int, check_positive_float
from rmthess._random import rng
from rmthess._stats import json_safe
from rmthess.landscape.models import check_relu_mlp
from rmthess.landscape.per_sample import DENSE_MAX_P, MEMORY, _curvature, check_xy, to_tensors

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from rmthess.curvature._types import Data, Loss

__all__ = [
    "BOUND_CHECKS",
    "BoundAudit",
    "corrected_bound",
    "corrected_layer_bound",
    "hessian_bound_audit",
    "paper_theorem1",
]

MARGIN = 1e-8
BOUND_CHECKS = (
    ("theorem1", "H"),
    ("theorem1", "G"),
    ("theorem1_i", "H"),
    ("theorem1_i", "G"),
    ("theorem1_layers", "H"),
    ("theorem1_layers", "G"),
    ("lemma1", "H"),
    ("corrected", "H"),
    ("corrected_i", "H"),
    ("corrected_lemma1", "H"),
    ("corrected_ggn_i", "G"),
)
"""``(bound, target)`` pairs audited: target ``"H"`` is ``||H_i||_2`` (what the paper's
statements claim), ``"G"`` is ``||G_i||_2`` (what their proof addresses)."""
BOUNDS = tuple(dict.fromkeys(b for b, _ in BOUND_CHECKS))


# ---------------------------------------------------------------------------- formulas
def paper_theorem1(M_W: float, M_x: ArrayLike, L: int) -> float | np.ndarray:
    """The paper's Theorem 1 right side, ``L sqrt2 M_x^2 M_W^{2L} + sqrt2 sum_{j=1}^L M_W^{2j}``.

    The sum is the paper's ``M_W^2 (M_W^{2L} - 1) / (M_W^2 - 1)`` evaluated term by term, so
    ``M_W = 1`` gives its limit ``L`` instead of ``0/0``. ``M_x`` may be an array.
    """
    geo = sum(M_W ** (2 * j) for j in range(1, L + 1))
    return L * math.sqrt(2) * np.square(M_x) * M_W ** (2 * L) + math.sqrt(2) * geo


def corrected_bound(M_W: float, M_x: ArrayLike, L: int) -> float | np.ndarray:
    """``(1/2) L M_x^2 M_W^{2(L-1)} + sqrt2 (L-1) M_x M_W^{L-2}`` (``>= ||H_i||_2``; docs 9.3).

    Valid for every bias-free ReLU MLP with ``||W^(p)||_2 <= M_W`` and ``||x_i|| <= M_x``
    (``0^0 = 1``: at ``L = 2`` the residual term is ``sqrt2 M_x``).
    """
    res = math.sqrt(2) * (L - 1) * np.asarray(M_x) * M_W ** (L - 2) if L >= 2 else 0.0
    return 0.5 * L * np.square(M_x) * M_W ** (2 * (L - 1)) + res


def corrected_layer_bound(
    layer_norms: ArrayLike, x_norm: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """``(ggn, full)``: the per-layer corrected bounds of ``||G_i||_2`` and ``||H_i||_2``.

    ``ggn = (1/2) |x|^2 sum_p prod_{s != p} s_s^2``;
    ``full = ggn + sqrt2 |x| lambda_max(B)``, ``B_pq = prod_{s != p,q} s_s`` (``p != q``),
    ``B_pp = 0``. ``x_norm`` may be an array.
    """
    s = np.asarray(layer_norms, dtype=float)
    L = len(s)
    x = np.asarray(x_norm, dtype=float)
    others = np.array([np.prod(np.delete(s, p)) for p in range(L)])
    ggn = 0.5 * x**2 * np.sum(others**2)
    B = np.zeros((L, L))
    for p in range(L):
        for q in range(L):
            if p != q:
                B[p, q] = np.prod(np.delete(s, [p, q]))
    lam = float(np.linalg.eigvalsh(B)[-1]) if L >= 2 else 0.0
    return ggn, ggn + math.sqrt(2) * x * lam


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True)
class BoundAudit:
    """Per-sample exact norms against the paper's and the corrected bounds.

    Per sample (arrays over ``samples``, the audited rows of the data): ``norm_H`` (exact
    ``||H_i||_2``; NaN with ``kind="ggn"``), ``eig_H`` (its signed extreme eigenvalue),
    ``norm_G`` (``||G_i||_2``), ``x_norm`` (``||x_i||``), and in ``values`` one array per
    bound of :data:`BOUNDS` (also attributes: ``audit.theorem1``, ``audit.corrected_i``...).
    ``holds(bound, target)``: ``bound >= (1 - margin) exact``; attributes
    ``holds_<bound>`` (target H, as the paper states; G for ``corrected_ggn_i``) and
    ``holds_<bound>_G``.

    Constants: ``L``, ``h`` (largest hidden width, None when ``L = 1``: Lemma 1 is then
    undefined and its values NaN), ``M_W``, ``M_x`` (over all of the data given), ``M``,
    ``layer_norms`` (``s_p``), ``widths`` (``d_0 = n, ..., d_L = C``).
    """

    samples: np.ndarray
    norm_H: np.ndarray
    eig_H: np.ndarray
    norm_G: np.ndarray
    x_norm: np.ndarray
    values: dict = field(repr=False)
    L: int = 0
    h: int | None = None
    M_W: float = math.nan
    M_x: float = math.nan
    M: float = math.nan
    layer_norms: tuple = ()
    widths: tuple = ()
    kind: str = "hessian"
    method: str = ""
    residual_max: float = 0.0
    margin: float = MARGIN

    def exact(self, target: str) -> np.ndarray:
        return {"H": self.norm_H, "G": self.norm_G}[check_choice("target", target, ("H", "G"))]

    def checks(self) -> tuple:
        """The ``(bound, target)`` pairs evaluated (H targets need ``kind="hessian"``)."""
        return tuple((b, t) for b, t in BOUND_CHECKS if t == "G" or self.kind == "hessian")

    def ratio(self, bound: str, target: str = "H") -> np.ndarray:
        """``bound / exact`` per sample (inf where the exact norm is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.values[check_choice("bound", bound, BOUNDS)] / self.exact(target)

    def holds(self, bound: str, target: str = "H") -> np.ndarray:
        v = self.values[check_choice("bound", bound, BOUNDS)]
        return v >= (1 - self.margin) * self.exact(target)

    def summary(self) -> pd.DataFrame:
        """One row per ``(bound, target)``: fraction holding, looseness (bound / exact:
        min, median, max) and the worst sample (smallest ratio) with its values."""
        rows = []
        for b, t in self.checks():
            r, ok = self.ratio(b, t), self.holds(b, t)
            finite = np.isfinite(self.values[b])
            k = int(np.argmin(np.where(finite & ~np.isnan(r), r, np.inf))) if finite.any() else 0
            rows.append(
                {
                    "bound": b,
                    "target": t,
                    "n": len(r),
                    "holds_fraction": float(np.mean(ok)) if finite.any() else math.nan,
                    "ratio_min": float(np.nanmin(r)) if finite.any() else math.nan,
                    "ratio_median": float(np.nanmedian(r)) if finite.any() else math.nan,
                    "ratio_max": float(np.nanmax(r)) if finite.any() else math.nan,
                    "worst_sample": int(self.samples[k]),
                    "worst_exact": float(self.exact(t)[k]),
                    "worst_bound": float(self.values[b][k]),
                }
            )
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """Tidy: one row per sample and ``(bound, target)``:
        ``sample, bound, target, exact, value, ratio, holds``."""
        parts = []
        for b, t in self.checks():
            parts.append(
                pd.DataFrame(
                    {
                        "sample": self.samples,
                        "bound": b,
                        "target": t,
                        "exact": self.exact(t),
                        "value": self.values[b],
                        "ratio": self.ratio(b, t),
                        "holds": self.holds(b, t),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)

    def to_dict(self) -> dict:
        """Flat JSON-safe record: constants, then ``<bound>_<target>_<summary column>``."""
        rec = {
            "n_samples": len(self.samples),
            "L": self.L,
            "h": self.h,
            "M_W": self.M_W,
            "M_x": self.M_x,
            "M": self.M,
            "layer_norms": " ".join(f"{s:.6g}" for s in self.layer_norms),
            "widths": " ".join(map(str, self.widths)),
            "kind": self.kind,
            "method": self.method,
            "residual_max": self.residual_max,
            "margin": self.margin,
        }
        for row in self.summary().to_dict("records"):
            key = f"{row.pop('bound')}_{row.pop('target')}"
            for k, v in row.items():
                rec[f"{key}_{k}"] = v
        return json_safe(rec)


def _value_property(name):
    return property(lambda self: self.values[name], doc=f"Per-sample values of {name}.")


def _holds_property(name, target):
    return property(
        lambda self: self.holds(name, target), doc=f"{name} >= ||{target}_i|| per sample."
    )


for _b in BOUNDS:
    setattr(BoundAudit, _b, _value_property(_b))
    setattr(BoundAudit, f"holds_{_b}", _holds_property(_b, "G" if _b.endswith("ggn_i") else "H"))
    setattr(BoundAudit, f"holds_{_b}_G", _holds_property(_b, "G"))


# ---------------------------------------------------------------------------- audit
def hessian_bound_audit(
    model: nn.Module,
    data: Data,
    loss_fn: Loss = "ce",
    *,
    samples: int | ArrayLike | None = None,
    kind: str = "hessian",
    method: str = "auto",
    tol: float = 1e-10,
    seed: int = 0,
    chunk: int | None = None,
) -> BoundAudit:
    """Exact per-sample ``||H_i||_2``, ``||G_i||_2`` against Theorem 1, Lemma 1 and corrections.

    Parameters
    ----------
    model : bias-free ReLU MLP (else ``ValueError`` saying which bounds do not apply)
    data : ``rmthess.data.Dataset`` or ``(X, y)``; ``M_x`` is the largest ``||x_i||`` over
        ALL of it, whatever ``samples``
    loss_fn : ``"ce"`` or an ``nn.CrossEntropyLoss`` without class weights or label
        smoothing (the bounds use ``A = diag p - p p^T``, ``r = p - e_y``)
    samples : which rows to audit: None (all), an int ``n`` (``n`` rows drawn without
        replacement, ``numpy.random.default_rng(seed)``, kept in order) or an index array
    kind : ``"hessian"`` (exact ``H_i`` and ``G_i``) or ``"ggn"`` (``G_i`` only, cheap;
        the bounds on ``H_i`` are then not evaluated)
    method, tol, chunk : passed to :func:`rmthess.landscape.per_sample.per_sample_curvature`
        for ``H_i`` (``G_i`` always by the exact ``C x C`` kernel route)

    All norms are computed in float64 whatever the model's dtype.
    """
    weights = check_relu_mlp(model)
    _check_ce(loss_fn)
    kind = check_choice("kind", kind, ("hessian", "ggn"))
    method = check_choice("method", method, ("auto", "dense", "lanczos"))
    if chunk is not None:
        chunk = check_int("chunk", chunk, 1)
    tol = check_positive_float("tol", tol)
    seed = check_int("seed", seed, 0)
    Ws = [W.detach().to("cpu", torch.float64).numpy() for W in weights]
    widths = (Ws[0].shape[1], *(W.shape[0] for W in Ws))
    X, y = check_xy(data, widths[0], widths[-1])
    idx = _samples(samples, len(X), seed)
    L = len(Ws)
    M = max(float(np.abs(W).max()) for W in Ws)
    s = tuple(float(np.linalg.norm(W, 2)) for W in Ws)
    M_W = max(s)
    x_all = np.linalg.norm(X, axis=1)
    M_x = float(x_all.max())
    h = max(widths[1:-1]) if L >= 2 else None
    xi = x_all[idx]
    _check_scale(s, M_x)
    ggn_i, full_i = corrected_layer_bound(s, xi)
    if not np.any(full_i > 0):
        raise ValueError(
            "model/data: the corrected bound is 0 on every audited sample, so every H_i is 0 "
            "(all weights 0 with L >= 2, or all inputs 0) and no ratio bound / ||H_i|| is "
            "defined; audit a model with nonzero weights on nonzero inputs"
        )
    Xt, Yt = to_tensors(X[idx], y[idx], widths[-1], torch.float64, weights[0].device)
    n_p = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    steps = min(n_p, 256)
    G = _curvature(weights, Xt, Yt, "ggn", "kernel", None, steps, 1e-10, seed, MEMORY, None)
    if kind == "hessian":
        if method == "auto":
            method = "dense" if n_p <= DENSE_MAX_P else "lanczos"
        H = _curvature(weights, Xt, Yt, "hessian", method, chunk, steps, tol, seed, MEMORY, None)
        norm_H, eig_H, res, meth = H.norm, H.eigenvalue, float(H.residual.max()), H.method
    else:
        norm_H = eig_H = np.full(len(idx), math.nan)
        res, meth = 0.0, "kernel"
    s2 = np.square(s)
    layers = math.sqrt(2) * sum((xi**2 * np.prod(s2[:p]) + 1) * np.prod(s2[p:]) for p in range(L))
    one = np.ones(len(idx))
    M_W_frob = M * max(math.sqrt(a * b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    values = {
        "theorem1": paper_theorem1(M_W, M_x, L) * one,
        "theorem1_i": paper_theorem1(M_W, xi, L),
        "theorem1_layers": layers,
        "lemma1": paper_theorem1(h * M, M_x, L) * one if h is not None else math.nan * one,
        "corrected": corrected_bound(M_W, M_x, L) * one,
        "corrected_i": full_i,
        "corrected_lemma1": corrected_bound(M_W_frob, M_x, L) * one,
        "corrected_ggn_i": ggn_i,
    }
    return BoundAudit(
        idx, norm_H, eig_H, G.norm, xi, values, L, h, M_W, M_x, M, s, widths, kind, meth, res
    )


_MAX_BOUND = 1e150
"""Largest corrected bound accepted: the exact norms are computed in float64 from squares
of Hessian entries, which stay finite below ~1e300."""


def _check_scale(layer_norms, M_x: float) -> None:
    """Refuse weights or inputs so large that ``||H_i||`` leaves float64's range."""
    with np.errstate(over="ignore", invalid="ignore"):
        _, full = corrected_layer_bound(layer_norms, M_x)
    if not np.isfinite(full) or full > _MAX_BOUND:
        raise ValueError(
            f"model/data: the per-sample Hessian norms reach ~{float(full):.3g} (layer norms "
            f"{' '.join(f'{v:.3g}' for v in layer_norms)}, max ||x|| {M_x:.3g}): past "
            f"{_MAX_BOUND:g}, float64 cannot compute them; scale the weights or inputs down"
        )


def _check_ce(loss_fn) -> None:
    if isinstance(loss_fn, str):
        if loss_fn != "ce":
            raise ValueError(
                f"loss_fn must be 'ce' (cross-entropy): the bounds use the softmax output "
                f"Hessian A = diag p - p p^T; got {loss_fn!r}"
            )
        return
    if not isinstance(loss_fn, nn.CrossEntropyLoss):
        raise ValueError(
            "loss_fn must be 'ce' or an nn.CrossEntropyLoss: Theorem 1 and Lemma 1 are "
            f"stated for the softmax cross-entropy, got {type(loss_fn).__name__}"
        )
    if loss_fn.weight is not None or loss_fn.label_smoothing != 0:
        raise ValueError(
            "loss_fn: class weights and label smoothing change A and r; the bounds are for "
            "the plain cross-entropy"
        )


def _samples(samples, N: int, seed: int) -> np.ndarray:
    if samples is None:
        return np.arange(N)
    if isinstance(samples, int | np.integer) and not isinstance(samples, bool):
        n = check_int("samples", samples, 1, N)
        return np.sort(rng(seed).choice(N, size=n, replace=False))  # default_rng(seed)
    idx = np.asarray(samples)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise ValueError("samples must be None, an int >= 1 or a non-empty 1-D integer array")
    if idx.min() < 0 or idx.max() >= N:
        raise ValueError(f"samples must index rows in [0, {N - 1}], got [{idx.min()}, {idx.max()}]")
    return idx
