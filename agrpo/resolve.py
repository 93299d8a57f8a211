"""What a profile config resolves to, and the cross-field checks that types alone cannot express.

``validate`` runs on every ``load_config``; the helpers turn a ``ProfileConfig`` into the objects the stages use:
a method's training sampler (``rollout_for``), optimizer settings (``optimizer_for``), prompts and group size per
rollout batch, a task as the profile uses it (``profile_task``), and the evaluation grid's samplers.
"""

from __future__ import annotations

import dataclasses
import typing

from agrpo.config import ConfigError, ProfileConfig, RolloutConfig, _convert, from_dict
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


OPTIMIZER_KEYS = ("lr_schedule", "warmup_ratio", "weight_decay", "max_grad_norm", "adam_beta1", "adam_beta2")


def optimizer_for(cfg: ProfileConfig, method: str) -> dict:
    """The optimizer settings of one method: the shared ``rl`` keys with ``methods.<method>.optimizer`` over them,
    each override checked with its ``rl`` field's type and bounds."""
    from agrpo.config import RLConfig, _check_bounds, _check_choices

    over = cfg.methods[method].optimizer
    unknown = set(over) - set(OPTIMIZER_KEYS)
    if unknown:
        raise ConfigError(f"unknown key 'methods.{method}.optimizer.{sorted(unknown)[0]}' "
                          f"(known keys here: {', '.join(OPTIMIZER_KEYS)})")
    hints, fields = typing.get_type_hints(RLConfig), {f.name: f for f in dataclasses.fields(RLConfig)}
    out = {}
    for key in OPTIMIZER_KEYS:
        if key in over:
            where = f"methods.{method}.optimizer.{key}"
            out[key] = _convert(over[key], hints[key], where)
            _check_bounds(out[key], fields[key].metadata.get("bounds", {}), where)
            _check_choices(out[key], fields[key].metadata.get("choices", ()), where)
        else:
            out[key] = getattr(cfg.rl, key)
    return out


def batch_prompts(cfg: ProfileConfig, method: str) -> int:
    return cfg.methods[method].prompts_per_batch or cfg.rl.prompts_per_batch


def batch_group_size(cfg: ProfileConfig, method: str) -> int:
    return cfg.methods[method].group_size or cfg.rl.group_size


def rollout_for(cfg: ProfileConfig, method: str, task: str | None = None):
    """The SamplerConfig of a method's training rollouts (for ``task``): ``rl.rollout`` with the method's overrides
    and its per-family temperature (unless d1's Sudoku quirk is reproduced)."""
    from agrpo.tasks import get_task

    m = cfg.methods[method]
    base = dataclasses.asdict(cfg.rl.rollout)
    merged = from_dict(RolloutConfig, {**base, **m.rollout}, f"methods.{method}.rollout")
    sc = SamplerConfig(**dataclasses.asdict(merged))
    where = f"methods.{method}.rollout.temperature" if "temperature" in m.rollout else "rl.rollout.temperature"
    if task is not None:
        family = get_task(task).family
        if family in m.task_temperature and not (family == "sudoku" and m.d1_compat.sudoku_temperature_unset):
            sc.temperature, where = m.task_temperature[family], f"methods.{method}.task_temperature.{family}"
    sc.validate()
    if sc.temperature <= 0:
        raise ConfigError(f"{where}: must be > 0 for RL rollouts, got {sc.temperature}")
    return sc


def profile_task(cfg: ProfileConfig, name: str, stage: str = "eval"):
    """The task as this profile uses it: real tasks with the profile's protocol and sources; ``stage="train"``
    gives the prompts RL trains on (under d1 its training prompts, not its evaluation prompts)."""
    from agrpo.tasks import get_task
    from agrpo.tasks.real import REAL_TASKS

    if name in REAL_TASKS:
        return get_task(name, protocol=cfg.data.protocol, source=cfg.data.sources.get(f"{name}/test"),
                        train_source=cfg.data.sources.get(f"{name}/train"), stage=stage)
    return get_task(name, **cfg.data.task_args.get(name, {}))


