"""wd1 (Tang et al., "wd1: Weighted Policy Optimization for Reasoning in Diffusion Language Models"; code
``xiaohangt/wd1``, trainer ``rev_grpo_trainer.py``, ``--trainer_type wll_d1_neg``): a ratio-free weighted
log-likelihood on d1's one-step log-probability estimate.

For a group of G completions with advantages Â_i = R_i − mean_j R_j and d1's estimate
log π_θ(o_i | q) ≈ Σ_k c_{i,k} log p_θ(o_i^k | q', [MASK]^L) (prompt masked from seed ξ_n, as diffu-GRPO):

    w⁺ = softmax_i(Â_i),   w⁻ = softmax_i(−Â_i)      (over the group: the released per-device micro-batch)
    L_group = −Σ_i w⁺_i log π_θ(o_i | q) + Σ_i w⁻_i log π_θ(o_i | q),   L = mean over groups.

The first term raises the likelihood of better-than-average completions, the second lowers that of worse ones.
No ratio, no clipping, no KL, no old or reference log-probs. μ inner iterations reuse one rollout, each with its
own prompt mask (as d1). Released settings: μ = 12, lr 3e-6, LoRA r = 128 / α = 64 on a 4-bit base, 4 GPUs ×
6 completions × 2 accumulation steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agrpo.config import doc
from agrpo.rl.objectives import Objective
from baselines.diffu_grpo import draw_mask_seeds, one_step_logprobs


class WD1(Objective):
    name = "wd1"

    @dataclass
    class Args:
        p_mask_prompt: float = doc("probability of masking each prompt token (wd1 train.yaml: 0.15, as d1)", 0.15)
        random_masking: bool = doc("fresh prompt-mask seed per inner iteration (released); off = seed 42 always", True)
        released_numerics: bool = doc("d1's one-step passes as shipped (wd1 forks them): no attention mask, bf16 logits' cross-entropy", False)

    def prepare(self, policy, ref_model, batch, inner_iterations):
        batch.extras["mask_seeds"] = draw_mask_seeds(self.generator, inner_iterations, self.args.random_masking)

    def sequence_passes(self, rows, inner_iterations):
        """One one-step pass per row per inner iteration, with gradients; no old or reference log-probs."""
        return {"forward": 0, "forward_backward": inner_iterations * rows}

    def losses(self, policy, ref_model, batch, inner_iteration):
        seed = batch.extras["mask_seeds"][inner_iteration]
        logp = one_step_logprobs(policy, batch.sample, self.args.p_mask_prompt, seed, batch.shard,
                                 self.args.released_numerics)
        seq = (logp * batch.completion_mask).sum(-1).view(-1, batch.group_size)  # log π_θ(o_i | q), by group
        adv = batch.advantages.view(-1, batch.group_size).to(seq.dtype)
        w_pos, w_neg = torch.softmax(adv, 1), torch.softmax(-adv, 1)
        loss = (-(w_pos * seq).sum(1) + (w_neg * seq).sum(1)).mean()
        yield loss, {"seq_logp_mean": seq.mean().item(), "w_pos_max": w_pos.max().item()}
