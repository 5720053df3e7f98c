"""Which entries of the flat parameter vector form each block of a curvature block map.

A block is a named set of indices into the flat parameter vector
``torch.cat([p.flatten() for p in params])`` (the parameters that require grad, in
``model.named_parameters()`` order; :class:`~rmthess.curvature.operators.CurvatureOperator`).
:func:`resolve_blocks` turns a block specification into ``[(name, flat_indices), ...]``:

==================  ========================================================================
``blocks``          one block per ...
==================  ========================================================================
``"layers"``        module: parameters grouped by the module prefix of their name
                    (``hidden1.weight`` + ``hidden1.bias`` -> ``"hidden1"``)
``"params"``        parameter tensor (``"hidden1.weight"``, ``"hidden1.bias"``, ...)
``"output-rows"``   output neuron: row ``k`` of the LAST ``nn.Linear`` weight plus bias entry
                    ``k`` -> ``"output[k]"`` (the paper's class blocks, size m (+1))
``"hidden-rows"``   neuron of the FIRST ``nn.Linear``: row ``j`` of its weight plus bias
                    entry ``j`` -> ``"hidden1[j]"`` (the paper's hidden blocks, size d (+1))
mapping             ``{name: spec}``, ``spec`` one of: a parameter name (the whole tensor);
                    ``(param_name, index)`` with a torch/numpy-style index into that tensor
                    (int row, slice, tuple, list, ...); a 1-D integer array or a list of ints
                    (flat indices); a list of such specs (their union)
==================  ========================================================================

Blocks must be non-empty and disjoint; a mapping need not cover every parameter (the map
then covers the listed blocks only). Everything is checked here, before any product.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from rmthess.curvature._inputs import Problem
    from rmthess.curvature._types import Blocks
    from rmthess.curvature.operators import CurvatureOperator

__all__ = ["BLOCK_SPECS", "resolve_blocks"]

BLOCK_SPECS = ("layers", "params", "output-rows", "hidden-rows")


def _facts(obj):
    """``(names, shapes, offsets, model)`` of an operator, a ``Problem`` or a module."""
    problem = getattr(obj, "problem", obj)
    if hasattr(problem, "names") and hasattr(problem, "shapes") and hasattr(problem, "offsets"):
        return problem.names, problem.shapes, problem.offsets, getattr(problem, "model", None)
    from torch import nn

    if isinstance(obj, nn.Module):
        from rmthess.curvature._inputs import check_model

        names, params = check_model(obj)
        shapes = tuple(tuple(p.shape) for p in params)
        offsets, start = {}, 0
        for n, p in zip(names, params, strict=True):
            offsets[n] = slice(start, start + p.numel())
            start += p.numel()
        return names, shapes, offsets, obj
    raise TypeError(
        "op_or_problem must be a CurvatureOperator, a checked Problem or a torch.nn.Module, "
        f"got {type(obj).__name__}"
    )


def _known(names) -> str:
    return ", ".join(repr(n) for n in names)


def _param_indices(name, shapes, offsets, block) -> np.ndarray:
    if name not in offsets:
        raise ValueError(
            f"blocks: block {block!r} names unknown parameter {name!r}; known parameters "
            f"(that require grad): {_known(offsets)}"
        )
    sl = offsets[name]
    return np.arange(sl.start, sl.stop, dtype=np.int64)


def _indexed(name, index, names, shapes, offsets, block) -> np.ndarray:
    flat = _param_indices(name, shapes, offsets, block)
    shape = shapes[names.index(name)]
    if hasattr(index, "detach"):  # a torch tensor used as an index
        index = index.detach().cpu().numpy()
    try:
        sel = flat.reshape(shape)[index]
    except (IndexError, TypeError, ValueError) as e:
        raise ValueError(
            f"blocks: block {block!r}: index {index!r} does not fit parameter {name!r} of "
            f"shape {tuple(shape)}: {e}"
        ) from None
    return np.asarray(sel, dtype=np.int64).reshape(-1)


def _flat(arr, P, block) -> np.ndarray:
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise ValueError(
            f"blocks: block {block!r}: flat indices must be a 1-D integer array, got "
            f"dtype {arr.dtype} and shape {arr.shape}"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= P):
        raise ValueError(
            f"blocks: block {block!r}: flat indices must lie in [0, {P - 1}] (the model has "
            f"{P} parameters), got [{arr.min()}, {arr.max()}]"
        )
    return arr.astype(np.int64)


def _is_int_list(spec) -> bool:
    return (
        isinstance(spec, list)
        and len(spec) > 0
        and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in spec)
    )


def _user_spec(spec, names, shapes, offsets, P, block) -> np.ndarray:
    if isinstance(spec, str):
        return _param_indices(spec, shapes, offsets, block)
    if isinstance(spec, tuple):
        if len(spec) == 2 and isinstance(spec[0], str) and not isinstance(spec[1], str):
            _param_indices(spec[0], shapes, offsets, block)  # name check first
            return _indexed(spec[0], spec[1], names, shapes, offsets, block)
        raise ValueError(
            f"blocks: block {block!r}: a tuple spec must be (parameter_name, index), got "
            f"{spec!r} (use a list for a union of specs)"
        )
    if isinstance(spec, np.ndarray) or hasattr(spec, "detach") or _is_int_list(spec):
        return _flat(spec, P, block)
    if isinstance(spec, list):
        parts = [_user_spec(s, names, shapes, offsets, P, block) for s in spec]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    raise TypeError(
        f"blocks: block {block!r}: a spec must be a parameter name, (name, index), a 1-D "
        f"integer array of flat indices, or a list of these; got {type(spec).__name__}"
    )


def _linear_layers(model, names):
    """``[(module_name, weight_name, bias_name | None, out, in)]`` of the ``nn.Linear``
    modules whose weight requires grad, in ``named_modules()`` order."""
    from torch import nn

    out = []
    if model is None:
        return out
    for mname, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            w = f"{mname}.weight" if mname else "weight"
            b = f"{mname}.bias" if mname else "bias"
            if w in names:
                out.append((mname or "linear", w, b if b in names else None, *mod.weight.shape))
    return out


def _rows(which, names, offsets, model):
    lins = _linear_layers(model, names)
    if not lins:
        raise ValueError(
            f"blocks: {which!r} needs an nn.Linear layer whose weight requires grad; the model "
            f"has none (parameters: {_known(names)})"
        )
    mname, w, b, n_out, n_in = lins[-1] if which == "output-rows" else lins[0]
    w0 = offsets[w].start
    out = []
    for k in range(n_out):
        idx = np.arange(w0 + k * n_in, w0 + (k + 1) * n_in, dtype=np.int64)
        if b is not None:
            idx = np.append(idx, offsets[b].start + k)
        out.append((f"{mname}[{k}]", idx))
    return out


def _groups(names, offsets, by_module: bool):
    groups: dict[str, list[np.ndarray]] = {}
    for n in names:  # int64 ranges (8 bytes an index, not a Python int list: ~36)
        key = n.rsplit(".", 1)[0] if by_module and "." in n else n
        sl = offsets[n]
        groups.setdefault(key, []).append(np.arange(sl.start, sl.stop, dtype=np.int64))
    return [(k, np.concatenate(v)) for k, v in groups.items()]


def _check_disjoint(out, P) -> None:
    owner = np.full(P, -1, dtype=np.int64)
    for i, (name, idx) in enumerate(out):
        if idx.size == 0:
            raise ValueError(f"blocks: block {name!r} is empty")
        uniq, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f"blocks: block {name!r} lists flat index {int(uniq[counts > 1][0])} more than once"
            )
        taken = owner[idx]
        if (taken >= 0).any():
            j = int(taken[taken >= 0][0])
            shared = int(idx[taken >= 0][0])
            raise ValueError(
                f"blocks: blocks {out[j][0]!r} and {name!r} overlap (both contain flat index "
                f"{shared}); blocks must be disjoint"
            )
        owner[idx] = i


def resolve_blocks(
    op_or_problem: CurvatureOperator | Problem | nn.Module, blocks: Blocks = "layers"
) -> list[tuple[str, np.ndarray]]:
    """Blocks of the flat parameter vector as an ordered list ``[(name, flat_indices)]``.

    Parameters
    ----------
    op_or_problem : CurvatureOperator, checked ``Problem`` or ``torch.nn.Module``
        Gives the parameter names, shapes and offsets (and the model, for the row specs).
    blocks : "layers", "params", "output-rows", "hidden-rows" or a mapping ``{name: spec}``
        See the module docstring.

    Returns
    -------
    list of ``(str, ndarray of int64)``; for the string specs the indices of a block are
    increasing, for a mapping they keep the order of the spec.

    Raises
    ------
    ValueError
        Unknown string spec, unknown parameter name, index that does not fit its tensor,
        flat index out of ``[0, P)``, empty block, an index listed twice, overlapping
        blocks. ``TypeError`` for a spec of the wrong type.
    """
    names, shapes, offsets, model = _facts(op_or_problem)
    names = tuple(names)
    P = max(sl.stop for sl in offsets.values())
    if isinstance(blocks, str):
        if blocks not in BLOCK_SPECS:
            raise ValueError(
                f"unknown blocks {blocks!r}; allowed: {', '.join(BLOCK_SPECS)} or a mapping "
                "{name: spec}"
            )
        if blocks in ("layers", "params"):
            out = _groups(names, offsets, by_module=blocks == "layers")
        else:
            out = _rows(blocks, names, offsets, model)
    elif hasattr(blocks, "items"):
        if len(blocks) == 0:
            raise ValueError("blocks: the mapping is empty; give at least one block")
        out = []
        for key, spec in blocks.items():
            if not isinstance(key, str):
                raise TypeError(f"blocks: block names must be strings, got {key!r}")
            out.append((key, _user_spec(spec, names, shapes, offsets, P, key)))
    else:
        raise TypeError(
            f"blocks must be one of {', '.join(BLOCK_SPECS)} or a mapping {{name: spec}}, got "
            f"{type(blocks).__name__}"
        )
    _check_disjoint(out, P)
    return out
