"""The one RL trainer: rollouts, rewards, group-relative advantages, clipped updates, checkpoints.

Per rollout batch: P prompts × G completions are sampled with the method's training sampler (which records
reveal steps and log-probs), scored by the tasks' reward functions, and turned into advantages
Â_i = R_i − mean_{j∈group(i)} R_j (optionally divided by the group std). The objective prepares what it needs
(old/reference log-probs) and then drives μ = ``inner_iterations`` updates on the same batch (one optimizer step
each, or the released AGRPO launcher's k: ``Objective.step_after``). Budgets are counted in rollout batches, so every
method sees the same number of rollouts unless it overrides its G or prompts per batch (``methods.<m>.group_size``,
``prompts_per_batch``); the log counts both rollouts and optimizer steps.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from agrpo.config import from_dict
from agrpo.resolve import batch_group_size, batch_prompts, optimizer_for, profile_task, rollout_for, run_config
from agrpo.data import load_split
from agrpo.distributed import Runtime, all_gather_rows, all_mean, make_runtime, shard
from agrpo.io import atomic_write_json, fresh_tmp_dir, replace_dir
from agrpo.model import load_model
from agrpo.provenance import seed_everything
from agrpo.rl import resume
from agrpo.rl.monitor import monitor_accuracy, monitor_set
from agrpo.rl.objectives import RolloutBatch, completion_mask, objectives
from agrpo.rl.train_log import TrainLog
from agrpo.sampling import generate_grouped, left_pad


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = False) -> torch.Tensor:
    r = rewards.view(-1, group_size)
    adv = r - r.mean(1, keepdim=True)
    if scale:
        adv = adv / (r.std(1, keepdim=True) + 1e-4)
    return adv.reshape(-1)


def zero_variance_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(groups,) bool: groups whose G rewards are all equal — every advantage 0, no gradient."""
    return rewards.view(-1, group_size).std(1) < 1e-6


def lr_lambda(schedule: str, warmup_ratio: float, total: int, convention: str = "hf"):
    """LR factor of optimizer step s (0-based) of ``total``: linear warmup over W steps, then constant or cosine to 0.

    ``hf`` (HF Trainer's get_*_schedule_with_warmup, the released runs): W = ⌈ratio·T⌉, factor s/W while s < W.
    ``shifted``: W = ⌊ratio·T⌋, factor (s+1)/W (no step at lr 0)."""
    warmup = math.ceil(warmup_ratio * total) if convention == "hf" else int(warmup_ratio * total)

    def f(step):
        if step < warmup:
            return step / warmup if convention == "hf" else (step + 1) / warmup
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


def task_rewards(cfg, method: str, tasks: dict) -> dict:
    """Task name -> reward(completion text, example), with the method's reward options: d1's MATH format-reward
    quirk (``d1_compat.math_boxed_backspace``) reaches the MATH tasks' rewards."""
    backspace = cfg.methods[method].d1_compat.math_boxed_backspace
    return {name: functools.partial(t.reward, math_boxed_backspace=True) if backspace and t.family == "math" else t.reward
            for name, t in tasks.items()}


def checkpoint_steps(cfg) -> list[int]:
    return list(range(cfg.rl.checkpoint_every, cfg.rl.iterations + 1, cfg.rl.checkpoint_every))


def build_policy(cfg, method: str, base_dir, device, needs_reference: bool):
    """(policy, reference or None) on ``device``, in ``model.dtype``; LoRA (reference = adapter off) or full."""
    mcfg = cfg.methods[method]
    dtype = getattr(torch, cfg.model.dtype)
    policy = load_model(base_dir, dtype=dtype, device="cpu" if mcfg.load_in_4bit else device)
    if hasattr(policy, "activation_checkpointing"):
        policy.activation_checkpointing = cfg.model.activation_checkpointing
    if mcfg.lora.r > 0:
        from agrpo.model.lora import AdapterOff, apply_lora, quantize_4bit

        if mcfg.load_in_4bit:
            policy = quantize_4bit(policy).to(device)  # NF4 quantisation happens on the move to CUDA
        policy = apply_lora(policy, mcfg)
        return policy, (AdapterOff(policy) if needs_reference else None)  # the base = adapter off
    ref = load_model(base_dir, dtype=dtype, device=device).requires_grad_(False) if needs_reference else None
    return policy, ref


