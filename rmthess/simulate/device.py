"""Device and dtype resolution for the simulation layer."""

from __future__ import annotations

import torch

from rmthess._device import DTYPES, Device, DType, resolve_device, resolve_dtype

__all__ = ["DTYPES", "DType", "Device", "resolve_device", "resolve_dtype", "machine_memory"]


def machine_memory(device: torch.device | str) -> tuple[int, str]:
    """Memory a computation on ``device`` may use: ``(bytes, description)``.

    CPU: total physical RAM, ``os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")``
    (``(2**63 - 1, ...)`` where the platform does not report it). CUDA: the free memory
    of the device, ``torch.cuda.mem_get_info(device)[0]``.
    """
    from rmthess._checks import physical_memory

    if not isinstance(device, torch.device):
        device = resolve_device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free memory of {device}"
    total = physical_memory()
    if total is None:
        return 2**63 - 1, "unknown RAM size"
    return total, "total RAM"
