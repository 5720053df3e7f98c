"""Exact row-block maps of every layer of an MLP in one pass (issue 20; docs/theory.md 9.6).

For an ``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations (what
:func:`rmthess.curvature.mlp` builds), the Hessian of the data-set loss ``L = sum_i c_i(z_i)``
in the weights of one Linear layer, rows ``j`` and ``l`` (each row with its bias entry), is

    d^2 L / dW[j] dW[l] = sum_i (H_i)_jl  x~_i x~_i^T,     H_i = d^2 c_i / dg_i^2,

``g_i`` the layer's pre-activations and ``x~_i = (x_i, 1)`` its input (the ``1`` only with a
bias): per sample, a ``m x m`` pre-activation Hessian times a rank-one matrix. Hence every
block's squared Frobenius norm is a Gram sum,

    ||H_jl||_F^2 = sum_{i, i'} (H_i)_jl (H_i')_jl (x~_i . x~_i')^2,

computed for all ``(j, l)`` at once from the ``N`` per-sample Hessians (torch's
``vmap(hessian)`` of the network above the layer, exact) and the ``N x N`` Gram matrix.
Cost per layer: ``N`` Hessians of size ``m x m`` plus ``N^2 m^2`` flops, independent of the
layer's fan-in, against ``m * fan_in`` Hessian-vector products over the data for
``block_norms(..., exact=True)``; exact to round-off (checked against ``block_norms``,
tests/curvature/test_layer_maps.py).

The loss contribution ``c_i`` of a sample follows the data-set loss of
:func:`rmthess.curvature.operators.curvature_operator` (``mean`` and ``sum`` reductions,
class weights and ignored targets of CE), through the same checked problem.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from rmthess._checks import check_memory, check_progress, progress_bar, want_progress

if TYPE_CHECKING:
    from torch import nn

    from rmthess.curvature._types import Data, Loss
    from rmthess.curvature.blocks import BlockMap

__all__ = ["layer_block_maps"]

ELEMENTWISE = (
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "GELU",
    "Softplus",
    "SiLU",
    "ELU",
    "Identity",
)
"""The activation modules accepted between the Linear layers (elementwise functions)."""


def _structure(model) -> list[tuple[str, nn.Module]]:
    """``[(name, module)]`` of an ``nn.Sequential`` of Linear layers and elementwise
    activations ending in a Linear layer; ``TypeError`` naming ``model`` otherwise."""
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise TypeError(
            "model must be an nn.Sequential of nn.Linear layers and elementwise activations "
            f"(rmthess.curvature.mlp builds one), got {type(model).__name__}"
        )
    parts = list(model.named_children())
    for name, mod in parts:
        if not isinstance(mod, nn.Linear) and type(mod).__name__ not in ELEMENTWISE:
            raise TypeError(
                f"model: module {name!r} is a {type(mod).__name__}; layer_block_maps takes "
                f"nn.Linear and the elementwise activations {', '.join(ELEMENTWISE)}"
            )
    if not parts or not isinstance(parts[-1][1], nn.Linear):
        raise TypeError("model must end in an nn.Linear layer (the logits)")
    return parts


def layer_block_maps(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    *,
    progress: bool | None = None,
) -> dict[str, BlockMap]:
    """Exact Hessian block maps of every Linear layer of an MLP, one block per row (weight
    row plus bias entry), by the per-sample Gram route (module docstring).

    Parameters
    ----------
    model : ``nn.Sequential`` of ``nn.Linear`` and elementwise activations (:data:`ELEMENTWISE`).
    loss_fn, data : as for :func:`rmthess.curvature.block_norms` (``"ce"``, ``"mse"`` or a
        loss module; ``(X, y)``, a ``Dataset`` or batches).
    progress : a tqdm bar over the layers (None: on a terminal when predicted over 5 s).

    Returns
    -------
    ``{layer name: BlockMap}`` in forward order; block ``j`` of layer ``"hidden2"`` is named
    ``"hidden2[j]"``, its size the fan-in (+1 with a bias); ``sq_norm`` exact (``exact`` all
    True, ``sq_norm_se`` 0). Same numbers as :func:`rmthess.curvature.block_norms` with one
    block per row and ``exact=True``.

    Memory: ``N^2 + 2 N m^2`` numbers per layer (checked first).
    """
    import torch
    from torch.func import hessian, vmap

    from rmthess.curvature._inputs import check_problem
    from rmthess.curvature.blocks import BlockMap

    parts = _structure(model)
    progress = check_progress(progress)
    prob = check_problem(model, loss_fn, data)
    X = torch.cat([b[0] for b in prob.batches])
    y = torch.cat([b[1] for b in prob.batches])
    N = X.shape[0]
    X = X.reshape(N, -1)
    linears = [(i, n, mod) for i, (n, mod) in enumerate(parts) if isinstance(mod, torch.nn.Linear)]
    widest = max(mod.out_features for _, _, mod in linears)
    check_memory(
        8.0 * (N * N + 3 * N * widest * widest),
        f"layer_block_maps of N={N} samples, widest layer {widest}",
        "use fewer samples",
    )
    w1 = prob.weight(1)
    loss1 = prob.batch_loss_fn

    def above(start: int):
        mods = [m for _, m in parts[start + 1 :]]

        def c(g, yi):
            h = g
            for m in mods:
                h = m(h)
            return w1 * loss1(h[None], yi[None])

        return c

    out: dict[str, BlockMap] = {}
    predicted = len(linears) * (2e-9 * N * N * widest * widest + 1e-5 * N * widest)
    with torch.no_grad():
        inputs, pre, h = [], [], X  # each Linear's input and output (one forward pass)
        for _, mod in parts:
            x, h = h, mod(h)
            if isinstance(mod, torch.nn.Linear):
                inputs.append(x)
                pre.append(h)
    with progress_bar(want_progress(progress, predicted), total=len(linears), desc="layers") as bar:
        for (i, name, mod), x, g in zip(linears, inputs, pre, strict=True):
            t0 = time.perf_counter()
            H = vmap(hessian(above(i)))(g.detach(), y)  # (N, m, m)
            m = H.shape[1]
            xt = torch.cat([x, torch.ones_like(x[:, :1])], 1) if mod.bias is not None else x
            K = (xt @ xt.T) ** 2
            A = H.reshape(N, m * m)
            sq = (A * (K @ A)).sum(0).reshape(m, m)
            sq = 0.5 * (sq + sq.T)
            sizes = np.full(m, xt.shape[1])
            out[name] = BlockMap(
                names=tuple(f"{name}[{j}]" for j in range(m)),
                sizes=sizes,
                sq_norm=sq.detach().cpu().double().numpy(),
                sq_norm_se=np.zeros((m, m)),
                sq_norm_trials=np.full((m, m, 0), np.nan),
                probes=0,
                n_matvecs=0,
                kind="hessian",
                exact=np.ones(m, dtype=bool),
                seconds=time.perf_counter() - t0,
            )
            bar.update(1)
    return out
