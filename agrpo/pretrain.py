"""Base-model training from scratch with LLaDA's masked-diffusion SFT loss.

For a prompt q and completion o (padded with EOS to the canvas length L), draw t ~ U(0, 1], mask every
completion token independently with p_mask = (1 − ε)·t + ε (the prompt is never masked), and minimise

    ℒ = 1/B Σ_b 1/L Σ_{i masked} −log p_θ(oⁱ | q, o_masked) / p_mask,

an upper bound on −log p_θ(o | q) (the 1/t weighting of the masked-diffusion ELBO).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from agrpo.data import load_split
from agrpo.io import atomic_write_json, fresh_tmp_dir, replace_dir, write_jsonl
from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer
from agrpo.provenance import seed_everything
from agrpo.sampling import left_pad
from agrpo.resolve import profile_task


def encode_pairs(model, pairs: list[tuple[str, str]], gen_length: int, truncate: bool = False):
    """(prompt ids, prompt mask, completion ids padded with EOS to ``gen_length``, number of truncated completions).

    Pairs are tokenized by ``model.encode_pair`` (LLaDA: through its chat template). A completion longer than the
    canvas is cut to ``gen_length`` tokens when ``truncate`` (d1's SFT truncates at its max_length) and is an
    error otherwise (the synthetic pretraining data must fit)."""
    prompts, completions, truncated = [], [], 0
    for prompt, completion in pairs:
        p, c = model.encode_pair(prompt, completion)
        if len(c) > gen_length:
            if not truncate:
                raise ValueError(f"completion of {len(c)} tokens exceeds gen_length {gen_length}: {completion[:200]!r}")
            c, truncated = c[:gen_length], truncated + 1
        prompts.append(p)
        completions.append(c + [model.eos_id] * (gen_length - len(c)))
    ids, mask = left_pad(prompts, model.pad_id)
    return ids, mask, torch.tensor(completions, dtype=torch.long), truncated


def masked_diffusion_loss(model, prompt_ids, prompt_mask, targets, generator, eps: float = 1e-3):
    """LLaDA's SFT loss on a batch (see module docstring)."""
    b, L = targets.shape
    device = next(model.parameters()).device
    t = 1.0 - torch.rand((b, 1), generator=generator)  # (0, 1], drawn on the generator's device (CPU)
    p_mask = ((1 - eps) * t + eps).to(device)
    masked = (torch.rand((b, L), generator=generator) < p_mask.cpu()).to(device)
    prompt_ids, prompt_mask, targets = prompt_ids.to(device), prompt_mask.to(device), targets.to(device)
    noisy = targets.masked_fill(masked, model.mask_id)
    logits = model(torch.cat([prompt_ids, noisy], 1), torch.cat([prompt_mask, torch.ones_like(noisy)], 1))
    logits = logits[:, prompt_ids.shape[1]:]
    ce = F.cross_entropy(logits[masked], targets[masked], reduction="none") / p_mask.expand(b, L)[masked]
    return ce.sum() / (b * L)


def lr_at(step: int, total: int, peak: float, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_masked_diffusion(model, pairs, *, gen_length: int, steps: int, batch_size: int, lr_fn, weight_decay: float, betas,
                           max_grad_norm: float, eps: float, generator: torch.Generator, desc: str,
                           progress: bool = True, truncate: bool = False,
                           gen_lengths: list[int] | None = None, autocast: bool = False) -> tuple[list[dict], int]:
    """Minimise the masked-diffusion SFT loss over (prompt, completion) pairs; returns the loss log and how many
    completions were cut to the longest canvas (``truncate``). ``gen_lengths``: each batch's canvas drawn uniformly
    from these instead (the completions padded with EOS to it; every completion must fit the shortest)."""
    lengths = sorted(set(gen_lengths or [])) or [gen_length]
    prompt_ids, prompt_mask, targets, truncated = encode_pairs(model, pairs, lengths[-1], truncate)
    if len(lengths) > 1:
        longest = int((targets != model.eos_id).sum(1).max())  # the completions end where their EOS padding starts
        if longest > lengths[0]:
            raise ValueError(f"{desc}: a completion of {longest} tokens does not fit the shortest canvas of "
                             f"pretrain.gen_lengths ({lengths[0]})")
    if truncated:
        print(f"{desc}: {truncated} of {len(pairs)} completions cut to {lengths[-1]} tokens", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr_fn(0), weight_decay=weight_decay, betas=betas)
    device = next(model.parameters()).device
    amp = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext
    log = []
    model.train()
    for step in tqdm(range(steps), desc=desc, disable=not progress, mininterval=2):
        for g in opt.param_groups:
            g["lr"] = lr_fn(step)
        idx = torch.randint(0, len(pairs), (batch_size,), generator=generator)
        L = lengths[0] if len(lengths) == 1 else lengths[int(torch.randint(len(lengths), (1,), generator=generator))]
        with amp():
            loss = masked_diffusion_loss(model, prompt_ids[idx], prompt_mask[idx], targets[idx, :L], generator, eps)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 6)})
    return log, truncated


