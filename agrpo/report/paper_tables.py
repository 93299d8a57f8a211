"""The papers' layout, for per-task runs at the papers' lengths (the paper profiles).

* Table P1 (d1's Table 1, AGRPO v2's): accuracy at the papers' sampler — steps = L/2, the profile's remasking, no
  cache, no threshold decoding — with methods as rows and task × gen length as columns; each run's last
  checkpoint (named in the cell), beside the published numbers (``published.py``).
* Table P2, per task: accuracy at steps L, L/2, L/4, L/8 and the drop at 4× fewer steps,
  acc(L/2) − acc(L/8) (> 0: a loss), with a 95% CI paired over the test items (claims.paired_ci).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from agrpo.report.cells import ItemScores, _methods
from agrpo.report.claims import _pts, paired_ci
from agrpo.report.published import (REFERENCE_TASK, SOURCES, Source, per_length_accuracy, sources_lines,
                                    test_set_note)
from agrpo.report.tables import _acc_ci, _aggregate, _with_variant, standard_sampler


PAPER_LENGTHS = (128, 256, 512)
RUN_KEYS = ["method", "train_task", "run_seed"]  # train_task '' for the base model and mixed runs
FAST, SLOW = 8, 2  # the drop compares steps L/2 (the papers' sampler) with L/8 (4× fewer)


def uses_paper_layout(df: pd.DataFrame) -> bool:
    """Tables P1 and P2 are made for per-task runs (cells recording ``train_task``) or grids at two or more of the
    papers' lengths; the tiny and small profiles (mixed runs, L = 40 and 64) have neither."""
    per_task = "train_task" in df and df["train_task"].notna().any()
    return bool(per_task or len(set(df["gen_length"]) & set(PAPER_LENGTHS)) >= 2)


def task_order(tasks) -> list[str]:
    """The papers' column order (GSM8K, MATH-500, Countdown, Sudoku), then other tasks alphabetically."""
    known = list(REFERENCE_TASK)
    return sorted(set(tasks), key=lambda t: (known.index(t) if t in known else len(known), t))


