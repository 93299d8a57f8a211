"""One denoising step of the blockwise sampler (``agrpo.sampling.generate``), as tensor operations only.

``BlockRows`` holds the rows that decode the current block; ``denoise_step`` runs the network and commits
tokens in place without reading anything back to the host, so that it can run eagerly or be captured and
replayed as a CUDA graph (agrpo/cuda_graphs.py). The random numbers of a step are drawn before it
(``draw_noise``) from the sampler's generator, in the order the sampler has always drawn them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from agrpo.sampling import SamplerConfig, candidate_logits, filter_logits


@dataclass
class BlockRows:
    """The tensors of the rows that decode the current block: views of the batch's state (every row, eager) or
    gathered copies (after an early exit; always under CUDA graphs, where they are the graph's static buffers).
    ``noise`` and ``conf_noise`` hold the step's random draws, made before the pass from the sampler's generator."""
    x: torch.Tensor  # (b', P + L) prompt + canvas
    attn: torch.Tensor  # (b', P + L)
    bias: torch.Tensor | None  # padding bias of attn (None: no padding), built once
    reveal: torch.Tensor  # (b', L)
    logprobs: torch.Tensor
    entropy: torch.Tensor
    sampling_mask: torch.Tensor | None  # (b', L, V)
    pos: torch.Tensor  # (block,) the block's sequence positions P + lo + j
    cols: torch.Tensor  # (block,) the block's completion positions lo + j
    step: torch.Tensor  # () long, the global step index the step commits at
    noise: torch.Tensor | None = None  # (b', block, V) float64 uniforms (T > 0)
    conf_noise: torch.Tensor | None = None  # (b', block) uniforms (random remasking)
    live: torch.Tensor | None = None  # (b',) bool: rows still decoding (threshold decoding under graphs)
    cache: object = None  # KVCache of the block's first pass (prefix / dual cache)
    temperature: torch.Tensor | None = None  # (b',) per-row T (merged rollout groups), else cfg.temperature

    GATHERED = ("x", "attn", "bias", "reveal", "logprobs", "entropy", "sampling_mask", "temperature")  # per row
    WRITTEN = ("x", "reveal", "logprobs", "entropy", "sampling_mask")  # what a step changes

    def subset(self, idx: torch.Tensor) -> "BlockRows":
        """Copies of the rows ``idx`` (the block's positions and step tensor shared; no noise drawn yet)."""
        rows = {f: None if getattr(self, f) is None else getattr(self, f)[idx] for f in self.GATHERED}
        return dataclasses.replace(self, **rows, noise=None, conf_noise=None, live=None,
                                   cache=None if self.cache is None else self.cache.rows(idx))

    def write_back(self, part: "BlockRows", idx: torch.Tensor) -> None:
        """Put what a step changed in ``part`` (rows ``idx`` of these) back in place."""
        for f in self.WRITTEN:
            if getattr(self, f) is not None:
                getattr(self, f)[idx] = getattr(part, f)


def draw_noise(rows: BlockRows, n: int, vocab: int, cfg: SamplerConfig, generator) -> None:
    """The step's random numbers for the first n rows, in the order the sampler has always drawn them: Gumbel
    uniforms (float64, T > 0), then the random-remasking scores."""
    bl, device = cfg.block_length, rows.x.device
    if cfg.temperature > 0:
        if rows.noise is None:
            rows.noise = torch.empty((rows.x.shape[0], bl, vocab), dtype=torch.float64, device=device)
        rows.noise[:n].uniform_(0, 1, generator=generator)
    if cfg.remasking == "random":
        if rows.conf_noise is None:
            rows.conf_noise = torch.empty((rows.x.shape[0], bl), device=device)
        rows.conf_noise[:n].uniform_(0, 1, generator=generator)


def block_logits(model, rows: BlockRows, cfg: SamplerConfig, first: bool, lo: int, p: int) -> torch.Tensor:
    """The network's logits at the block's positions, (b', block, V): a full pass, or with a cache a full pass
    that captures it (the block's first step) and passes over the uncached window (the other steps)."""
    from agrpo.model.layers import KVCache

    if cfg.cache == "none":
        if not getattr(model, "supports_kv_cache", False):  # a model without the bias argument (test doubles)
            return model(rows.x, rows.attn).index_select(1, rows.pos)
        return model(rows.x, rows.attn, bias=rows.bias).index_select(1, rows.pos)
    if first:
        rows.cache = KVCache(p + lo, p + lo + cfg.block_length if cfg.cache == "dual" else None)
        return model(rows.x, rows.attn, capture=rows.cache, bias=rows.bias).index_select(1, rows.pos)
    window = rows.x[:, p + lo:p + lo + cfg.block_length] if cfg.cache == "dual" else rows.x[:, p + lo:]
    return model(window, rows.attn, past=rows.cache, bias=rows.bias)[:, :cfg.block_length]


def denoise_step(model, rows: BlockRows, cfg: SamplerConfig, k: int, record: bool, first: bool, lo: int, p: int):
    """One step on the block's rows, in place and without reading anything back to the host: logits, candidates
    x̂ (Gumbel-max from ``rows.noise``, or argmax), confidences, the k most confident open positions (or, with a
    threshold, every open one ≥ τ and the best), committed with their step, log-prob, entropy and vocabulary mask."""
    logits = candidate_logits(model, block_logits(model, rows, cfg, first, lo, p), cfg.ban_special_tokens)
    if cfg.temperature > 0:
        filtered, allowed = filter_logits(logits, cfg, None if rows.temperature is None else rows.temperature[:, None, None])
        gumbel = -torch.log(-torch.log(rows.noise.clamp_min(1e-300)))
        x0 = (filtered.double() + gumbel).argmax(-1)
    else:
        filtered, allowed = logits, None
        x0 = logits.argmax(-1)
    logp_all = filtered.log_softmax(-1) if record or cfg.confidence == "sampling" else None
    if cfg.remasking == "random":
        conf = rows.conf_noise
    elif cfg.confidence == "model":
        conf = logits.softmax(-1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    else:
        conf = logp_all.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    reveal_blk = rows.reveal.index_select(1, rows.cols)
    open_ = reveal_blk == -1
    if rows.live is not None:
        open_ &= rows.live[:, None]
    conf = conf.masked_fill(~open_, float("-inf"))
    if cfg.threshold > 0:  # Fast-dLLM: every open position above the threshold, and at least the best one
        sel = (conf >= cfg.threshold) & open_
        sel.scatter_(1, conf.argmax(1, keepdim=True), True)
        sel &= open_  # a row with nothing open (frozen under graphs) commits nothing
    else:
        sel = torch.zeros_like(open_).scatter_(1, conf.topk(k, dim=-1).indices, True)
    rows.x.index_copy_(1, rows.pos, torch.where(sel, x0, rows.x.index_select(1, rows.pos)))
    rows.reveal.index_copy_(1, rows.cols, torch.where(sel, rows.step, reveal_blk))
    if record:
        tok_logp = logp_all.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        rows.logprobs.index_copy_(1, rows.cols, torch.where(sel, tok_logp, rows.logprobs.index_select(1, rows.cols)))
        ent = -(logp_all.exp() * logp_all.masked_fill(torch.isinf(logp_all), 0.0)).sum(-1)
        rows.entropy.index_copy_(1, rows.cols, torch.where(sel, ent, rows.entropy.index_select(1, rows.cols)))
        if allowed is not None:
            old = rows.sampling_mask.index_select(1, rows.cols)
            rows.sampling_mask.index_copy_(1, rows.cols, torch.where(sel[..., None], allowed, old))
    return sel


_COMPILED_STEP = None


def compiled_denoise_step():
    """``denoise_step`` through ``torch.compile(dynamic=True)`` (one compiled function for every row count and
    width; recompiled per tokens-per-step k and per model): the network pass and the candidate transform become
    fused kernels. Under CUDA graphs it is the compiled step that each graph captures (its first call, the eager
    warm-up, compiles). The same distribution as ``denoise_step``, not the same bits: fused float32 reductions
    round differently, so an argmax tie or a threshold crossing can go the other way."""
    global _COMPILED_STEP
    if _COMPILED_STEP is None:
        _COMPILED_STEP = torch.compile(denoise_step, dynamic=True)
    return _COMPILED_STEP
