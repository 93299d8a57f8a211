"""Eval cells: reading ``metrics.json`` (and ``generations.jsonl`` for per-item scores), completeness checks,
the cell order, and ``summary.csv`` / ``item_scores.csv.gz`` tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from agrpo.io import read_jsonl


REQUIRED_KEYS = ["method", "run_seed", "checkpoint", "train_step", "task", "protocol", "gen_length", "block_length",
                 "steps", "remasking", "temperature", "seed", "n", "n_expected", "accuracy", "n_correct", "ci_low",
                 "ci_high", "nfe", "tokens_generated", "seconds", "flops", "params", "device", "git_sha",
                 "config_hash", "profile", "versions", "created_at"]


CELL_KEYS = ["method", "run_seed", "checkpoint", "task", "protocol", "gen_length", "block_length", "steps",
             "remasking", "temperature", "eos_early_exit", "cache", "threshold", "seed"]


def cell_keys(df: pd.DataFrame) -> list[str]:
    """CELL_KEYS, and ``train_task`` where cells record it: per-task runs share method, run seed and checkpoint
    step, so a cell is also keyed by the task its run trained on."""
    return CELL_KEYS + (["train_task"] if "train_task" in df.columns else [])


FIRST_COLUMNS = ["method", "task", "checkpoint", "train_step", "run_seed", "gen_length", "block_length", "steps",
                 "seed", "accuracy", "ci_low", "ci_high", "n", "n_correct", "nfe", "seconds", "flops", "device",
                 "git_sha", "config_hash"]


METHOD_ORDER = ["base", "agrpo", "diffu_grpo", "d1", "wd1"]


class IncompleteCellError(ValueError):
    """A cell has fewer (or more) items than its test set, or appears twice."""


def _metric_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("metrics.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such metrics.json file or directory")
    unique = list(dict.fromkeys(f.resolve() for f in files))  # a file reached twice is read once
    if not unique:
        raise FileNotFoundError("no metrics.json found under " + ", ".join(map(str, paths)))
    return unique


def _read_cell(f: Path) -> dict:
    try:
        row = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{f}: unreadable cell metrics ({e})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{f}: cell metrics must be a JSON object, got {type(row).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in row]
    if missing:
        raise ValueError(f"{f}: cell metrics lack {', '.join(missing)}")
    versions = row.pop("versions")
    if not isinstance(versions, dict):
        raise ValueError(f"{f}: 'versions' must be an object of name → version")
    for name, v in sorted(versions.items()):
        row[f"version_{name}"] = str(v)
    sampler = row.pop("sampler", {})
    if not isinstance(sampler, dict):
        raise ValueError(f"{f}: 'sampler' must be an object of sampler settings")
    for k, v in sampler.items():
        row.setdefault(k, v)
    row.setdefault("eos_early_exit", False)  # cells written before the option existed decoded every block
    row.setdefault("cache", "none")  # ... and before the prefix cache and threshold decoding existed
    row.setdefault("threshold", 0.0)
    row["file"] = str(f)
    return row


def load_cells(paths: Iterable[Path]) -> pd.DataFrame:
    """One row per cell from metrics.json files (a path may be a file or a directory searched recursively).

    ``versions`` becomes ``version_<name>`` columns and ``file`` records where each row came from. Raises
    FileNotFoundError when a path is missing or nothing is found, ValueError (naming the file) on unreadable JSON
    or missing keys.
    """
    paths = list(paths)
    return pd.DataFrame([_read_cell(f) for f in _metric_files(paths)])


def _cell_name(r) -> str:
    trained = f" train_task={r['train_task']}" if isinstance(r.get("train_task"), str) else ""
    return (f"{r['method']} run_seed={r['run_seed']} checkpoint={r['checkpoint']}{trained} task={r['task']} "
            f"L={r['gen_length']} steps={r['steps']} seed={r['seed']}")


def check_complete(df: pd.DataFrame) -> None:
    """Raise IncompleteCellError for the first cell with n != n_expected, or for duplicate cells."""
    if df.empty:
        raise IncompleteCellError("no cells to report")
    for _, r in df.iterrows():
        if r["n"] != r["n_expected"]:
            raise IncompleteCellError(f"incomplete cell {_cell_name(r)}: {r['n']} of {r['n_expected']} items "
                                      f"({r.get('file', '?')})")
    keys = df[cell_keys(df)].astype(str)  # as text: a missing train_task (base, mixed runs) equals another
    dup = df[keys.duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]
        same = dup[(keys.loc[dup.index] == keys.loc[dup.index[0]]).all(axis=1)]
        files = ", ".join(same["file"]) if "file" in same else "?"
        raise IncompleteCellError(f"duplicate cell {_cell_name(first)}: {files}")


def missing_runs(df: pd.DataFrame, methods, seeds) -> list[str]:
    """The profile's RL runs (every method × ``rl.seeds``, as the pipeline plans them) that have no cell, as
    ``"<method> seed <s>"``: cells merged from parts (one lease per RL seed) with a part left out."""
    have = {(str(m), int(s)) for m, s in zip(df["method"], df["run_seed"]) if pd.notna(s)}
    return [f"{m} seed {s}" for m in methods for s in seeds if (m, int(s)) not in have]


def _method_rank(m: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)


def _methods(values) -> list[str]:
    return sorted(set(values), key=_method_rank)


def _cell_order(df: pd.DataFrame) -> pd.DataFrame:
    """The cells in summary.csv's fixed order: method (base first), run seed, train step, task, sampler keys."""
    out = df.assign(_rank=df["method"].map(lambda m: _method_rank(m)[0]))
    keys = ["_rank", "method", "run_seed", "train_step", "task"] + [k for k in cell_keys(df) if k not in
                                                                   ("method", "run_seed", "task")]
    return out.sort_values(keys, kind="mergesort").drop(columns="_rank").reset_index(drop=True)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell, FIRST_COLUMNS then the other keys alphabetically, in a fixed order (no file, no created_at)."""
    rest = sorted(c for c in df.columns if c not in FIRST_COLUMNS and c not in ("file", "created_at"))
    return _cell_order(df)[FIRST_COLUMNS + rest]


def item_score_table(df: pd.DataFrame, scores: ItemScores | None = None) -> pd.DataFrame:
    """Per-item scores behind the paired CIs of Tables 4 and 5: one row per (cell, item) — the cell's cell_keys,
    ``item_id`` and ``score`` — for every cell with a generations.jsonl, in summary.csv's cell order."""
    scores = scores or ItemScores()
    rows, keys = [], cell_keys(df)
    for r in _cell_order(df).to_dict("records"):
        key = {k: r.get(k) for k in keys}
        rows += [key | {"item_id": i, "score": v} for i, v in (scores(r) or {}).items()]
    return pd.DataFrame(rows, columns=keys + ["item_id", "score"])


