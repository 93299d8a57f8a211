"""Held-out accuracy of a learning-rate sweep's last checkpoints, paired against the base model over test items.

The sweep picks rates by training reward on fresh RL prompts (agrpo/sweep.py); this checks the picks on the test
set: every ``<work_dir>/sweep/<run>/step<N>`` and the base model go through ``agrpo eval`` (the profile's eval
grid), and each run's accuracy is reported with its paired difference from the base's [95% CI] per cell.

    python benchmarks/sweep_eval.py --config benchmarks/configs/tiny_headroom_sweep.yaml --task tiny_arith \\
        --out benchmarks/results/tiny_sweep_eval_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from agrpo.config import load_config
    from agrpo.evaluate import evaluate_checkpoint
    from agrpo.io import atomic_write_json, read_jsonl
    from agrpo.provenance import git_sha
    from agrpo.stats import paired_diff_ci
    from agrpo.sweep import parse_run, sweep_iterations

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="the profile the sweep ran with")
    ap.add_argument("--task", required=True, help="a task of data.tasks")
    ap.add_argument("--out", required=True, help="results JSON")
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    work, step = Path(cfg.work_dir), sweep_iterations(cfg)
    models = {"base": (work / "models/base", "base", 0)}
    for run_dir in sorted((work / "sweep").glob("*-lr*-seed*")):
        if (run_dir / f"step{step}").is_dir():
            models[run_dir.name] = (run_dir / f"step{step}", parse_run(run_dir.name)[0], step)
    scores = {}
    for name, (model, method, train_step) in models.items():
        seed = 0 if name == "base" else parse_run(name)[2]
        cells = evaluate_checkpoint(cfg, model, method, seed, train_step, a.task, work / "sweep_eval" / name,
                                    progress=False)
        scores[name] = {c.name: {r["id"]: r["score"] for r in read_jsonl(c / "generations.jsonl")} for c in cells}
    result = {"config": a.config, "task": a.task, "step": step, "git_sha": git_sha(), "runs": {}}
    for name, by_cell in scores.items():
        result["runs"][name] = {}
        for cell, s in by_cell.items():
            base = scores["base"][cell]
            ids = sorted(base)
            d = paired_diff_ci([s[i] for i in ids], [base[i] for i in ids])
            result["runs"][name][cell] = {"accuracy": sum(s.values()) / len(s), "diff_vs_base": asdict(d)}
            print(f"{name} {cell}: {100 * sum(s.values()) / len(s):.1f}%, vs base {100 * d.diff:+.1f} "
                  f"[{100 * d.low:+.1f}, {100 * d.high:+.1f}]")
    atomic_write_json(Path(a.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
