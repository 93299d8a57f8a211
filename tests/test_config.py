import json
from pathlib import Path

import pytest
import yaml

from agrpo.cli import main
from agrpo.config import ConfigError, config_docs, json_schema, load_config

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "workflow/config/tiny.yaml"


def write(tmp_path, data):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def tiny_dict():
    return yaml.safe_load(TINY.read_text())


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


def test_config_paper_profile_has_the_released_agrpo_settings():
    """workflow/config/paper.yaml parses strictly and resolves to the released AGRPO training setup."""
    import dataclasses

    from agrpo.config import ProfileConfig, from_dict, rollout_for
    from agrpo.rl.agrpo import AGRPO

    cfg = from_dict(ProfileConfig, yaml.safe_load((ROOT / "workflow/config/paper.yaml").read_text()))
    r = rollout_for(cfg, "agrpo")
    assert (r.gen_length, r.block_length, r.steps, r.remasking, r.temperature, r.top_p, r.top_k, r.eos_early_exit) == \
        (384, 12, 128, "random", 0.6, 0.99, 150, True)
    a = from_dict(AGRPO.Args, cfg.methods["agrpo"].objective_args)
    assert dataclasses.asdict(a) == dataclasses.asdict(AGRPO.Args())  # the released values are the defaults
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
