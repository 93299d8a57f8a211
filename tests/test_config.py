import json
from pathlib import Path

import pytest
import yaml

from agrpo.cli import main
from agrpo.config import ConfigError, load_config
from agrpo.config_docs import config_docs, json_schema


ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "workflow/config/tiny.yaml"


def write(tmp_path, data):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def tiny_dict():
    return yaml.safe_load(TINY.read_text())


def set_key(d: dict, key: tuple, value) -> None:
    """d[key[0]][key[1]]… = value, creating the levels that are missing."""
    for k in key[:-1]:
        d = d.setdefault(k, {})
    d[key[-1]] = value


def assert_refused(tmp_path, edits: dict, message: str) -> None:
    """tiny.yaml with ``edits`` ({key path: value}) is refused by load_config with an error matching ``message``."""
    d = tiny_dict()
    for key, value in edits.items():
        set_key(d, key, value)
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, d))


def test_config_tiny_profile_loads():
    cfg = load_config(TINY)
    assert cfg.profile == "tiny" and set(cfg.methods) == {"agrpo", "diffu_grpo", "d1", "wd1"}


def test_config_unknown_key_is_named(tmp_path):
    d = tiny_dict()
    d["rl"]["iterationz"] = 3
    with pytest.raises(ConfigError, match=r"unknown key 'rl\.iterationz'"):
        load_config(write(tmp_path, d))


def test_config_wrong_type_is_named(tmp_path):
    d = tiny_dict()
    d["methods"]["agrpo"]["learning_rate"] = "fast"
    with pytest.raises(ConfigError, match=r"methods\.agrpo\.learning_rate: expected a number"):
        load_config(write(tmp_path, d))


def test_config_unknown_objective_arg_is_named(tmp_path):
    d = tiny_dict()
    d["methods"]["agrpo"]["objective_args"]["k"] = 3
    with pytest.raises(ConfigError, match=r"methods\.agrpo\.objective_args\.k"):
        load_config(write(tmp_path, d))


def test_config_invalid_yaml_and_missing_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("rl: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")


def test_config_cli_exits_2_naming_the_key(tmp_path, capsys):
    d = tiny_dict()
    d["eval"]["bogus"] = 1
    assert main(["validate", "--config", str(write(tmp_path, d))]) == 2
    assert "eval.bogus" in capsys.readouterr().err


def test_config_schema_file_is_generated_from_dataclasses():
    committed = json.loads((ROOT / "workflow/schemas/config.schema.json").read_text())
    assert committed == json_schema(), "run: agrpo config-schema > workflow/schemas/config.schema.json"


def test_config_docs_are_up_to_date():
    assert (ROOT / "docs/config.md").read_text() == config_docs(), "run: agrpo config-docs > docs/config.md"


def test_config_schema_rejects_unknown_key_like_the_loader():
    import jsonschema

    d = tiny_dict()
    jsonschema.validate(d, json_schema())
    d["pretrain"]["nope"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, json_schema())


def test_a_value_outside_a_keys_choices_is_refused_by_loader_and_schema_alike(tmp_path):
    """``doc(choices=…)`` is one declaration: the loader's error names the key, the schema has the enum, and the
    key reference lists the values."""
    import jsonschema

    d = tiny_dict()
    d["launch"] = {"strategy": "fsdp"}
    with pytest.raises(jsonschema.ValidationError, match="fsdp"):
        jsonschema.validate(d, json_schema())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match=r"c\.yaml: launch\.strategy: expected 'ddp' or 'zero2', got 'fsdp'$"):
        load_config(path)
    assert "| `launch.strategy` | str: `ddp` \\| `zero2` |" in config_docs()


