"""Sampling and evaluation speed against the network's own floor, and what the Fast-dLLM accelerations buy.

On one checkpoint and one task's test set (a profile's work dir), in one process:
1. sampler step ÷ one bare forward of the same batch (B prompts + L masked tokens; target ≤ 1.10): the sampler's
   own work per step (candidates, Gumbel noise, confidences, transfer) on top of the network;
2. evaluation of the whole test set at batch sizes ``--batch-sizes``: items/s, generated tokens/s, and the ratio of
   wall time to the forward floor = Σ over batches of (row passes taken ÷ B × one bare forward of that full
   batch), measured right after each batch — linear in rows, so rows that left the batch early (EOS early exit)
   cost nothing (target ≤ 1.3 at the profile's batch size);
3. accelerations at the profile's eval settings (low-confidence, greedy): plain sampling at steps L and L/2, the
   prefix cache, threshold decoding and both — accuracy, seconds, seconds per correct answer and its ratio to plain
   sampling at L/2 steps (the d1/AGRPO default), NFE (target: ≥ 3× fewer seconds per correct answer at ≤ 1 point
   accuracy loss, or the shortfall reported).
Each timing is the median of ``--repeats`` after a warm-up.

    python benchmarks/sampler_cost.py --config workflow/config/tiny.yaml --model work/tiny/models/base \
        --task tiny_arith --device cpu --tag tiny
Writes benchmarks/results/sampler_cost_<tag>.json and refreshes the table between the markers in
docs/performance.md from every such file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from agrpo.config import load_config
from agrpo.resolve import eval_sampler, profile_task
from agrpo.data import load_split
from agrpo.evaluate import compile_warmup, load_eval_model, prompt_batch, run_cell
from agrpo.io import atomic_write_json, atomic_write_text
from agrpo.provenance import device_name, git_sha, versions
from agrpo.sampling import generate

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- sampler-table:start -->", "<!-- sampler-table:end -->"


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median_time(fn, device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def step_ratio(model, task, examples, sampler, device, repeats):
    """Median seconds of one sampler step and of one bare forward on the same (B, P + L) batch."""
    sampler = dataclasses.replace(sampler, eos_early_exit=False)  # every step a full-batch pass
    ids, mask = prompt_batch(model, task, examples, device)
    full = torch.cat([ids, torch.full((ids.shape[0], sampler.gen_length), model.mask_id, device=device)], 1)
    attn = torch.cat([mask, torch.ones((ids.shape[0], sampler.gen_length), dtype=mask.dtype, device=device)], 1)
    with torch.no_grad():
        fwd = median_time(lambda: model(full, attn), device, repeats)
    g = torch.Generator(device).manual_seed(0)
    gen = median_time(lambda: generate(model, ids, mask, sampler, g, record=False), device, repeats)
    return {"batch": ids.shape[0], "seq_len": full.shape[1], "forward_s": fwd, "step_s": gen / sampler.steps,
            "ratio": gen / sampler.steps / fwd}


def throughput(model, task, examples, sampler, batch_size, device):
    """Whole test set at one batch size: wall seconds, and the forward floor measured batch by batch. One untimed
    generation of the first batch first: a new batch shape's first kernels (cuBLAS heuristics, allocator growth)
    are not the sampler's cost (added 2026-12-01; earlier result files were timed without it)."""
    g = torch.Generator(device).manual_seed(0)
    wall = floor = 0.0
    passes = 0
    with torch.no_grad():
        compile_warmup(model, task, examples, sampler, batch_size)
        for lo in range(0, len(examples), batch_size):
            ids, mask = prompt_batch(model, task, examples[lo:lo + batch_size], device)
            sync(device)
            t0 = time.perf_counter()
            out = generate(model, ids, mask, sampler, g, record=False)  # timed once; its pass counts feed the floor
            sync(device)
            wall += time.perf_counter() - t0
            full = torch.cat([ids, torch.full((ids.shape[0], sampler.gen_length), model.mask_id, device=device)], 1)
            attn = torch.cat([mask, torch.ones_like(full[:, ids.shape[1]:])], 1)
            one = statistics.median(timed(lambda: model(full, attn), device) for _ in range(3))
            floor += one * out.row_nfe.sum().item() / ids.shape[0]  # rows that exited early cost nothing after
            passes += out.nfe
    n = len(examples)
    return {"batch_size": batch_size, "items": n, "seconds": wall, "items_per_s": n / wall,
            "tokens_per_s": n * sampler.gen_length / wall, "forward_floor_s": floor, "ratio_to_floor": wall / floor,
            "batched_passes": passes}


