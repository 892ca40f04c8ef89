"""Multi-process training under torchrun: process group setup, rank-0-only side effects, reductions.

`torchrun --nproc_per_node N -m edgeseg.train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; without them this is
a world of one and every helper is a no-op. NCCL on CUDA, gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgeseg.errors import UserError


@dataclass(frozen=True)
class World:
    """This process's place in the job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of a float over all processes (e.g. the logged loss)."""
        if self.size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return float(tensor) / self.size

    def mean_dict(self, values: dict[str, float]) -> dict[str, float]:
        """Per-key means over all processes (one all-reduce; every rank has the same keys)."""
        if self.size == 1 or not values:
            return dict(values)
        tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return {key: float(v) / self.size for key, v in zip(values, tensor.tolist())}

    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


def init_world(device: str) -> World:
    """Join the torchrun job if there is one (no-op for a single process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        if torch.cuda.device_count() <= local_rank:
            raise UserError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                            "lower --nproc_per_node or use --device cpu")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return World(rank, size, local_rank, backend)


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
