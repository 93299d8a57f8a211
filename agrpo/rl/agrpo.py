"""AGRPO: policy gradients on individual denoising steps, estimated at k sampled timesteps.

Denoising is an MDP: state s_t = (q, x_t), action a_t = the tokens committed at step t. With random unmasking
the position choice does not depend on θ, so log π_θ(a_t | s_t) = Σ_{i revealed at t} log p̃_θ(oⁱ | s_t), where
p̃_θ is the rollout's transform (logits / T, top-k/top-p mask stored at rollout time). For a group of G rollouts
the step-level GRPO objective is

    J(θ) = 1/G Σ_i 1/m_i Σ_{t<m_i} Σ_{tok∈a_{i,t}} min(ρ Â_i, clip(ρ, 1−ε, 1+ε) Â_i) − β·ρ·KL_k3,
    ρ = p̃_θ(tok | s_{i,t}) / p̃_θold(tok | s_{i,t}),   Â_i = R_i − mean_j R_j.

The inner average over steps is an expectation over t ~ U{0..m_i−1}; AGRPO estimates it with k draws per
trajectory (unbiased), each one forward/backward pass on the rebuilt state s_{i,t} (every position with
reveal_step ≥ t re-masked). m_i counts steps up to the last one that revealed a non-EOS token (released code).

Timestep samplers (``timestep_sampler``):
- ``uniform``: t = ⌊u·m_i⌋ with u i.i.d. U[0,1).
- ``stratified``: the B·k uniforms of a batch are u_s = (π(s) + U_s)/(B·k) for a random permutation π
  (low-discrepancy, as released), then t = ⌊u·m_i⌋.
- ``entropy``: proposal q_i(t) ∝ H_{i,t} + 1e-8, H the summed rollout entropies of the tokens revealed at t;
  t = inverse-CDF(u) with stratified u; importance weight w = (1/m_i) / q_i(t) keeps the estimator unbiased.

Loss of draw j (released normalisation): L_j = 1/(k·B) Σ_i w_ij Σ_{tok revealed at t_ij} ℓ_tok.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agrpo.config import doc
from agrpo.rl.objectives import Objective, RolloutBatch, clipped_surrogate, kl_k3
from agrpo.sampling import candidate_logits, step_logprobs

TIMESTEP_SAMPLERS = ("uniform", "stratified", "entropy")


def rebuild_state(completion_ids: torch.Tensor, reveal_step: torch.Tensor, t: torch.Tensor, mask_id: int):
    """s_t: the completion with every token revealed at step ≥ t masked again. ``t`` is (B,) or (B, 1)."""
    return completion_ids.masked_fill(reveal_step >= t.view(-1, 1), mask_id)


def steps_per_trajectory(batch: RolloutBatch, eos_id: int, restrict: bool) -> torch.Tensor:
    """m_i: steps up to and including the last that revealed a non-EOS token (all m steps if ``restrict`` is off)."""
    s = batch.sample
    m = torch.full((s.completion_ids.shape[0],), s.steps, dtype=torch.long)
    if not restrict:
        return m
    content = s.completion_ids != eos_id
    last = s.reveal_step.masked_fill(~content, -1).max(1).values
    return torch.where(last >= 0, last + 1, m)


def sample_timesteps(m: torch.Tensor, k: int, kind: str, generator: torch.Generator,
                     step_entropy: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw (t, w), each (B, k): timesteps in [0, m_i) and importance weights (1 except for ``entropy``)."""
    b = m.shape[0]
    if kind == "uniform":
        u = torch.rand((b, k), generator=generator, dtype=torch.float64)
    elif kind in ("stratified", "entropy"):
        s = b * k
        u = ((torch.randperm(s, generator=generator).double() + torch.rand(s, generator=generator, dtype=torch.float64)) / s).view(b, k)
    else:
        raise ValueError(f"unknown timestep_sampler {kind!r}; choose from {TIMESTEP_SAMPLERS}")
    if kind != "entropy":
        t = (u * m[:, None].double()).floor().long().clamp(max=(m - 1)[:, None])
        return t, torch.ones((b, k), dtype=torch.float64)
    steps = step_entropy.shape[1]
    valid = torch.arange(steps)[None, :] < m[:, None]
    h = (step_entropy.double() + 1e-8) * valid
    q = h / h.sum(1, keepdim=True)
    cdf = q.cumsum(1)
    cdf[torch.arange(b), m - 1] = 1.0  # guard against round-off at the top
    t = torch.searchsorted(cdf, u, right=True).clamp(max=(m - 1)[:, None])
    w = (1.0 / m[:, None].double()) / q.gather(1, t)
    return t, w


