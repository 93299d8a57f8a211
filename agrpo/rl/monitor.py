"""Greedy accuracy while RL trains (``rl.monitor_every``): the learning signal at the eval sampler.

The rollout reward is measured with the training sampler (random remasking, T > 0 in the released AGRPO), so it can
stay flat while greedy accuracy rises (the small profile's final runs: reward 0.56 → 0.58, countdown +6 points).
Every ``monitor_every`` rollout batches the policy is scored as evaluation scores a checkpoint — the eval sampler
of the headroom check (the first eval length at L/2 steps), each row's ``score`` averaged (cell accuracy on
Sudoku) — on the first ``monitor_items`` test items of each task, and the trainer logs ``eval_accuracy/<task>``.

Monitoring only: no checkpoint is chosen by it (the report shows every checkpoint), and it draws from its own
generator (greedy: none at all), so the training run's numbers are those of a run without it. It runs at the
trainer's precision (``rl.autocast``), not ``eval.dtype``, so it can differ from the checkpoint's eval cell in
the last items.
"""

from __future__ import annotations

import torch

from agrpo.data import load_split
from agrpo.evaluate import run_cell
from agrpo.headroom import eval_setting
from agrpo.resolve import eval_sampler, profile_task


def monitor_set(cfg) -> dict:
    """{task: (task object, its first rl.monitor_items test examples)}; empty when monitoring is off."""
    if not cfg.rl.monitor_every:
        return {}
    return {name: (profile_task(cfg, name), load_split(cfg.work_dir, name, "test")[:cfg.rl.monitor_items])
            for name in cfg.data.tasks}


def monitor_accuracy(cfg, policy, items: dict, amp) -> dict:
    """``{"eval_accuracy/<task>": mean score}`` of ``policy`` on ``items`` (monitor_set) at the eval sampler; the
    policy's train/eval mode is restored."""
    L, steps = eval_setting(cfg)
    sampler = eval_sampler(cfg, L, steps)
    was_training = policy.training
    out = {}
    with torch.no_grad(), amp():
        for name, (task, examples) in items.items():
            rows, _ = run_cell(policy, task, examples, sampler, 0, cfg.eval.batch_size)
            out[f"eval_accuracy/{name}"] = sum(r["score"] for r in rows) / max(len(rows), 1)
    policy.train(was_training)
    return out