def test_config_paper_profile_has_the_released_agrpo_settings():
    """workflow/config/paper.yaml parses strictly and resolves to the released AGRPO training setup."""
    import dataclasses

    from agrpo.config import ProfileConfig, from_dict

    from agrpo.resolve import rollout_for
    from agrpo.rl.agrpo import AGRPO

    cfg = from_dict(ProfileConfig, yaml.safe_load((ROOT / "workflow/config/paper.yaml").read_text()))
    r = rollout_for(cfg, "agrpo")
    assert (r.gen_length, r.block_length, r.steps, r.remasking, r.temperature, r.top_p, r.top_k, r.eos_early_exit) == \
        (384, 12, 128, "random", 0.6, 0.99, 150, True)
    a = from_dict(AGRPO.Args, cfg.methods["agrpo"].objective_args)
    released = {"stratify": "group", "cdf_dtype": "float32", "released_launcher_steps": 2}  # ours differ by default
    assert dataclasses.asdict(a) == dataclasses.asdict(AGRPO.Args()) | released  # the rest: defaults = released
    assert a.mc_samples == 24 and a.importance_sampling == "entropy"
    m, rl = cfg.methods["agrpo"], cfg.rl
    assert (m.learning_rate, m.inner_iterations, rl.lr_schedule, rl.warmup_ratio, rl.group_size, rl.prompts_per_batch) == \
        (5e-6, 1, "cosine", 0.01, 8, 16)
    d = rollout_for(cfg, "diffu_grpo")  # evaluation and each method's training sampler are separate
    assert (d.gen_length, d.block_length, d.remasking, d.temperature, d.eos_early_exit) == (256, 32, "low_confidence", 0.9, False)
    assert (cfg.eval.block_length, cfg.eval.temperature, cfg.eval.remasking) == (32, 0.0, "low_confidence")


def test_config_paper_profile_validates_and_llada_needs_a_checkpoint(tmp_path):
    cfg = load_config(ROOT / "workflow/config/paper.yaml")
    assert (cfg.model.type, cfg.model.name_or_path, cfg.data.protocol) == ("llada", "GSAI-ML/LLaDA-8B-Instruct", "agrpo")
    d = yaml.safe_load((ROOT / "workflow/config/paper.yaml").read_text())
    d["model"]["name_or_path"] = ""
    with pytest.raises(ConfigError, match="model.name_or_path: required"):
        load_config(write(tmp_path, d))


@pytest.mark.parametrize("where,value,message", [
    (("methods", "d1", "optimizer"), {"weight_decy": 0.1}, r"unknown key 'methods\.d1\.optimizer\.weight_decy'"),
    (("methods", "d1", "optimizer"), {"lr_schedule": "linear"}, r"methods\.d1\.optimizer\.lr_schedule: expected one of"),
    (("methods", "d1", "optimizer"), {"max_grad_norm": "big"}, r"methods\.d1\.optimizer\.max_grad_norm: expected a number"),
    (("methods", "d1", "optimizer"), {"warmup_ratio": 2.0}, r"methods\.d1\.optimizer\.warmup_ratio: must be <= 1, got 2\.0"),
    (("methods", "d1", "optimizer"), {"max_grad_norm": 0}, r"methods\.d1\.optimizer\.max_grad_norm: must be > 0, got 0"),
    (("methods", "wd1", "group_size"), -6, r"methods\.wd1\.group_size: must be >= 0"),
    (("methods", "wd1", "max_prompt_length"), -1, r"methods\.wd1\.max_prompt_length: must be >= 0"),
    (("rl", "warmup_convention"), "torch", r"rl\.warmup_convention: expected 'hf' or 'shifted'"),
    (("rl", "lr_schedule"), "linear", r"rl\.lr_schedule: expected one of 'constant', 'constant_with_warmup', 'cosine', got 'linear'"),
    (("methods", "agrpo", "objective_args", "released_launcher_steps"), 3,
     r"released_launcher_steps: 3 micro-batches need a multiple of 3 prompt groups per process"),
])
def test_config_method_optimizer_and_batch_overrides_are_validated(tmp_path, where, value, message):
    """The d1/wd1 release settings (per-method optimizer, G, prompts, truncation) and the launcher option: bad
    values are refused naming the key as written."""
    d = tiny_dict()
    node = d
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, d))


def test_config_method_overrides_resolve_over_the_shared_settings(tmp_path):
    from agrpo.resolve import batch_group_size, batch_prompts, optimizer_for

    cfg = load_config(ROOT / "workflow/config/paper.yaml")
    assert optimizer_for(cfg, "d1") == {"lr_schedule": "constant_with_warmup", "warmup_ratio": 0.0001,
                                        "weight_decay": 0.1, "max_grad_norm": 0.2, "adam_beta1": 0.9, "adam_beta2": 0.99}
    assert optimizer_for(cfg, "agrpo")["lr_schedule"] == "cosine" and optimizer_for(cfg, "agrpo")["max_grad_norm"] == 1.0
    assert [(batch_prompts(cfg, m), batch_group_size(cfg, m)) for m in ("agrpo", "diffu_grpo", "d1", "wd1")] == \
        [(16, 8), (16, 6), (16, 6), (8, 6)]
    assert {m: cfg.methods[m].max_prompt_length for m in cfg.methods} == {"agrpo": 0, "diffu_grpo": 200, "d1": 200, "wd1": 200}


