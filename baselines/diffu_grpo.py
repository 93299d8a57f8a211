"""diffu-GRPO (d1, arXiv 2504.12216): GRPO with a one-step mean-field log-probability estimate.

For inner iteration n (of μ reusing one rollout batch) a prompt mask is drawn from seed ξ_n: each real prompt
token is replaced by [MASK] with probability ``p_mask_prompt``; the completion is fully masked. One forward pass
on (q', [MASK]^L) gives, at every completion position k,

    log π_θ(o^k | q) ≈ log p_θ(o^k | q', [MASK]^L)         (temperature 1, as d1)

The loss (TRL-GRPO token level) over the completion mask c (tokens up to and including the first EOS) is

    ℓ_{i,k} = −min(ρ Â_i, clip(ρ, 1−ε, 1+ε) Â_i) + β·KL_k3(π_ref ‖ π_θ),
    L = 1/|groups| Σ_g Σ_{i∈g,k} ℓ_{i,k} c_{i,k} / Σ_{i∈g,k} c_{i,k}     (``loss_normalization: group``, d1 as shipped)
    L = Σ_{i,k} ℓ_{i,k} c_{i,k} / Σ_{i,k} c_{i,k}                        (``loss_normalization: batch``)

d1's per-device micro-batch is one prompt's group (per_device_train_batch_size = num_generations = 6); the token
mean is taken inside it and micro-batches are averaged over gradient accumulation and devices, hence ``group``.

with ρ = exp(log π_θ − log π_θold). Old and reference log-probs of iteration n use the same prompt mask ξ_n;
they are computed once per rollout batch (old only when μ > 1: with μ = 1, old = log π_θ detached).
The reference is the frozen base model. Seeds ξ_n are drawn from {0..4095} as d1 does, but from the trainer's
own generator instead of re-seeding the global RNG (d1's ``set_seed`` side effect is not reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agrpo.config import doc
from agrpo.model.layers import bias_kwargs
from agrpo.distributed import all_sum, world
from agrpo.rl.objectives import Objective, clipped_surrogate, kl_k3


def perturbed_inputs(sample, mask_id: int, p_mask_prompt: float, seed: int, shard: tuple[int, int] = (0, 1)):
    """(q' ⊕ [MASK]^L, attention mask): prompt tokens masked i.i.d. with p from ``seed``, completion fully masked.
    With ``shard = (r, W)`` the noise is drawn for the W·B-row global batch and rank r keeps its rows."""
    g = torch.Generator().manual_seed(int(seed))
    prompt = sample.prompt_ids.clone()
    b, (rank, world_size) = prompt.shape[0], shard
    noise = torch.rand((b * world_size, prompt.shape[1]), generator=g)[rank * b:(rank + 1) * b]
    drop = (noise.to(prompt.device) < p_mask_prompt) & sample.prompt_mask.bool()
    prompt[drop] = mask_id
    completion = torch.full_like(sample.completion_ids, mask_id)
    ids = torch.cat([prompt, completion], 1)
    attn = torch.cat([sample.prompt_mask, torch.ones_like(completion)], 1)
    return ids, attn


def draw_mask_seeds(generator: torch.Generator, n: int, random_masking: bool) -> list[int]:
    """ξ_1..ξ_μ: d1 draws them from {0..4095} per rollout batch (``random_masking``), else uses 42 throughout."""
    if random_masking:
        return torch.randint(0, 2**12, (n,), generator=generator).tolist()
    return [42] * n


def token_mean(values: torch.Tensor, mask: torch.Tensor, group_size: int, normalization: str) -> torch.Tensor:
    """Σ v·c / Σ c over the batch, or within each group of ``group_size`` rows and then averaged over groups.

    Data-parallel: ``batch`` divides the local sum by the global token count / W (so the mean over ranks is the
    global token mean); ``group`` needs nothing (each rank holds whole groups)."""
    if normalization == "batch":
        return (values * mask).sum() / (all_sum(mask.sum()) / world()[1])
    if normalization == "group":
        v, c = (values * mask).view(-1, group_size, values.shape[-1]), mask.view(-1, group_size, mask.shape[-1])
        return (v.sum((1, 2)) / c.sum((1, 2))).mean()
    raise ValueError(f"loss_normalization must be 'group' or 'batch', got {normalization!r}")


def one_step_logprobs(model, sample, p_mask_prompt: float, seed: int, shard: tuple[int, int] = (0, 1),
                      released_numerics: bool = False) -> torch.Tensor:
    """log p_θ(o^k | q', [MASK]^L) at every completion position, in float32 with prompt padding masked out of
    attention; ``released_numerics`` as d1 ships it: no attention mask (left padding is attended) and the
    cross-entropy of the model's own-dtype logits (bf16 for LLaDA), cast to float32 afterwards."""
    ids, attn = perturbed_inputs(sample, model.mask_id, p_mask_prompt, seed, shard)
    if released_numerics:
        logits = model(ids)[:, sample.prompt_ids.shape[1]:]
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), sample.completion_ids.flatten(), reduction="none")
        return -ce.view(sample.completion_ids.shape).float()
    logits = model(ids, attn, **bias_kwargs(model, attn))[:, sample.prompt_ids.shape[1]:].float()
    return logits.log_softmax(-1).gather(-1, sample.completion_ids.unsqueeze(-1)).squeeze(-1)