def step_entropies(batch: RolloutBatch) -> torch.Tensor:
    """H_{i,t}: summed rollout entropies of the tokens revealed at each step, (B, m)."""
    s = batch.sample
    out = torch.zeros((s.reveal_step.shape[0], s.steps), dtype=torch.float64)
    return out.scatter_add(1, s.reveal_step, s.token_entropy.double())


class AGRPO(Objective):
    name = "agrpo"

    @dataclass
    class Args:
        mc_samples: int = doc("k: timesteps sampled per trajectory per update (released: 24)", 24)
        timestep_sampler: str = doc("`uniform`, `stratified` (low-discrepancy) or `entropy` (importance sampling; released)", "entropy")
        clip_epsilon: float = doc("PPO clip ε (released: 0.2)", 0.2)
        beta: float = doc("KL coefficient to the reference (base) model (released: 0)", 0.0)
        restrict_to_content_steps: bool = doc("sample t only up to the last step that revealed a non-EOS token (released)", True)

    def __init__(self, args, generator):
        super().__init__(args, generator)
        if args.timestep_sampler not in TIMESTEP_SAMPLERS:
            raise ValueError(f"timestep_sampler must be one of {TIMESTEP_SAMPLERS}")
        if args.mc_samples < 1:
            raise ValueError("mc_samples must be >= 1")

    def prepare(self, policy, ref_model, batch, inner_iterations):
        m = steps_per_trajectory(batch, policy.eos_id, self.args.restrict_to_content_steps)
        ent = step_entropies(batch) if self.args.timestep_sampler == "entropy" else None
        batch.extras["agrpo_m"] = m
        batch.extras["agrpo_step_entropy"] = ent

    def step_logprobs(self, model, batch: RolloutBatch, t: torch.Tensor):
        """log p̃_θ(oⁱ | s_t) at every completion position (B, L) and the mask of positions revealed at t."""
        s = batch.sample
        state = rebuild_state(s.completion_ids, s.reveal_step, t, model.mask_id)
        ids = torch.cat([s.prompt_ids, state], 1)
        attn = torch.cat([s.prompt_mask, torch.ones_like(state)], 1)
        logits = candidate_logits(model, model(ids, attn)[:, s.prompt_ids.shape[1]:])
        logp = step_logprobs(logits, s.completion_ids, batch.sampler, s.sampling_mask)
        return logp, s.reveal_step == t.view(-1, 1)

    def step_loss(self, policy, ref_model, batch, t: torch.Tensor, w: torch.Tensor, k: int):
        """Loss of one timestep draw (one row each): 1/(k·B) Σ_i w_i Σ_{tok revealed at t_i} ℓ_tok, and stats."""
        a, s = self.args, batch.sample
        logp, revealed = self.step_logprobs(policy, batch, t)
        # old log-probs are the rollout's own: no extra forward pass (ρ ≡ 1 when μ = 1)
        old = torch.where(revealed, s.token_logprobs, logp.detach())
        per_tok, ratio, clipped = clipped_surrogate(logp, old, batch.advantages[:, None], a.clip_epsilon)
        stats = {}
        if a.beta > 0:
            with torch.no_grad():
                ref_logp, _ = self.step_logprobs(ref_model, batch, t)
            kl = kl_k3(ref_logp, logp)
            per_tok = per_tok + a.beta * ratio * kl  # KL times ρ (DeepSeek-V3.2 correction, as released)
            stats["kl"] = (kl * revealed).sum().item() / max(revealed.sum().item(), 1)
        loss = (per_tok * revealed * w[:, None].to(per_tok.dtype)).sum() / (k * s.completion_ids.shape[0])
        n_tok = max(revealed.sum().item(), 1)
        stats.update(clip_ratio=(clipped * revealed).sum().item() / n_tok,
                     ratio_mean=(ratio.detach() * revealed).sum().item() / n_tok)
        return loss, stats

    def losses(self, policy, ref_model, batch, inner_iteration):
        a = self.args
        t_all, w_all = sample_timesteps(batch.extras["agrpo_m"], a.mc_samples, a.timestep_sampler, self.generator,
                                        batch.extras["agrpo_step_entropy"])
        for j in range(a.mc_samples):
            yield self.step_loss(policy, ref_model, batch, t_all[:, j], w_all[:, j], a.mc_samples)
