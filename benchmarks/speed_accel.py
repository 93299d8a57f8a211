"""Fast-dLLM accelerations for benchmarks/speed.py (``accel``): caches and threshold decoding on a trained small
checkpoint at a long generation length, in bf16 autocast with CUDA graphs, against plain sampling at L/2 steps;
and the bf16 accuracy effect (plain L/2 in float32 eager on the same checkpoint)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from agrpo.provenance import device_name, git_sha, versions
from benchmarks.speed import ROOT, precision_ctx

def accelerations(args) -> dict:
    """On a trained small checkpoint (``--model``) at generation length ``--gen-length``: plain sampling (steps L
    and L/2), prefix and dual caches, threshold decoding and both, all in bf16 autocast with CUDA graphs — and
    plain L/2 also in float32 eager on the same checkpoint (the bf16 accuracy effect). Accuracy on the whole
    tiny_arith test set, seconds, seconds per correct answer against plain L/2."""
    from agrpo.config import load_config
    from agrpo.data import load_split, write_task_data
    from agrpo.evaluate import run_cell
    from agrpo.model import load_model
    from agrpo.resolve import eval_sampler, profile_task

    work = Path(tempfile.mkdtemp(prefix="speed_accel_"))
    L = args.gen_length
    cfg = load_config(ROOT / "workflow/config/small.yaml", {"work_dir": str(work), "device": args.device,
                                                            "eval.gen_lengths": [L], "eval.batch_size": 128})
    write_task_data(cfg, "tiny_arith")
    task, examples = profile_task(cfg, "tiny_arith"), load_split(cfg.work_dir, "tiny_arith", "test")
    model = load_model(args.model, device=args.device).eval()
    graphs = args.device != "cpu"
    settings = [("plain, steps L/2, float32 eager", L // 2, "none", 0.0, "float32")]
    for name, steps, cache, th in [("plain, steps L", L, "none", 0.0), ("plain, steps L/2", L // 2, "none", 0.0),
                                   ("prefix cache, steps L/2", L // 2, "prefix", 0.0),
                                   ("dual cache, steps L/2", L // 2, "dual", 0.0),
                                   ("threshold 0.9", L, "none", 0.9), ("prefix cache + threshold 0.9", L, "prefix", 0.9),
                                   ("dual cache + threshold 0.9", L, "dual", 0.9)]:
        settings.append((name, steps, cache, th, "autocast" if graphs else "float32"))
    rows = []
    for name, steps, cache, th, precision in settings:
        sampler = dataclasses.replace(eval_sampler(cfg, L, steps, cache, th), cuda_graphs=graphs and precision != "float32")
        with precision_ctx(precision, args.device)():
            run_cell(model, task, examples[:128], sampler, 0, 128)  # warm-up (and graph capture)
            verdicts, tot = run_cell(model, task, examples, sampler, 0, 128)
        correct = sum(r["correct"] for r in verdicts)
        rows.append({"setting": name, "precision": precision, "cuda_graphs": sampler.cuda_graphs, "steps": steps,
                     "cache": cache, "threshold": th, "accuracy": correct / len(verdicts), "n": len(verdicts),
                     "correct": [int(r["correct"]) for r in verdicts], "seconds": tot["seconds"], "nfe": tot["nfe"],
                     "seconds_per_correct": tot["seconds"] / max(correct, 1)})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "correct"}), flush=True)
    ref = next(r for r in rows if r["setting"] == "plain, steps L/2")
    for r in rows:
        r["speedup_per_correct_vs_plain_half"] = ref["seconds_per_correct"] / r["seconds_per_correct"]
        r["accuracy_change_vs_plain_half"] = r["accuracy"] - ref["accuracy"]
        from agrpo.stats import paired_diff_ci

        ci = paired_diff_ci(r["correct"], ref["correct"])
        r["paired_change_ci"] = [ci.low, ci.high]
    return {"what": "accel", "device": device_name(args.device), "git_sha": git_sha(), "versions": versions(),
            "model": args.model, "gen_length": L, "block_length": cfg.eval.block_length, "rows": rows}
