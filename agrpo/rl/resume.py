"""Resumable RL training: everything the rest of a run depends on, saved atomically at every checkpoint.

``<run>/resume/`` holds, as of the last checkpoint iteration N:
- ``trainable.safetensors``: the trainable parameters (all weights, or the LoRA adapter);
- ``optimizer.pt``: the AdamW state (tensors and numbers only: loaded with ``torch.load(weights_only=True)``);
- ``rng_rank<r>.pt``: every random state of rank r — the shared generator (prompt order, objective draws), the
  rollout generator, torch's global generator, numpy and Python's ``random``;
- ``state.json`` (written last inside the directory, which is then renamed into place): N, the scheduler, the
  prompt stream's order and position, the log rows so far, the world size.
A rerun of ``agrpo train`` with the same arguments continues at N + 1 and, on CPU, reproduces an uninterrupted
run bit for bit (tests/test_reliability.py). With DeepSpeed ZeRO-2 the weights and the partitioned optimizer are
saved by ``accelerator.save_state`` into ``accelerate/`` instead (checked on one GPU: benchmarks/gpu_paths.sh).
The directory is removed when the run completes.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from agrpo.io import atomic_write_json, fresh_tmp_dir, replace_dir, save_safetensors

STATE = "state.json"


def resume_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "resume"


def _rng_state(generators: dict[str, torch.Generator]) -> dict:
    np_state = np.random.get_state()
    return {**{f"gen_{k}": g.get_state() for k, g in generators.items()},
            "torch_global": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                      float(np_state[4])],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}


def _set_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    for k, g in generators.items():
        g.set_state(state[f"gen_{k}"])
    torch.set_rng_state(state["torch_global"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def save(out_dir: Path, *, iteration: int, policy, opt, sched, stream, log: list[dict], generators: dict,
         rank: int, world_size: int, barrier, accelerator=None) -> None:
    """Rank 0 writes the shared state; every rank writes its random states; the directory appears atomically.
    With DeepSpeed (``accelerator`` given) the engine's partitioned weights and optimizer go through
    ``accelerator.save_state`` (every rank writes its partition) instead of the two files of rank 0."""

    final = resume_dir(out_dir)
    staging = final.with_name(f".{final.name}.tmp")
    if rank == 0:
        fresh_tmp_dir(final)
    barrier()
    torch.save(_rng_state(generators), staging / f"rng_rank{rank}.pt")
    if accelerator is not None:
        accelerator.save_state(str(staging / "accelerate"))
    elif rank == 0:
        trainable = {n: p.detach().cpu().contiguous() for n, p in policy.named_parameters() if p.requires_grad}
        save_safetensors(trainable, staging / "trainable.safetensors")
        torch.save(opt.state_dict(), staging / "optimizer.pt")
    barrier()
    if rank == 0:
        atomic_write_json(staging / STATE, {"iteration": iteration, "scheduler": sched.state_dict(),
                                            "stream": {"order": stream.order, "pos": stream.pos}, "log": log,
                                            "world_size": world_size})
        replace_dir(staging, final)
    barrier()


def load(out_dir: Path, *, policy, opt, sched, stream, generators: dict, rank: int, world_size: int,
         accelerator=None):
    """Restore a saved run; returns (next iteration, log rows) or None when there is nothing to resume."""
    from safetensors.torch import load_file

    d = resume_dir(out_dir)
    if not (d / STATE).is_file():
        d = d.with_name(f".{d.name}.old")  # killed between the two renames of replace_dir: the previous state
        if not (d / STATE).is_file():
            return None
    state = json.loads((d / STATE).read_text())
    if state["world_size"] != world_size:
        raise RuntimeError(f"{d}: saved with {state['world_size']} processes, resumed with {world_size}; rerun with "
                           f"the same launch.gpus or delete {d} to start over")
    if accelerator is not None:  # DeepSpeed: engine weights and optimizer partitions
        if not (d / "accelerate").is_dir():
            raise RuntimeError(f"{d}: saved without DeepSpeed, resumed with it; delete {d} to start over")
        accelerator.load_state(str(d / "accelerate"))
        return _restore_rest(d, state, sched, stream, generators, rank)
    if (d / "accelerate").is_dir():
        raise RuntimeError(f"{d}: saved with DeepSpeed, resumed without it; delete {d} to start over")
    device = next(policy.parameters()).device
    trainable = load_file(str(d / "trainable.safetensors"), device=str(device))
    params = dict(policy.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in trainable]
    if missing or set(trainable) - set(params):
        raise RuntimeError(f"{d}: trainable parameters do not match this run (missing {missing[:3]}); delete {d} "
                           "to start over")
    with torch.no_grad():
        for n, t in trainable.items():
            params[n].copy_(t)
    opt.load_state_dict(torch.load(d / "optimizer.pt", map_location=device, weights_only=True))
    return _restore_rest(d, state, sched, stream, generators, rank)


def _restore_rest(d: Path, state: dict, sched, stream, generators: dict, rank: int):
    sched.load_state_dict(state["scheduler"])
    stream.order, stream.pos = state["stream"]["order"], state["stream"]["pos"]
    _set_rng_state(torch.load(d / f"rng_rank{rank}.pt", weights_only=True), generators)  # after accelerate's
    return state["iteration"] + 1, state["log"]


def finish(out_dir: Path) -> None:
    d = resume_dir(out_dir)
    for path in (d, d.with_name(f".{d.name}.old"), d.with_name(f".{d.name}.tmp")):
        shutil.rmtree(path, ignore_errors=True)
