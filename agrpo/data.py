"""Task data files: written once per profile (``agrpo data``), then read by every stage by path."""

from __future__ import annotations

from pathlib import Path

from agrpo.io import read_jsonl, write_jsonl
from agrpo.resolve import profile_task


def data_path(work_dir: str | Path, task: str, split: str) -> Path:
    return Path(work_dir) / "data" / task / f"{split}.jsonl"


def write_task_data(cfg, task: str) -> None:
    """Synthetic tasks: ``train_size`` / ``test_size`` generated examples. Real tasks: the paper's whole test set
    (``test_size`` does not cut it) and the first ``train_size`` rows of the paper's training split."""
    from agrpo.tasks.real import REAL_TASKS

    t = profile_task(cfg, task)
    test_n = None if task in REAL_TASKS else cfg.data.test_size
    write_jsonl(data_path(cfg.work_dir, task, "train"), t.examples("train", cfg.data.train_size, cfg.data.seed))
    write_jsonl(data_path(cfg.work_dir, task, "test"), t.examples("test", test_n, cfg.data.seed + 1))


def load_split(work_dir: str | Path, task: str, split: str) -> list[dict]:
    return read_jsonl(data_path(work_dir, task, split))
