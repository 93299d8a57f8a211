"""The one RL trainer: rollouts, rewards, group-relative advantages, clipped updates, checkpoints.

Per rollout batch: P prompts × G completions are sampled with the method's training sampler (which records
reveal steps and log-probs), scored by the tasks' reward functions, and turned into advantages
Â_i = R_i − mean_{j∈group(i)} R_j (optionally divided by the group std). The objective prepares what it needs
(old/reference log-probs) and then drives μ = ``inner_iterations`` optimizer steps on the same batch.
Budgets are counted in rollout batches, so every method sees the same number of rollouts.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from agrpo.config import from_dict, profile_task, rollout_for
from agrpo.data import load_split
from agrpo.io import atomic_write_json, fresh_tmp_dir, replace_dir, write_jsonl
from agrpo.model import load_model
from agrpo.provenance import seed_everything
from agrpo.rl.objectives import RolloutBatch, completion_mask, objectives
from agrpo.sampling import generate_grouped, left_pad


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = False) -> torch.Tensor:
    r = rewards.view(-1, group_size)
    adv = r - r.mean(1, keepdim=True)
    if scale:
        adv = adv / (r.std(1, keepdim=True) + 1e-4)
    return adv.reshape(-1)


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        return 1.0
    return f


class PromptStream:
    """Cycles through the shuffled training prompts of all tasks, reshuffling each epoch."""

    def __init__(self, items: list[tuple[str, dict]], generator: torch.Generator):
        self.items, self.generator, self.order, self.pos = items, generator, [], 0

    def take(self, n: int) -> list[tuple[str, dict]]:
        out = []
        while len(out) < n:
            if self.pos >= len(self.order):
                self.order, self.pos = torch.randperm(len(self.items), generator=self.generator).tolist(), 0
            out.append(self.items[self.order[self.pos]])
            self.pos += 1
        return out


def checkpoint_steps(cfg) -> list[int]:
    return list(range(cfg.rl.checkpoint_every, cfg.rl.iterations + 1, cfg.rl.checkpoint_every))


def train(cfg, method: str, seed: int, base_dir: str | Path, out_dir: str | Path, progress: bool = True) -> dict:
    rl, mcfg = cfg.rl, cfg.methods[method]
    generator = seed_everything(seed, cfg.threads)
    policy = load_model(base_dir)
    obj_cls = objectives()[mcfg.objective]
    objective = obj_cls(from_dict(obj_cls.Args, mcfg.objective_args, f"methods.{method}.objective_args"), generator)
    ref_model = None
    if mcfg.lora.r > 0:
        from agrpo.model.lora import AdapterOff, apply_lora

        policy = apply_lora(policy, mcfg)
        ref_model = AdapterOff(policy) if objective.needs_reference else None  # the base = adapter off
    elif objective.needs_reference:
        ref_model = load_model(base_dir).requires_grad_(False)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    sampler = rollout_for(cfg, method)
    task_samplers = {name: rollout_for(cfg, method, name) for name in cfg.data.tasks}
    tasks = {name: profile_task(cfg, name) for name in cfg.data.tasks}
    stream = PromptStream([(name, ex) for name in cfg.data.tasks for ex in load_split(cfg.work_dir, name, "train")], generator)
    mu = mcfg.inner_iterations
    total_updates = rl.iterations * mu
    opt = torch.optim.AdamW(trainable, lr=mcfg.learning_rate, betas=(rl.adam_beta1, rl.adam_beta2),
                            weight_decay=rl.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(rl.lr_schedule, int(rl.warmup_ratio * total_updates), total_updates))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log, start = [], time.time()
    bar = tqdm(range(1, rl.iterations + 1), desc=f"rl {method} seed {seed}", disable=not progress, mininterval=2)
    for it in bar:
        chunk = stream.take(rl.prompts_per_batch)
        prompts = [policy.encode_prompt(tasks[name], ex) for name, ex in chunk for _ in range(rl.group_size)]
        ids, mask = left_pad(prompts, policy.pad_id)
        policy.eval()
        examples = [pair for pair in chunk for _ in range(rl.group_size)]
        sample, row_temperature = generate_grouped(policy, ids, mask, [task_samplers[name] for name, _ in examples],
                                                   generator)
        texts = [policy.decode_completion(c, skip_special_tokens=True) for c in sample.completion_ids]  # as TRL
        rewards = torch.tensor([tasks[name].reward(text, ex) for text, (name, ex) in zip(texts, examples)])
        batch = RolloutBatch(sample, sampler, rewards, group_advantages(rewards, rl.group_size, rl.scale_rewards),
                             rl.group_size, completion_mask(sample.completion_ids, policy.eos_id),
                             row_temperature=row_temperature)
        policy.train()
        objective.prepare(policy, ref_model, batch, mu)
        stats_sum, n_chunks, losses = {}, 0, []
        for n in range(mu):
            opt.zero_grad(set_to_none=True)
            loss_total = 0.0
            for loss, stats in objective.losses(policy, ref_model, batch, n):
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{method}: non-finite loss at rollout batch {it}, inner iteration {n}")
                loss.backward()
                loss_total += loss.item()
                n_chunks += 1
                for k, v in stats.items():
                    stats_sum[k] = stats_sum.get(k, 0.0) + v
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, rl.max_grad_norm).item()
            opt.step()
            sched.step()
            losses.append(loss_total)
        row = {"iteration": it, "reward_mean": rewards.mean().item(), "reward_std": rewards.std().item(),
               "loss": sum(losses) / len(losses), "grad_norm": grad_norm, "lr": sched.get_last_lr()[0],
               "zero_std_groups": (rewards.view(-1, rl.group_size).std(1) < 1e-6).float().mean().item(),
               "nfe_rollout": sample.nfe, **{k: v / max(n_chunks, 1) for k, v in stats_sum.items()},
               "seconds": round(time.time() - start, 2)}
        log.append(row)
        bar.set_postfix(reward=f"{row['reward_mean']:.3f}")
        if it % rl.checkpoint_every == 0:
            ckpt = out_dir / f"step{it}"
            tmp = fresh_tmp_dir(ckpt)
            if mcfg.lora.r > 0:  # checkpoints hold merged weights: evaluation loads plain models
                from agrpo.model.lora import merged_copy

                merged_copy(policy).save_pretrained(tmp)
            else:
                policy.save_pretrained(tmp)
            atomic_write_json(tmp / "trainer_state.json", {"method": method, "seed": seed, "iteration": it,
                                                           "optimizer_steps": it * mu, "sampler": asdict(sampler)})
            replace_dir(tmp, ckpt)
    write_jsonl(out_dir / "train_log.jsonl", log)
    return {"seconds": time.time() - start, "final_reward": log[-1]["reward_mean"]}
