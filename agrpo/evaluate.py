"""One eval cell: (checkpoint, task, gen length, block length, steps, unmasking, temperature, seed).

A cell generates a completion for every test item, judges it, and writes ``generations.jsonl`` (prompt,
completion, verdict per item) and then ``metrics.json`` (accuracy with a 95% CI, NFE, tokens, wall seconds,
estimated FLOPs, provenance), each atomically. A cell whose metrics say n == test-set size is complete and is
skipped on re-runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from agrpo.config import to_dict
from agrpo.resolve import eval_sampler, eval_steps, profile_task
from agrpo.data import load_split
from agrpo.io import atomic_write_json, write_jsonl
from agrpo.model import load_model
from agrpo.provenance import config_hash, device_name, git_sha, seed_everything, versions
from agrpo.sampling import SamplerConfig, generate, left_pad
from agrpo.stats import mean_ci


def cell_name(s: SamplerConfig, seed: int) -> str:
    exit_ = "_eosx" if s.eos_early_exit else ""
    fast = {"none": "", "prefix": "_pcache", "dual": "_dcache"}[s.cache] + (f"_th{s.threshold:g}" if s.threshold > 0 else "")
    return f"L{s.gen_length}_B{s.block_length}_S{s.steps}_{s.remasking}_T{s.temperature:g}{exit_}{fast}_seed{seed}"


def sampler_identity(s: SamplerConfig) -> dict:
    """The sampler settings a cell's tokens depend on (``cuda_graphs`` replays the same steps: not among them)."""
    return {k: v for k, v in asdict(s).items() if k != "cuda_graphs"}


def cell_is_complete(cell_dir: Path, n_expected: int, sampler: SamplerConfig | None = None) -> bool:
    """Complete = both files present, all items judged, and (if given) produced by the same sampler settings."""
    m = cell_dir / "metrics.json"
    if not m.is_file() or not (cell_dir / "generations.jsonl").is_file():
        return False
    try:
        metrics = json.loads(m.read_text())
        return metrics.get("n") == n_expected and (sampler is None or metrics.get("sampler") == sampler_identity(sampler))
    except json.JSONDecodeError:
        return False


def grid(cfg) -> list[tuple[SamplerConfig, int]]:
    """gen_length × decoding (cache, threshold) × steps × seed. Threshold decoding picks its own number of steps:
    one cell per length (steps = gen_length, the most it can take)."""
    cells = []
    for L in cfg.eval.gen_lengths:
        for cache in cfg.eval.caches:
            for th in cfg.eval.thresholds:
                for steps in ([L] if th > 0 else eval_steps(cfg, L)):
                    cells += [(eval_sampler(cfg, L, steps, cache, th), seed) for seed in cfg.eval.seeds]
    return cells


