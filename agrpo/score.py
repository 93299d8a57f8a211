"""`agrpo score`: re-score a generations file with the judges and rewards the eval grid uses.

Input: JSONL rows with the task's fields plus ``completion`` (the raw generated text, prompt excluded) —
gsm8k / gsm8k_platinum: ``question``, ``answer`` (with ``####``); math500: ``problem``, ``answer``; countdown:
``numbers`` (list of int), ``target`` (int); sudoku / sudoku_spg: ``puzzle``, ``solution`` (16 characters,
0 = blank). Output rows: the input plus ``correct``, ``reward``, ``score``, ``parsed``, ``reason`` (and
``cell_accuracy`` for sudoku). A malformed row is an error naming its line, unless ``skip_bad``. A completion that
is not valid Unicode is judged false with the reason recorded, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path

from agrpo.io import atomic_write_text
from agrpo.tasks import cell_task, get_task
from agrpo.tasks.base import Verdict
from agrpo.tasks.real import REAL_TASKS, aggregate_accuracy

FIELDS = {"gsm8k": {"question": str, "answer": str}, "math": {"problem": str, "answer": str},
          "countdown": {"numbers": list, "target": int}, "sudoku": {"puzzle": str, "solution": str}}


class BadRow(ValueError):
    pass


def check_row(row, family: str) -> dict:
    if not isinstance(row, dict):
        raise BadRow(f"expected a JSON object, got {type(row).__name__}")
    for key, tp in {**FIELDS[family], "completion": str}.items():
        if key not in row:
            raise BadRow(f"missing field {key!r}")
        if not isinstance(row[key], tp) or (tp is int and isinstance(row[key], bool)):
            raise BadRow(f"field {key!r} must be {tp.__name__}, got {type(row[key]).__name__}")
    if family == "countdown" and not all(isinstance(n, int) and not isinstance(n, bool) for n in row["numbers"]):
        raise BadRow("field 'numbers' must be a list of integers")
    if family == "sudoku":
        for key in ("puzzle", "solution"):
            if len(row[key]) != 16 or not row[key].isdigit():
                raise BadRow(f"field {key!r} must be 16 digits")
    if family == "gsm8k" and "####" not in row["answer"]:
        raise BadRow("field 'answer' has no '#### <number>'")
    return row


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def score_rows(task_name: str, protocol: str, lines: list[bytes], where: str, skip_bad: bool = False):
    """Judge every line; returns (output rows, verdicts, skipped line numbers)."""
    if task_name not in REAL_TASKS:
        raise ValueError(f"unknown task {task_name!r} (score knows: {', '.join(sorted(REAL_TASKS))})")
    task = get_task(task_name, protocol=protocol)
    out, verdicts, skipped = [], [], []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            text, bad_bytes = raw.decode("utf-8"), False
        except UnicodeDecodeError:  # judged false below, not a malformed row
            text, bad_bytes = raw.decode("utf-8", errors="replace"), True
        try:
            row = check_row(json.loads(text), task.family)
        except (json.JSONDecodeError, BadRow) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
            if skip_bad:
                skipped.append(n)
                continue
            raise BadRow(f"{where}:{n}: {msg}") from None
        completion = row["completion"]
        if bad_bytes or not _valid_unicode(completion):
            verdict, reward = Verdict(False, 0.0, None, "invalid UTF-8 / Unicode in the completion"), 0.0
            row = {**row, "completion": completion.encode("utf-8", errors="replace").decode("utf-8")}
        else:
            verdict, reward = task.judge(completion, row), task.reward(completion, row)
        verdicts.append(verdict)
        result = {**row, "correct": verdict.correct, "reward": reward, "score": verdict.score,
                  "parsed": verdict.parsed, "reason": verdict.reason}
        if task.family == "sudoku":
            result["cell_accuracy"] = verdict.score
        out.append(result)
    return task, out, verdicts, skipped


def score_file(task_name: str, path: str | Path, protocol: str = "d1", out_path: str | Path | None = None,
               skip_bad: bool = False) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such generations file")
    task, rows, verdicts, skipped = score_rows(task_name, protocol, path.read_bytes().splitlines(), str(path), skip_bad)
    if out_path is not None:
        atomic_write_text(out_path, "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows))
    return {"task": task_name, "protocol": protocol, "accuracy": aggregate_accuracy(task, verdicts), "n": len(rows),
            "skipped_lines": skipped}


def score_cell(cell_dir: str | Path, examples: str | Path | None = None, out_path: str | Path | None = None) -> dict:
    """Re-judge an eval cell's own ``generations.jsonl`` (rows: ``id``, ``completion``, …) against the test examples
    it was made from, found by ``id`` in ``examples`` (default: the task's test file of the work directory the cell
    sits in, ``<work_dir>/eval/<run>/step<N>/<task>/<cell>``). Returns the accuracy, n and the recorded accuracy."""
    from agrpo.io import read_jsonl

    cell = Path(cell_dir)
    metrics_file, gens_file = cell / "metrics.json", cell / "generations.jsonl"
    for f in (metrics_file, gens_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not an eval cell (needs metrics.json and generations.jsonl)")
    metrics = json.loads(metrics_file.read_text())
    name = metrics["task"]
    task = cell_task(name, metrics["protocol"])
    examples = Path(examples) if examples else cell.resolve().parents[4] / "data" / name / "test.jsonl"
    by_id = {ex["id"]: ex for ex in read_jsonl(examples)}
    rows, verdicts = [], []
    for n, row in enumerate(read_jsonl(gens_file), 1):
        ex = by_id.get(row.get("id"))
        if ex is None:
            raise BadRow(f"{gens_file}:{n}: item id {row.get('id')!r} is not in {examples}")
        verdict = task.judge(row["completion"], ex)
        verdicts.append(verdict)
        rows.append({**row, "correct": verdict.correct, "score": verdict.score, "parsed": verdict.parsed,
                     "reason": verdict.reason, "reward": task.reward(row["completion"], ex)})
    if out_path is not None:
        atomic_write_text(out_path, "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows))
    accuracy = aggregate_accuracy(task, verdicts) if name in REAL_TASKS else sum(v.score for v in verdicts) / len(verdicts)
    return {"task": name, "accuracy": accuracy, "n": len(rows), "recorded": metrics["accuracy"]}
