"""rl.checkpoint_format: adapter — LoRA checkpoints that hold the adapter alone and name their base; loading one
gives the model a merged checkpoint of the same run stores."""

import json
import shutil

import pytest
import torch

from agrpo.config import MethodConfig, from_dict
from agrpo.model import load_model
from agrpo.model.lora import ADAPTER_BASE, apply_lora, merged_copy, save_adapter
from tests.test_llada import write_checkpoint


def _trained_policy(base_dir):
    mcfg = from_dict(MethodConfig, {"lora": {"r": 4, "alpha": 8}})
    policy = apply_lora(load_model(base_dir), mcfg)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # trained (B = 0 at init would make every check vacuous)
    return policy


def test_adapter_checkpoint_loads_as_the_merged_model_and_moves_with_its_base(tmp_path):
    write_checkpoint(tmp_path / "work/models/base")
    policy = _trained_policy(tmp_path / "work/models/base")
    ckpt = tmp_path / "work/runs/agrpo-seed0/step2"
    ckpt.mkdir(parents=True)
    save_adapter(policy, ckpt, tmp_path / "work/models/base")
    assert json.loads((ckpt / ADAPTER_BASE).read_text()) == {"path": "../../../models/base"}
    assert not (ckpt / "config.json").exists() and (ckpt / "adapter_model.safetensors").is_file()
    expected = merged_copy(policy).state_dict()
    base = load_model(tmp_path / "work/models/base").state_dict()
    shutil.move(tmp_path / "work", tmp_path / "moved")  # the relative base path survives moving the work dir
    model = load_model(tmp_path / "moved/runs/agrpo-seed0/step2")
    assert all(p.requires_grad for p in model.parameters())  # a plain model, as a merged checkpoint loads
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    assert sum(not torch.equal(loaded[k], base[k]) for k in loaded) >= 2 * 7  # 2 blocks x 7 projections (+ head)
    for k in loaded:
        torch.testing.assert_close(loaded[k], expected[k], rtol=1e-6, atol=1e-6)


def test_adapter_checkpoint_of_a_hub_base_records_the_id_and_bad_base_files_are_named(tmp_path):
    write_checkpoint(tmp_path / "base")
    policy = _trained_policy(tmp_path / "base")
    save_adapter(policy, tmp_path, "GSAI-ML/LLaDA-8B-Instruct")
    assert json.loads((tmp_path / ADAPTER_BASE).read_text()) == {"hub_id": "GSAI-ML/LLaDA-8B-Instruct"}
    (tmp_path / ADAPTER_BASE).write_text("{not json")
    with pytest.raises(ValueError, match=r"adapter_base\.json: invalid JSON"):
        load_model(tmp_path)
    (tmp_path / ADAPTER_BASE).write_text('{"base": "x"}')
    with pytest.raises(ValueError, match=r"adapter_base\.json: expected a 'path' or 'hub_id' key"):
        load_model(tmp_path)
    (tmp_path / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"adapter checkpoint without adapter_model\.safetensors"):
        load_model(tmp_path)


def test_a_peft_adapter_without_our_base_file_loads_from_its_config_and_partial_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    write_checkpoint(tmp_path / "base")
    policy = _trained_policy(tmp_path / "base")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_adapter(policy, ckpt, tmp_path / "base")
    (ckpt / ADAPTER_BASE).unlink()  # as peft alone writes it: adapter_config.json names the base
    expected = merged_copy(policy).state_dict()
    for k, v in load_model(ckpt).state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-6, atol=1e-6)
    state = load_file(str(ckpt / "adapter_model.safetensors"))
    save_file(dict(list(state.items())[2:]), str(ckpt / "adapter_model.safetensors"))
    with pytest.raises(ValueError, match=r"adapter weights missing for 2 LoRA tensors"):
        load_model(ckpt)


def test_trainer_adapter_checkpoints_equal_its_merged_checkpoints(tmp_path):
    """The same LoRA run saved both ways: the same training log, and every adapter checkpoint loads as the
    merged checkpoint of that step."""
    from agrpo.rl import trainer
    from helpers import minute_run

    runs = {}
    for fmt in ("merged", "adapter"):
        run = tmp_path / fmt
        run.mkdir()
        cfg = minute_run(run, {"iterations": 2, "checkpoint_every": 1, "checkpoint_format": fmt})
        cfg.methods["agrpo"].lora.r, cfg.methods["agrpo"].lora.alpha = 4, 8
        trainer.train(cfg, "agrpo", 0, run / "base", run / "out", progress=False)
        runs[fmt] = run / "out"
    strip = ("seconds",)
    logs = {f: [{k: v for k, v in json.loads(x).items() if not k.startswith(strip)}
                for x in (d / "train_log.jsonl").read_text().splitlines()] for f, d in runs.items()}
    assert logs["merged"] == logs["adapter"]
    for step in (1, 2):
        assert not (runs["adapter"] / f"step{step}/config.json").exists()
        a = load_model(runs["adapter"] / f"step{step}").state_dict()
        m = load_model(runs["merged"] / f"step{step}").state_dict()
        assert a.keys() == m.keys()
        for k in a:
            torch.testing.assert_close(a[k], m[k], rtol=1e-6, atol=1e-6)