def save_checkpoint(cfg, method: str, policy, base_dir, directory: Path) -> None:
    """Plain model weights (LoRA merged in), so evaluation loads every checkpoint the same way; or, with
    ``rl.checkpoint_format: adapter`` and LoRA, the adapter alone and where its base is (``load_model`` merges
    it on load)."""
    mcfg = cfg.methods[method]
    if mcfg.lora.r <= 0:
        policy.save_pretrained(directory)
        return
    from agrpo.model.lora import merged_copy, merged_into, save_adapter

    if cfg.rl.checkpoint_format == "adapter":
        save_adapter(policy, directory, base_dir)  # the tmp dir is the checkpoint's sibling: same relative path
        return

    if mcfg.load_in_4bit:
        merged_into(load_model(base_dir, dtype=getattr(torch, cfg.model.dtype)), policy).save_pretrained(directory)
    else:
        merged_copy(policy).save_pretrained(directory)


class ThroughEngine:
    """The policy as objectives see it: calls go through the DDP / DeepSpeed wrapper (gradient hooks, autocast);
    attributes (mask_id, eos_id, tokenizer, …) come from the model itself."""

    def __init__(self, engine, module):
        self._engine, self._module = engine, module

    def __call__(self, *args, **kwargs):
        return self._engine(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)


def prepare_engine(rt: Runtime, policy, opt, max_grad_norm: float):
    """Wrap for the launch strategy: plain (one process), DDP, or DeepSpeed ZeRO-2 (via accelerate)."""
    if rt.accelerator is None:
        return policy, opt
    if rt.deepspeed:  # DeepSpeed clips inside its step; micro-batch size is bookkeeping only (we pass no loader)
        ds = rt.accelerator.state.deepspeed_plugin.deepspeed_config
        ds["gradient_clipping"] = max_grad_norm
        ds["train_micro_batch_size_per_gpu"] = 1
        ds["gradient_accumulation_steps"] = 1
        ds["train_batch_size"] = rt.world_size
        ds["zero_allow_untested_optimizer"] = True  # our torch AdamW, as the released runs' HF default
    engine, opt = rt.accelerator.prepare(policy, opt)
    return engine, opt


def autocast_for(cfg, device: torch.device):
    """``rl.autocast``: a bf16 autocast context for rollouts, re-scoring and updates, or a no-op."""
    if cfg.rl.autocast == "bfloat16":
        return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    return nullcontext


def update(rt: Runtime, engine, policy, ref_model, objective, batch: RolloutBatch, opt, sched, trainable,
           inner_iteration: int, max_grad_norm: float, amp=nullcontext) -> tuple[float, float, dict, int, int]:
    """One update on the rollout batch: the objective's loss chunks are back-propagated one at a time (gradients
    accumulate; DDP all-reduces only before a step) and the optimizer steps after each chunk in
    ``objective.step_after()`` — the last one, unless an objective reproduces the released launcher's per-draw
    steps — then the LR scheduler steps once. Returns (loss, grad norm of the last step, summed stats, chunks,
    optimizer steps)."""
    model = ThroughEngine(engine, policy) if engine is not policy else policy
    n_chunks = objective.chunks_per_iteration()
    step_after = set(objective.step_after())
    chunks = objective.losses(model, ref_model, batch, inner_iteration)
    opt.zero_grad(set_to_none=True)
    loss_total, stats_sum, grad_norm, steps = 0.0, {}, 0.0, 0
    for c in range(n_chunks):
        step = c in step_after
        with rt.no_sync(engine, step):
            with amp():  # the chunk's forward passes (its backward runs outside autocast, as torch advises)
                loss, stats = next(chunks)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at inner iteration {inner_iteration}, chunk {c}")
            if rt.accelerator is not None:
                rt.accelerator.gradient_state._set_sync_gradients(step)  # DeepSpeed: its engine steps on sync
                rt.accelerator.backward(loss)
            else:
                loss.backward()
        loss_total += loss.item()
        for k, v in stats.items():
            stats_sum[k] = stats_sum.get(k, 0.0) + v
        if step:
            if rt.deepspeed:  # already stepped (clipped inside) by the engine during backward
                grad_norm = float(rt.accelerator.clip_grad_norm_(trainable, max_grad_norm))
            else:
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm).item()
            opt.step()
            opt.zero_grad(set_to_none=True)
            steps += 1
    if next(chunks, None) is not None:
        raise RuntimeError(f"{type(objective).__name__} yielded more than chunks_per_iteration() losses")
    sched.step()
    return loss_total, grad_norm, stats_sum, n_chunks, steps


