"""Headroom: what a model leaves RL to learn on each task, before any RL.

For each task of the profile, on the first ``n`` RL prompts (``rl.jsonl``) and the first ``n`` test items:

- **accuracy at the eval sampler** (the first of ``eval.gen_lengths``, L/2 steps when the grid has them, else
  its first step count; greedy as the grid is), on the RL prompts beside the test items: a model that scores
  far higher on its RL prompts than on the test has memorised them;
- **the rollout statistics** of one method's training sampler, G = ``rl.group_size`` completions per RL prompt:
  mean reward, pass@G (the fraction of prompts with at least one fully correct completion), and the fraction of
  **zero-variance groups** — groups whose G rewards are all equal, so their advantages Â = R − mean(R) are 0 and
  they give no gradient. RL can raise pass@1 towards pass@G; a task whose groups are nearly all zero-variance
  (all right or all wrong) has nothing to learn from.

``agrpo headroom --config … --model <dir> --out headroom.json`` (the pipeline's ``headroom`` rule runs it on the
base model); ``python -m agrpo.headroom`` is the same.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from agrpo.config import to_dict
from agrpo.data import load_split
from agrpo.evaluate import load_eval_model, prompt_batch, run_cell
from agrpo.io import atomic_write_json
from agrpo.provenance import config_hash, device_name, git_sha, seed_everything, versions
from agrpo.resolve import batch_group_size, eval_sampler, eval_steps, profile_task, rollout_for
from agrpo.sampling import generate
from agrpo.stats import mean_ci


def eval_setting(cfg) -> tuple[int, int]:
    """(L, steps) of the headroom's eval-sampler accuracy: the first length, at L/2 steps if the grid has it."""
    L = cfg.eval.gen_lengths[0]
    steps = eval_steps(cfg, L)
    return L, (L // 2 if L // 2 in steps else steps[0])


def rollout_stats(model, cfg, method: str, task_name: str, examples: list[dict], seed: int) -> dict:
    """Mean reward, pass@G and the zero-variance fraction of G rollouts per prompt under ``method``'s sampler."""
    task, group = profile_task(cfg, task_name, stage="train"), batch_group_size(cfg, method)
    sampler = rollout_for(cfg, method, task_name)
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    rewards, correct = [], []
    batch = max(1, cfg.eval.batch_size // group)  # prompts per generate call
    for lo in range(0, len(examples), batch):
        chunk = [ex for ex in examples[lo:lo + batch] for _ in range(group)]
        ids, mask = prompt_batch(model, task, chunk, device)
        with torch.no_grad():
            out = generate(model, ids, mask, sampler, generator, record=False)
        for c, ex in zip(out.completion_ids.cpu(), chunk):
            text = model.decode_completion(c, skip_special_tokens=True)
            rewards.append(task.reward(text, ex))
            correct.append(task.judge(text, ex).correct)
    return {"method": method, **group_stats(rewards, correct, group),
            "sampler": {"remasking": sampler.remasking, "temperature": sampler.temperature,
                        "steps": sampler.steps, "gen_length": sampler.gen_length}}


def group_stats(rewards: list[float], correct: list[bool], group: int) -> dict:
    """Statistics of consecutive groups of ``group`` rollouts: mean reward, pass@1, pass@G (a group with at least
    one fully correct rollout) and the fraction of groups whose rewards are all equal (zero variance)."""
    from agrpo.rl.trainer import zero_variance_groups

    r = torch.tensor(rewards, dtype=torch.float64)
    ok = torch.tensor(correct).view(-1, group)
    return {"group_size": group, "prompts": ok.shape[0], "reward_mean": r.mean().item(),
            "pass_at_1": ok.double().mean().item(), "pass_at_group": ok.any(1).double().mean().item(),
            "zero_variance_groups": zero_variance_groups(r, group).double().mean().item()}


def headroom(cfg, model_dir: str | Path, n: int = 128, methods: list[str] | None = None, seed: int = 0) -> dict:
    """Per task: eval-sampler accuracy on ``n`` RL prompts and ``n`` test items, and each method's rollout
    statistics on the same RL prompts (default: every method of the profile; each has its own sampler)."""
    seed_everything(seed, cfg.threads)
    model = load_eval_model(cfg, model_dir)
    L, steps = eval_setting(cfg)
    sampler = eval_sampler(cfg, L, steps)
    start, tasks = time.time(), {}
    for name in cfg.data.tasks:
        task = profile_task(cfg, name)
        rl, test = load_split(cfg.work_dir, name, "rl")[:n], load_split(cfg.work_dir, name, "test")[:n]
        row = {}
        for split, examples in (("rl", rl), ("test", test)):
            rows, _ = run_cell(model, task, examples, sampler, seed, cfg.eval.batch_size)
            acc, lo, hi = mean_ci([r["score"] for r in rows])
            row[f"{split}_accuracy"] = {"mean": acc, "ci_low": lo, "ci_high": hi, "n": len(rows)}
        row["rollouts"] = [rollout_stats(model, cfg, m, name, rl, seed) for m in (methods or list(cfg.methods))]
        tasks[name] = row
    return {"model": str(model_dir), "eval_sampler": {"gen_length": L, "steps": steps}, "tasks": tasks,
            "seconds": round(time.time() - start, 2), "device": device_name(cfg.device), "git_sha": git_sha(),
            "config_hash": config_hash(to_dict(cfg)), "versions": versions()}


# the base test accuracy at which RL has room to move either way (issue 19's calibration band)
HEADROOM_BAND = (0.15, 0.60)


def outside_band(result: dict, band: tuple[float, float] = HEADROOM_BAND) -> str:
    """One sentence naming the tasks whose base test accuracy lies outside ``band`` ('' when none)."""
    off = [(name, row["test_accuracy"]["mean"]) for name, row in result["tasks"].items()
           if not band[0] <= row["test_accuracy"]["mean"] <= band[1]]
    if not off:
        return ""
    where = ", ".join(f"{name} {100 * a:.1f}% ({'little room left' if a > band[1] else 'little to reinforce'})"
                      for name, a in off)
    return (f"Outside the {100 * band[0]:.0f}–{100 * band[1]:.0f}% band of base test accuracy: {where}; gains there "
            "are bounded by the task, not only by the method.")


def headroom_table(result: dict) -> str:
    """The result as a markdown table, one row per (task, method)."""
    L, S = result["eval_sampler"]["gen_length"], result["eval_sampler"]["steps"]
    lines = [f"| task | eval accuracy (L {L}, {S} steps): RL prompts | test | method | rollout reward | pass@1 | "
             "pass@G | zero-variance groups |", "|---|---|---|---|---|---|---|---|"]
    for name, row in result["tasks"].items():
        acc = {s: row[f"{s}_accuracy"] for s in ("rl", "test")}
        cells = [f"{100 * a['mean']:.1f}% [{100 * a['ci_low']:.1f}, {100 * a['ci_high']:.1f}]" for a in acc.values()]
        for r in row["rollouts"]:
            lines.append(f"| {name} | {cells[0]} | {cells[1]} | {r['method']} | {r['reward_mean']:.3f} | "
                         f"{100 * r['pass_at_1']:.1f}% | {100 * r['pass_at_group']:.1f}% (G {r['group_size']}) | "
                         f"{100 * r['zero_variance_groups']:.1f}% |")
    return "\n".join(lines)


def write_headroom(cfg, model_dir, out: str | Path, n: int = 128, methods: list[str] | None = None) -> dict:
    result = headroom(cfg, model_dir, n, methods)
    atomic_write_json(Path(out), result)
    print(headroom_table(result), flush=True)
    return result