def last_run_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The papers'-sampler cells (standard_sampler) of each run's last checkpoint, its largest train_step; a run is
    (method, train_task, run_seed). A per-task run's cells on another task than its own are left out: the papers
    evaluate each model on the task it trained on. Adds ``variant`` (settings other than L and steps that vary)."""
    d = standard_sampler(df)
    d = d.assign(train_task=d["train_task"].fillna("").astype(str) if "train_task" in d else "")
    d = d[(d["train_task"] == "") | (d["train_task"] == d["task"])]
    last = d.groupby(RUN_KEYS)["train_step"].transform("max")
    return _with_variant(d[d["train_step"] == last], skip=("gen_length",))


def _summarise(d: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """_aggregate (mean accuracy and CI bounds, sd across cells) plus the train steps and train tasks behind it."""
    extra = d.groupby(by, sort=True).agg(train_steps=("train_step", lambda s: tuple(sorted(set(s)))),
                                         train_tasks=("train_task", lambda s: ", ".join(sorted(set(s) - {""}))))
    return _aggregate(d, by).merge(extra.reset_index(), on=by)


def _checkpoint(steps: tuple) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else "steps " + "/".join(map(str, steps))


def _our_cell(r) -> str:
    """'acc [lo, hi] (step N)' in percent; ± sd and the number of run seeds where there are several."""
    seeds = f", {r['runs']} run seeds" if r["runs"] > 1 else ""
    return f"{_acc_ci(r)} ({_checkpoint(r['train_steps'])}{seeds})"


def _pct_columns(r) -> dict:
    return {"accuracy_pct": 100 * r["accuracy"], "sd_pct": 100 * r["acc_sd"] if r["cells"] > 1 else float("nan"),
            "ci_low_pct": 100 * r["ci_low"], "ci_high_pct": 100 * r["ci_high"]}


@dataclass
class Table1:
    """Table P1: one markdown layout per sampler variant, table1.csv's rows, footnotes and the sources' contents."""
    layouts: list[tuple[str, pd.DataFrame]]
    tidy: pd.DataFrame
    footnotes: list[str]
    sources: list[str]


TABLE1_COLUMNS = ["variant", "method", "numbers", "train_task", "task", "reference_task", "gen_length", "steps",
                  "checkpoint", "run_seeds", "cells", "accuracy_pct", "sd_pct", "ci_low_pct", "ci_high_pct", "flag",
                  "note"]


def table1(df: pd.DataFrame, ref: pd.DataFrame | None) -> Table1:
    """Table P1 from the cells (load_cells) and the reference numbers (None: ours only). Published rows: a source's
    per-length accuracies of a method of ours, or the method's own paper ('—' where it published none); a
    published number on another test set than ours, or under other prompts and judges, carries a footnote."""
    cells = last_run_cells(df)
    agg = _summarise(cells[cells["steps"] * 2 == cells["gen_length"]], ["variant", "method", "task", "gen_length"])
    columns = [(t, int(L)) for t in task_order(cells["task"]) for L in sorted(cells["gen_length"].unique())]
    protocols = sorted(set(cells["protocol"].astype(str)))
    notes: dict[str, str] = {}  # footnote text → its marker, in order of first use

    def mark(text: str) -> str:
        return notes.setdefault(text, f"[{chr(ord('a') + len(notes))}]")

    layouts, tidy = [], []
    for var in sorted(cells["variant"].unique()):
        ours = agg[agg["variant"] == var].set_index(["method", "task", "gen_length"])
        rows = []
        for m in _methods(cells.loc[cells["variant"] == var, "method"]):
            row = [m, "ours"]
            for t, L in columns:
                if (m, t, L) not in ours.index:
                    row.append("not run")
                    continue
                r = ours.loc[(m, t, L)]
                row.append(_our_cell(r))
                tidy.append({"variant": var, "method": m, "numbers": "ours", "train_task": r["train_tasks"], "task": t,
                             "reference_task": REFERENCE_TASK.get(t, ("",))[0], "gen_length": L, "steps": L // 2,
                             "checkpoint": _checkpoint(r["train_steps"]), "run_seeds": r["runs"],
                             "cells": r["cells"], **_pct_columns(r), "flag": "", "note": ""})
            rows.append(row)
            for s in SOURCES if ref is not None else ():
                row, published = _published_row(ref, s, m, columns, protocols, mark)
                rows += [row] if row else []
                tidy += [p | {"variant": var} for p in published]
        layouts.append((var, pd.DataFrame(rows, columns=["method", "numbers"] + [f"{t} L={L}" for t, L in columns])))
    tidy = pd.DataFrame(tidy, columns=TABLE1_COLUMNS).astype({"steps": "Int64", "run_seeds": "Int64",
                                                              "cells": "Int64"})
    return Table1(layouts, tidy, [f"{k} {text}" for text, k in notes.items()], sources_lines(ref))


def _published_row(ref: pd.DataFrame, s: Source, m: str, columns: list, protocols: list, mark):
    """Source `s`'s row for our method `m` (None where it has no number in these columns and `m` is not its own
    method) and its table1.csv rows; `mark` turns a footnote's text into its marker."""
    acc = per_length_accuracy(ref, s, m)
    found = {(t, L): acc[(acc["task"] == REFERENCE_TASK.get(t, ("",))[0]) & (acc["gen_length"] == L)]
             for t, L in columns}
    has_numbers = any(len(v) for v in found.values())
    if not has_numbers and m not in s.own:
        return None, []
    other_protocol = (f"published under {s.protocol}'s prompts and judges, ours under {', '.join(protocols)}'s "
                      f"(data.protocol)") if protocols != [s.protocol] else ""
    row, tidy = [m, s.label + (mark(other_protocol) if other_protocol and has_numbers else "")], []
    for (t, L), vals in found.items():
        if vals.empty:
            row.append("—")
            continue
        note = test_set_note(s, t)
        row.append(" / ".join(map(_printed, vals["value"])) + (mark(note) if note else ""))
        tidy += [{"method": m, "numbers": s.label, "train_task": "", "task": t, "reference_task": v.task,
                  "gen_length": L, "accuracy_pct": v.value, "flag": v.flag,
                  "note": "; ".join(x for x in (other_protocol, note, v.note) if x)} for v in vals.itertuples()]
    return row, tidy


def _printed(v: float) -> str:
    """A published number as the papers print it: one decimal at least (16.0), more where given (69.29)."""
    return f"{v:.1f}" if round(v, 1) == v else f"{v:g}"


def _steps_label(divisor: float) -> str:
    return "L" if divisor == 1 else f"L/{divisor:g}"


def _trained_on(method: str, train_tasks: str) -> str:
    return train_tasks or ("none (base model)" if method == "base" else "every task (mixed run)")


@dataclass
class StepsTable:
    """Table P2 of one task and sampler variant: rows (method, L), columns steps L/d and the drop L/2 → L/8."""
    task: str
    variant: str
    layout: pd.DataFrame


STEPS_COLUMNS = ["task", "variant", "method", "train_task", "gen_length", "steps", "divisor", "checkpoint",
                 "run_seeds", "cells", "accuracy_pct", "sd_pct", "ci_low_pct", "ci_high_pct", "drop_pts",
                 "drop_ci_low_pts", "drop_ci_high_pts"]