def item_scores(cell: dict) -> dict | None:
    """{item id: score} of one cell (a load_cells row) from the generations.jsonl beside its metrics.json — the
    ``id`` and ``score`` that agrpo.evaluate writes per item; None when the cell has no generations.jsonl.

    Raises ValueError naming the file for a row without id/score, a repeated id, or items that disagree with
    metrics.json (count ≠ n, or mean score ≠ accuracy).
    """
    if not isinstance(cell.get("file"), str):
        return None
    path = Path(cell["file"]).with_name("generations.jsonl")
    if not path.is_file():
        return None
    scores: dict = {}
    for k, row in enumerate(read_jsonl(path), 1):
        try:
            i, s = row["id"], float(row["score"])
            if i in scores:
                raise ValueError(f"item id {i!r} appears twice")
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: item {k}: no usable id and score ({e})") from None
        scores[i] = s
    mean = math.fsum(scores.values()) / max(len(scores), 1)
    if len(scores) != cell["n"] or abs(mean - cell["accuracy"]) > 1e-9:
        raise ValueError(f"{path}: {len(scores)} items with mean score {mean:.6g}, but metrics.json says n = "
                         f"{cell['n']}, accuracy {cell['accuracy']:.6g} (stale generations?)")
    return scores


class ItemScores:
    """item_scores of cells by file, each generations.jsonl read once however many tables use it (Table 4, Table 5
    and item_scores.csv.gz share one instance per report)."""

    def __init__(self):
        self._by_file: dict = {}

    def __call__(self, cell: dict) -> dict | None:
        f = cell.get("file")
        if f not in self._by_file:
            self._by_file[f] = item_scores(cell)
        return self._by_file[f]
