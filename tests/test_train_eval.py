"""Trainer and eval-cell behaviour on a minute-sized configuration."""

import json
from pathlib import Path

import pytest

from agrpo.evaluate import cell_is_complete, evaluate_checkpoint
from agrpo.rl.trainer import train
from helpers import minute_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = minute_run(tmp, rl=dict(iterations=2, checkpoint_every=1, prompts_per_batch=2, group_size=2),
                     eval=dict(steps_divisors=[1, 8], batch_size=4))
    return cfg, tmp


@pytest.mark.parametrize("method", ["agrpo", "diffu_grpo"])
def test_trainer_writes_checkpoints_and_is_deterministic(setup, method, monkeypatch):
    cfg, tmp = setup
    from agrpo.tasks import TASKS

    for cls in TASKS.values():  # an untrained model earns no reward; give the groups something to rank
        monkeypatch.setattr(cls, "reward", lambda self, completion, ex: completion.count("1") / 10)
    train(cfg, method, 0, tmp / "base", tmp / f"{method}-a", progress=False)
    train(cfg, method, 0, tmp / "base", tmp / f"{method}-b", progress=False)
    for step in (1, 2):
        a = (tmp / f"{method}-a/step{step}/model.safetensors").read_bytes()
        assert a == (tmp / f"{method}-b/step{step}/model.safetensors").read_bytes()
    log = [json.loads(l) for l in (tmp / f"{method}-a/train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2] and all(0 < r["nfe_rollout"] <= 20 for r in log)
    assert (tmp / f"{method}-a/step1/model.safetensors").read_bytes() != (tmp / "base/model.safetensors").read_bytes()


def test_eval_cells_written_skipped_and_partial_redone(setup):
    cfg, tmp = setup
    out = tmp / "eval/base/step0/tiny_arith"
    cells = evaluate_checkpoint(cfg, tmp / "base", "base", 0, 0, "tiny_arith", out, progress=False)
    assert len(cells) == 2 and all(cell_is_complete(c, 8) for c in cells)
    m = json.loads((cells[0] / "metrics.json").read_text())
    for key in ("method", "task", "checkpoint", "gen_length", "steps", "accuracy", "nfe", "seconds", "flops",
                "device", "git_sha", "config_hash", "ci_low", "ci_high", "n"):
        assert key in m
    assert m["checkpoint"] == "step0" and m["n"] == 8 and 0 < m["nfe"] <= m["steps"]
    rows = [json.loads(l) for l in (cells[0] / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"prompt", "completion", "correct", "score"} <= set(rows[0])
    # complete cells are skipped: their files are untouched
    before = (cells[0] / "metrics.json").stat().st_mtime_ns
    # a partial cell (n below the test-set size) is redone
    m["n"] = 3
    (cells[1] / "metrics.json").write_text(json.dumps(m))
    evaluate_checkpoint(cfg, tmp / "base", "base", 0, 0, "tiny_arith", out, progress=False)
    assert (cells[0] / "metrics.json").stat().st_mtime_ns == before
    assert json.loads((cells[1] / "metrics.json").read_text())["n"] == 8


def test_one_eval_job_loads_the_checkpoint_once_for_all_its_tasks(setup, monkeypatch):
    """evaluate_tasks (what `agrpo eval --task A --task B` runs): one model load for both tasks, and each task's
    cells equal, item for item, those of a job evaluating that task alone."""
    from agrpo import evaluate

    cfg, tmp = setup
    loads = []
    real = evaluate.load_eval_model
    monkeypatch.setattr(evaluate, "load_eval_model", lambda c, d: loads.append(d) or real(c, d))
    tasks = ["tiny_arith", "tiny_countdown"]
    together = evaluate.evaluate_tasks(cfg, tmp / "base", "base", 0, 0, tasks, tmp / "eval-both/base/step0",
                                       progress=False)
    assert len(loads) == 1 and [c.parent.name for c in together] == ["tiny_arith"] * 2 + ["tiny_countdown"] * 2
    for task in reversed(tasks):  # alone, and in the other order
        alone = evaluate_checkpoint(cfg, tmp / "base", "base", 0, 0, task, tmp / f"eval-{task}", progress=False)
        for a, b in zip(alone, [c for c in together if c.parent.name == task]):
            assert a.name == b.name
            assert (a / "generations.jsonl").read_text() == (b / "generations.jsonl").read_text()
    assert len(loads) == 3
    evaluate.evaluate_tasks(cfg, tmp / "base", "base", 0, 0, tasks, tmp / "eval-both/base/step0", progress=False)
    assert len(loads) == 3  # every cell complete: the model is not loaded at all


def test_eval_command_names_a_task_outside_data_tasks(setup, tmp_path, capsys):
    import yaml

    from agrpo.cli import main
    from agrpo.config import to_dict

    cfg, tmp = setup
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    code = main(["eval", "--config", str(tmp_path / "p.yaml"), "--model", str(tmp / "base"), "--method", "base",
                 "--run-seed", "0", "--train-step", "0", "--task", "tiny_arith", "--task", "gsm8k",
                 "--out", str(tmp_path / "e"), "--quiet"])
    assert code == 2 and "--task 'gsm8k' is not in data.tasks" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # nothing evaluated before the error


def test_eval_grid_has_cache_and_threshold_axes(setup):
    """eval.caches × eval.thresholds: fixed-schedule cells over the steps grid, threshold cells once per length
    (steps chosen by the data); each cell's metrics say which, with fewer positions computed (FLOPs) under the
    cache and fewer passes under a loose threshold."""
    import dataclasses

    from agrpo.evaluate import grid

    cfg, tmp = setup
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, caches=["none", "prefix"], thresholds=[0.0, 1e-3]))
    cells = grid(cfg)
    assert len(cells) == 2 * (2 + 1) and len({(s.cache, s.threshold, s.steps) for s, _ in cells}) == 6
    out = tmp / "eval-fast/base/step0/tiny_arith"
    written = evaluate_checkpoint(cfg, tmp / "base", "base", 0, 0, "tiny_arith", out, progress=False)
    assert len(written) == 6 and len({p.name for p in written}) == 6
    m = {p.name: json.loads((p / "metrics.json").read_text()) for p in written}
    exact = next(v for k, v in m.items() if "_pcache" not in k and "_th" not in k and v["steps"] == 40)
    cached = next(v for k, v in m.items() if "_pcache" in k and "_th" not in k and v["steps"] == 40)
    loose = next(v for k, v in m.items() if "_th0.001" in k and "_pcache" not in k)
    assert cached["cache"] == "prefix" and cached["nfe"] == exact["nfe"] and cached["flops"] < exact["flops"]
    assert loose["threshold"] == 1e-3 and loose["nfe"] == 40 / 8  # every candidate clears it: one pass per block


def test_trainer_log_is_live_resume_safe_and_mirrored_to_tensorboard(tmp_path, monkeypatch):
    """Each rollout batch's row reaches train_log.live.jsonl before the next batch starts (a running job can be
    watched), train_log.jsonl appears only when the run completes, and logging.tensorboard writes the scalars."""
    from agrpo.rl import trainer
    from agrpo.rl.train_log import LIVE

    cfg = minute_run(tmp_path, rl=dict(iterations=3, checkpoint_every=1, prompts_per_batch=2, group_size=2))
    cfg.logging.tensorboard = True
    out, seen, real = tmp_path / "run", [], trainer.generate_grouped

    def watching(*a, **kw):  # at each rollout: what a `tail -f` of the live log shows now
        live = out / LIVE
        seen.append((len(live.read_text().splitlines()) if live.exists() else None, (out / "train_log.jsonl").exists()))
        return real(*a, **kw)
    monkeypatch.setattr(trainer, "generate_grouped", watching)
    train(cfg, "agrpo", 0, tmp_path / "base", out, progress=False,
          reward_fn=lambda text, ex: float(text.count("1")))
    assert seen == [(0, False), (1, False), (2, False)]
    assert not (out / LIVE).exists() and len((out / "train_log.jsonl").read_text().splitlines()) == 3
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("train/reward_mean")] == [1, 2, 3]
    assert {"train/loss", "train/grad_norm", "train/clip_ratio"} <= set(events.Tags()["scalars"])