def validate_task_args(cfg: ProfileConfig) -> None:
    """``data.task_args``: options of synthetic tasks of ``data.tasks`` that their constructors accept;
    ``data.rl_size`` only where every task is synthetic."""
    import inspect

    from agrpo.tasks import get_task
    from agrpo.tasks.real import REAL_TASKS

    for task, args in cfg.data.task_args.items():
        key = f"data.task_args.{task}"
        if task not in cfg.data.tasks:
            raise ConfigError(f"{key}: {task!r} is not a task of data.tasks ({', '.join(cfg.data.tasks)})")
        if task in REAL_TASKS:
            raise ConfigError(f"{key}: real tasks take no options here (data.protocol and data.sources set them)")
        if not isinstance(args, dict):
            raise ConfigError(f"{key}: expected a mapping of option: value, got {args!r}")
        known = [p for p in inspect.signature(get_task(task).__class__.__init__).parameters if p != "self"]
        for option in args:
            if option not in known:
                raise ConfigError(f"{key}.{option}: unknown option of {task} (known: {', '.join(known)})")
        try:
            get_task(task, **args)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: {e}") from None
    real = [t for t in cfg.data.tasks if t in REAL_TASKS]
    if cfg.data.rl_size and real:
        raise ConfigError(f"data.rl_size: {', '.join(real)} are not pretrained on; their RL prompts are their "
                          "training rows (data.train_size); set data.rl_size to 0")


def validate_runs(cfg: ProfileConfig) -> None:
    """``rl.runs`` and the per-task overrides: only trained tasks, only keys a method has, values that resolve."""
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


def trained_tasks(cfg: ProfileConfig, method: str) -> list[str]:
    """The tasks a method has per-task runs on: ``methods.<m>.train_tasks``, or every task of ``data.tasks``."""
    return [t for t in cfg.data.tasks if t in cfg.methods[method].train_tasks] or list(cfg.data.tasks)


def run_config(cfg: ProfileConfig, method: str, task: str | None) -> ProfileConfig:
    """The config a run trains with: the profile itself (``task`` None: a mixed run), or for a per-task run the
    profile with ``data.tasks = [task]`` and ``methods.<method>.per_task.<task>`` merged over the method."""
    if task is None:
        return cfg
    from agrpo.config import build_config, to_dict
    from agrpo.profile_yaml import deep_merge

    if task not in cfg.data.tasks:
        raise ConfigError(f"--task {task!r}: not a task of data.tasks ({', '.join(cfg.data.tasks)})")
    if cfg.methods[method].train_tasks and task not in cfg.methods[method].train_tasks:
        raise ConfigError(f"--task {task!r}: methods.{method}.train_tasks lists only "
                          f"{', '.join(cfg.methods[method].train_tasks)}")
    d = to_dict(cfg)
    d["data"]["tasks"] = [task]
    d["data"]["sources"] = {k: v for k, v in d["data"]["sources"].items() if k.startswith(f"{task}/")}
    over = d["methods"][method]["per_task"].get(task, {})
    d["methods"][method] = deep_merge(d["methods"][method], over) | {"per_task": {}, "train_tasks": []}
    d["methods"] = {method: d["methods"][method]}
    return build_config(d, f"methods.{method}.per_task.{task}")


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


def eval_sampler(cfg: ProfileConfig, gen_length: int, steps: int, cache: str = "none", threshold: float = 0.0):
    """The SamplerConfig of one evaluation cell."""
    from agrpo.sampling import SamplerConfig

    e = cfg.eval
    return SamplerConfig(gen_length, e.block_length, steps, e.remasking, e.temperature,
                         eos_early_exit=e.eos_early_exit, confidence=e.confidence, cache=cache, threshold=threshold,
                         cuda_graphs=e.cuda_graphs, compile_step=e.compile_step and cache == "none")