def test_lr_schedule_warmup_conventions():
    from agrpo.rl.trainer import lr_lambda

    hf, shifted = lr_lambda("cosine", 0.01, 250, "hf"), lr_lambda("cosine", 0.01, 250, "shifted")
    assert [hf(s) for s in range(4)] == [0.0, 1 / 3, 2 / 3, 1.0]  # W = ceil(2.5) = 3, s/W (HF Trainer)
    assert [shifted(s) for s in range(3)] == [0.5, 1.0, 1.0]  # W = floor(2.5) = 2, (s+1)/W
    assert hf(250) == pytest.approx(0.0, abs=1e-12) and lr_lambda("constant_with_warmup", 1e-4, 100)(0) == 0.0
    assert lr_lambda("constant_with_warmup", 1e-4, 100)(1) == 1.0  # ceil(0.01) = 1 warmup step, as d1


def test_config_objective_value_checks_run_at_validation(tmp_path):
    d = tiny_dict()
    d["methods"]["agrpo"]["objective_args"]["stratify"] = "grup"
    with pytest.raises(ConfigError, match=r"methods\.agrpo\.objective_args: stratify must be 'batch' or 'group'"):
        load_config(write(tmp_path, d))


def test_config_tensorboard_without_the_package_is_refused(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    d = tiny_dict()
    d["logging"] = {"tensorboard": True}
    with pytest.raises(ConfigError, match=r"logging\.tensorboard: the tensorboard package is not installed"):
        load_config(write(tmp_path, d))


def test_config_yaml_errors_and_duplicate_keys_name_file_and_line(tmp_path):
    (tmp_path / "dup.yaml").write_text("profile: tiny\nrl: {iterations: 4}\nrl: {iterations: 5}\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml:3: duplicate key 'rl' \(first at line 2\)"):
        load_config(tmp_path / "dup.yaml")
    (tmp_path / "nested.yaml").write_text("rl:\n  iterations: 4\n  iterations: 5\n")
    with pytest.raises(ConfigError, match=r"nested\.yaml:3: duplicate key 'iterations'"):
        load_config(tmp_path / "nested.yaml")
    (tmp_path / "broken.yaml").write_text("profile: tiny\nrl:\n  iterations: [1,\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_config(tmp_path / "broken.yaml")


@pytest.mark.parametrize("key,value,message", [
    (("rl", "iterations"), -20, r"rl\.iterations: must be >= 1, got -20"),
    (("rl", "iterations"), 0, r"rl\.iterations: must be >= 1, got 0"),
    (("data", "test_size"), -1, r"data\.test_size: must be > 0, got -1"),
    (("rl", "group_size"), 1, r"rl\.group_size: must be >= 2"),
    (("methods", "agrpo", "learning_rate"), -1e-4, r"methods\.agrpo\.learning_rate: must be > 0"),
    (("rl", "warmup_ratio"), 1.5, r"rl\.warmup_ratio: must be <= 1"),
    (("eval", "steps_divisors"), [1, 0], r"eval\.steps_divisors: must be >= 1, got 0"),
    (("eval", "claims_steps_divisor"), 3, r"eval\.claims_steps_divisor: 3 is not one of eval\.steps_divisors"),
    (("eval", "claims_steps_divisor"), 0, r"eval\.claims_steps_divisor: must be >= 1, got 0"),
    (("rl", "rollout", "top_p"), 0.0, r"rl\.rollout\.top_p: must be > 0"),
    (("launch", "gpus"), -1, r"launch\.gpus: must be >= 0"),
    (("pretrain", "batch_size"), 0, r"pretrain\.batch_size: must be > 0"),
])
def test_config_ranges_are_checked_naming_the_key(tmp_path, key, value, message):
    assert_refused(tmp_path, {key: value}, message)


@pytest.mark.parametrize("edits,message", [
    ({("eval", "cuda_graphs"): True}, r"eval\.cuda_graphs: CUDA graphs need a CUDA device \(device is 'cpu'\)"),
    ({("rl", "rollout", "cuda_graphs"): True}, r"rl\.rollout\.cuda_graphs: CUDA graphs need a CUDA device"),
    ({("methods", "agrpo", "rollout", "cuda_graphs"): True}, r"methods\.agrpo\.rollout\.cuda_graphs: CUDA graphs need"),
    ({("rl", "autocast"): "bfloat16"}, r"rl\.autocast: bfloat16 autocast is for CUDA devices"),
    ({("rl", "autocast"): "fp8"}, r"rl\.autocast: expected 'none' or 'bfloat16'"),
    ({("rl", "fused_adamw"): True}, r"rl\.fused_adamw: the fused AdamW kernel needs a CUDA device"),
    ({("rl", "checkpoint_format"): "lora"}, r"rl\.checkpoint_format: expected 'merged' or 'adapter', got 'lora'"),
    ({("rl", "compile_mode"): "turbo"}, r"rl\.compile_mode: expected one of 'default', 'reduce-overhead', 'max-autotune-no-cudagraphs', got 'turbo'"),
    ({("rl", "compile_mode"): "reduce-overhead"}, r"rl\.compile_mode: 'reduce-overhead' needs rl\.compile: true"),
    ({("rl", "compile_mode"): "reduce-overhead", ("rl", "compile"): True},
     r"rl\.compile_mode: 'reduce-overhead' replays CUDA graphs; device is 'cpu'"),
    ({("device",): "cuda", ("eval", "cuda_graphs"): True, ("eval", "compile"): True}, r"eval\.cuda_graphs: choose one"),
    ({("eval", "caches"): ["none", "suffix"]}, r"eval\.caches: expected one of 'none', 'prefix', 'dual', got 'suffix'"),
    ({("eval", "compile_step"): True, ("eval", "compile"): True}, r"eval\.compile_step: choose one of eval\.compile"),
    ({("methods", "agrpo", "objective_args", "draws_per_pass"): 0}, r"draws_per_pass must be >= 1"),
    ({("methods", "agrpo", "objective_args", "old_logprobs"): "current", ("methods", "agrpo", "inner_iterations"): 2},
     r"methods\.agrpo\.objective_args\.old_logprobs: 'current' needs inner_iterations 1"),
])
def test_config_speed_options_a_device_cannot_honour_are_refused_naming_the_key(tmp_path, edits, message):
    assert_refused(tmp_path, edits, message)


@pytest.mark.parametrize("edits,message", [
    ({("rl", "runs"): "per_method"}, r"rl\.runs: expected 'mixed' or 'per_task'"),
    ({("rl", "runs"): "per_task", ("methods", "d1", "per_task"): {"gsm8k": {"inner_iterations": 8}}},
     r"methods\.d1\.per_task\.gsm8k: 'gsm8k' is not a trained task \(data\.tasks: tiny_arith"),
    ({("methods", "d1", "per_task"): {"tiny_sudoku": {"inner_iterations": 8}}},
     r"methods\.d1\.per_task\.tiny_sudoku: per-task overrides need rl\.runs: per_task"),
    ({("rl", "runs"): "per_task", ("methods", "d1", "per_task"): {"tiny_sudoku": {"inner_iteratons": 8}}},
     r"methods\.d1\.per_task\.tiny_sudoku: unknown key 'methods\.d1\.inner_iteratons'"),
    ({("rl", "runs"): "per_task", ("methods", "d1", "per_task"): {"tiny_sudoku": {"inner_iterations": 0}}},
     r"methods\.d1\.per_task\.tiny_sudoku: methods\.d1\.inner_iterations: must be >= 1"),
    ({("rl", "runs"): "per_task", ("methods", "d1", "train_tasks"): ["gsm8k"]},
     r"methods\.d1\.train_tasks: 'gsm8k' is not a task of data\.tasks"),
    ({("methods", "d1", "train_tasks"): ["tiny_arith"]}, r"methods\.d1\.train_tasks: needs rl\.runs: per_task"),
    ({("rl", "runs"): "per_task", ("methods", "d1", "train_tasks"): ["tiny_arith"],
      ("methods", "d1", "per_task"): {"tiny_sudoku": {"inner_iterations": 8}}},
     r"methods\.d1\.per_task\.tiny_sudoku: 'tiny_sudoku' is not trained by this method"),
    ({("run_methods",): ["agrpo", "agrp"]}, r"run_methods: 'agrp' is not a method of `methods` \(agrpo, "),
    ({("run_methods",): ["wd1", "wd1"]}, r"run_methods: a method is named twice"),
])
def test_config_per_task_runs_and_overrides_are_checked_naming_the_key(tmp_path, edits, message):
    assert_refused(tmp_path, edits, message)


def test_config_extends_null_removes_the_base_files_key(tmp_path):
    base = tiny_dict()
    base["data"]["sources"] = {"tiny_arith/test": "a.jsonl", "tiny_sudoku/test": "b.jsonl"}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "variant.yaml").write_text("extends: base.yaml\ndata: {sources: {tiny_sudoku/test: null}}\n")
    assert load_config(tmp_path / "variant.yaml").data.sources == {"tiny_arith/test": "a.jsonl"}


def test_config_cli_train_task_matches_the_runs_setting(tmp_path, capsys):
    d = tiny_dict()
    d["rl"]["runs"] = "per_task"
    path = write(tmp_path, d)
    assert main(["train", "--config", str(path), "--method", "agrpo", "--seed", "0", "--base", "x", "--out", "y"]) == 2
    assert "rl.runs is per_task: give the run's training task with --task" in capsys.readouterr().err
    path = write(tmp_path, tiny_dict())
    assert main(["train", "--config", str(path), "--method", "agrpo", "--seed", "0", "--base", "x", "--out", "y",
                 "--task", "tiny_arith"]) == 2
    assert "has rl.runs mixed" in capsys.readouterr().err


def test_config_rollout_errors_name_the_key_as_written(tmp_path):
    d = tiny_dict()
    d["rl"]["rollout"]["steps"] = 7  # 5 blocks of 8: not a multiple
    with pytest.raises(ConfigError, match=r"rl\.rollout: steps 7 must be a positive multiple"):
        load_config(write(tmp_path, d))
    d = tiny_dict()
    d["methods"]["diffu_grpo"]["rollout"]["block_length"] = 7
    with pytest.raises(ConfigError, match=r"methods\.(diffu_grpo|d1)\.rollout \(over rl\.rollout\): gen_length 40"):  # an anchor: shared
        load_config(write(tmp_path, d))
    d = tiny_dict()
    d["rl"]["rollout"]["temperature"] = 0.0
    with pytest.raises(ConfigError, match=r"rl\.rollout\.temperature: must be > 0 for RL rollouts"):
        load_config(write(tmp_path, d))


def test_config_file_stands_alone_or_extends_explicitly(tmp_path):
    """A profile file is read over the dataclass defaults, not over tiny.yaml; `extends:` merges it over another."""
    alone = {"profile": "mine", "methods": {"agrpo": {"objective": "agrpo", "learning_rate": 1e-4}}}
    cfg = load_config(write(tmp_path, alone))
    assert list(cfg.methods) == ["agrpo"] and cfg.pretrain.steps == 1500 and cfg.model.d_model == 128  # defaults
    (tmp_path / "over.yaml").write_text(f"extends: {TINY}\nrl: {{iterations: 20}}\n")
    cfg = load_config(tmp_path / "over.yaml")
    assert cfg.rl.iterations == 20 and cfg.rl.checkpoint_every == 20 and set(cfg.methods) == {"agrpo", "diffu_grpo", "d1", "wd1"}
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="goes round in a circle"):
        load_config(tmp_path / "a.yaml")