def weights_digest(model) -> str:
    """The first 16 hex digits of a SHA-256 over every tensor of the state dict (names in sorted order, raw bytes):
    two base models are the same bits iff their digests agree (`pretrain.deterministic` across machines)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def save_trained(model, out_dir: str | Path, log: list[dict], summary: dict, log_name: str) -> dict:
    """Write model + log + summary.json to ``out_dir`` atomically (a temp dir renamed into place)."""
    out_dir = Path(out_dir)
    tmp = fresh_tmp_dir(out_dir)
    model.save_pretrained(tmp)
    write_jsonl(tmp / log_name, log)
    atomic_write_json(tmp / "summary.json", summary)
    replace_dir(tmp, out_dir)
    return summary


def task_pairs(cfg) -> list[tuple[str, str]]:
    """(prompt, reference completion) for the training split of every task of the profile."""
    pairs = []
    for name in cfg.data.tasks:
        task = profile_task(cfg, name)
        pairs += [(task.prompt(ex), task.reference_completion(ex)) for ex in load_split(cfg.work_dir, name, "train")]
    return pairs


@contextlib.contextmanager
def deterministic_algorithms(on: bool):
    """torch.use_deterministic_algorithms(True) inside (and cuBLAS's fixed workspace, which it needs on CUDA);
    the process's earlier setting after."""
    if not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def pretrain(cfg, out_dir: str | Path, progress: bool = True) -> dict:
    pc = cfg.pretrain
    with deterministic_algorithms(pc.deterministic):
        return _pretrain(cfg, out_dir, progress)


def _pretrain(cfg, out_dir: str | Path, progress: bool) -> dict:
    pc = cfg.pretrain
    generator = seed_everything(pc.seed, pc.threads)
    model = init_tiny(CharTokenizer(), d_model=cfg.model.d_model, n_layers=cfg.model.n_layers,
                      n_heads=cfg.model.n_heads, d_ff=cfg.model.d_ff).to(cfg.device)
    pairs = task_pairs(cfg)
    start = time.time()
    log, _ = train_masked_diffusion(model, pairs, gen_length=pc.gen_length, gen_lengths=pc.gen_lengths,
                                    autocast=pc.autocast == "bfloat16",
                                    steps=pc.steps, batch_size=pc.batch_size,
                                    lr_fn=lambda step: lr_at(step, pc.steps, pc.learning_rate, pc.warmup_steps),
                                    weight_decay=pc.weight_decay, betas=(0.9, 0.95), max_grad_norm=1.0,
                                    eps=pc.mask_eps, generator=generator, desc="pretrain", progress=progress)
    summary = {"steps": pc.steps, "final_loss": log[-1]["loss"], "seconds": round(time.time() - start, 1),
               "params": model.num_parameters(), "examples": len(pairs), "weights_sha256": weights_digest(model),
               "deterministic": pc.deterministic}
    return save_trained(model, out_dir, log, summary, "pretrain_log.jsonl")
