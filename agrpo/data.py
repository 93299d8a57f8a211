"""Task data files: written once per profile (``agrpo data``), then read by every stage by path: ``train.jsonl``
(pretraining and SFT examples), ``rl.jsonl`` (RL prompts) and ``test.jsonl`` (evaluation items)."""

from __future__ import annotations

from pathlib import Path

from agrpo.io import read_jsonl, write_jsonl
from agrpo.resolve import pretrain_task, profile_task


def data_path(work_dir: str | Path, task: str, split: str) -> Path:
    return Path(work_dir) / "data" / task / f"{split}.jsonl"


def write_task_data(cfg, task: str) -> None:
    """Synthetic tasks: ``train_size`` / ``test_size`` generated examples, and the RL prompts: ``rl_size`` more
    training-split problems disjoint from the ``train_size`` (the first ``train_size`` of one draw of
    ``train_size + rl_size`` are the pretraining examples, the rest the RL prompts), or, with ``rl_size`` 0, the
    pretraining examples themselves. With ``data.pretrain_task_args`` for the task, the pretraining examples are
    drawn with those options instead and the RL prompts are that draw's problems not among them. Real tasks: the
    paper's whole test set (``test_size`` does not cut it) and the first ``train_size`` rows of the paper's
    training split, which are also the RL prompts."""
    from agrpo.tasks.real import REAL_TASKS

    t, d = profile_task(cfg, task), cfg.data
    test_n = None if task in REAL_TASKS else d.test_size
    try:
        drawn = t.examples("train", d.train_size + d.rl_size, d.seed)
        if task in d.pretrain_task_args:
            train = pretrain_task(cfg, task).examples("train", d.train_size, d.seed)
            seen = {e["id"] for e in train}
            rl = [e for e in drawn if e["id"] not in seen][:d.rl_size]
            if len(rl) < d.rl_size:
                raise ValueError(f"{task}: only {len(rl)} of the drawn problems are not pretraining examples")
        else:
            train, rl = drawn[:d.train_size], drawn[d.train_size:]
    except ValueError as e:
        if task in REAL_TASKS:
            raise
        raise ValueError(f"data.train_size + data.rl_size = {d.train_size + d.rl_size}: {e}") from None
    write_jsonl(data_path(cfg.work_dir, task, "train"), train)
    write_jsonl(data_path(cfg.work_dir, task, "rl"), rl if d.rl_size else train)
    write_jsonl(data_path(cfg.work_dir, task, "test"), t.examples("test", test_n, d.seed + 1))


def load_split(work_dir: str | Path, task: str, split: str) -> list[dict]:
    return read_jsonl(data_path(work_dir, task, split))
