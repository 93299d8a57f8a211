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

from agrpo.config import eval_steps, to_dict
from agrpo.data import load_split
from agrpo.io import atomic_write_json, write_jsonl
from agrpo.model.tiny import load_model
from agrpo.provenance import config_hash, device_name, git_sha, seed_everything, versions
from agrpo.sampling import SamplerConfig, generate, left_pad
from agrpo.stats import mean_ci
from agrpo.tasks import get_task


def cell_name(s: SamplerConfig, seed: int) -> str:
    return f"L{s.gen_length}_B{s.block_length}_S{s.steps}_{s.remasking}_T{s.temperature:g}_seed{seed}"


def cell_is_complete(cell_dir: Path, n_expected: int) -> bool:
    m = cell_dir / "metrics.json"
    if not m.is_file() or not (cell_dir / "generations.jsonl").is_file():
        return False
    try:
        return json.loads(m.read_text()).get("n") == n_expected
    except json.JSONDecodeError:
        return False


def grid(cfg) -> list[tuple[SamplerConfig, int]]:
    e = cfg.eval
    return [(SamplerConfig(L, e.block_length, steps, e.remasking, e.temperature), seed)
            for L in e.gen_lengths for steps in eval_steps(cfg, L) for seed in e.seeds]


def run_cell(model, task, examples, sampler: SamplerConfig, seed: int, batch_size: int, progress: bool = False):
    """Generate and judge every example; returns (rows, totals)."""
    tok = model.tokenizer
    generator = torch.Generator().manual_seed(seed)
    rows, seconds, flops, nfe = [], 0.0, 0.0, 0
    model.eval()
    for lo in tqdm(range(0, len(examples), batch_size), desc=f"{task.name} S={sampler.steps}", disable=not progress):
        chunk = examples[lo:lo + batch_size]
        prompts = [task.prompt(ex) for ex in chunk]
        ids, mask = left_pad([tok.encode(p) for p in prompts], tok.pad_id)
        t0 = time.perf_counter()
        out = generate(model, ids, mask, sampler, generator, record=False)
        seconds += time.perf_counter() - t0
        nfe += out.nfe
        for i, ex in enumerate(chunk):
            flops += out.nfe * model.forward_flops(int(mask[i].sum()) + sampler.gen_length)
            completion = tok.decode(out.completion_ids[i])
            v = task.judge(completion, ex)
            rows.append({"id": ex["id"], "prompt": prompts[i], "completion": completion, "correct": v.correct,
                         "score": v.score, "parsed": v.parsed, "reason": v.reason,
                         "reveal_step": out.reveal_step[i].tolist()})
    return rows, {"seconds": seconds, "flops": flops, "nfe_batches": nfe}


def evaluate_checkpoint(cfg, model_dir, method: str, run_seed: int, train_step: int, task_name: str,
                        out_dir: str | Path, progress: bool = True) -> list[Path]:
    """Evaluate one checkpoint on one task over the whole steps grid; complete cells are skipped."""
    seed_everything(0, cfg.threads)
    task = get_task(task_name)
    examples = load_split(cfg.work_dir, task_name, "test")
    model = None
    written = []
    for sampler, seed in grid(cfg):
        cell_dir = Path(out_dir) / cell_name(sampler, seed)
        written.append(cell_dir)
        if cell_is_complete(cell_dir, len(examples)):
            continue
        if model is None:
            model = load_model(model_dir)
        rows, tot = run_cell(model, task, examples, sampler, seed, cfg.eval.batch_size, progress)
        acc, lo, hi = mean_ci([r["score"] for r in rows])
        metrics = {
            "method": method, "run_seed": run_seed, "checkpoint": f"step{train_step}", "train_step": train_step,
            "task": task_name, "protocol": task.protocol, **{k: v for k, v in asdict(sampler).items() if k not in ("top_k", "top_p")},
            "seed": seed, "n": len(rows), "n_expected": len(examples), "accuracy": acc, "ci_low": lo, "ci_high": hi,
            "n_correct": sum(r["correct"] for r in rows), "nfe": sampler.steps, "tokens_generated": len(rows) * sampler.gen_length,
            "seconds": round(tot["seconds"], 4), "flops": tot["flops"], "params": model.num_parameters(),
            "device": device_name(cfg.device), "git_sha": git_sha(), "config_hash": config_hash(to_dict(cfg)),
            "profile": cfg.profile, "versions": versions(), "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_jsonl(cell_dir / "generations.jsonl", rows)
        atomic_write_json(cell_dir / "metrics.json", metrics)  # written last: its presence marks the cell complete
    return written