def eval_steps(cfg: ProfileConfig, gen_length: int) -> list[int]:
    return [gen_length // d for d in cfg.eval.steps_divisors]


def rule_config(cfg: ProfileConfig, rule: str, method: str | None = None, task: str | None = None) -> dict:
    """The part of the config a pipeline rule's outputs depend on beyond its input files: the Snakemake rules
    pass its hash as a param, so a config edit reruns exactly the rules it invalidates (and, through their
    outputs, what depends on them)."""
    from agrpo.config import to_dict

    d = to_dict(cfg)
    data, where = d["data"], {"device": d["device"], "threads": d["threads"]}
    task_def = {"tasks": data["tasks"], "protocol": data["protocol"], "sources": data["sources"]}
    if rule == "data":  # (rl_size and task_args only when set: the keys of earlier work dirs stay the same)
        return {"task": task, "protocol": data["protocol"], **{k: data[k] for k in ("train_size", "test_size", "seed")},
                "sources": {k: v for k, v in data["sources"].items() if k.startswith(f"{task}/")},
                **({"rl_size": data["rl_size"]} if data["rl_size"] else {}),
                **({"task_args": data["task_args"][task]} if task in data["task_args"] else {})}
    if rule == "base":  # (gen_lengths only when set: the keys of earlier work dirs stay the same)
        pretrain = {k: v for k, v in d["pretrain"].items() if k != "gen_lengths" or v}
        return {"model": d["model"], "pretrain": pretrain, **task_def, **where}
    if rule == "sft":
        return {"model": d["model"], "sft": d["methods"][method]["sft"], **task_def, **where}
    if rule == "train":
        return {"model": d["model"], "rl": d["rl"], "method": d["methods"][method], "launch": d["launch"], **task_def,
                **where}
    if rule == "eval":  # (the headroom check is not an eval cell's business)
        cells = {k: v for k, v in d["eval"].items() if k != "headroom_items"}
        return {"model": d["model"], "eval": cells, "protocol": data["protocol"], **where}
    if rule == "headroom":
        return {"model": d["model"], "eval": d["eval"], "rl": d["rl"], "methods": d["methods"], **task_def, **where}
    if rule == "report":
        return {k: d[k] for k in ("profile", "reference_csv", "published_dir")}
    raise ValueError(f"unknown rule {rule!r}")


def rule_key(cfg: ProfileConfig, rule: str, method: str | None = None, task: str | None = None) -> str:
    import hashlib
    import json

    text = json.dumps(rule_config(cfg, rule, method, task), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cli_overrides(given: dict) -> dict:
    """Snakemake's ``--config`` entries as dotted overrides: ``key=value`` as Snakemake parsed it (numbers,
    booleans, strings); ``rl="{iterations: 20}"`` (YAML) merged into its section, its strings read as YAML
    scalars (Snakemake reads nested values as strings); ``set="rl.iterations=20 data.train_size=70"`` for dotted
    keys, which Snakemake's own parser refuses."""
    import yaml

    def scalar(text: str):
        for parse in (int, float):  # YAML 1.1 would read 3e-5 as a string
            try:
                return parse(text)
            except ValueError:
                pass
        return yaml.safe_load(text)

    def typed(v):
        if isinstance(v, dict):
            return {k: typed(x) for k, x in v.items()}
        if isinstance(v, list):
            return [typed(x) for x in v]
        return scalar(v) if isinstance(v, str) else v

    out = {}
    for key, value in given.items():
        if key == "set":
            for item in str(value).replace(",", " ").split():
                name, sep, text = item.partition("=")
                if not sep or not name:
                    raise ConfigError(f"--config set=...: expected space-separated key.path=value pairs, got {item!r}")
                out[name] = scalar(text)
        else:
            out[key] = typed(value) if isinstance(value, (dict, list)) else value
    return out
