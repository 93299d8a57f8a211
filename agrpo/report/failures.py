"""Where answers go wrong: each wrong test item's failure category (``Task.diagnose``) per method at the papers'
sampler, as shares of the test items, and each method's change from the base model per category with a 95% CI
paired over items — ``failures.csv`` and the report's section of that name.

Which errors RL removes says what it learned. A task with a reasoning trace (tiny_arith, tiny_sudoku) says where
its trace first goes wrong (an arithmetic slip, a fill that breaks a rule, …), which needs the test examples
(``<work_dir>/data/<task>/test.jsonl``); any other task's category is its judge's recorded reason
(``reason_category``). A trace-reading task re-judges every item, and a verdict that disagrees with the one the
cell recorded is an error naming the file and line (stale data, or a judge changed since the cell was written).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agrpo.io import read_jsonl
from agrpo.report.cells import _methods
from agrpo.report.markdown import md_table
from agrpo.report.tables import _full_steps, is_sudoku, last_checkpoint_cells
from agrpo.stats import item_means, paired_diff_ci, same_ids

MAX_CATEGORIES = 7  # columns per task table; the rarer categories are summed into "other"
KEYS = ["task", "variant", "steps", "method"]


def _trace_tasks(tasks) -> set[str]:
    from agrpo.tasks import TASKS
    from agrpo.tasks.base import reads_trace

    return {t for t in set(tasks) if t in TASKS and reads_trace(TASKS[t])}


def claims_cells(std: pd.DataFrame, divisor: int) -> pd.DataFrame:
    """The cells Table 4 answers the claims on: each method's last checkpoint (base: step 0) at steps L/divisor
    (the largest evaluated where L/divisor was not), per sampler variant; every run seed and eval seed."""
    d = last_checkpoint_cells(std)
    return d[d["steps"] == _full_steps(d, divisor)]


def load_examples(data_dir: Path, tasks) -> tuple[dict, list[str]]:
    """{task: {id: example}} from ``data_dir/<task>/test.jsonl`` for the tasks that read a trace, and the files
    missing among those."""
    examples, missing = {}, []
    for t in sorted(_trace_tasks(tasks)):
        f = Path(data_dir) / t / "test.jsonl"
        if f.is_file():
            examples[t] = {ex["id"]: ex for ex in read_jsonl(f)}
        else:
            missing.append(str(f))
    return examples, missing


def cell_items(cell: dict, examples: dict | None) -> dict[str, str]:
    """{item id: category} of one cell's generations.jsonl ("" = right); raises ValueError naming the file and
    line for an item whose example is missing or whose verdict disagrees with the recorded one."""
    from agrpo.tasks import cell_task
    from agrpo.tasks.base import reads_trace, reason_category

    path = Path(cell["file"]).with_name("generations.jsonl")
    task = cell_task(cell["task"], cell["protocol"])
    trace = reads_trace(task)
    items: dict[str, str] = {}
    for k, row in enumerate(read_jsonl(path), 1):
        if trace:
            ex = (examples or {}).get(row.get("id"))
            if ex is None:
                raise ValueError(f"{path}:{k}: item id {row.get('id')!r} is not among the test examples of "
                                 f"{cell['task']}")
            category = task.diagnose(row["completion"], ex)
            if (category == "") != bool(row["correct"]):
                raise ValueError(f"{path}:{k}: judged {'right' if category == '' else 'wrong'} now but "
                                 f"{'right' if row['correct'] else 'wrong'} when the cell was written (stale test "
                                 "data, or a changed judge?)")
        else:
            category = "" if row["correct"] else reason_category(row.get("reason", ""))
        items[row["id"]] = category
    return items


def _has_generations(cell: dict) -> bool:
    return isinstance(cell.get("file"), str) and Path(cell["file"]).with_name("generations.jsonl").is_file()


def failure_items(cells: pd.DataFrame, examples: dict) -> pd.DataFrame:
    """One row per (cell, test item): its category ("right" for a right item). Cells without generations.jsonl,
    and cells of a trace-reading task without examples, are left out (the section says which)."""
    trace_tasks, frames = _trace_tasks(cells["task"]), []
    for c in cells.to_dict("records"):
        if _has_generations(c) and (c["task"] in examples or c["task"] not in trace_tasks):
            items = cell_items(c, examples.get(c["task"]))
            frames.append(pd.DataFrame({**{k: c[k] for k in KEYS + ["run_seed", "seed", "checkpoint", "train_step",
                                                                      "gen_length"]},
                                        "item_id": list(items), "category": [v or "right" for v in items.values()]}))
    cols = KEYS + ["run_seed", "seed", "checkpoint", "train_step", "gen_length", "item_id", "category"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def failure_csv(items: pd.DataFrame) -> pd.DataFrame:
    """failures.csv: per cell and category, the test items in it and their share of the cell's items."""
    by = ["method", "run_seed", "checkpoint", "train_step", "task", "variant", "gen_length", "steps", "seed"]
    out = items.groupby(by + ["category"], sort=True).size().rename("items").reset_index()
    out["share"] = out["items"] / out.groupby(by)["items"].transform("sum")
    return out


