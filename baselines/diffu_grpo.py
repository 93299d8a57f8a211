"""diffu-GRPO (d1, arXiv 2504.12216): GRPO with a one-step mean-field log-probability estimate.

For inner iteration n (of μ reusing one rollout batch) a prompt mask is drawn from seed ξ_n: each real prompt
token is replaced by [MASK] with probability ``p_mask_prompt``; the completion is fully masked. One forward pass
on (q', [MASK]^L) gives, at every completion position k,

    log π_θ(o^k | q) ≈ log p_θ(o^k | q', [MASK]^L)         (temperature 1, as d1)

The loss (TRL-GRPO token level, d1 normalisation) over the completion mask (tokens up to and including the
first EOS) is

    L = Σ_{i,k} [ −min(ρ Â_i, clip(ρ, 1−ε, 1+ε) Â_i) + β·KL_k3(π_ref ‖ π_θ) ] · c_{i,k} / Σ c_{i,k},

with ρ = exp(log π_θ − log π_θold). Old and reference log-probs of iteration n use the same prompt mask ξ_n;
they are computed once per rollout batch (old only when μ > 1: with μ = 1, old = log π_θ detached).
The reference is the frozen base model. Seeds ξ_n are drawn from {0..4095} as d1 does, but from the trainer's
own generator instead of re-seeding the global RNG (d1's ``set_seed`` side effect is not reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agrpo.config import doc
from agrpo.rl.objectives import Objective, clipped_surrogate, kl_k3


def perturbed_inputs(sample, mask_id: int, p_mask_prompt: float, seed: int):
    """(q' ⊕ [MASK]^L, attention mask): prompt tokens masked i.i.d. with p from ``seed``, completion fully masked."""
    g = torch.Generator().manual_seed(int(seed))
    prompt = sample.prompt_ids.clone()
    drop = (torch.rand(prompt.shape, generator=g) < p_mask_prompt) & sample.prompt_mask.bool()
    prompt[drop] = mask_id
    completion = torch.full_like(sample.completion_ids, mask_id)
    ids = torch.cat([prompt, completion], 1)
    attn = torch.cat([sample.prompt_mask, torch.ones_like(completion)], 1)
    return ids, attn


def one_step_logprobs(model, sample, p_mask_prompt: float, seed: int) -> torch.Tensor:
    ids, attn = perturbed_inputs(sample, model.mask_id, p_mask_prompt, seed)
    logits = model(ids, attn)[:, sample.prompt_ids.shape[1]:].float()
    return logits.log_softmax(-1).gather(-1, sample.completion_ids.unsqueeze(-1)).squeeze(-1)


class DiffuGRPO(Objective):
    name = "diffu_grpo"

    @dataclass
    class Args:
        p_mask_prompt: float = doc("probability of masking each prompt token (d1 train.yaml: 0.15)", 0.15)
        clip_epsilon: float = doc("PPO clip ε (d1 train.yaml: 0.5)", 0.5)
        beta: float = doc("KL coefficient to the reference (base) model (d1: 0.04)", 0.04)
        random_masking: bool = doc("fresh prompt-mask seed per inner iteration (d1 default); off = seed 42 always", True)

    def prepare(self, policy, ref_model, batch, inner_iterations):
        a, s = self.args, batch.sample
        if a.random_masking:
            seeds = torch.randint(0, 2**12, (inner_iterations,), generator=self.generator).tolist()
        else:
            seeds = [42] * inner_iterations
        batch.extras["mask_seeds"] = seeds
        with torch.no_grad():
            if inner_iterations > 1:
                batch.extras["old_logp"] = [one_step_logprobs(policy, s, a.p_mask_prompt, sd) for sd in seeds]
            if a.beta > 0:
                batch.extras["ref_logp"] = [one_step_logprobs(ref_model, s, a.p_mask_prompt, sd) for sd in seeds]

    def losses(self, policy, ref_model, batch, inner_iteration):
        a, s = self.args, batch.sample
        seed = batch.extras["mask_seeds"][inner_iteration]
        logp = one_step_logprobs(policy, s, a.p_mask_prompt, seed)
        old = batch.extras["old_logp"][inner_iteration] if "old_logp" in batch.extras else logp.detach()
        per_tok, ratio, clipped = clipped_surrogate(logp, old, batch.advantages[:, None], a.clip_epsilon)
        stats = {}
        if a.beta > 0:
            kl = kl_k3(batch.extras["ref_logp"][inner_iteration], logp)
            per_tok = per_tok + a.beta * kl
            stats["kl"] = (kl * batch.completion_mask).sum().item() / batch.completion_mask.sum().item()
        c = batch.completion_mask
        loss = (per_tok * c).sum() / c.sum()
        stats.update(clip_ratio=(clipped * c).sum().item() / c.sum().item(),
                     ratio_mean=(ratio.detach() * c).sum().item() / c.sum().item())
        yield loss, stats
