"""Reliability: training resumes to identical numbers after a crash; interrupted pipelines finish identically."""

import json
import time
from pathlib import Path

import pytest

from agrpo.rl import resume, trainer
from helpers import minute_run, reduced_pipeline, snakemake_lock


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    return minute_run(tmp, rl=dict(iterations=3, checkpoint_every=1, prompts_per_batch=2, group_size=4)), tmp


class Crash(Exception):
    pass


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("seconds")}  # wall times
            for line in path.read_text().splitlines()]


@pytest.mark.parametrize("method", ["agrpo", "diffu_grpo"])
def test_training_killed_after_a_checkpoint_resumes_to_identical_weights_and_log(small_run, method, monkeypatch,
                                                                                 capsys):
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
    assert len((crashed / "train_log.live.jsonl").read_text().splitlines()) == 2  # watchable while it ran
    assert json.loads((crashed / "resume/state.json").read_text())["iteration"] == 2
    monkeypatch.setattr(resume, "save", real_save)
    capsys.readouterr()
    trainer.train(cfg, method, 0, tmp / "base", crashed, progress=False)  # the rerun
    assert "resuming after iteration 2" in capsys.readouterr().err  # a restart from scratch would match too
    for step in (1, 2, 3):
        assert (crashed / f"step{step}/model.safetensors").read_bytes() == \
            (tmp / f"{method}-whole/step{step}/model.safetensors").read_bytes(), step
    assert _rows(crashed / "train_log.jsonl") == _rows(tmp / f"{method}-whole/train_log.jsonl")
    assert not (crashed / "resume").exists() and not (crashed / "train_log.live.jsonl").exists()  # run complete


def test_resume_refuses_a_different_process_count(small_run, tmp_path):
    cfg, tmp = small_run
    d = tmp_path / "run/resume"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"iteration": 1, "world_size": 2}))
    with pytest.raises(RuntimeError, match="saved with 2 processes, resumed with 1"):
        trainer.train(cfg, "agrpo", 0, tmp / "base", tmp_path / "run", progress=False)


MINI = "tests/regression/mini.yaml"  # AGRPO alone, one task, one cell per checkpoint


def _pipeline(tmp: Path, *extra: str, popen: bool = False):
    return reduced_pipeline(tmp, *extra, popen=popen, configfile=MINI)


def _kill_when(proc, ready, timeout: float = 600) -> bool:
    """SIGKILL the whole process group (snakemake and its jobs, as a preempted node) once ``ready()``."""
    import os
    import signal


    t0 = time.time()
    while time.time() - t0 < timeout:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    raise TimeoutError("the kill point was never reached")


@pytest.mark.slow
def test_pipeline_killed_during_training_eval_and_aggregation_finishes_identically(tmp_path):
    """A reduced tiny pipeline (tests/regression/mini.yaml: AGRPO on one task), SIGKILLed with all
    its jobs while training (a resume state exists), while evaluating (some cells written) and while aggregating
    (the report job started), each time rerun (`--unlock`, then `--rerun-incomplete`), ends with a summary.csv
    whose accuracies equal an uninterrupted run's exactly."""
    with snakemake_lock("tiny"):  # logs/tiny is the reduced pipeline's too
        _killed_and_rerun_equals_whole(tmp_path)


def _killed_and_rerun_equals_whole(tmp_path):
    import pandas as pd

    whole_dir = tmp_path / "whole"
    whole = _pipeline(whole_dir)  # the uninterrupted run
    assert whole.returncode == 0, whole.stdout[-2000:] + whole.stderr[-2000:]
    run = tmp_path / "killed"
    work = run / "work"
    kill_points = {
        "training": lambda: any(work.glob("runs/*/resume/state.json")),
        "evaluation": lambda: any(work.glob("eval/*/step2/*/*/metrics.json")),
        "aggregation": lambda: (ROOT / "logs/tiny/report.log").exists()
        and (ROOT / "logs/tiny/report.log").stat().st_mtime > started,
    }
    killed = []


    for name, ready in kill_points.items():
        started = time.time()
        proc = _pipeline(run, "--rerun-incomplete", popen=True)
        if _kill_when(proc, ready):
            killed.append(name)
        assert _pipeline(run, "--unlock").returncode == 0
    assert killed == list(kill_points), f"kill points reached: {killed}"
    train_logs = [p.read_text() for p in (ROOT / "logs/tiny/train").glob("*.log")]
    assert any("resuming after iteration" in t for t in train_logs)  # the killed training continued, not restarted
    final = _pipeline(run, "--rerun-incomplete")
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    cols = ["method", "task", "checkpoint", "steps", "accuracy", "n_correct", "n"]
    a = pd.read_csv(whole_dir / "results/summary.csv")[cols].sort_values(cols[:4]).reset_index(drop=True)
    b = pd.read_csv(run / "results/summary.csv")[cols].sort_values(cols[:4]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert not any(work.glob("runs/*/resume"))  # resume states are removed once runs complete


def _reward_ones(monkeypatch):
    from agrpo.tasks import TASKS

    for cls in TASKS.values():
        monkeypatch.setattr(cls, "reward", lambda self, completion, ex: completion.count("1") / 10)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(small_run, monkeypatch, tmp_path):
    cfg, tmp = small_run
    _reward_ones(monkeypatch)
    from agrpo.rl.agrpo import AGRPO

    real = AGRPO.step_loss
    calls = {"n": 0}

    def poisoned(self, *a, **kw):
        loss, stats = real(self, *a, **kw)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] > 2 else (loss, stats)  # iteration 2 (k = 2 chunks each)
    monkeypatch.setattr(AGRPO, "step_loss", poisoned)
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="agrpo: rollout batch 2: non-finite loss"):
        trainer.train(cfg, "agrpo", 0, tmp / "base", out, progress=False)
    assert (out / "step1/model.safetensors").is_file() and not (out / "step2").exists()
    assert json.loads((out / "resume/state.json").read_text())["iteration"] == 1
    assert not (out / "train_log.jsonl").exists()


