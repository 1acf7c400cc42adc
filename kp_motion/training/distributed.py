"""Distributed data-parallel helpers: one process per device, launched by torchrun.

`torchrun --nproc_per_node N -m kp_motion.cli.main train fomm ...` sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in every process; `setup_distributed` reads them,
joins the process group (nccl on CUDA, gloo on CPU) and picks the process's device. Without
those variables everything runs as a single process (world size 1) and no group is created.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from kp_motion.devices import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among world_size processes, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def setup_distributed(requested_device: str = "auto") -> DistributedContext:
    """Join the torchrun process group when launched by torchrun; else a single-process context."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = resolve_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.is_distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum a tensor over all processes (a copy; the input is left as it is)."""
    total = values.detach().clone()
    if context.is_distributed:
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def find_free_port() -> int:
    """A TCP port free on the loopback interface right now (for launching local process groups)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler that can start an epoch part-way, for resuming mid-epoch.

    The order of an epoch depends only on (seed, epoch), so skipping the first
    `skip_batches * batch_size` indices of this process's share reproduces exactly the batches a
    run interrupted at that point had not seen yet. Works with world size 1 without a process
    group (num_replicas and rank are passed explicitly).
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int,
        rank: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        # drop_last=False: every process gets ceil(len / replicas) indices (a few repeated).
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.batch_size = batch_size
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip_batches = skip_batches

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip_batches * self.batch_size :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip_batches * self.batch_size)
