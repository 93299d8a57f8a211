"""Aggregation: eval cells → ``summary.csv``, ``report.md`` and ``plots/*.png``.

Every cell is reported; no checkpoint is selected as "best". ``check_complete`` refuses incomplete cells (n below
the test-set size) and duplicates, naming the cell. Outputs are written atomically, and identical cells give
byte-identical ``summary.csv`` and ``report.md`` (cell creation times are left out).

Aggregates ("last checkpoint", "mean over seeds") average the cells' accuracies over run seeds and eval seeds; the
interval shown is the mean of the cells' 95% CIs, and ± is the standard deviation across cells when there are several.

One module per concern: ``cells`` (reading and checking eval cells), ``tables`` (the views the report is built
from), ``claims`` (the papers' claims against ours, paired CIs), ``failures`` (where answers go wrong, by failure
category), ``paper_tables`` (Tables P1 and P2, the papers' layout) with ``published`` (the published numbers
beside them), ``markdown`` (``report.md``), ``plots``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from agrpo.io import atomic_write_bytes
from agrpo.report.cells import (FIRST_COLUMNS, IncompleteCellError, ItemScores, check_complete, item_score_table,
                                load_cells, missing_runs, summary_table)
from agrpo.report.claims import claim_comparisons, claims_table, load_reference, steps_phrase
from agrpo.report.curves import load_train_logs, plot_curves, unfinished_runs
from agrpo.report.failures import (cells_without_generations, claims_cells, failure_csv, failure_items,
                                   failure_section, load_examples)
from agrpo.report.markdown import render_markdown
from agrpo.report.paper_tables import paper_tables
from agrpo.report.plots import _plot_train, _plot_vs
from agrpo.report.reproduction import compare_with_published
from agrpo.report.sweep import SweepSummary, load_sweep_summary
from agrpo.report.tables import acceleration_rows, last_checkpoints, standard_sampler, training_curves

__all__ = ["FIRST_COLUMNS", "IncompleteCellError", "acceleration_rows", "check_complete", "load_cells",
           "load_sweep_summary", "missing_runs", "write_report"]


def write_report(df: pd.DataFrame, out_dir: Path, reference_csv: Path | None, profile: str,
                 title: str | None = None, published_dir: Path | None = None, runs_dir: Path | None = None,
                 headroom: dict | None = None, sweep: SweepSummary | None = None,
                 claims_divisor: int = 1, missing_runs: list[str] | None = None,
                 data_dir: Path | None = None, live_logs: bool = False) -> None:
    """Write summary.csv, report.md, claims.csv (Table 4), plots/acc_vs_{steps,flops,train_step}.png and
    item_scores.csv.gz (the per-item scores of cells with generations; gzip without a timestamp: identical cells,
    identical bytes with the same zlib) under `out_dir`, atomically; with `runs_dir`, also training_curves.csv and
    plots/training_curves.png from its runs' train_log.jsonl; for cells in the papers' layout (per-task runs or two
    of L = 128/256/512: paper_tables.uses_paper_layout), also table1.csv and steps_robustness.csv (Tables P1, P2).

    `df` comes from load_cells (run check_complete first). A given reference_csv must exist; None omits the
    papers' numbers from the claims table. With `published_dir` (a committed copy of this profile's results)
    report.md opens with the reproduction check against it; with `headroom` (agrpo.headroom's result for the base
    model) its table follows the claims; with `sweep` (report.sweep.load_sweep_summary) the learning-rate sweep's
    table and curves (plots/sweep.png) follow the training curves. `claims_divisor` (eval.claims_steps_divisor):
    Tables 3 and 4 answer the claims at steps L/d and compare them with L/4d. `missing_runs` (cells.missing_runs):
    a partial grid's absent runs, stated at the top of report.md. With `data_dir` (the test examples,
    ``<data_dir>/<task>/test.jsonl``), failures.csv and the section "Where answers go wrong" (report.failures).
    `live_logs` (with `agrpo report --partial`): a run cut short, with only its `train_log.live.jsonl`, enters the
    training curves as far as it got, named as unfinished.
    """
    if df.empty:
        raise ValueError("no cells to report")
    out_dir = Path(out_dir)
    ref = load_reference(reference_csv) if reference_csv is not None else None
    last = last_checkpoints(df)
    csv_text = summary_table(df).to_csv(index=False, lineterminator="\n")
    scores = ItemScores()  # Tables 4 and 5 and item_scores.csv.gz read each generations.jsonl once between them
    published = compare_with_published(summary_table(df), published_dir) if published_dir else None
    curves = load_train_logs(runs_dir, live_logs) if runs_dir is not None else None
    unfinished = unfinished_runs(runs_dir, curves) if runs_dir is not None and live_logs else None
    comps = claim_comparisons(standard_sampler(df), scores, claims_divisor)
    paper = paper_tables(df, ref, scores)  # Tables P1 and P2: None unless the cells are in the papers' layout
    failures, failure_lines = None, None
    if data_dir is not None:
        cells = claims_cells(standard_sampler(df), claims_divisor)
        examples, no_examples = load_examples(data_dir, cells["task"].unique())
        items = failure_items(cells, examples)
        failures = failure_csv(items)
        failure_lines = failure_section(items, no_examples, steps_phrase(claims_divisor),
                                        cells_without_generations(cells))
    md_text = render_markdown(df, ref, profile, title, scores, published, curves, comps, paper, headroom, sweep,
                              claims_divisor, missing_runs, failure_lines, unfinished)
    claims_csv = claims_table(comps, ref).to_csv(index=False, lineterminator="\n")
    plots = {"acc_vs_steps": _plot_vs(last, "steps", "sampling steps (log2)", 2, profile),
             "acc_vs_flops": _plot_vs(last, "flops_per_item", "estimated FLOPs per item (log10)", 10, profile),
             "acc_vs_train_step": _plot_train(training_curves(df, claims_divisor), profile)}
    if paper is not None:
        for name, table in (("table1.csv", paper.table1.tidy), ("steps_robustness.csv", paper.steps_tidy)):
            atomic_write_bytes(out_dir / name, table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    if curves is not None:
        plots["training_curves"] = plot_curves(curves, profile)
        atomic_write_bytes(out_dir / "training_curves.csv", curves.to_csv(index=False, lineterminator="\n").encode())
    if sweep is not None:
        plots["sweep"] = sweep.png
    for name, png in plots.items():
        atomic_write_bytes(out_dir / "plots" / f"{name}.png", png)
    atomic_write_bytes(out_dir / "claims.csv", claims_csv.encode("utf-8"))
    if failures is not None:
        atomic_write_bytes(out_dir / "failures.csv", failures.to_csv(index=False, lineterminator="\n").encode())
    items = item_score_table(df, scores).to_csv(index=False, lineterminator="\n").encode("utf-8")
    atomic_write_bytes(out_dir / "item_scores.csv.gz", gzip.compress(items, mtime=0))
    atomic_write_bytes(out_dir / "summary.csv", csv_text.encode("utf-8"))
    atomic_write_bytes(out_dir / "report.md", md_text.encode("utf-8"))