def test_a_failed_write_leaves_the_previous_resume_state_loadable(small_run, monkeypatch, tmp_path, capsys):
    """A full disk while saving the iteration-2 resume state: the iteration-1 state stays whole and a rerun
    continues from it to the same weights as an uninterrupted run."""
    import errno

    import torch

    cfg, tmp = small_run
    _reward_ones(monkeypatch)
    out = tmp_path / "run"
    real_save = torch.save
    state = {"saves": 0}

    def full_disk(obj, f, *a, **kw):
        if str(f).endswith("optimizer.pt"):
            state["saves"] += 1
            if state["saves"] == 2:
                Path(f).write_bytes(b"\\x80partial")  # a torn file, then the error
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        trainer.train(cfg, "agrpo", 0, tmp / "base", out, progress=False)
    assert json.loads((out / "resume/state.json").read_text())["iteration"] == 1
    monkeypatch.setattr(torch, "save", real_save)
    capsys.readouterr()
    trainer.train(cfg, "agrpo", 0, tmp / "base", out, progress=False)
    assert "resuming after iteration 1" in capsys.readouterr().err
    trainer.train(cfg, "agrpo", 0, tmp / "base", tmp_path / "whole", progress=False)
    for step in (1, 2, 3):
        assert (out / f"step{step}/model.safetensors").read_bytes() == \
            (tmp_path / f"whole/step{step}/model.safetensors").read_bytes()


def test_no_unsafe_deserialisation_or_remote_code_in_the_package():
    """Weights load from safetensors; every torch.load passes weights_only=True; trust_remote_code is never on."""
    import re

    for path in [*ROOT.glob("agrpo/**/*.py"), *ROOT.glob("baselines/**/*.py"), *ROOT.glob("benchmarks/*.py")]:
        text = path.read_text()
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert not re.search(r"trust_remote_code\s*=\s*True", text), path
        assert "pickle.load" not in text, path


def test_killed_between_the_renames_of_a_state_replacement_resumes_from_the_previous_state(small_run, monkeypatch,
                                                                                            tmp_path, capsys):
    """replace_dir moves the old state to .resume.old before moving the new one in; a kill in between leaves only
    .resume.old, and the rerun continues from it to the uninterrupted run's weights."""
    cfg, tmp = small_run
    _reward_ones(monkeypatch)
    out = tmp_path / "run"
    real_save = resume.save

    def save_then_crash(out_dir, **kw):
        real_save(out_dir, **kw)
        if kw["iteration"] == 2:
            raise Crash
    monkeypatch.setattr(resume, "save", save_then_crash)
    with pytest.raises(Crash):
        trainer.train(cfg, "agrpo", 0, tmp / "base", out, progress=False)
    monkeypatch.setattr(resume, "save", real_save)
    (out / "resume").rename(out / ".resume.old")  # the moment between os.replace(final, old) and (tmp, final)
    capsys.readouterr()
    trainer.train(cfg, "agrpo", 0, tmp / "base", out, progress=False)
    assert "resuming after iteration 2" in capsys.readouterr().err  # not a silent restart from scratch
    trainer.train(cfg, "agrpo", 0, tmp / "base", tmp_path / "whole", progress=False)
    assert (out / "step3/model.safetensors").read_bytes() == (tmp_path / "whole/step3/model.safetensors").read_bytes()
    assert not (out / ".resume.old").exists()
