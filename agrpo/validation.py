"""The cross-field checks of a profile config that types alone cannot express.

``validate`` runs on every ``load_config`` (after ``agrpo.config.from_dict`` has checked every key's type, bounds
and choices); each error names the key as the profile spells it.
"""

from __future__ import annotations

import dataclasses

from agrpo.config import ConfigError, ProfileConfig, from_dict
from agrpo.resolve import batch_prompts, eval_sampler, optimizer_for, rollout_for, run_config
from agrpo.sampling import SamplerConfig


def validate(cfg: ProfileConfig) -> None:
    """Cross-field checks that types alone cannot express."""
    from agrpo.rl.objectives import objectives
    from agrpo.tasks import TASKS, get_task

    OBJECTIVES = objectives()

    if cfg.model.type == "llada" and not cfg.model.name_or_path:
        raise ConfigError("model.name_or_path: required for model.type llada (a local directory or a hub id)")
    for t in cfg.data.tasks:
        if t not in TASKS:
            raise ConfigError(f"data.tasks: unknown task {t!r} (known: {', '.join(sorted(TASKS))})")
    validate_task_args(cfg)
    validate_sweep(cfg)
    for key in cfg.data.sources:
        task, _, split = key.partition("/")
        if task not in cfg.data.tasks or split not in ("train", "test"):
            raise ConfigError(f"data.sources: key {key!r} must be '<task of data.tasks>/<train|test>'")
    try:
        SamplerConfig(**dataclasses.asdict(cfg.rl.rollout)).validate()
    except ValueError as e:
        raise ConfigError(f"rl.rollout: {e}") from None
    for name, m in cfg.methods.items():
        if name == "base":
            raise ConfigError("methods.base: 'base' is reserved for the pretrained model")
        if m.objective not in OBJECTIVES:
            raise ConfigError(f"methods.{name}.objective: unknown objective {m.objective!r} (known: {', '.join(sorted(OBJECTIVES))})")
        families = {get_task(t).family for t in cfg.data.tasks}
        for fam in m.task_temperature:
            if fam not in ("gsm8k", "math", "countdown", "sudoku"):
                raise ConfigError(f"methods.{name}.task_temperature: unknown task family {fam!r} (gsm8k, math, countdown, sudoku)")
        if m.d1_compat.math_boxed_backspace and "math" not in families:
            raise ConfigError(f"methods.{name}.d1_compat.math_boxed_backspace: no MATH task in data.tasks; the flag would change nothing")
        if m.d1_compat.train_mode_rollouts and (m.lora.r <= 0 or m.lora.dropout <= 0):
            raise ConfigError(f"methods.{name}.d1_compat.train_mode_rollouts: needs LoRA with dropout > 0; the flag would change nothing")
        if m.d1_compat.lora_targets and m.lora.r <= 0:
            raise ConfigError(f"methods.{name}.d1_compat.lora_targets: needs LoRA (lora.r > 0); the flag would change nothing")
        if m.sft.steps > 0 and not (m.sft.dataset == "tasks" or m.sft.dataset.startswith("s1k:")):
            raise ConfigError(f"methods.{name}.sft.dataset: expected 'tasks' or 's1k:<hub id or path>', got {m.sft.dataset!r}")
        args = from_dict(OBJECTIVES[m.objective].Args, m.objective_args, f"methods.{name}.objective_args")
        try:
            OBJECTIVES[m.objective](args, None)  # the objective's own value checks
        except ValueError as e:
            raise ConfigError(f"methods.{name}.objective_args: {e}") from None
        try:
            for t in cfg.data.tasks:
                rollout_for(cfg, name, t)
        except ConfigError:
            raise
        except ValueError as e:  # rl.rollout alone passed above: the method's overrides break it
            raise ConfigError(f"methods.{name}.rollout (over rl.rollout): {e}") from None
    if cfg.logging.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("logging.tensorboard: the tensorboard package is not installed "
                              "(pip install -e '.[tensorboard]')")
    if cfg.model.activation_checkpointing and cfg.model.type != "llada":
        raise ConfigError("model.activation_checkpointing: only implemented for model.type llada")
    for name, m in cfg.methods.items():
        if m.load_in_4bit and (m.lora.r <= 0 or cfg.model.type != "llada"):
            raise ConfigError(f"methods.{name}.load_in_4bit: needs model.type llada and LoRA (lora.r > 0): a 4-bit base cannot be trained directly")
    if cfg.launch.strategy == "zero2" and cfg.launch.mixed_precision != "bf16":
        raise ConfigError("launch.mixed_precision: `zero2` needs bf16 (DeepSpeed keeps fp32 master weights only then)")
    if cfg.launch.gpus > 1 and cfg.rl.prompts_per_batch % cfg.launch.gpus:
        raise ConfigError(f"rl.prompts_per_batch ({cfg.rl.prompts_per_batch}) must be a multiple of launch.gpus "
                          f"({cfg.launch.gpus}): each process takes whole prompt groups")
    if cfg.rl.iterations % cfg.rl.checkpoint_every:
        raise ConfigError("rl.checkpoint_every must divide rl.iterations (checkpoints are known before training)")
    for name, m in cfg.methods.items():
        optimizer_for(cfg, name)  # validates methods.<name>.optimizer
        if m.group_size == 1:
            raise ConfigError(f"methods.{name}.group_size: must be 0 (= rl.group_size) or >= 2: one completion per "
                              "prompt has no group to compare against (every advantage is 0)")
        micro = m.objective_args.get("released_launcher_steps", 0) if m.objective == "agrpo" else 0
        if m.objective == "agrpo" and m.objective_args.get("old_logprobs") == "current" and m.inner_iterations != 1:
            raise ConfigError(f"methods.{name}.objective_args.old_logprobs: 'current' needs inner_iterations 1 (got "
                              f"{m.inner_iterations}): after the first update the policy is no longer θ_old")
        if micro and (batch_prompts(cfg, name) // max(1, cfg.launch.gpus)) % micro:
            raise ConfigError(f"methods.{name}.objective_args.released_launcher_steps: {micro} micro-batches need a "
                              f"multiple of {micro} prompt groups per process (prompts_per_batch / launch.gpus)")
        if cfg.launch.gpus > 1 and batch_prompts(cfg, name) % cfg.launch.gpus:
            raise ConfigError(f"methods.{name}.prompts_per_batch ({batch_prompts(cfg, name)}) must be a multiple of "
                              f"launch.gpus ({cfg.launch.gpus}): each process takes whole prompt groups")
    validate_speed_options(cfg)
    validate_runs(cfg)
    if not cfg.eval.caches or not cfg.eval.thresholds:
        raise ConfigError("eval.caches and eval.thresholds need at least one value each (['none'] and [0.0]: exact)")
    if cfg.eval.claims_steps_divisor not in cfg.eval.steps_divisors:
        raise ConfigError(f"eval.claims_steps_divisor: {cfg.eval.claims_steps_divisor} is not one of "
                          f"eval.steps_divisors {cfg.eval.steps_divisors}: the claims compare evaluated cells")
    for L in cfg.eval.gen_lengths:
        for cache in cfg.eval.caches:
            for th in cfg.eval.thresholds:
                try:
                    eval_sampler(cfg, L, L, cache, th).validate()
                except ValueError as e:
                    raise ConfigError(f"eval: cache {cache!r}, threshold {th}: {e}") from None
        for d in cfg.eval.steps_divisors:
            if L % d:
                raise ConfigError(f"eval.steps_divisors: {d} does not divide gen_length {L}")
            try:
                eval_sampler(cfg, L, L // d).validate()
            except ValueError as e:
                raise ConfigError(f"eval: gen_length {L}, steps {L // d}: {e}") from None


def validate_task_args(cfg: ProfileConfig) -> None:
    """``data.task_args`` and ``data.pretrain_task_args``: options of synthetic tasks of ``data.tasks`` that their
    constructors accept (pretraining options merged over the task's); ``data.rl_size`` only where every task is
    synthetic, and above 0 where pretraining options are set."""
    import inspect

    from agrpo.tasks import TASKS, get_task
    from agrpo.tasks.real import REAL_TASKS

    d = cfg.data
    if d.pretrain_task_args and not d.rl_size:
        raise ConfigError("data.pretrain_task_args: needs data.rl_size > 0 (with 0 the RL prompts are the "
                          "pretraining examples themselves)")
    options = [(f"data.task_args.{t}", t, a, a) for t, a in d.task_args.items()]
    options += [(f"data.pretrain_task_args.{t}", t, a, {**d.task_args.get(t, {}), **a} if isinstance(a, dict) else a)
                for t, a in d.pretrain_task_args.items()]
    for key, task, args, merged in options:
        if task not in cfg.data.tasks:
            raise ConfigError(f"{key}: {task!r} is not a task of data.tasks ({', '.join(cfg.data.tasks)})")
        if task in REAL_TASKS:
            raise ConfigError(f"{key}: real tasks take no options here (data.protocol and data.sources set them)")
        if not isinstance(args, dict):
            raise ConfigError(f"{key}: expected a mapping of option: value, got {args!r}")
        known = [p for p in inspect.signature(TASKS[task].__init__).parameters if p != "self"]
        for option in args:
            if option not in known:
                raise ConfigError(f"{key}.{option}: unknown option of {task} (known: {', '.join(known)})")
        try:
            get_task(task, **merged)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: {e}") from None
    real = [t for t in cfg.data.tasks if t in REAL_TASKS]
    if cfg.data.rl_size and real:
        raise ConfigError(f"data.rl_size: {', '.join(real)} are not pretrained on; their RL prompts are their "
                          "training rows (data.train_size); set data.rl_size to 0")


def validate_sweep(cfg: ProfileConfig) -> None:
    """``sweep.learning_rates``: methods of the profile, each rate a positive number."""
    for method, rates in cfg.sweep.learning_rates.items():
        key = f"sweep.learning_rates.{method}"
        if method not in cfg.methods:
            raise ConfigError(f"{key}: {method!r} is not a method of the profile ({', '.join(cfg.methods)})")
        if not rates:
            raise ConfigError(f"{key}: give at least one learning rate")
        for i, lr in enumerate(rates):
            if not lr > 0:
                raise ConfigError(f"{key}[{i}]: a learning rate must be > 0, got {lr!r}")
        if len(set(rates)) != len(rates):
            raise ConfigError(f"{key}: a learning rate is listed twice ({rates})")


def validate_runs(cfg: ProfileConfig) -> None:
    """``run_methods``, ``rl.runs`` and the per-task overrides: only configured methods, only trained tasks, only
    keys a method has, values that resolve."""
    for name in cfg.run_methods:
        if name not in cfg.methods:
            raise ConfigError(f"run_methods: {name!r} is not a method of `methods` ({', '.join(cfg.methods)})")
    if len(set(cfg.run_methods)) < len(cfg.run_methods):
        raise ConfigError(f"run_methods: a method is named twice ({', '.join(cfg.run_methods)})")
    for name, m in cfg.methods.items():
        for task in m.train_tasks:
            if task not in cfg.data.tasks:
                raise ConfigError(f"methods.{name}.train_tasks: {task!r} is not a task of data.tasks "
                                  f"({', '.join(cfg.data.tasks)})")
            if cfg.rl.runs != "per_task":
                raise ConfigError(f"methods.{name}.train_tasks: needs rl.runs: per_task")
        for task in m.per_task:
            if task not in cfg.data.tasks:
                raise ConfigError(f"methods.{name}.per_task.{task}: {task!r} is not a trained task "
                                  f"(data.tasks: {', '.join(cfg.data.tasks)})")
            if cfg.rl.runs != "per_task":
                raise ConfigError(f"methods.{name}.per_task.{task}: per-task overrides need rl.runs: per_task")
            if m.train_tasks and task not in m.train_tasks:
                raise ConfigError(f"methods.{name}.per_task.{task}: {task!r} is not trained by this method "
                                  f"(methods.{name}.train_tasks: {', '.join(m.train_tasks)})")
            if "per_task" in m.per_task[task]:
                raise ConfigError(f"methods.{name}.per_task.{task}.per_task: overrides cannot nest")
            run_config(cfg, name, task)


def validate_speed_options(cfg: ProfileConfig) -> None:
    """Options a device or model cannot honour are refused here, naming the key (never silently ignored)."""
    on_cuda = str(cfg.device).startswith("cuda")
    if cfg.rl.autocast == "bfloat16":
        if not on_cuda:
            raise ConfigError(f"rl.autocast: bfloat16 autocast is for CUDA devices (device is {cfg.device!r}); on a "
                              "CPU it is slower than float32 and changes the committed numbers")
        if cfg.model.type == "llada" and cfg.model.dtype == "bfloat16":
            raise ConfigError("rl.autocast: the weights are already bfloat16 (model.dtype); autocast adds nothing")
        import torch

        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"rl.autocast: this GPU ({torch.cuda.get_device_name()}) does not support bfloat16")
    if cfg.pretrain.autocast == "bfloat16" and not on_cuda:
        raise ConfigError(f"pretrain.autocast: bfloat16 autocast is for CUDA devices (device is {cfg.device!r})")
    if cfg.rl.compile and cfg.launch.gpus > 0:
        raise ConfigError("rl.compile: one plain process only (launch.gpus 0); not verified under DDP or DeepSpeed")
    if cfg.rl.compile_mode != "default":
        if not cfg.rl.compile:
            raise ConfigError(f"rl.compile_mode: {cfg.rl.compile_mode!r} needs rl.compile: true")
        if cfg.rl.compile_mode == "reduce-overhead" and not on_cuda:
            raise ConfigError(f"rl.compile_mode: 'reduce-overhead' replays CUDA graphs; device is {cfg.device!r}")
    if cfg.rl.fused_adamw and not on_cuda:
        raise ConfigError(f"rl.fused_adamw: the fused AdamW kernel needs a CUDA device (device is {cfg.device!r})")
    if cfg.eval.cuda_graphs:
        if not on_cuda:
            raise ConfigError(f"eval.cuda_graphs: CUDA graphs need a CUDA device (device is {cfg.device!r})")
        if cfg.eval.compile:
            raise ConfigError("eval.cuda_graphs: choose one of eval.compile and eval.cuda_graphs")
    if cfg.eval.compile_step and cfg.eval.compile:
        raise ConfigError("eval.compile_step: choose one of eval.compile (the forward) and eval.compile_step (the step)")
    for name, m in cfg.methods.items():
        if not rollout_for(cfg, name).cuda_graphs:
            continue
        key = f"methods.{name}.rollout.cuda_graphs" if "cuda_graphs" in m.rollout else "rl.rollout.cuda_graphs"
        if not on_cuda:
            raise ConfigError(f"{key}: CUDA graphs need a CUDA device (device is {cfg.device!r})")
        if m.d1_compat.train_mode_rollouts:
            raise ConfigError(f"{key}: rollouts in train mode draw LoRA dropout from the global RNG inside the "
                              f"step; not captured (methods.{name}.d1_compat.train_mode_rollouts)")
        if m.load_in_4bit or (cfg.launch.gpus > 0 and cfg.launch.strategy == "zero2"):
            raise ConfigError(f"{key}: not verified with 4-bit bases or DeepSpeed-managed weights (the graphs "
                              "read parameters in place)")
    from agrpo.model import supports_kv_cache

    for cache in cfg.eval.caches:
        if cache != "none" and not supports_kv_cache(cfg.model.type):
            raise ConfigError(f"eval.caches: {cache!r} needs a model with KV-cache passes; model.type "
                              f"{cfg.model.type!r} has none")