def steps_tables(df: pd.DataFrame, scores: ItemScores | None = None) -> tuple[list[StepsTable], pd.DataFrame]:
    """Table P2 per task and variant, and steps_robustness.csv's rows (one per method, L and steps; the drop's
    columns repeat over a (method, L)'s rows). Drop = acc(L/2) − acc(L/8) from the cells' accuracies; its CI pairs
    each method's per-item scores at the two steps, averaged over run and eval seeds (None: no per-item scores)."""
    scores = scores or ItemScores()
    cells = last_run_cells(df)
    cells = cells.assign(divisor=cells["gen_length"] / cells["steps"])
    by = ["task", "variant", "method", "gen_length", "divisor"]
    agg = _summarise(cells, by).set_index(by)
    tables, tidy = [], []
    for task in task_order(cells["task"]):
        for var in sorted(cells.loc[cells["task"] == task, "variant"].unique()):
            here = cells[(cells["task"] == task) & (cells["variant"] == var)]
            divisors = sorted(here["divisor"].unique())
            rows = []
            for m in _methods(here["method"]):
                for L in sorted(here.loc[here["method"] == m, "gen_length"].unique()):
                    mine = here[(here["method"] == m) & (here["gen_length"] == L)]
                    point, ci = _drop(mine, agg, (task, var, m, L), scores)
                    have = [d for d in divisors if (task, var, m, L, d) in agg.index]
                    steps = tuple(sorted(set(mine["train_step"])))
                    train_tasks = ", ".join(sorted(set(mine["train_task"]) - {""}))
                    rows.append([m, _trained_on(m, train_tasks), _checkpoint(steps), int(L)]
                                + [_acc_ci(agg.loc[(task, var, m, L, d)]) if d in have else "not run"
                                   for d in divisors] + [_drop_text(point, ci)])
                    nan = float("nan")
                    drop = {"drop_pts": nan if point is None else 100 * point,
                            "drop_ci_low_pts": 100 * ci.low if ci else nan,
                            "drop_ci_high_pts": 100 * ci.high if ci else nan}
                    for d in have:
                        r = agg.loc[(task, var, m, L, d)]
                        tidy.append({"task": task, "variant": var, "method": m, "train_task": train_tasks,
                                     "gen_length": int(L), "steps": int(round(L / d)), "divisor": d,
                                     "checkpoint": _checkpoint(r["train_steps"]), "run_seeds": r["runs"],
                                     "cells": r["cells"], **_pct_columns(r), **drop})
            header = ["method", "trained on", "checkpoint", "L"] + [f"steps {_steps_label(d)}" for d in divisors]
            tables.append(StepsTable(task, var, pd.DataFrame(rows, columns=header + [
                f"drop {_steps_label(SLOW)} → {_steps_label(FAST)}, points [95% CI]"])))
    return tables, pd.DataFrame(tidy, columns=STEPS_COLUMNS)


def _drop(mine: pd.DataFrame, agg: pd.DataFrame, key: tuple, scores: ItemScores):
    """(acc(L/2) − acc(L/8), its paired CI or None), or (None, None) where either steps value is not in the grid."""
    if (*key, SLOW) not in agg.index or (*key, FAST) not in agg.index:
        return None, None
    point = float(agg.loc[(*key, SLOW), "accuracy"] - agg.loc[(*key, FAST), "accuracy"])
    groups = [mine[mine["divisor"] == SLOW], mine[mine["divisor"] == FAST]]
    task, _, m, L = key
    names = [f"{m} on {task}, L={L}, {int(L) // d} steps" for d in (SLOW, FAST)]
    return point, paired_ci(groups, names, scores)


def _drop_text(point, ci) -> str:
    if point is None:
        return "not in grid"
    if ci is None:
        return f"{_pts(point)}, CI n/a (no per-item scores)"
    return f"{_pts(point)} [{_pts(ci.low)}, {_pts(ci.high)}]"


@dataclass
class PaperTables:
    """Tables P1 and P2 of one report."""
    table1: Table1
    steps: list[StepsTable]
    steps_tidy: pd.DataFrame


def paper_tables(df: pd.DataFrame, ref: pd.DataFrame | None, scores: ItemScores | None = None) -> PaperTables | None:
    """Tables P1 and P2 where the cells are in the papers' layout (uses_paper_layout), else None."""
    if not uses_paper_layout(df):
        return None
    steps, tidy = steps_tables(df, scores)
    return PaperTables(table1(df, ref), steps, tidy)