class DiffuGRPO(Objective):
    name = "diffu_grpo"

    @dataclass
    class Args:
        p_mask_prompt: float = doc("probability of masking each prompt token (d1 train.yaml: 0.15)", 0.15)
        clip_epsilon: float = doc("PPO clip ε (d1 train.yaml: 0.5)", 0.5)
        beta: float = doc("KL coefficient to the reference (base) model (d1: 0.04)", 0.04)
        random_masking: bool = doc("fresh prompt-mask seed per inner iteration (d1 default); off = seed 42 always", True)
        loss_normalization: str = doc("`group`: token mean inside each prompt's group, then the mean over groups (d1 as shipped: one group per device micro-batch); `batch`: one token mean over the rollout batch", "group")
        released_numerics: bool = doc("the one-step passes as d1 ships them: no attention mask (left padding, EOS for LLaDA, is attended) and cross-entropy of bf16 logits; false = float32 logits, padding masked (changes numbers only with padded prompts or a bf16 model)", False)

    def __init__(self, args, generator):
        super().__init__(args, generator)
        if args.loss_normalization not in ("group", "batch"):
            raise ValueError(f"loss_normalization must be 'group' or 'batch', got {args.loss_normalization!r}")

    def prepare(self, policy, ref_model, batch, inner_iterations):
        a, s = self.args, batch.sample
        seeds = draw_mask_seeds(self.generator, inner_iterations, a.random_masking)
        batch.extras["mask_seeds"] = seeds
        with torch.no_grad():
            if inner_iterations > 1:
                batch.extras["old_logp"] = [one_step_logprobs(policy, s, a.p_mask_prompt, sd, batch.shard, a.released_numerics)
                                            for sd in seeds]
            if a.beta > 0:
                batch.extras["ref_logp"] = [one_step_logprobs(ref_model, s, a.p_mask_prompt, sd, batch.shard,
                                                              a.released_numerics) for sd in seeds]

    def sequence_passes(self, rows, inner_iterations):
        """One one-step pass per row per inner iteration with gradients; before them, without, the old log-probs
        under each of the μ mask seeds (μ > 1) and the reference's (β > 0)."""
        mu = inner_iterations
        return {"forward": mu * rows * ((mu > 1) + (self.args.beta > 0)), "forward_backward": mu * rows}

    def losses(self, policy, ref_model, batch, inner_iteration):
        a, s = self.args, batch.sample
        seed = batch.extras["mask_seeds"][inner_iteration]
        logp = one_step_logprobs(policy, s, a.p_mask_prompt, seed, batch.shard, a.released_numerics)
        old = batch.extras["old_logp"][inner_iteration] if "old_logp" in batch.extras else logp.detach()
        per_tok, ratio, clipped = clipped_surrogate(logp, old, batch.advantages[:, None], a.clip_epsilon)
        stats = {}
        c = batch.completion_mask
        if a.beta > 0:
            kl = kl_k3(batch.extras["ref_logp"][inner_iteration], logp)
            per_tok = per_tok + a.beta * kl
            stats["kl"] = (kl * c).sum().item() / c.sum().item()
        loss = token_mean(per_tok, c, batch.group_size, a.loss_normalization)
        r = ratio.detach()
        stats.update(clip_ratio=(clipped * c).sum().item() / c.sum().item(),
                     ratio_mean=(r * c).sum().item() / c.sum().item(), ratio_max=(r * c).max().item())
        yield loss, stats
