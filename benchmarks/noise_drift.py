"""How much task skill each method loses when its advantages carry no signal (the null-signal control).

The tiny profile's base model is pretrained as the pipeline does, then RL-trained for ``--iterations`` rollout
batches at the profile's settings on a reward that is pure noise (R ~ U[0, 3) per completion, independent of the
text), so every update is driven by noise alone. Greedy tiny_arith / tiny_countdown accuracy at 40 steps on the
profile's test items, before and after, per method and per learning rate / warmup:

    python benchmarks/noise_drift.py --out benchmarks/results/noise_drift_cpu.json

AdamW moves each weight by about lr per step whatever the gradient, so this measures how far an objective walks
from the base under pure noise: the drift a real run pays on top of what its signal buys.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TASKS = ("tiny_arith", "tiny_countdown")
# (method, learning rate, warmup ratio)
RUNS = [("agrpo", 1e-4, 0.0), ("agrpo", 1e-4, 0.25), ("agrpo", 3e-5, 0.0), ("diffu_grpo", 1e-4, 0.0),
        ("diffu_grpo", 1e-4, 0.25), ("wd1", 1e-4, 0.0), ("wd1", 3e-5, 0.0)]


def accuracy(cfg, model_dir, task: str) -> float:
    import torch

    from agrpo.data import load_split
    from agrpo.model import load_model
    from agrpo.resolve import eval_sampler, profile_task
    from agrpo.sampling import generate, left_pad

    model, t = load_model(model_dir), profile_task(cfg, task)
    exs = load_split(cfg.work_dir, task, "test")
    ids, mask = left_pad([model.encode_prompt(t, e) for e in exs], model.pad_id)
    s = generate(model, ids, mask, eval_sampler(cfg, 40, 40), torch.Generator().manual_seed(0))
    return sum(t.judge(model.decode_completion(c), e).score for c, e in zip(s.completion_ids, exs)) / len(exs)


def noise_run(job) -> dict:
    import torch

    from agrpo.rl.trainer import train

    torch.set_num_threads(1)
    cfg, base, (method, lr, warmup), iterations = job
    c = copy.deepcopy(cfg)
    c.rl.iterations = c.rl.checkpoint_every = iterations
    c.rl.warmup_ratio = warmup
    c.methods[method].learning_rate = lr
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        train(c, method, 0, base, Path(tmp), progress=False, reward_fn=lambda text, ex: 3 * rng.random())
        acc = {task: accuracy(c, Path(tmp) / f"step{iterations}", task) for task in TASKS}
    return {"method": method, "lr": lr, "warmup_ratio": warmup, "iterations": iterations, "accuracy": acc}


def main(argv=None) -> None:
    from agrpo.config import load_config
    from agrpo.data import write_task_data
    from agrpo.pretrain import pretrain
    from agrpo.provenance import git_sha

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "workflow/config/tiny.yaml")
        cfg.work_dir = str(Path(tmp) / "work")
        for task in cfg.data.tasks:
            write_task_data(cfg, task)
        pretrain(cfg, Path(tmp) / "base", progress=False)
        base = {task: accuracy(cfg, Path(tmp) / "base", task) for task in TASKS}
        print("base", base, flush=True)
        with ProcessPoolExecutor(a.jobs) as pool:
            runs = list(pool.map(noise_run, [(cfg, Path(tmp) / "base", r, a.iterations) for r in RUNS]))
    for r in runs:
        print(json.dumps(r), flush=True)
    n = cfg.data.test_size
    out = {"what": "greedy accuracy before/after RL on pure-noise rewards (benchmarks/noise_drift.py)",
           "n_per_task": n, "git_sha": git_sha(), "seconds": round(time.time() - start, 1), "base": base, "runs": runs}
    a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
