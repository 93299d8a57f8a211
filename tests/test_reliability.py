"""Reliability: training resumes to identical numbers after a crash; interrupted pipelines finish identically."""

import json
from pathlib import Path

import pytest
import yaml

from agrpo.config import load_config
from agrpo.data import write_task_data
from agrpo.rl import resume, trainer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    d = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    d.update(work_dir=str(tmp / "work"), results_dir=str(tmp / "results"))
    d["data"].update(train_size=50, test_size=8)
    d["rl"].update(iterations=3, checkpoint_every=1, prompts_per_batch=2, group_size=4)
    d["methods"]["agrpo"]["objective_args"]["mc_samples"] = 2
    d["methods"]["diffu_grpo"]["inner_iterations"] = 2
    (tmp / "c.yaml").write_text(yaml.safe_dump(d))
    cfg = load_config(tmp / "c.yaml")
    for t in cfg.data.tasks:
        write_task_data(cfg, t)
    import torch

    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer

    torch.manual_seed(0)
    init_tiny(CharTokenizer(), d_model=32, n_layers=1, n_heads=2, d_ff=64).save_pretrained(tmp / "base")
    return cfg, tmp


class Crash(Exception):
    pass


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]


@pytest.mark.parametrize("method", ["agrpo", "diffu_grpo"])
def test_training_killed_after_a_checkpoint_resumes_to_identical_weights_and_log(small_run, method, monkeypatch):
    cfg, tmp = small_run
    from agrpo.tasks import TASKS

    for cls in TASKS.values():  # an untrained model earns no reward; give the groups something to rank
        monkeypatch.setattr(cls, "reward", lambda self, completion, ex: completion.count("1") / 10)
    trainer.train(cfg, method, 0, tmp / "base", tmp / f"{method}-whole", progress=False)

    real_save = resume.save

    def save_then_crash(out_dir, **kw):
        real_save(out_dir, **kw)
        if kw["iteration"] == 2:
            raise Crash  # the process dies right after the iteration-2 checkpoint and resume state
    monkeypatch.setattr(resume, "save", save_then_crash)
    with pytest.raises(Crash):
        trainer.train(cfg, method, 0, tmp / "base", tmp / f"{method}-crashed", progress=False)
    crashed = tmp / f"{method}-crashed"
    assert (crashed / "resume/state.json").is_file() and not (crashed / "train_log.jsonl").exists()
    assert json.loads((crashed / "resume/state.json").read_text())["iteration"] == 2
    monkeypatch.setattr(resume, "save", real_save)
    trainer.train(cfg, method, 0, tmp / "base", crashed, progress=False)  # the rerun
    for step in (1, 2, 3):
        assert (crashed / f"step{step}/model.safetensors").read_bytes() == \
            (tmp / f"{method}-whole/step{step}/model.safetensors").read_bytes(), step
    assert _rows(crashed / "train_log.jsonl") == _rows(tmp / f"{method}-whole/train_log.jsonl")
    assert not (crashed / "resume").exists()  # removed once the run is complete


def test_resume_refuses_a_different_process_count(small_run, tmp_path):
    cfg, tmp = small_run
    d = tmp_path / "run/resume"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"iteration": 1, "world_size": 2}))
    with pytest.raises(RuntimeError, match="saved with 2 processes, resumed with 1"):
        trainer.train(cfg, "agrpo", 0, tmp / "base", tmp_path / "run", progress=False)
