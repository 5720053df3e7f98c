"""Device and dtype resolution shared by the torch layers (simulate, curvature).

Imports torch, so it sits one floor above the light ground floor, beside ``rmthess.theory``.
"""

from __future__ import annotations

import torch

from rmthess._checks import check_choice

DTYPES = {"float64": torch.float64, "float32": torch.float32}

Device = str | torch.device
"""Type of every ``device`` argument of rmthess: ``"auto"`` (CUDA when available),
``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` (:func:`resolve_device`). The
default is ``"auto"`` where rmthess makes its own data and weights (``rmthess.simulate``)
and ``"cpu"`` for the model builders (``curvature.mlp``, ``landscape.relu_mlp``), whose
models must sit where the user's data are: move both with ``.to(device)``."""
DType = str | torch.dtype
"""Type of every ``dtype`` argument: ``"float64"`` or ``"float32"``, or that torch dtype
(:func:`resolve_dtype`). The default is ``"float64"`` everywhere except in
:mod:`rmthess.landscape`, whose networks default to ``"float32"``, the paper's setting
(its published numbers depend on it)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a ``torch.device``) to a device.

    ``"auto"`` picks CUDA when available, else CPU. Asking for CUDA on a machine
    without it raises ``ValueError``.
    """
    if isinstance(device, torch.device):
        dev = device
    else:
        if not isinstance(device, str):
            raise TypeError(f"device must be a string or torch.device, got {device!r}")
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        base = device.split(":")[0]
        check_choice("device", base, ("auto", "cpu", "cuda"))
        dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was requested but CUDA is not available on this machine; "
            "use device='cpu' or device='auto'"
        )
    return dev


def resolve_dtype(dtype: str | torch.dtype = "float64") -> torch.dtype:
    """Map ``"float64" | "float32"`` (or a torch float dtype) to a ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be float64 or float32, got {dtype}")
        return dtype
    return DTYPES[check_choice("dtype", dtype, tuple(DTYPES))]