def test_cli_overrides_from_snakemakes_config_entries():
    from agrpo.resolve import cli_overrides

    got = cli_overrides({"work_dir": "/tmp/w", "rl": {"iterations": "20", "rollout": {"temperature": "0.5"}},
                         "set": "data.train_size=70 methods.agrpo.learning_rate=3e-5"})
    assert got == {"work_dir": "/tmp/w", "rl": {"iterations": 20, "rollout": {"temperature": 0.5}},
                   "data.train_size": 70, "methods.agrpo.learning_rate": 3e-05}
    cfg = load_config(TINY, overrides=got)
    assert (cfg.rl.iterations, cfg.rl.rollout.temperature, cfg.rl.rollout.steps) == (20, 0.5, 20)  # merged, not replaced
    assert cfg.data.train_size == 70 and cfg.methods["agrpo"].learning_rate == 3e-5
    with pytest.raises(ConfigError, match="key.path=value pairs"):
        cli_overrides({"set": "rl.iterations"})


def test_cli_overrides_set_keeps_a_lists_commas_and_names_a_bad_bracket():
    from agrpo.resolve import cli_overrides

    got = cli_overrides({"set": "rl.seeds=[1,2],methods.wd1.learning_rate=3.0e-6 eval.gen_lengths=[64, 128]"})
    assert got == {"rl.seeds": [1, 2], "methods.wd1.learning_rate": 3e-6, "eval.gen_lengths": [64, 128]}
    assert load_config(TINY, overrides={"rl.seeds": got["rl.seeds"]}).rl.seeds == [1, 2]
    with pytest.raises(ConfigError, match=r"unclosed bracket in 'rl.seeds=\[1,2'"):
        cli_overrides({"set": "rl.seeds=[1,2"})
    with pytest.raises(ConfigError, match="unmatched"):
        cli_overrides({"set": "rl.seeds=1,2]"})