def prompt_batch(model, task, examples, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and attention mask of ``examples`` on ``device``."""
    ids, mask = left_pad([model.encode_prompt(task, ex) for ex in examples], model.pad_id)
    return ids.to(device), mask.to(device)


def length_order(model, task, examples) -> list[int]:
    """Indices of ``examples`` by prompt token length (stable: ties keep test-set order)."""
    lengths = [len(model.encode_prompt(task, ex)) for ex in examples]
    return sorted(range(len(examples)), key=lengths.__getitem__)


def run_cell(model, task, examples, sampler: SamplerConfig, seed: int, batch_size: int, progress: bool = False,
             sort_by_length: bool = False):
    """Generate and judge every example; returns (rows, totals), rows in the order of ``examples``.
    ``sort_by_length``: batches of prompts of similar length (``length_order``), less left padding."""
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)  # CUDA draws differ from CPU draws (T > 0 only)
    rows, seconds, flops, row_nfe = [], 0.0, 0.0, []
    model.eval()
    order = length_order(model, task, examples) if sort_by_length else range(len(examples))
    batched = [examples[i] for i in order]
    for lo in tqdm(range(0, len(examples), batch_size), desc=f"{task.name} S={sampler.steps}", disable=not progress):
        chunk = batched[lo:lo + batch_size]
        prompts = [task.prompt(ex) for ex in chunk]
        ids, mask = prompt_batch(model, task, chunk, device)
        t0 = time.perf_counter()
        out = generate(model, ids, mask, sampler, generator, record=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - t0
        # one device read per batch (not one per token): the host side of judging
        nfe_rows, tokens_rows, prompt_lengths = out.row_nfe.tolist(), out.row_tokens.tolist(), mask.sum(1).tolist()
        completions, reveal = out.completion_ids.cpu(), out.reveal_step.tolist()
        for i, ex in enumerate(chunk):
            n_i = nfe_rows[i]
            row_nfe.append(n_i)
            full_pass = model.forward_flops(prompt_lengths[i] + sampler.gen_length)
            if sampler.cache == "none":
                flops += n_i * full_pass
            else:  # cached passes compute fewer positions: scale by the positions computed (approximate)
                flops += full_pass * tokens_rows[i] / (ids.shape[1] + sampler.gen_length)
            # d1's and AGRPO's evaluations decode with special tokens kept; their parsers expect them
            completion = model.decode_completion(completions[i], skip_special_tokens=False)
            v = task.judge(completion, ex)
            rows.append({"id": ex["id"], "prompt": prompts[i], "completion": completion, "correct": v.correct,
                         "score": v.score, "parsed": v.parsed, "reason": v.reason,
                         "nfe": n_i, "reveal_step": reveal[i]})
    if sort_by_length:  # back to test-set order
        rows = [row for _, row in sorted(zip(order, rows), key=lambda pair: pair[0])]
    return rows, {"seconds": seconds, "flops": flops, "nfe": sum(row_nfe) / max(len(row_nfe), 1)}


def load_eval_model(cfg, model_dir):
    """The checkpoint on ``device`` in ``model.dtype`` (LLaDA) or cast to ``eval.dtype``, optionally with a
    torch.compile'd forward."""
    model = load_model(model_dir, dtype=getattr(torch, cfg.model.dtype), device=cfg.device).eval()
    if cfg.eval.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    if cfg.eval.compile:
        model.forward = torch.compile(model.forward, dynamic=True)
    return model


def compile_warmup(model, task, examples, sampler: SamplerConfig, batch_size: int) -> float:
    """Run one untimed batch so that compilation is not billed to the first cell's ``seconds``; returns its
    wall time (recorded as ``compile_warmup_seconds``)."""
    device = next(model.parameters()).device
    ids, mask = prompt_batch(model, task, examples[:batch_size], device)
    t0 = time.perf_counter()
    generate(model, ids, mask, sampler, torch.Generator(device).manual_seed(0), record=False)
    return time.perf_counter() - t0


class CheckpointModel:
    """The checkpoint of one eval job, loaded (``load_eval_model``) when a cell first needs it and then shared by
    every task the job evaluates: one load (and one compile, one CUDA context) per checkpoint, not per task."""

    def __init__(self, cfg, model_dir):
        self.cfg, self.model_dir, self._model = cfg, model_dir, None

    def get(self):
        if self._model is None:
            self._model = load_eval_model(self.cfg, self.model_dir)
        return self._model


def evaluate_tasks(cfg, model_dir, method: str, run_seed: int, train_step: int, task_names: list[str],
                   out_dir: str | Path, progress: bool = True, train_task: str | None = None) -> list[Path]:
    """``evaluate_checkpoint`` on each task in turn into ``out_dir/<task>``, the model loaded once for all."""
    model = CheckpointModel(cfg, model_dir)
    return [cell for t in task_names for cell in evaluate_checkpoint(
        cfg, model_dir, method, run_seed, train_step, t, Path(out_dir) / t, progress, train_task, model)]


def evaluate_checkpoint(cfg, model_dir, method: str, run_seed: int, train_step: int, task_name: str,
                        out_dir: str | Path, progress: bool = True, train_task: str | None = None,
                        checkpoint: CheckpointModel | None = None) -> list[Path]:
    """Evaluate one checkpoint on one task over the whole steps grid; complete cells are skipped. ``train_task``:
    the task a per-task run trained on (recorded; None = a mixed run or the base model). ``checkpoint``: the
    model shared with the job's other tasks (``evaluate_tasks``); by default loaded here if a cell needs it."""
    seed_everything(0, cfg.threads)
    task = profile_task(cfg, task_name)
    examples = load_split(cfg.work_dir, task_name, "test")
    checkpoint = checkpoint or CheckpointModel(cfg, model_dir)
    model, warmup = None, 0.0
    written = []
    for sampler, seed in grid(cfg):
        cell_dir = Path(out_dir) / cell_name(sampler, seed)
        written.append(cell_dir)
        if cell_is_complete(cell_dir, len(examples), sampler):
            continue
        if model is None:  # once per task: the warm-up compiles for this task's prompt shapes
            model = checkpoint.get()
            warmup = compile_warmup(model, task, examples, sampler, cfg.eval.batch_size) if cfg.eval.compile else 0.0
        rows, tot = run_cell(model, task, examples, sampler, seed, cfg.eval.batch_size, progress,
                             cfg.eval.sort_by_length)
        acc, lo, hi = mean_ci([r["score"] for r in rows])
        metrics = {
            "method": method, "run_seed": run_seed, "checkpoint": f"step{train_step}", "train_step": train_step,
            **({"train_task": train_task} if train_task else {}),  # per-task runs only: mixed cells unchanged
            "task": task_name, "protocol": task.protocol, "sampler": sampler_identity(sampler),
            "cuda_graphs": sampler.cuda_graphs,
            **{k: v for k, v in asdict(sampler).items() if k in ("gen_length", "block_length", "steps", "remasking", "temperature", "eos_early_exit", "cache", "threshold")},
            "seed": seed, "n": len(rows), "n_expected": len(examples), "accuracy": acc, "ci_low": lo, "ci_high": hi,
            "n_correct": sum(r["correct"] for r in rows), "nfe": tot["nfe"], "tokens_generated": len(rows) * sampler.gen_length,
            "seconds": round(tot["seconds"], 4), "flops": tot["flops"], "params": model.num_parameters(),
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."), "compiled": cfg.eval.compile,
            "compile_warmup_seconds": round(warmup, 3),
            "device": device_name(cfg.device), "git_sha": git_sha(), "config_hash": config_hash(to_dict(cfg)),
            "profile": cfg.profile, "versions": versions(), "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_jsonl(cell_dir / "generations.jsonl", rows)
        atomic_write_json(cell_dir / "metrics.json", metrics)  # written last: its presence marks the cell complete
    return written
