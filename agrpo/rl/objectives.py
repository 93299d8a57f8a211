"""The objective interface: what distinguishes AGRPO from each baseline.

The trainer owns rollouts, rewards, group advantages, the optimizer and checkpoints. An objective turns
(policy, rollout batch) into losses: ``prepare`` runs once per rollout batch (no grad: old/reference
log-probs), ``losses`` yields the loss chunks of one inner iteration; the trainer back-propagates each chunk as
it comes, so only one chunk's activations are alive at a time (AGRPO's gradient accumulation per MC sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from agrpo.sampling import SampleOutput, SamplerConfig


@dataclass
class RolloutBatch:
    sample: SampleOutput  # prompts, completions, reveal steps, rollout log-probs
    sampler: SamplerConfig  # the transform the rollout used
    rewards: torch.Tensor  # (B,)
    advantages: torch.Tensor  # (B,) Â_i = R_i − mean of its group
    group_size: int
    completion_mask: torch.Tensor  # (B, L) 1 up to and including the first EOS
    extras: dict = field(default_factory=dict)  # filled by Objective.prepare
    row_temperature: torch.Tensor | None = None  # (B,) when rows were sampled at different temperatures
    shard: tuple[int, int] = (0, 1)  # (rank, world size): these rows are rank's share of a W·B-row global batch


def completion_mask(completion_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 for tokens up to and including the first EOS (the whole row if there is none), as d1/TRL."""
    is_eos = completion_ids == eos_id
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(is_eos[:, 0], is_eos.shape[1], dtype=torch.long))
    return (torch.arange(completion_ids.shape[1], device=completion_ids.device)[None, :] <= first[:, None]).long()


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, eps: float):
    """Per-token PPO loss −min(ρÂ, clip(ρ, 1−ε, 1+ε)Â) with ρ = exp(logp − old_logp); also returns ρ and clip flags."""
    ratio = torch.exp(logp - old_logp)
    unclipped, clipped = ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv
    return -torch.min(unclipped, clipped), ratio, (clipped < unclipped).float()


def kl_k3(ref_logp: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(π_θ ‖ π_ref): exp(r − l) − (r − l) − 1."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


class Objective:
    name: str = ""

    @dataclass
    class Args:
        pass

    def __init__(self, args, generator: torch.Generator):
        self.args = args
        self.generator = generator

    @property
    def needs_reference(self) -> bool:
        return getattr(self.args, "beta", 0.0) > 0

    def prepare(self, policy, ref_model, batch: RolloutBatch, inner_iterations: int) -> None:
        """Once per rollout batch, without gradients."""

    def losses(self, policy, ref_model, batch: RolloutBatch, inner_iteration: int) -> Iterator[tuple[torch.Tensor, dict]]:
        """Loss chunks of one inner iteration. Normalise so that the mean over ranks of the local losses is the
        loss of the global batch (``batch.shard``): the update is then independent of the process count."""
        raise NotImplementedError

    def chunks_per_iteration(self) -> int:
        """How many losses ``losses`` yields."""
        return 1

    def sequence_passes(self, rows: int, inner_iterations: int) -> dict[str, int]:
        """The network passes one rollout batch of ``rows`` completions costs this objective over μ =
        ``inner_iterations``, in sequences (one row through the network once): ``forward`` without gradients
        (old and reference log-probs) and ``forward_backward`` (a pass whose backward runs too). The training
        budget of the report sums them (tests/test_budget.py counts the real calls)."""
        raise NotImplementedError

    def step_after(self) -> list[int]:
        """The chunks after whose backward the optimizer steps (gradients sync there): the last, by default."""
        return [self.chunks_per_iteration() - 1]


def objectives() -> dict[str, type[Objective]]:
    """Registry of objectives by name (imported lazily: the implementations import this module)."""
    from agrpo.rl.agrpo import AGRPO
    from baselines.diffu_grpo import DiffuGRPO
    from baselines.wd1 import WD1

    return {cls.name: cls for cls in (AGRPO, DiffuGRPO, WD1)}
