"""AGRPO: policy gradients on individual denoising steps, estimated at k sampled timesteps.

Denoising is an MDP: state s_t = (q, x_t), action a_t = the tokens committed at step t. With random unmasking
the position choice does not depend on θ, so log π_θ(a_t | s_t) = Σ_{i revealed at t} log p̃_θ(oⁱ | s_t), where
p̃_θ is the rollout's transform (logits / T, top-k/top-p mask stored at rollout time). For a group of G rollouts
the step-level GRPO objective is

    J(θ) = 1/G Σ_i 1/m_i Σ_{t<m_i} Σ_{tok∈a_{i,t}} min(ρ Â_i, clip(ρ, 1−ε, 1+ε) Â_i) − β·ρ·KL_k3,
    ρ = p̃_θ(tok | s_{i,t}) / p̃_θold(tok | s_{i,t}),   Â_i = R_i − mean_j R_j.

The inner average over steps is an expectation over t ~ U{0..m_i−1}; AGRPO estimates it with k draws per
trajectory (unbiased), each one forward/backward pass on the rebuilt state s_{i,t} (every position with
reveal_step ≥ t re-masked) — or c draws stacked into one pass of c·B rows (``draws_per_pass``). m_i counts
steps up to the last one that revealed a non-EOS token (released code).

Timestep samplers (``importance_sampling`` × ``low_discrepancy``, as released):
- u: i.i.d. U[0,1) (``low_discrepancy: false``), or the B·k uniforms of a batch u_s = (π(s) + U_s)/(B·k) for
  a random permutation π (``low_discrepancy: true``, arXiv:2409.02908 App. G.2), reshaped B × k.
- ``importance_sampling: uniform``: t = ⌊u·m_i⌋, weight w = 1.
- ``importance_sampling: entropy``: proposal q_i(t) ∝ H_{i,t} + 1e-8 for t < m_i (0 beyond), H the summed
  rollout entropies of the tokens revealed at t; t = inverse-CDF_q(u); w = (1/m_i) / q_i(t) keeps the estimator
  unbiased for the uniform average over steps.
The named presets of ``TIMESTEP_SAMPLERS`` are the three the paper discusses plus the fourth combination.

Loss of draw j (released normalisation): L_j = 1/(k·B) Σ_i w_ij Σ_{tok revealed at t_ij} ℓ_tok. The released
code divides each device micro-batch's sum by k·G with one prompt group per micro-batch and averages over
micro-batches and devices, which is the same 1/(k·B) over the whole rollout batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agrpo.config import doc
from agrpo.model.layers import bias_kwargs
from agrpo.rl.objectives import Objective, RolloutBatch, clipped_surrogate, kl_k3
from agrpo.sampling import candidate_logits, step_logprobs

IMPORTANCE_SAMPLING = ("uniform", "entropy")
# preset name -> (importance_sampling, low_discrepancy)
TIMESTEP_SAMPLERS = {"uniform": ("uniform", False), "stratified": ("uniform", True),
                     "entropy": ("entropy", True), "entropy_iid": ("entropy", False)}


def rebuild_state(completion_ids: torch.Tensor, reveal_step: torch.Tensor, t: torch.Tensor, mask_id: int):
    """s_t: the completion with every token revealed at step ≥ t masked again. ``t`` is (B,) or (B, 1)."""
    return completion_ids.masked_fill(reveal_step >= t.view(-1, 1), mask_id)


def draw_major(x: torch.Tensor, b: int) -> torch.Tensor:
    """(B,) or (B, c) per-row draws flattened draw-major, (c·B,): the row order of a stacked pass."""
    return x.view(b, -1).T.reshape(-1)


def steps_per_trajectory(batch: RolloutBatch, eos_id: int, restrict: bool) -> torch.Tensor:
    """m_i: steps up to and including the last that revealed a non-EOS token (``restrict``, released), else every
    step the row ran. A completion that is EOS only (the released code asserts it never happens) keeps every step."""
    s = batch.sample
    ran = s.row_nfe if s.row_nfe is not None else torch.full((s.completion_ids.shape[0],), s.steps, dtype=torch.long,
                                                            device=s.completion_ids.device)
    if not restrict:
        return ran.clone()
    content = s.completion_ids != eos_id
    last = s.reveal_step.masked_fill(~content, -1).max(1).values
    return torch.where(last >= 0, last + 1, ran)


def draw_uniforms(b: int, k: int, low_discrepancy: bool, generator: torch.Generator, stratum: int = 0) -> torch.Tensor:
    """(B, k) uniforms: i.i.d., or stratified ((randperm(S) + U)/S, S = rows·k) over the whole batch, or over each
    block of ``stratum`` rows (one prompt group per device micro-batch in the released code)."""
    if not low_discrepancy:
        return torch.rand((b, k), generator=generator, dtype=torch.float64)
    rows = stratum or b
    if b % rows:
        raise ValueError(f"{b} rows do not split into strata of {rows}")
    s, parts = rows * k, []
    for _ in range(b // rows):
        perm = torch.randperm(s, generator=generator).double()
        parts.append(((perm + torch.rand(s, generator=generator, dtype=torch.float64)) / s).view(rows, k))
    return torch.cat(parts)


def sample_timesteps(m: torch.Tensor, k: int, importance_sampling: str, low_discrepancy: bool,
                     generator: torch.Generator, step_entropy: torch.Tensor | None = None,
                     shard: tuple[int, int] = (0, 1), stratum: int = 0, cdf_dtype: torch.dtype = torch.float64):
    """Draw (t, w), each (B, k): timesteps in [0, m_i) and importance weights (1 unless ``entropy``).

    With ``shard = (r, W)`` the uniforms are drawn for the W·B rows of the global batch (stratified over all of
    them, or over each ``stratum`` of rows) and rank r keeps rows [r·B, (r+1)·B): the draws do not depend on the
    process count. ``cdf_dtype`` float32 builds the entropy proposal's CDF as the released code does (the
    weights stay float64); either way a round-off guard keeps t < m_i."""
    if importance_sampling not in IMPORTANCE_SAMPLING:
        raise ValueError(f"unknown importance_sampling {importance_sampling!r}; choose from {IMPORTANCE_SAMPLING}")
    b, device = m.shape[0], m.device
    rank, world_size = shard
    u = draw_uniforms(b * world_size, k, low_discrepancy, generator, stratum)[rank * b:(rank + 1) * b].to(device)
    if importance_sampling == "uniform":
        t = (u * m[:, None].double()).floor().long().clamp(max=(m - 1)[:, None])
        return t, torch.ones((b, k), dtype=torch.float64, device=device)
    steps = step_entropy.shape[1]
    valid = torch.arange(steps, device=device)[None, :] < m[:, None]
    q = (step_entropy.to(cdf_dtype) + 1e-8) * valid
    q = q / q.sum(1, keepdim=True)
    cdf = q.cumsum(1)
    cdf[torch.arange(b, device=device), m - 1] = 1.0  # round-off guard: never land past m_i − 1
    t = torch.searchsorted(cdf, u.to(cdf_dtype)).clamp(max=(m - 1)[:, None])
    w = (1.0 / m[:, None].double()) / q.double().gather(1, t)
    return t, w


def step_entropies(batch: RolloutBatch) -> torch.Tensor:
    """H_{i,t}: summed rollout entropies of the tokens revealed at each step, (B, m)."""
    s = batch.sample
    out = torch.zeros((s.reveal_step.shape[0], s.steps + 1), dtype=torch.float64, device=s.reveal_step.device)  # +1: fill step
    return out.scatter_add(1, s.reveal_step.clamp(max=s.steps), s.token_entropy.double())[:, : s.steps]


class AGRPO(Objective):
    name = "agrpo"

    @dataclass
    class Args:
        mc_samples: int = doc("k: timesteps sampled per trajectory per update (released: 24)", 24)
        importance_sampling: str = doc("timestep proposal: `uniform` or `entropy` (∝ step entropy, importance-weighted; released)", "entropy")
        low_discrepancy: bool = doc("stratify the B·k timestep uniforms across the batch (released: true)", True)
        clip_epsilon: float = doc("PPO clip ε, symmetric (released: 0.2)", 0.2)
        beta: float = doc("KL coefficient to the reference = base model (released: 0)", 0.0)
        kl_ratio_correction: bool = doc("multiply the k3 KL by ρ (released v2, arXiv:2512.02556); false = plain k3 (v1 text)", True)
        restrict_to_content_steps: bool = doc("sample t only up to the last step that revealed a non-EOS token (released)", True)
        stratify: str = doc("low-discrepancy strata: `batch` (the B·k uniforms of the whole rollout batch, ours) or `group` (each prompt group's G·k, as the released code: one group per device micro-batch)", "batch")
        cdf_dtype: str = doc("dtype of the entropy proposal's CDF: `float64` (ours) or `float32` (released; same draws except within float32 round-off of a CDF step)", "float64")
        old_logprobs: str = doc("π_θold in ρ: `rollout` = the log-probs the sampler recorded (released; ρ = 1 up to the last bits of the rollout's and the update's kernels) or `current` = the re-scored log-probs, detached (ρ ≡ 1 exactly: what θ_old is when the policy has not stepped since the rollout, i.e. μ = 1 and no released launcher steps; e.g. under bf16 autocast, where the rollout's and the update's batch shapes round differently)", "rollout")
        draws_per_pass: int = doc("c: timestep draws stacked into one forward/backward pass of c·B rows (1 = one pass per draw, as released). The same loss and gradient up to float summation order, in ⌈k/c⌉ passes instead of k, for c× the activation memory: fills a GPU that one draw of a small model leaves idle", 1)
        released_launcher_steps: int = doc("0 = one optimizer step per update (the paper's estimator). A ≥ 1 = the steps the released launcher takes (measured on an H200, docs/agrpo.md): each process's prompt groups split into A micro-batches; the k draws of the first A−1 accumulate, then every draw of the last takes its own clipped AdamW step — k steps per update, all at one learning rate (released: A = 2)", 0)

    def __init__(self, args, generator):
        super().__init__(args, generator)
        if args.old_logprobs not in ("rollout", "current"):
            raise ValueError(f"old_logprobs must be 'rollout' or 'current', got {args.old_logprobs!r}")
        if args.old_logprobs == "current" and args.released_launcher_steps:
            raise ValueError("old_logprobs 'current' needs released_launcher_steps 0: the launcher steps between draws, "
                             "so the policy that sampled is gone by the second draw")
        if args.importance_sampling not in IMPORTANCE_SAMPLING:
            raise ValueError(f"importance_sampling must be one of {IMPORTANCE_SAMPLING}, got {args.importance_sampling!r}")
        if args.mc_samples < 1:
            raise ValueError("mc_samples must be >= 1")
        if args.stratify not in ("batch", "group") or args.cdf_dtype not in ("float64", "float32"):
            raise ValueError("stratify must be 'batch' or 'group', cdf_dtype 'float64' or 'float32'")
        if args.draws_per_pass < 1:
            raise ValueError("draws_per_pass must be >= 1 (1 = one pass per draw, as released)")
        if args.draws_per_pass > 1 and args.released_launcher_steps:
            raise ValueError("draws_per_pass > 1 needs released_launcher_steps 0: the launcher steps after each draw")
        if args.released_launcher_steps < 0:
            raise ValueError("released_launcher_steps must be >= 0 (0 = off; the released launcher: 2)")

    def prepare(self, policy, ref_model, batch, inner_iterations):
        m = steps_per_trajectory(batch, policy.eos_id, self.args.restrict_to_content_steps)
        ent = step_entropies(batch) if self.args.importance_sampling == "entropy" else None
        batch.extras["agrpo_m"] = m
        batch.extras["agrpo_step_entropy"] = ent

    def step_logprobs(self, model, batch: RolloutBatch, t: torch.Tensor, rows_in: torch.Tensor | None = None):
        """log p̃_θ(oⁱ | s_t) of the tokens sampled at step t_b of each row b: a flat (n,) tensor, and the mask
        saying which positions they are (row-major order). Only those n positions go through the
        float32 / temperature / top-k-top-p / log-softmax transform (as released: the vocabulary can be 126k).

        ``t`` is (B,) — one draw per row, mask (B, L) — or (B, c): c draws per row stacked into one pass of c·B
        rows, draw-major (rows 0..B−1 are draw 0), mask (c·B, L). ``rows_in`` keeps only a micro-batch of rows
        (the others are neither run nor scored; one draw per row)."""
        logp, revealed, _, _ = self._scored(model, batch, t, rows_in)
        return logp, revealed

    def _scored(self, model, batch: RolloutBatch, t: torch.Tensor, rows_in: torch.Tensor | None):
        """``step_logprobs`` and the scored tokens' (stacked row, position) indices, read from the mask once."""
        s = batch.sample
        b = s.completion_ids.shape[0]
        draws = t.view(b, -1).shape[1]
        if draws > 1 and rows_in is not None:
            raise ValueError("stacked draws (draws_per_pass > 1) score every row: rows_in must be None")
        t_rows = draw_major(t, b)

        def stack(x):
            return x if draws == 1 else x.repeat(draws, 1)
        state = rebuild_state(stack(s.completion_ids), stack(s.reveal_step), t_rows, model.mask_id)
        ids = torch.cat([stack(s.prompt_ids), state], 1)
        attn = torch.cat([stack(s.prompt_mask), torch.ones_like(state)], 1)
        revealed = stack(s.reveal_step) == t_rows.view(-1, 1)
        if s.filled is not None:
            revealed &= ~stack(s.filled)  # EOS written by the early exit was not sampled
        picked = revealed  # the positions scored, among the rows the model runs on
        if rows_in is not None:
            revealed &= rows_in[:, None]
            ids, attn, picked = ids[rows_in], attn[rows_in], revealed[rows_in]
        logits = model(ids, attn, **bias_kwargs(model, attn))[:, s.prompt_ids.shape[1]:][picked]  # (n, V)
        logits = candidate_logits(model, logits, batch.sampler.ban_special_tokens)
        stacked_row, pos = revealed.nonzero(as_tuple=True)
        row = stacked_row % b  # the batch row each scored token belongs to
        allowed = s.sampling_mask[row, pos] if s.sampling_mask is not None else None
        temperature = None
        if batch.row_temperature is not None:  # per-task rollout temperatures
            temperature = batch.row_temperature[row][:, None]
        logp = step_logprobs(logits, s.completion_ids[row, pos], batch.sampler, allowed, temperature)
        return logp, revealed, stacked_row, pos

    def step_loss(self, policy, ref_model, batch, t: torch.Tensor, w: torch.Tensor, k: int,
                  rows_in: torch.Tensor | None = None):
        """Loss of one pass: 1/(k·B) Σ_j Σ_i w_ij Σ_{tok revealed at t_ij} ℓ_tok over its draws j (``t``, ``w``:
        (B,) for one draw per row, or (B, c) for c stacked draws), and stats (means over the pass's tokens).
        ``rows_in`` (B,) bool restricts the sum to a micro-batch of rows (B stays the whole batch's)."""
        a, s = self.args, batch.sample
        b = s.completion_ids.shape[0]
        logp, _, stacked_row, pos = self._scored(policy, batch, t, rows_in)
        rows = stacked_row % b
        # recorded by the sampler (no extra forward pass), or θ_old = θ itself when it has not stepped since
        old = logp.detach() if a.old_logprobs == "current" else s.token_logprobs[rows, pos]
        adv = batch.advantages[rows].to(logp.dtype)
        per_tok, ratio, _ = clipped_surrogate(logp, old, adv, a.clip_epsilon)
        stats = {}
        n_tok = max(len(rows), 1)
        if a.beta > 0:
            with torch.no_grad():
                ref_logp, _ = self.step_logprobs(ref_model, batch, t, rows_in)
            kl = kl_k3(ref_logp, logp)
            if a.kl_ratio_correction:
                kl = kl * ratio  # DeepSeek-V3.2 importance-sampling correction, as released
            per_tok = per_tok + a.beta * kl
            stats["kl"] = kl.detach().sum().item() / n_tok
        loss = (per_tok * draw_major(w, b)[stacked_row].to(per_tok.dtype)).sum() / (k * b)
        r = ratio.detach()
        low, high = (r < 1 - a.clip_epsilon) & (adv < 0), (r > 1 + a.clip_epsilon) & (adv > 0)
        stats.update(clip_ratio_low=low.sum().item() / n_tok, clip_ratio_high=high.sum().item() / n_tok,
                     clip_ratio=(low | high).sum().item() / n_tok, ratio_mean=r.sum().item() / n_tok,
                     ratio_max=r.max().item() if r.numel() else 1.0)
        return loss, stats

    def passes(self) -> list[slice]:
        """The draws j each pass stacks: k draws in ⌈k/c⌉ passes of c = ``draws_per_pass`` (the last may hold fewer)."""
        k, c = self.args.mc_samples, self.args.draws_per_pass
        return [slice(j, min(j + c, k)) for j in range(0, k, c)]

    def chunks_per_iteration(self) -> int:
        return len(self.passes()) * max(1, self.args.released_launcher_steps)

    def sequence_passes(self, rows, inner_iterations):
        """k draws of every row per inner iteration, each a forward/backward (stacked or not, in micro-batches or
        not); with β > 0 the reference scores each draw too. Old log-probs: recorded by the sampler, or θ itself."""
        draws = inner_iterations * self.args.mc_samples * rows
        return {"forward": draws if self.args.beta > 0 else 0, "forward_backward": draws}

    def step_after(self) -> list[int]:
        """Off: after the last draw. The released launcher (A micro-batches): after every draw of the last one."""
        k, a = self.args.mc_samples, self.args.released_launcher_steps
        return list(range((a - 1) * k, a * k)) if a else [self.chunks_per_iteration() - 1]

    def micro_batches(self, batch) -> list[torch.Tensor | None]:
        """Row masks of the A micro-batches: this process's prompt groups split into A consecutive parts (the
        released per-device micro-batch is one group), or [None] (every row at once) when off."""
        a = self.args.released_launcher_steps
        if not a:
            return [None]
        b = batch.sample.completion_ids.shape[0]
        groups = b // batch.group_size
        if groups % a:
            raise ValueError(f"released_launcher_steps {a}: this process holds {groups} prompt groups, not a multiple of {a}")
        part = torch.arange(b, device=batch.advantages.device) // batch.group_size // (groups // a)
        return [part == i for i in range(a)]

    def losses(self, policy, ref_model, batch, inner_iteration):
        a = self.args
        t_all, w_all = sample_timesteps(batch.extras["agrpo_m"], a.mc_samples, a.importance_sampling,
                                        a.low_discrepancy, self.generator, batch.extras["agrpo_step_entropy"],
                                        batch.shard, batch.group_size if a.stratify == "group" else 0,
                                        getattr(torch, a.cdf_dtype))
        for rows_in in self.micro_batches(batch):
            for j in self.passes():
                yield self.step_loss(policy, ref_model, batch, t_all[:, j], w_all[:, j], a.mc_samples, rows_in)
