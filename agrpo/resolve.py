"""What a profile config resolves to (the cross-field checks are in ``agrpo.validation``).

The helpers turn a ``ProfileConfig`` into the objects the stages use:
a method's training sampler (``rollout_for``), optimizer settings (``optimizer_for``), prompts and group size per
rollout batch, a task as the profile uses it (``profile_task``), and the evaluation grid's samplers.
"""

from __future__ import annotations

import dataclasses
import typing

from agrpo.config import ConfigError, ProfileConfig, RolloutConfig, _convert, from_dict
from agrpo.sampling import SamplerConfig


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


def pretrain_task(cfg: ProfileConfig, name: str):
    """A synthetic task as its pretraining (and d1 SFT) examples are drawn: ``data.pretrain_task_args`` merged over
    ``data.task_args``; the task itself where the profile sets no pretraining options for it."""
    from agrpo.tasks import get_task

    if name not in cfg.data.pretrain_task_args:
        return profile_task(cfg, name)
    return get_task(name, **{**cfg.data.task_args.get(name, {}), **cfg.data.pretrain_task_args[name]})


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


def eval_sampler(cfg: ProfileConfig, gen_length: int, steps: int, cache: str = "none", threshold: float = 0.0):
    """The SamplerConfig of one evaluation cell."""
    from agrpo.sampling import SamplerConfig

    e = cfg.eval
    return SamplerConfig(gen_length, e.block_length, steps, e.remasking, e.temperature,
                         eos_early_exit=e.eos_early_exit, confidence=e.confidence, cache=cache, threshold=threshold,
                         cuda_graphs=e.cuda_graphs, compile_step=e.compile_step and cache == "none")


def eval_steps(cfg: ProfileConfig, gen_length: int) -> list[int]:
    return [gen_length // d for d in cfg.eval.steps_divisors]


# Keys added after work directories existed, with the value that reproduces the earlier behaviour: a rule's key
# leaves them out at that value, so an earlier work directory's outputs keep their keys and are not rerun.
ADDED_KEYS = {"rl_size": 0, "task_args": {}, "pretrain_task_args": {}, "gen_lengths": [], "autocast": "none",
              "deterministic": False, "report_dir": "", "claims_steps_divisor": 1}


# rl keys added later (the rl section was keyed whole before them, so only these leave it at their defaults)
ADDED_RL_KEYS = {"monitor_every": 0, "monitor_items": 64}


def _set_only(section: dict, added: dict = ADDED_KEYS) -> dict:
    return {k: v for k, v in section.items() if k not in added or v != added[k]}


def run_methods(cfg: ProfileConfig) -> list[str]:
    """The methods whose runs the pipeline trains and evaluates: ``run_methods`` in the profile's order, or every
    method of ``methods`` when it is empty."""
    return list(cfg.run_methods) or list(cfg.methods)


def rule_config(cfg: ProfileConfig, rule: str, method: str | None = None, task: str | None = None) -> dict:
    """The part of the config a pipeline rule's outputs depend on beyond its input files: the Snakemake rules
    pass its hash as a param, so a config edit reruns exactly the rules it invalidates (and, through their
    outputs, what depends on them)."""
    from agrpo.config import to_dict

    d = to_dict(cfg)
    data, where = d["data"], {"device": d["device"], "threads": d["threads"]}
    task_def = {"tasks": data["tasks"], "protocol": data["protocol"], "sources": data["sources"]}
    if rule == "data":
        return _set_only({"task": task, "protocol": data["protocol"],
                          **{k: data[k] for k in ("train_size", "test_size", "seed", "rl_size")},
                          "sources": {k: v for k, v in data["sources"].items() if k.startswith(f"{task}/")},
                          "task_args": data["task_args"].get(task, {}),
                          "pretrain_task_args": data["pretrain_task_args"].get(task, {})})
    if rule == "base":
        return {"model": d["model"], "pretrain": _set_only(d["pretrain"]), **task_def, **where}
    methods = {m: {**v, "sft": _set_only(v["sft"])} for m, v in d["methods"].items()}
    if rule == "sft":
        return {"model": d["model"], "sft": methods[method]["sft"], **task_def, **where}
    if rule == "train":
        return {"model": d["model"], "rl": _set_only(d["rl"], ADDED_RL_KEYS), "method": methods[method], "launch": d["launch"],
                **task_def, **where}
    if rule == "eval":  # (the headroom check and the claims' steps are not an eval cell's business)
        cells = {k: v for k, v in d["eval"].items() if k not in ("headroom_items", "claims_steps_divisor")}
        return {"model": d["model"], "eval": cells, "protocol": data["protocol"], **where}
    if rule == "headroom":
        return {"model": d["model"], "eval": {k: v for k, v in d["eval"].items() if k != "claims_steps_divisor"},
                "rl": {k: v for k, v in d["rl"].items() if k not in ADDED_RL_KEYS}, "methods": methods, **task_def,
                **where}
    if rule == "sweep":  # (which summary the report includes is the report's business)
        return {"sweep": {k: v for k, v in d["sweep"].items() if k != "report_dir"}}
    if rule == "report":
        return {**{k: d[k] for k in ("profile", "reference_csv", "published_dir")},
                **_set_only({"report_dir": d["sweep"]["report_dir"],
                             "claims_steps_divisor": d["eval"]["claims_steps_divisor"]})}
    raise ValueError(f"unknown rule {rule!r}")


def rule_key(cfg: ProfileConfig, rule: str, method: str | None = None, task: str | None = None) -> str:
    import hashlib
    import json

    text = json.dumps(rule_config(cfg, rule, method, task), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def split_set_items(text: str) -> list[str]:
    """``set=`` items: split at spaces and commas outside brackets, so ``rl.seeds=[1,2],rl.iterations=20`` is two
    items (a list's commas stay in it); an unclosed or stray bracket is an error naming the text."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text + " "):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"--config set=...: unmatched {ch!r} in {text!r}")
        elif depth == 0 and (ch == "," or ch.isspace()):
            if text[start:i]:
                items.append(text[start:i])
            start = i + 1
    if depth:
        raise ConfigError(f"--config set=...: unclosed bracket in {text!r}")
    return items


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
            for item in split_set_items(str(value)):
                name, sep, text = item.partition("=")
                if not sep or not name:
                    raise ConfigError(f"--config set=...: expected space-separated key.path=value pairs, got {item!r}")
                out[name] = scalar(text)
        else:
            out[key] = typed(value) if isinstance(value, (dict, list)) else value
    return out
