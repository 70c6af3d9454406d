"""Copies to the training device that the host does not wait for.

A copy from pageable host memory to a GPU makes the host wait until the GPU has run all the
work queued before it; a copy from pinned (page-locked) memory with `non_blocking=True` is
queued like a kernel, so the host goes on queueing steps. The pinned staging memory comes
from torch's caching host allocator, which keeps it until the copy that reads it has run.
"""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`, copied without blocking the host (pinned first on CUDA; on the
    CPU, the tensor itself)."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
