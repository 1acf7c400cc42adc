"""The torch device a command or node runs on: one rule for every entry point."""

from __future__ import annotations

import torch

AUTO = "auto"


class DeviceError(ValueError):
    """A device that cannot be used here (unknown name, or CUDA without a GPU); one line."""


def resolve_device(requested: str | None = AUTO, local_rank: int | None = None) -> torch.device:
    """'auto' or None -> cuda when a GPU is usable, else cpu; any other torch device name as is.

    `local_rank` (a torchrun process's GPU) fills in the index of a cuda device given without
    one, so that each process of a multi-GPU run takes its own card.
    """
    name = requested or AUTO
    if name == AUTO:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DeviceError(f"unknown device {name!r} ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but no CUDA GPU is available")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
    return device
