"""Helpers of the agrpo lm-eval task YAMLs: datasets from local files, prompts and judges from agrpo.tasks.

The data directory comes from lm-eval's ``metadata`` (``--metadata '{"data_dir": …}'``), else the environment
variable AGRPO_DATA_DIR, else ``data``; it holds ``<task>/test.jsonl`` as `agrpo data` writes it (tiny tasks) or
the raw test files of the real tasks (gsm8k/test.jsonl, math500/test.jsonl, countdown/cd3_test.jsonl,
sudoku/4x4_test.csv).
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import datasets

from agrpo.tasks import get_task

REAL_FILES = {"gsm8k": "gsm8k/test.jsonl", "math500": "math500/test.jsonl", "countdown": "countdown/cd3_test.jsonl",
              "sudoku": "sudoku/4x4_test.csv"}


def _data_dir(metadata: dict) -> Path:
    return Path(metadata.get("data_dir") or os.environ.get("AGRPO_DATA_DIR", "data"))


def _dataset(task_name: str, protocol: str | None, **metadata) -> dict:
    base = _data_dir(metadata)
    if task_name in REAL_FILES:
        task = get_task(task_name, protocol=protocol, source=str(base / REAL_FILES[task_name]))
        rows = task.examples("test")
    else:
        from agrpo.io import read_jsonl

        task, rows = get_task(task_name), read_jsonl(base / task_name / "test.jsonl")
    limit = metadata.get("limit")
    rows = rows[: int(limit)] if limit else rows
    # one string column per field kind: examples are JSON-encoded whole (their fields have mixed types)
    return {"test": datasets.Dataset.from_list([{"prompt": task.prompt(r), "example": json.dumps(r)} for r in rows])}


def _results(task_name: str, protocol: str | None, doc: dict, results: list[str]) -> dict:
    task = get_task(task_name, protocol=protocol) if protocol else get_task(task_name)
    v = task.judge(results[0], json.loads(doc["example"]))
    return {"acc": float(v.correct), "score": float(v.score)}


def doc_to_text(doc: dict) -> str:
    return doc["prompt"]


tiny_arith_dataset = partial(_dataset, "tiny_arith", None)
tiny_arith_results = partial(_results, "tiny_arith", None)
tiny_countdown_dataset = partial(_dataset, "tiny_countdown", None)
tiny_countdown_results = partial(_results, "tiny_countdown", None)
tiny_sudoku_dataset = partial(_dataset, "tiny_sudoku", None)
tiny_sudoku_results = partial(_results, "tiny_sudoku", None)
for _t in REAL_FILES:
    for _p in ("d1", "agrpo"):
        globals()[f"{_t}_{_p}_dataset"] = partial(_dataset, _t, _p)
        globals()[f"{_t}_{_p}_results"] = partial(_results, _t, _p)