def test_monitor_logs_greedy_accuracy_and_leaves_training_unchanged(tmp_path, monkeypatch):
    """rl.monitor_every 2 over 3 batches: eval_accuracy/<task> on batch 2 alone, equal to evaluation's own score
    of the step-2 checkpoint on those test items (same sampler; the trainer runs float32 on CPU), and the weights
    bit-identical to a run without monitoring."""
    from agrpo.config import build_config, to_dict
    from agrpo.data import load_split
    from agrpo.evaluate import load_eval_model, run_cell
    from agrpo.headroom import eval_setting
    from agrpo.resolve import eval_sampler, profile_task
    from agrpo.tasks import TASKS

    for cls in TASKS.values():
        monkeypatch.setattr(cls, "reward", lambda self, completion, ex: completion.count("1") / 10)
    cfg = minute_run(tmp_path, rl=dict(iterations=3, checkpoint_every=1, prompts_per_batch=2, group_size=2),
                     eval=dict(steps_divisors=[1, 2], batch_size=4))
    d = to_dict(cfg)
    d["rl"].update(monitor_every=2, monitor_items=5)
    monitored = build_config(d, "test")
    train(cfg, "agrpo", 0, tmp_path / "base", tmp_path / "plain", progress=False)
    train(monitored, "agrpo", 0, tmp_path / "base", tmp_path / "mon", progress=False)
    for step in (1, 2, 3):
        assert ((tmp_path / f"mon/step{step}/model.safetensors").read_bytes()
                == (tmp_path / f"plain/step{step}/model.safetensors").read_bytes())
    log = [json.loads(l) for l in (tmp_path / "mon/train_log.jsonl").read_text().splitlines()]
    keys = [sorted(k for k in r if k.startswith("eval_accuracy/")) for r in log]
    assert keys == [[], [f"eval_accuracy/{t}" for t in sorted(cfg.data.tasks)], []]
    model = load_eval_model(cfg, tmp_path / "mon/step2")
    L, steps = eval_setting(cfg)
    for t in cfg.data.tasks:  # (an untrained model may score 0: the keys and the bits above are the sharper checks)
        rows, _ = run_cell(model, profile_task(cfg, t), load_split(cfg.work_dir, t, "test")[:5],
                           eval_sampler(cfg, L, steps), 0, 4)
        assert log[1][f"eval_accuracy/{t}"] == pytest.approx(sum(r["score"] for r in rows) / 5)