def per_task_rewards(rewards: torch.Tensor, group_tasks: list[str], group: int) -> dict:
    """``reward_mean/<task>`` and ``zero_std_groups/<task>`` (the fraction of that task's groups whose G rewards
    are all equal: no advantage, no gradient) of one rollout batch; ``rewards`` in group order."""
    by_group, zero = rewards.view(-1, group), zero_variance_groups(rewards, group)
    out = {}
    for task in dict.fromkeys(group_tasks):
        rows = torch.tensor([t == task for t in group_tasks], device=rewards.device)
        out[f"reward_mean/{task}"] = by_group[rows].mean().item()
        out[f"zero_std_groups/{task}"] = zero[rows].float().mean().item()
    return out


def train(cfg, method: str, seed: int, base_dir: str | Path, out_dir: str | Path, progress: bool = True,
          reward_fn=None, task: str | None = None) -> dict:
    """RL-train ``method`` from ``base_dir``; checkpoints and ``train_log.jsonl`` go to ``out_dir``. ``task``: a
    per-task run (``rl.runs: per_task``) — that task alone, with the method's ``per_task`` overrides.

    ``reward_fn(completion text, example) -> float`` replaces the tasks' rewards (the learnability probes,
    agrpo/rl/probe.py); by default each row is scored by its task's reward."""
    cfg = run_config(cfg, method, task)
    rl, mcfg = cfg.rl, cfg.methods[method]
    rt = make_runtime(cfg.device, cfg.launch.mixed_precision)
    generator = seed_everything(seed, cfg.threads)  # prompt order and objective draws: the same on every rank
    if rt.world_size == 1 and rt.device.type == "cpu":
        rollout_generator = generator  # one stream, as in every earlier tiny run
    else:
        rollout_generator = torch.Generator(rt.device).manual_seed(seed * 1_000_003 + rt.rank)
    obj_cls = objectives()[mcfg.objective]
    objective = obj_cls(from_dict(obj_cls.Args, mcfg.objective_args, f"methods.{method}.objective_args"), generator)
    policy, ref_model = build_policy(cfg, method, base_dir, rt.device, objective.needs_reference)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    sampler = rollout_for(cfg, method)
    task_samplers = {name: rollout_for(cfg, method, name) for name in cfg.data.tasks}
    tasks = {name: profile_task(cfg, name, stage="train") for name in cfg.data.tasks}
    task_reward = task_rewards(cfg, method, tasks)
    monitored = monitor_set(cfg)  # rl.monitor_every: greedy accuracy on test items as training goes
    prompts = [(name, ex) for name in cfg.data.tasks for ex in load_split(cfg.work_dir, name, "rl")]
    if not prompts:
        raise ValueError(f"no RL training prompts: the rl splits of {', '.join(cfg.data.tasks)} under "
                         f"{cfg.work_dir}/data are empty (data.train_size, data.rl_size, data.sources, the "
                         "protocol's filters)")
    stream = PromptStream(prompts, generator)
    mu, oc = mcfg.inner_iterations, optimizer_for(cfg, method)
    n_prompts, group = batch_prompts(cfg, method), batch_group_size(cfg, method)
    total_updates = rl.iterations * mu
    opt = torch.optim.AdamW(trainable, lr=mcfg.learning_rate, betas=(oc["adam_beta1"], oc["adam_beta2"]),
                            weight_decay=oc["weight_decay"], fused=True if rl.fused_adamw else None)
    amp = autocast_for(cfg, rt.device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(oc["lr_schedule"], oc["warmup_ratio"], total_updates,
                                                             rl.warmup_convention))
    engine, opt = prepare_engine(rt, policy, opt, oc["max_grad_norm"])
    if ref_model is not None and mcfg.lora.r <= 0:  # a separate frozen copy: same dtype as the policy computes in
        ref_model.to(next(policy.parameters()).dtype)  # (DeepSpeed bf16 casts the policy; a fp32 ref would skew KL)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log, start, first = [], time.time(), 1
    generators = {"shared": generator, "rollout": rollout_generator}
    ds = rt.accelerator if rt.deepspeed else None
    resumed = resume.load(out_dir, policy=policy, opt=opt, sched=sched, stream=stream, generators=generators,
                          rank=rt.rank, world_size=rt.world_size, accelerator=ds)
    if resumed is not None:
        first, log = resumed
        if rt.is_main:
            print(f"{method} seed {seed}: resuming after iteration {first - 1} from {resume.resume_dir(out_dir)}",
                  file=sys.stderr, flush=True)
        start -= log[-1]["seconds"] if log else 0.0
    train_log = TrainLog(out_dir, log, cfg.logging.tensorboard, rt.is_main)  # live, as each batch ends
    bar = tqdm(range(first, rl.iterations + 1), desc=f"rl {method} seed {seed}", initial=first - 1,
               total=rl.iterations, disable=not (progress and rt.is_main), mininterval=2)
    scorer, ref_scorer, preparer = engine, ref_model, policy
    if rl.compile:  # the objectives' passes compiled (rollouts stay on the eager module, or its CUDA graphs)
        scorer = torch.compile(engine, dynamic=True, mode=rl.compile_mode)
        preparer = ThroughEngine(scorer, policy)  # prepare's no-grad passes (old log-probs) too
        if ref_model is not None and mcfg.lora.r <= 0:  # a frozen copy (LoRA's reference is the adapter-off policy)
            ref_scorer = torch.compile(ref_model, dynamic=True, mode=rl.compile_mode)
    for it in bar:
        t_start = time.perf_counter()
        taken = stream.take(n_prompts)
        chunk = shard(taken, rt.rank, rt.world_size)  # whole groups per rank
        prompts = [policy.encode_prompt(tasks[name], ex) for name, ex in chunk for _ in range(group)]
        if mcfg.max_prompt_length:  # TRL's max_prompt_length: the last N tokens
            prompts = [p[-mcfg.max_prompt_length:] for p in prompts]
        ids, mask = left_pad(prompts, policy.pad_id)
        ids, mask = ids.to(rt.device), mask.to(rt.device)
        policy.train(mcfg.d1_compat.train_mode_rollouts)  # d1 samples inside its training step (LoRA dropout on)
        examples = [pair for pair in chunk for _ in range(group)]
        row_samplers = [task_samplers[name] for name, _ in examples]
        with amp():
            sample, row_temperature = generate_grouped(policy, ids, mask, row_samplers, rollout_generator,
                                                       merge_temperatures=rl.merge_rollout_temperatures)
        # one sampler for every row: it (not the method's default) is the transform to re-score with
        used = row_samplers[0] if row_temperature is None else sampler
        texts = [policy.decode_completion(c, skip_special_tokens=True)  # as TRL; one device read for the batch
                 for c in sample.completion_ids.cpu()]
        t_rollout = time.perf_counter()
        rewards = torch.tensor([(reward_fn or task_reward[name])(text, ex) for text, (name, ex) in zip(texts, examples)],
                               device=rt.device)
        batch = RolloutBatch(sample, used, rewards, group_advantages(rewards, group, rl.scale_rewards),
                             group, completion_mask(sample.completion_ids, policy.eos_id),
                             row_temperature=row_temperature, shard=(rt.rank, rt.world_size))
        t_reward = time.perf_counter()
        policy.train()
        with amp():
            objective.prepare(preparer, ref_scorer, batch, mu)
        stats_sum, n_chunks, losses, first_ratio = {}, 0, [], None
        prev_steps = log[-1].get("optimizer_steps", (it - 1) * mu) if log else 0
        opt_steps = 0
        for n in range(mu):
            try:
                loss, grad_norm, stats, chunks, steps = update(rt, scorer, policy, ref_scorer, objective, batch, opt,
                                                               sched, trainable, n, oc["max_grad_norm"], amp)
            except FloatingPointError as e:
                raise FloatingPointError(f"{method}: rollout batch {it}: {e}") from None
            losses.append(loss)
            if n == 0 and "ratio_mean" in stats:  # θ = θ_old here: 1 up to numerics (a gap is a scoring mismatch)
                first_ratio = stats["ratio_mean"] / max(chunks, 1)
            n_chunks += chunks
            opt_steps += steps
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + v
        t_update = time.perf_counter()
        all_rewards = all_gather_rows(rewards)
        local = {"loss": sum(losses) / len(losses), "nfe_rollout": sample.nfe,
                 "passes_rollout": float(sample.row_nfe.sum().item()) if sample.row_nfe is not None
                 else float(sample.nfe * sample.completion_ids.shape[0]),
                 **{k: v / max(n_chunks, 1) for k, v in stats_sum.items()},
                 **({"ratio_mean_first_iteration": first_ratio} if first_ratio is not None else {})}
        agg = all_mean(local, rt.device)  # mean over ranks = the global batch's loss (see agrpo.distributed)
        rollout_passes = round(agg.pop("passes_rollout") * rt.world_size)  # the sum over ranks
        row = {"iteration": it, "reward_mean": all_rewards.mean().item(), "reward_std": all_rewards.std().item(),
               "loss": agg.pop("loss"), "grad_norm": grad_norm, "lr": sched.get_last_lr()[0],
               "zero_std_groups": zero_variance_groups(all_rewards, group).float().mean().item(),
               **per_task_rewards(all_rewards, [name for name, _ in taken], group),
               "nfe_rollout": agg.pop("nfe_rollout"), **agg, "optimizer_steps": prev_steps + opt_steps,
               "rollouts": it * n_prompts * group, "seconds": round(time.time() - start, 2),
               # the batch's network passes in sequences (a row through the network once): the rollout's (rows
               # that finished early skip the passes after), then the objective's
               "passes_rollout": rollout_passes,
               **{f"passes_{k}": v for k, v in objective.sequence_passes(n_prompts * group, mu).items()},
               # this batch's wall time by phase: sampling + decoding, rewards, prepare + updates
               "seconds_rollout": round(t_rollout - t_start, 4), "seconds_reward": round(t_reward - t_rollout, 4),
               "seconds_update": round(t_update - t_reward, 4)}
        if monitored and it % rl.monitor_every == 0:
            row.update(monitor_accuracy(cfg, policy, monitored, amp))
        train_log.append(row)
        bar.set_postfix(reward=f"{row['reward_mean']:.3f}")
        if it % rl.checkpoint_every == 0:
            if rt.is_main:
                ckpt = out_dir / f"step{it}"
                tmp = fresh_tmp_dir(ckpt)
                save_checkpoint(cfg, method, policy, base_dir, tmp)
                atomic_write_json(tmp / "trainer_state.json", {"method": method, "seed": seed, "iteration": it,
                                                               "optimizer_steps": row["optimizer_steps"], "sampler": asdict(sampler),
                                                               "world_size": rt.world_size})
                replace_dir(tmp, ckpt)
            rt.barrier()
            # the state a rerun continues from (agrpo/rl/resume.py)
            resume.save(out_dir, iteration=it, policy=policy, opt=opt, sched=sched, stream=stream, log=log,
                        generators=generators, rank=rt.rank, world_size=rt.world_size, barrier=rt.barrier,
                        accelerator=ds)
    train_log.finish()
    if rt.is_main:
        resume.finish(out_dir)
    rt.barrier()
    return {"seconds": time.time() - start, "final_reward": log[-1]["reward_mean"]}
