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
    assert cfg.profile == "tiny" and set(cfg.methods) == {"agrpo", "diffu_grpo"}


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