def _indicators(d: pd.DataFrame, category: str) -> dict:
    """Per item, the share of the method's cells (run seeds × eval seeds) that put it in ``category``."""
    cells = [dict(zip(g["item_id"], (g["category"] == category).astype(float)))
             for _, g in d.groupby(["run_seed", "seed"], sort=True)]
    return item_means(cells)


def _shares(d: pd.DataFrame) -> dict[str, float]:
    per_cell = d.groupby(["run_seed", "seed"])["category"].value_counts(normalize=True).unstack(fill_value=0.0)
    return per_cell.mean().to_dict()


def _changes(dt: pd.DataFrame, cats: list[str], right: str) -> list[str]:
    """Lines: each method's change from base, points [95% CI paired over items], for the categories where the CI
    excludes 0 (``right``: the label of the right items); then the methods with none."""
    out, none = [], []
    for (variant, steps), dv in dt.groupby(["variant", "steps"], sort=True):
        if "base" not in set(dv["method"]):
            continue
        base = dv[dv["method"] == "base"]
        for m in _methods(dv["method"]):
            if m == "base":
                continue
            dm, parts = dv[dv["method"] == m], []
            for c in ["right", *cats]:
                a, b = _indicators(dm, c), _indicators(base, c)
                ids = same_ids(a, b, m, "base")  # as Table 4: a ValueError names the items one side lacks
                ci = paired_diff_ci([a[i] for i in ids], [b[i] for i in ids])
                if ci.sign:
                    parts.append(f"{right if c == 'right' else c} {100 * ci.diff:+.1f} "
                                 f"[{100 * ci.low:+.1f}, {100 * ci.high:+.1f}]")
            where = f"{m}, {variant + ', ' if variant else ''}{int(steps)} steps"
            if parts:
                out.append(f"- {where}: " + "; ".join(parts))
            else:
                none.append(where)
    return out + ([f"- no detectable change: {'; '.join(none)}"] if none else [])


def cells_without_generations(cells: pd.DataFrame) -> int:
    return sum(not _has_generations(c) for c in cells.to_dict("records"))


def failure_section(items: pd.DataFrame | None, missing: list[str], steps_phrase: str,
                    no_generations: int = 0) -> list[str]:
    """The report's "Where answers go wrong": per task, the share of test items (%) in each category per method
    and sampler variant (the most frequent categories first), then each method's changes from the base model."""
    head = ["## Where answers go wrong", "",
            f"Each method's last checkpoint at {steps_phrase}, the cells of Table 4: the share of test items (%) "
            "that are right and, of the wrong ones, in each failure category; mean over run seeds (`failures.csv` "
            "has every cell). A task with a reasoning trace names where the trace first goes wrong (an arithmetic "
            "slip is a step whose result is wrong; `answer ≠ trace`, a right trace with a wrong answer); other "
            "tasks, the judge's reason. Under each table, every change from the base model whose 95% CI (paired "
            "over items, run seeds averaged) excludes 0. Which categories RL shrinks says what it learned.", ""]
    if missing:
        head += [f"Not computed for the tasks whose test examples are missing: {', '.join(missing)} "
                 "(`agrpo data` writes them).", ""]
    if no_generations:
        head += [f"Left out: {no_generations} of these cells have no `generations.jsonl`.", ""]
    if items is None or items.empty:
        return head
    for task, dt in items.groupby("task", sort=True):
        totals = dt["category"].value_counts()
        cats = sorted((c for c in totals.index if c != "right"), key=lambda c: (-totals[c], c))
        shown, rest = (cats, []) if len(cats) <= MAX_CATEGORIES else (cats[:MAX_CATEGORIES - 1],
                                                                     cats[MAX_CATEGORIES - 1:])
        right = "puzzles right" if is_sudoku(task) else "right"
        header = ["sampler", "method", "run seeds", right, *shown] + (["other"] if rest else [])
        table = []
        for (variant, steps), dv in dt.groupby(["variant", "steps"], sort=True):
            for m in _methods(dv["method"]):
                dm = dv[dv["method"] == m]
                s = _shares(dm)
                table.append([f"{variant + ', ' if variant else ''}{int(steps)} steps", m, dm["run_seed"].nunique(),
                              *[f"{100 * s.get(c, 0.0):.1f}" for c in ["right", *shown]]]
                             + ([f"{100 * sum(s.get(c, 0.0) for c in rest):.1f}"] if rest else []))
        head += [f"**{task}**", "", md_table(header, table), "", *_changes(dt, shown, right), ""]
    return head
