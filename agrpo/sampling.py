"""Blockwise masked-diffusion sampler with LLaDA's ``generate`` semantics, recording the trajectory.

The completion canvas of ``gen_length`` tokens starts fully masked and is split into blocks of ``block_length``
decoded left to right; ``steps`` are split evenly over blocks. At each step one forward pass gives logits at
every position; a candidate token x̂ⁱ is drawn at each masked position of the current block from

    p̃_θ(· | s_t) = softmax( topk/topp-filter(logits / T) )       (Gumbel-max in float64; argmax at T = 0)

and the ``num_transfer`` positions with the highest confidence are committed: ``low_confidence`` uses the
untempered probability p_θ(x̂ⁱ | s_t) (LLaDA), ``random`` uniform scores. Committed tokens are never remasked.
The per-step counts follow LLaDA's ``get_num_transfer_tokens``: ⌊b/s⌋ per step, +1 for the first b mod s steps.

For RL the sampler records, for every completion position i, the global step ``reveal_step[i]`` at which it
was committed, log p̃_θ(oⁱ | s_t) (``token_logprobs``), the entropy of p̃_θ(· | s_t) there, and (when top-k/top-p
are active) the allowed-vocabulary mask. With the final tokens, ``reveal_step`` rebuilds every intermediate
state exactly: s_t = completion with every position whose reveal_step ≥ t set to ``[MASK]``.

Options that reproduce one reference or the other (each documented in docs/agrpo.md):
- ``eos_early_exit`` (released AGRPO sampler): when a whole block came out EOS, the rest of that row is filled
  with EOS (reveal_step = the current step, log-prob and entropy 0) and the row leaves the batch; LLaDA/d1 keep
  decoding every block.
- ``confidence``: ``model`` ranks low-confidence candidates by the untempered p_θ(x̂ⁱ | s_t) (LLaDA/d1);
  ``sampling`` by the tempered, truncated log p̃_θ(x̂ⁱ | s_t) (the released AGRPO code). Identical at T = 0.
- ``ban_special_tokens``: [MASK] and [PAD] can never be committed (ours); off = LLaDA and the released code,
  which let the model's own (negligible) mass on them stand.
- top-p keeps the tokens whose inclusive cumulative mass is ≤ top_p, and always the most likely one (released).

Accelerations beyond the papers (Fast-dLLM, arXiv 2505.22618), for evaluation only — RL rollouts stay exact, since
AGRPO rescores states with full forward passes:
- ``cache="prefix"``: at a block's first step a full pass also captures the keys/values of the prompt and the
  finished blocks (``KVCache``); the block's other steps compute only the positions from the block start on and
  attend to the cached prefix. Approximate: the cached prefix does not see the current block change. Exact when
  each block has one step. ``row_tokens`` counts the positions each row computed (the FLOPs estimate uses it).
- ``cache="dual"``: the first pass also caches the positions after the block (still masked or, later, decoded);
  the block's other steps compute the block alone. Approximate in the same way; exact with one step per block.
- ``threshold=τ > 0``: instead of the fixed per-step counts, commit every open position of the block whose
  confidence is ≥ τ, and always the most confident one; a block ends when it is full, so rows take different
  numbers of passes (``row_nfe``) and ``steps`` is not used. Needs ``low_confidence`` remasking.

Speed without changing the numbers: a fixed-schedule block's steps (``agrpo.denoise.denoise_step``) read nothing
back to the host — the host reads device values between blocks (which rows an early exit retires) and, with
threshold decoding, once per step. ``cuda_graphs`` replays each step as a CUDA graph (agrpo/cuda_graphs.py): the
same tokens from the same generator stream. ``row_temperature`` samples rows at their own temperatures in the
same passes (``generate_grouped(merge_temperatures=True)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from agrpo.config import CACHE, CONFIDENCE, REMASKING  # the config's choices of these keys, declared once


@dataclass
class SamplerConfig:
    gen_length: int = 40
    block_length: int = 8
    steps: int = 40
    remasking: str = "low_confidence"
    temperature: float = 0.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    eos_early_exit: bool = False  # released AGRPO: True; LLaDA/d1: False
    confidence: str = "model"  # low_confidence score: "model" (LLaDA/d1) or "sampling" (released AGRPO)
    ban_special_tokens: bool = True  # never commit [MASK]/[PAD] (LLaDA and released AGRPO: False)
    cache: str = "none"  # "prefix": Fast-dLLM prefix KV cache, refreshed at each block start (approximate)
    threshold: float = 0.0  # > 0: commit every open position with confidence ≥ threshold (≥ 1 per step); steps unused
    cuda_graphs: bool = False  # replay each step as a CUDA graph (agrpo/cuda_graphs.py): same tokens, less launch overhead
    compile_step: bool = False  # torch.compile the step (fused kernels; round-off differs from eager): agrpo/denoise.py

    @property
    def exact(self) -> bool:
        """True when every step is a full forward pass with a fixed schedule (what RL rescoring assumes)."""
        return self.cache == "none" and self.threshold == 0

    def validate(self) -> None:
        if self.gen_length % self.block_length:
            raise ValueError(f"gen_length {self.gen_length} is not a multiple of block_length {self.block_length}")
        num_blocks = self.gen_length // self.block_length
        if self.steps % num_blocks or self.steps <= 0:
            raise ValueError(f"steps {self.steps} must be a positive multiple of the number of blocks {num_blocks}")
        if self.steps > self.gen_length:
            raise ValueError(f"steps {self.steps} > gen_length {self.gen_length}: some steps would reveal nothing")
        if self.remasking not in REMASKING:
            raise ValueError(f"remasking must be one of {REMASKING}, got {self.remasking!r}")
        if self.confidence not in CONFIDENCE:
            raise ValueError(f"confidence must be one of {CONFIDENCE}, got {self.confidence!r}")
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError("need temperature >= 0, top_k >= 0, 0 < top_p <= 1")
        if self.cache not in CACHE:
            raise ValueError(f"cache must be one of {CACHE}, got {self.cache!r}")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1) (0 = fixed schedule), got {self.threshold}")
        if self.compile_step and self.cache != "none":
            raise ValueError("compile_step: the compiled step is for cache 'none' (the cached passes build their KV "
                             "cache as Python state inside the step)")
        if self.threshold > 0 and self.remasking != "low_confidence":
            raise ValueError("threshold decoding ranks by confidence: it needs remasking low_confidence")

    @property
    def filters_vocab(self) -> bool:
        return self.temperature > 0 and (self.top_k > 0 or self.top_p < 1.0)


@dataclass
class SampleOutput:
    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) 1 = real token
    completion_ids: torch.Tensor  # (B, L)
    reveal_step: torch.Tensor  # (B, L) long, global step index in [0, steps)
    token_logprobs: torch.Tensor  # (B, L) log p̃(oⁱ | s_t) at the reveal step
    token_entropy: torch.Tensor  # (B, L) entropy of p̃(· | s_t) at the reveal step
    sampling_mask: torch.Tensor | None  # (B, L, V) bool allowed vocabulary at the reveal step (top-k/top-p only)
    nfe: int  # batched forward passes of the network (= the most any row needed)
    steps: int
    row_nfe: torch.Tensor | None = None  # (B,) forward passes each row took part in (< nfe after an early exit)
    filled: torch.Tensor | None = None  # (B, L) bool: EOS written by the early exit, not sampled (not an action)
    row_tokens: torch.Tensor | None = None  # (B,) positions the network computed for each row, over all its passes

    def rows(self, start: int, stop: int) -> "SampleOutput":
        """Rows [start, stop) (a data-parallel rank's share of a batch)."""
        cut = lambda t: None if t is None else t[start:stop]  # noqa: E731
        return SampleOutput(cut(self.prompt_ids), cut(self.prompt_mask), cut(self.completion_ids),
                            cut(self.reveal_step), cut(self.token_logprobs), cut(self.token_entropy),
                            cut(self.sampling_mask), self.nfe, self.steps, cut(self.row_nfe), cut(self.filled),
                            cut(self.row_tokens))

    @property
    def mean_nfe(self) -> float:
        return float(self.row_nfe.double().mean()) if self.row_nfe is not None else float(self.nfe)


def candidate_logits(model, logits: torch.Tensor, ban_special_tokens: bool = True) -> torch.Tensor:
    """Logits over committable tokens (float32): [MASK] and [PAD] banned unless ``ban_special_tokens`` is off."""
    logits = logits.float()
    if not ban_special_tokens:
        return logits
    logits[..., model.mask_id] = float("-inf")
    if model.pad_id != model.eos_id:
        logits[..., model.pad_id] = float("-inf")
    return logits


def num_transfer_tokens(block_length: int, steps_per_block: int) -> list[int]:
    base, extra = divmod(block_length, steps_per_block)
    return [base + (1 if i < extra else 0) for i in range(steps_per_block)]


def filter_logits(logits: torch.Tensor, cfg: SamplerConfig, temperature: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Temper and truncate: returns (logits / T with disallowed entries at −inf, allowed mask or None);
    ``temperature`` (broadcastable to logits[..., :1]) gives T row by row instead of ``cfg.temperature``."""
    scaled = logits / (cfg.temperature if temperature is None else temperature)
    if not cfg.filters_vocab:
        return scaled, None
    allowed = torch.ones_like(scaled, dtype=torch.bool)
    if cfg.top_k > 0 and cfg.top_k < scaled.shape[-1]:
        kth = scaled.topk(cfg.top_k, dim=-1).values[..., -1:]
        allowed &= scaled >= kth
    if cfg.top_p < 1.0:
        # released rule: drop every token whose inclusive cumulative mass exceeds top_p, never the first
        probs = scaled.masked_fill(~allowed, float("-inf")).softmax(-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep_sorted = sorted_p.cumsum(-1) <= cfg.top_p
        keep_sorted[..., 0] = True
        allowed &= torch.zeros_like(allowed).scatter(-1, order, keep_sorted)
    return scaled.masked_fill(~allowed, float("-inf")), allowed


def step_logprobs(logits: torch.Tensor, tokens: torch.Tensor, cfg: SamplerConfig, allowed: torch.Tensor | None = None,
                  temperature: torch.Tensor | None = None):
    """log p̃_θ(token | s) under the sampler's transform; ``allowed`` overrides the recomputed top-k/top-p mask,
    ``temperature`` (broadcastable to logits[..., :1]) overrides ``cfg.temperature`` row by row.

    Used by the sampler when it commits tokens and by AGRPO when it rescores them (same function, same transform).
    """
    if temperature is not None:
        if allowed is None and cfg.filters_vocab:
            raise ValueError("per-row temperatures need the stored top-k/top-p masks")
        scaled = logits.float() / temperature
        logp = (scaled if allowed is None else scaled.masked_fill(~allowed, float("-inf"))).log_softmax(-1)
    elif cfg.temperature == 0:
        logp = logits.float().log_softmax(-1)
    elif allowed is not None:
        logp = (logits.float() / cfg.temperature).masked_fill(~allowed, float("-inf")).log_softmax(-1)
    else:
        logp = filter_logits(logits.float(), cfg)[0].log_softmax(-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def generate(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, cfg: SamplerConfig,
             generator: torch.Generator | None = None, record: bool = True,
             row_temperature: torch.Tensor | None = None) -> SampleOutput:
    """Sample completions for a left-padded batch of prompts. ``generator`` makes the draw reproducible;
    ``row_temperature`` (B,) samples each row at its own T > 0 in the same passes (``cfg.temperature`` > 0 then
    only selects Gumbel-max sampling).

    The host reads device values only between blocks (which rows an EOS early exit retires) and, with threshold
    decoding, once per step (whether the block is full); a fixed-schedule block's steps run without a host
    synchronisation, eagerly or (``cuda_graphs``) as replayed CUDA graphs (agrpo/cuda_graphs.py)."""
    from agrpo.denoise import BlockRows, compiled_denoise_step, denoise_step, draw_noise
    from agrpo.model.layers import padding_bias

    cfg.validate()
    if cfg.cache != "none" and not getattr(model, "supports_kv_cache", False):
        raise ValueError(f"cache {cfg.cache!r}: {type(model).__name__} has no KV-cache passes (past=/capture=)")
    if cfg.cuda_graphs and prompt_ids.device.type != "cuda":
        raise ValueError(f"cuda_graphs: CUDA graphs need CUDA tensors, got {prompt_ids.device}")
    b, p = prompt_ids.shape
    L, device, bl = cfg.gen_length, prompt_ids.device, cfg.block_length
    x = torch.cat([prompt_ids, torch.full((b, L), model.mask_id, dtype=torch.long, device=device)], dim=1)
    attn = torch.cat([prompt_mask, torch.ones((b, L), dtype=prompt_mask.dtype, device=device)], dim=1)
    reveal = torch.full((b, L), -1, dtype=torch.long, device=device)
    logprobs = torch.zeros((b, L), device=device)
    entropy = torch.zeros((b, L), device=device)
    row_nfe = torch.zeros(b, dtype=torch.long, device=device)
    filled = torch.zeros((b, L), dtype=torch.bool, device=device)
    active = torch.ones(b, dtype=torch.bool, device=device)
    vocab = getattr(model, "logits_size", None) or model.tokenizer.vocab_size
    sampling_mask = torch.zeros((b, L, vocab), dtype=torch.bool, device=device) if record and cfg.filters_vocab else None
    dtype = next((q.dtype for q in model.parameters()), torch.float32)
    bias = padding_bias(attn, dtype) if getattr(model, "supports_kv_cache", False) else None  # one host read
    num_blocks = L // bl
    transfer = num_transfer_tokens(bl, cfg.steps // num_blocks)
    runner = None
    if cfg.cuda_graphs:
        from agrpo.cuda_graphs import StepGraphs

        runner = StepGraphs.of(model, cfg)
    step_fn = compiled_denoise_step() if cfg.compile_step else denoise_step
    step = nfe = 0
    row_tokens = torch.zeros(b, dtype=torch.long, device=device)  # positions computed per row (FLOPs with a cache)
    width = x.shape[1]
    step_t = torch.zeros((), dtype=torch.long, device=device)  # the step index a step commits at
    for blk in range(num_blocks):
        lo, hi = blk * bl, (blk + 1) * bl
        rows_idx = None  # every row
        if cfg.eos_early_exit and blk > 0:
            done = active & (x[:, p + lo - bl:p + lo] == model.eos_id).all(1)
            x[done, p + lo:] = model.eos_id
            reveal[done, lo:] = step
            filled[done, lo:] = True
            active &= ~done
            rows_idx = active.nonzero().squeeze(1)  # the host read between blocks
            if rows_idx.numel() == 0:
                break
            if rows_idx.numel() == b:
                rows_idx = None
        n = b if rows_idx is None else rows_idx.numel()
        pos = torch.arange(p + lo, p + hi, device=device)
        batch = BlockRows(x, attn, bias, reveal, logprobs, entropy, sampling_mask, pos, pos - p, step_t,
                          temperature=row_temperature)  # views of the whole batch
        if runner is not None:
            rows = runner.load(batch, rows_idx)
        else:
            rows = batch if rows_idx is None else batch.subset(rows_idx)
        passes = torch.zeros(rows.x.shape[0], dtype=torch.long, device=device)
        tokens_per_pass = {"none": width, "prefix": width - p - lo, "dual": bl}[cfg.cache]
        for j in range(bl if cfg.threshold > 0 else len(transfer)):
            live = None  # threshold decoding: the rows of the block still decoding
            if cfg.threshold > 0:  # data-dependent step count: one host read per step
                live = (rows.reveal.index_select(1, rows.cols) == -1)[:n].any(1)
                if not live.any():
                    break
            k = transfer[j] if cfg.threshold == 0 else 0
            if runner is not None:
                runner.step(model, rows, cfg, k, record, j == 0, lo, p, step, n, vocab, generator, live, step_fn)
            else:
                # eager threshold decoding: only the rows still decoding take the pass (as always)
                keep = None if live is None or live.all() else live.nonzero().squeeze(1)
                block = rows if keep is None else rows.subset(keep)
                block.step.fill_(step)
                draw_noise(block, block.x.shape[0], vocab, cfg, generator)
                step_fn(model, block, cfg, k, record, j == 0, lo, p)
                if keep is not None:
                    rows.write_back(block, keep)
            nfe += 1
            passes[:n] += 1 if live is None else live.long()
            step += 1
        if runner is not None:
            runner.store(batch, rows, rows_idx, n)
        elif rows_idx is not None:
            batch.write_back(rows, rows_idx)
        idx = torch.arange(b, device=device) if rows_idx is None else rows_idx
        row_nfe.index_add_(0, idx, passes[:n])
        if cfg.cache == "none":
            row_tokens.index_add_(0, idx, passes[:n] * width)
        else:
            row_tokens.index_add_(0, idx, (passes[:n] > 0).long() * width + (passes[:n] - 1).clamp(min=0) * tokens_per_pass)
    return SampleOutput(prompt_ids, prompt_mask, x[:, p:].clone(), reveal, logprobs, entropy, sampling_mask, nfe,
                        step if cfg.threshold > 0 else cfg.steps, row_nfe, filled, row_tokens)


def generate_grouped(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, samplers: list[SamplerConfig],
                     generator: torch.Generator | None = None, merge_temperatures: bool = False
                     ) -> tuple[SampleOutput, torch.Tensor | None]:
    """``generate`` with a sampler per row (they may differ in temperature / top-k / top-p only): rows sharing a
    sampler are generated together, in order of first appearance, and put back in place — or, with
    ``merge_temperatures`` when the samplers differ in temperature alone, all rows in the same passes, each at its
    own T (one forward per step for the whole batch; the random draws then differ from the per-group calls, the
    distribution does not). Returns the output and the per-row temperatures (None when every row used the same
    sampler: then this is ``generate``)."""
    keys = [tuple(sorted(vars(sc).items())) for sc in samplers]
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    if len(groups) == 1:
        return generate(model, prompt_ids, prompt_mask, samplers[0], generator), None
    first = samplers[0]
    for sc in samplers:
        if (sc.gen_length, sc.block_length, sc.steps) != (first.gen_length, first.block_length, first.steps):
            raise ValueError("per-row samplers must share gen_length, block_length and steps")
    temperature = torch.tensor([sc.temperature for sc in samplers], device=prompt_ids.device)
    same_but_t = all(dataclasses.replace(sc, temperature=first.temperature) == first for sc in samplers)
    if merge_temperatures and same_but_t and all(sc.temperature > 0 for sc in samplers):
        return generate(model, prompt_ids, prompt_mask, first, generator, row_temperature=temperature), temperature
    b, L = prompt_ids.shape[0], first.gen_length
    parts = []
    for rows in groups.values():
        idx = torch.tensor(rows, device=prompt_ids.device)
        parts.append((idx, generate(model, prompt_ids[idx], prompt_mask[idx], samplers[rows[0]], generator)))
    out = {name: torch.zeros((b, *getattr(parts[0][1], name).shape[1:]), dtype=getattr(parts[0][1], name).dtype,
                             device=prompt_ids.device)
           for name in ("completion_ids", "reveal_step", "token_logprobs", "token_entropy", "row_nfe", "filled",
                        "row_tokens")}
    vocab = next((o.sampling_mask.shape[-1] for _, o in parts if o.sampling_mask is not None), None)
    sampling_mask = None if vocab is None else torch.ones((b, L, vocab), dtype=torch.bool, device=prompt_ids.device)
    for idx, o in parts:
        for name in out:
            out[name][idx] = getattr(o, name)
        if sampling_mask is not None and o.sampling_mask is not None:
            sampling_mask[idx] = o.sampling_mask
    merged = SampleOutput(prompt_ids, prompt_mask, out["completion_ids"], out["reveal_step"], out["token_logprobs"],
                          out["token_entropy"], sampling_mask, max(o.nfe for _, o in parts), first.steps,
                          out["row_nfe"], out["filled"], out["row_tokens"])
    return merged, temperature


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into (ids, mask) tensors."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids, mask
