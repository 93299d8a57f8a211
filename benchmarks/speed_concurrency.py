"""One job that fills the GPU vs several concurrent jobs, for benchmarks/speed.py (issue 18, item 4).

The small profile's rollout batch is 16 prompt groups × 8 completions, and every group shares each forward
(128 rows per pass). The alternative is to split the same work over N concurrent ``agrpo train`` processes of
16/N groups each. That is what a user does when one job leaves the GPU idle, and it is what MPS exists for.
Without MPS, the N processes' CUDA contexts time-slice the GPU.

For each N in ``--jobs``, this starts N jobs at once. They use the same setting: ``--setting``, else bf16 autocast,
fused AdamW, CUDA graphs and stacked AGRPO draws, without compilation, so start-up stays short. It measures:
- **wall throughput**: rollouts of all jobs ÷ the wall time from the first start to the last exit. Start-up is
  included, once per job, in parallel;
- **steady-state throughput**: Σ over jobs of rows ÷ the median seconds per rollout batch, from each job's own
  phase timers over its middle batches. This is an upper bound, because it assumes every job's steady state
  overlaps every other's.

Random weights (no early exits), AGRPO only. MPS itself is not started: the lent GPU's settings stay as they are.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = {"rl.autocast": "bfloat16", "rl.fused_adamw": True, "rl.rollout.cuda_graphs": True,
        "rl.merge_rollout_temperatures": True, "methods.agrpo.objective_args.draws_per_pass": 8}


def _batch_seconds(log: list[dict]) -> float:
    """Median seconds of a rollout batch over the middle batches (the first two warm up; the last one saves)."""
    mid = log[2:-1] or log
    return statistics.median(r["seconds_rollout"] + r["seconds_reward"] + r["seconds_update"] for r in mid)


def concurrency(args) -> dict:
    from agrpo.provenance import device_name, git_sha, versions
    from benchmarks.speed import small_setup, train_command

    cfg, work, _, _, _ = small_setup(args)
    edits = dict(args.extra_settings[0][1]) if args.extra_settings else (dict(FAST) if args.device != "cpu" else {})
    prompts, group = cfg.rl.prompts_per_batch, cfg.rl.group_size
    res = {"what": "concurrency", "device": device_name(args.device), "git_sha": git_sha(), "versions": versions(),
           "setting": edits, "prompts_per_batch": prompts, "group_size": group, "iterations": args.iterations,
           "method": "agrpo", "rows": []}
    for n in map(int, args.jobs.split(",")):
        if prompts % n:
            raise ValueError(f"--jobs {n}: rl.prompts_per_batch {prompts} does not split into {n} equal jobs")
        runs = [work / f"conc{n}_{j}" for j in range(n)]
        procs, t0 = [], time.perf_counter()
        for j, run in enumerate(runs):
            cmd, env = train_command(ROOT, work, {**edits, "rl.prompts_per_batch": prompts // n}, "agrpo", run, args)
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True))
        errors = [p.communicate()[1][-2000:] for p in procs if p.wait() != 0]
        wall = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"{n} concurrent jobs: a job failed:\n{errors[0]}")
        logs = [[json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()] for run in runs]
        rows_per_job = prompts // n * group
        batch_s = [_batch_seconds(log) for log in logs]
        rollouts = sum(log[-1]["rollouts"] for log in logs)
        res["rows"].append({"jobs": n, "rows_per_job_per_batch": rows_per_job, "wall_s": wall,
                            "wall_rollouts_per_s": rollouts / wall,
                            "steady_rollouts_per_s": sum(rows_per_job / s for s in batch_s),
                            "batch_seconds_per_job": batch_s})
        print(json.dumps(res["rows"][-1]), flush=True)
    one = next((r for r in res["rows"] if r["jobs"] == 1), None)
    if one is not None:
        for r in res["rows"]:
            r["wall_throughput_vs_one_job"] = r["wall_rollouts_per_s"] / one["wall_rollouts_per_s"]
            r["steady_throughput_vs_one_job"] = r["steady_rollouts_per_s"] / one["steady_rollouts_per_s"]
    return res
