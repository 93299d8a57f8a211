"""Masked SFT of a pretrained dLLM (the first stage of d1 = SFT, then diffu-GRPO).

Same loss as LLaDA's SFT and d1's ``dLLMTrainer``: t ~ U(0, 1], p_mask = (1 − ε)t + ε, response tokens masked
independently with p_mask, the prompt kept clean,

    ℒ = Σ_{i masked} −log p_θ(oⁱ | q, o_masked) / p_mask  /  (number of response positions in the batch),

responses padded with EOS to the canvas length (so the model learns to stop). d1 trains on s1K reasoning traces
formatted as ``SYSTEM_PROMPT + "\\n\\n" + question`` → ``<reasoning>{trace}</reasoning>\\n<answer>{attempt}</answer>``;
the tiny profile uses its tasks' train-split prompts with their reference traces. A chat model (LLaDA) sees the
pair through its chat template, as d1 renders it (``LLaDA.encode_pair``); a response longer than the canvas
(``sft.completion_length``) is cut to it, as d1 truncates at 4,096 tokens, and ``summary.json`` counts the cuts.
Differences from d1, all of layout: d1 right-pads each whole sequence to 4,096 tokens and counts the assistant
header as response; here prompts are left-padded (padding masked out of attention) before a fixed response canvas.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from agrpo.model import load_model
from agrpo.pretrain import deterministic_algorithms, save_trained, task_pairs, train_masked_diffusion
from agrpo.provenance import seed_everything

D1_SYSTEM_PROMPT = """
Respond in the following format:
<reasoning>
Your reasoning here
</reasoning>
<answer>
...
</answer>
"""


def s1k_pair(row: dict, where: str) -> tuple[str, str]:
    """d1's formatting of one s1K row (``question``, ``thinking_trajectories``, ``attempt``)."""
    try:
        trace = row["thinking_trajectories"][0]
        return (D1_SYSTEM_PROMPT + "\n\n" + row["question"],
                f"<reasoning>{trace}</reasoning>\n<answer>{row['attempt']}</answer>")
    except (KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{where}: not an s1K row (needs question, thinking_trajectories[0], attempt): {e!r}") from None


def load_s1k(source: str) -> list[tuple[str, str]]:
    """s1K-format rows from a local .jsonl/.json file, or from the hub by id through ``datasets``."""
    path = Path(source)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append((json.loads(line), f"{path}:{n}"))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: invalid JSON ({e.msg})") from None
            rows = [(r, f"{path}[{i}]") for i, r in enumerate(data)]
        return [s1k_pair(r, where) for r, where in rows]
    try:
        import datasets
    except ImportError:
        raise ValueError(f"sft.dataset {source!r} is not a local file, and loading it from the hub needs "
                         "`pip install datasets`") from None
    ds = datasets.load_dataset(source, split="train")
    return [s1k_pair(r, f"{source}[{i}]") for i, r in enumerate(ds)]


def sft_pairs(cfg, dataset: str) -> list[tuple[str, str]]:
    if dataset == "tasks":
        return task_pairs(cfg)
    if dataset.startswith("s1k:"):
        return load_s1k(dataset[len("s1k:"):])
    raise ValueError(f"sft.dataset must be 'tasks' or 's1k:<hub id or path>', got {dataset!r}")


def sft(cfg, method: str, base_dir: str | Path, out_dir: str | Path, progress: bool = True) -> dict:
    sc = cfg.methods[method].sft
    if sc.steps <= 0:
        raise ValueError(f"methods.{method}.sft.steps is {sc.steps}: this method has no SFT stage")
    generator = seed_everything(sc.seed, cfg.threads)
    model = load_model(base_dir, dtype=getattr(torch, cfg.model.dtype), device=cfg.device)
    if hasattr(model, "activation_checkpointing"):
        model.activation_checkpointing = cfg.model.activation_checkpointing
    if sc.lora.r > 0:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=sc.lora.r, lora_alpha=sc.lora.alpha, lora_dropout=sc.lora.dropout,
                                                 target_modules=list(sc.lora.target_modules)))
    pairs = sft_pairs(cfg, sc.dataset)
    start = time.time()
    if sc.lr_schedule not in ("linear", "constant"):
        raise ValueError(f"methods.{method}.sft.lr_schedule must be 'linear' or 'constant', got {sc.lr_schedule!r}")

    def lr_fn(step: int) -> float:  # HF Trainer's linear schedule: warmup, then linear decay to 0
        if step < sc.warmup_steps:
            return sc.learning_rate * (step + 1) / sc.warmup_steps
        if sc.lr_schedule == "constant":
            return sc.learning_rate
        return sc.learning_rate * max(0.0, (sc.steps - step) / max(1, sc.steps - sc.warmup_steps))

    with deterministic_algorithms(sc.deterministic):
        log, truncated = train_masked_diffusion(
            model, pairs, gen_length=sc.completion_length or cfg.pretrain.gen_length,
            gen_lengths=[] if sc.completion_length else cfg.pretrain.gen_lengths, steps=sc.steps,
            batch_size=sc.batch_size, lr_fn=lr_fn, weight_decay=sc.weight_decay, betas=(0.9, 0.999),
            max_grad_norm=sc.max_grad_norm, eps=sc.mask_eps, generator=generator, desc=f"sft {method}",
            progress=progress, truncate=True)
    summary = {"method": method, "steps": sc.steps, "dataset": sc.dataset, "final_loss": log[-1]["loss"],
               "first_loss": log[0]["loss"], "seconds": round(time.time() - start, 1), "examples": len(pairs),
               "truncated_completions": truncated, "base": str(base_dir), "deterministic": sc.deterministic}
    if sc.lora.r > 0:
        model = model.merge_and_unload()
    return save_trained(model, out_dir, log, summary, "sft_log.jsonl")
