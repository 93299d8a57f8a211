"""Data parallelism: one process per GPU, whole prompt groups per process (docs/distributed.md).

Jobs are started by ``accelerate launch`` (the Snakemake rules do this when ``launch.gpus`` ≥ 1) or as one plain
process. Rank r of W takes prompt groups [r·P/W, (r+1)·P/W) of each rollout batch of P prompts. Every rank draws
the prompt order and the objective's random draws (timesteps, prompt-mask seeds) for the whole global batch from
the same seeded generator and keeps its own rows, and every objective normalises its loss so that the mean of the
W local losses is the loss of the global batch. DDP (or DeepSpeed ZeRO-2) averages the gradients, so a W-process
update equals the 1-process update of the same global batch up to floating-point reduction order
(tests/test_distributed_llada.py checks it with 2 CPU processes on gloo).

Rollouts are sampled with a per-rank generator (seed, rank), so the completions themselves depend on W.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ over ranks (a copy; the identity in one process)."""
    x = x.detach().clone()
    if world()[1] > 1:
        dist.all_reduce(x)
    return x


def all_mean(values: dict[str, float], device) -> dict[str, float]:
    """Mean over ranks of each scalar (for logging)."""
    if world()[1] == 1 or not values:
        return values
    keys = sorted(values)
    t = all_sum(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)) / world()[1]
    return dict(zip(keys, t.tolist()))


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped tensors of every rank along dim 0, in rank order."""
    if world()[1] == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world()[1])]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def shard(items: list, rank: int, world_size: int) -> list:
    """Rank's contiguous share of a list whose length is a multiple of world_size."""
    if len(items) % world_size:
        raise ValueError(f"{len(items)} items cannot be split evenly over {world_size} processes")
    n = len(items) // world_size
    return items[rank * n:(rank + 1) * n]


@dataclass
class Runtime:
    """Where a job runs: the accelerate ``Accelerator`` (or None), device, rank and world size."""
    accelerator: object | None
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def deepspeed(self) -> bool:
        return self.accelerator is not None and self.accelerator.distributed_type.name == "DEEPSPEED"

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def no_sync(self, model, last: bool):
        """Skip the gradient all-reduce on every backward but the last of an accumulation (DDP)."""
        if last or self.accelerator is None or self.world_size == 1 or self.deepspeed:
            return nullcontext()
        return self.accelerator.no_sync(model)


def launched() -> bool:
    """True inside ``accelerate launch`` / torchrun (a process group is to be formed)."""
    return "LOCAL_RANK" in os.environ or "ACCELERATE_USE_DEEPSPEED" in os.environ


def make_runtime(device: str, mixed_precision: str = "no") -> Runtime:
    """A plain process on ``device``, or (when launched) an accelerate process with its rank's device.

    ``device: cpu`` under a launcher gives gloo processes (how the 2-process test runs)."""
    if not launched():
        return Runtime(None, torch.device(device))
    from accelerate import Accelerator

    acc = Accelerator(cpu=device == "cpu", mixed_precision=None if mixed_precision == "no" else mixed_precision)
    return Runtime(acc, acc.device, acc.process_index, acc.num_processes)