def accelerations(model, task, examples, cfg, L, threshold, batch_size):
    rows = []
    plain_half = None
    for name, steps, cache, th in [("plain, steps L", L, "none", 0.0), ("plain, steps L/2", L // 2, "none", 0.0),
                                   ("prefix cache, steps L/2", L // 2, "prefix", 0.0),
                                   (f"threshold {threshold:g}", L, "none", threshold),
                                   (f"prefix cache + threshold {threshold:g}", L, "prefix", threshold)]:
        sampler = eval_sampler(cfg, L, steps, cache, th)
        run_cell(model, task, examples[:batch_size], sampler, 0, batch_size)  # warm-up
        verdicts, tot = run_cell(model, task, examples, sampler, 0, batch_size)
        correct = sum(r["correct"] for r in verdicts)
        row = {"setting": name, "steps": steps, "cache": cache, "threshold": th, "accuracy": correct / len(verdicts),
               "n": len(verdicts), "seconds": tot["seconds"], "nfe": tot["nfe"],
               "seconds_per_correct": tot["seconds"] / max(correct, 1)}
        if name == "plain, steps L/2":
            plain_half = row
        rows.append(row)
    for row in rows:
        row["speedup_per_correct_vs_plain_half"] = plain_half["seconds_per_correct"] / row["seconds_per_correct"]
        row["accuracy_change_vs_plain_half"] = row["accuracy"] - plain_half["accuracy"]
    return rows


def table(results: list[dict]) -> str:
    out = ["| device | model, task | sampler step ÷ bare forward | eval ÷ forward floor (batch size: ratio, items/s) | "
           "vs plain at L/2 steps: speed per correct answer, accuracy change |", "|---|---|---|---|---|"]
    for r in results:
        tp = "; ".join(f"{t['batch_size']}: {t['ratio_to_floor']:.2f}, {t['items_per_s']:.0f}/s" for t in r["throughput"])
        acc = "; ".join(f"{a['setting']}: {a['speedup_per_correct_vs_plain_half']:.2f}×, "
                        f"{100 * a['accuracy_change_vs_plain_half']:+.0f} pts" for a in r["accelerations"]
                        if a["setting"] != "plain, steps L/2")
        model = "/".join(Path(r["model"]).parts[-2:]) + f", {r.get('dtype', 'float32')}"  # e.g. models/base
        out.append(f"| {r['device']} | {r['model_params'] / 1e6:.2f}M params ({model}), {r['task']} "
                   f"(n {r['throughput'][0]['items']}, L {r['gen_length']}) | {r['step']['ratio']:.3f} (B {r['step']['batch']}) | {tp} | {acc} |")
    return "\n".join(out)


def refresh_docs() -> None:
    results = [json.loads(p.read_text()) for p in sorted((ROOT / "benchmarks/results").glob("sampler_cost_*.json"))]
    doc = ROOT / "docs/performance.md"
    text = doc.read_text()
    if START in text:
        head, rest = text.split(START, 1)
        text = head + START + "\n" + table(results) + "\n" + END + rest.split(END, 1)[1]
        atomic_write_text(doc, text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["model", "bfloat16"], default="model",
                    help="eval.dtype: as loaded (tiny architecture: float32) or cast to bfloat16")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config, {"device": a.device, "eval.dtype": a.dtype})
    model = load_eval_model(cfg, a.model)
    task = profile_task(cfg, a.task)
    examples = load_split(cfg.work_dir, a.task, "test")
    L = cfg.eval.gen_lengths[0]
    base = eval_sampler(cfg, L, L // 2)
    result = {"device": device_name(a.device), "git_sha": git_sha(), "versions": versions(), "config": a.config,
              "model": a.model, "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
              "model_params": model.num_parameters(), "task": a.task, "gen_length": L,
              "block_length": base.block_length, "eval_batch_size": cfg.eval.batch_size, "threads": a.threads,
              "step": step_ratio(model, task, examples[:cfg.eval.batch_size], base, a.device, a.repeats),
              "throughput": [throughput(model, task, examples, base, bs, a.device) for bs in a.batch_sizes],
              "accelerations": accelerations(model, task, examples, cfg, L, a.threshold, cfg.eval.batch_size),
              "note": "wall times include Python overhead; ratios compare with bare forwards timed in the same run"}
    out = ROOT / f"benchmarks/results/sampler_cost_{a.tag}.json"
    atomic_write_json(out, result)
    refresh_docs()
    print(json.dumps({k: result[k] for k in ("step", "throughput")}, indent=1))
    for r in result["accelerations"]:
        print(r)


if __name__ == "__main__":
    main()
