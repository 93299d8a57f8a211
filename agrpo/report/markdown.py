"""``report.md``: every table of the report, rendered as markdown."""

from __future__ import annotations

import pandas as pd

from agrpo.report.curves import TREND_METHOD, budget_table, curves_table, trend_table
from agrpo.report.reproduction import reproduction_lines
from agrpo.report.sweep import SweepSummary, sweep_section
from agrpo.report.cells import _methods, ItemScores
from agrpo.report.tables import (_acc_ci, _pct, _suffix, _threshold_part, acceleration_rows, is_sudoku,
                                 last_checkpoints, standard_sampler, step_robustness, training_curves)
from agrpo.report.claims import _pts, claim_answers, claim_comparisons, claim_summary, claims_table, steps_phrase
from agrpo.report.paper_tables import PaperTables, paper_tables


SCALE_NOTE = ("**Different scale:** synthetic tiny tasks on a from-scratch model vs LLaDA-8B on "
              "GSM8K/MATH-500/Countdown/Sudoku — compare directions, not magnitudes.")
SAME_TASKS_NOTE = ("**The papers' tasks:** the paper task beside each of ours is the one its published numbers are "
                   "on; where our test set or protocol differs from it (e.g. GSM8K-Platinum vs GSM8K), Table P1's "
                   "footnotes say how.")


def scale_note(tasks) -> str:
    """Table 4's caveat: the synthetic-scale note where any task is a tiny one, else the same-tasks note."""
    return SCALE_NOTE if any(str(t).startswith("tiny_") for t in tasks) else SAME_TASKS_NOTE


def _table5(acc: pd.DataFrame) -> list[str]:
    if acc.empty:
        return ["This grid has no cache or threshold axes (`eval.caches`, `eval.thresholds`).", ""]
    rows = [[r["setting"], r["against"], r["gen_length"], r["cells"], f"{r['passes_ratio']:.2f}×",
             f"{r['seconds_ratio']:.2f}×", f"{r['seconds_per_correct_ratio']:.2f}×",
             f"{_pts(r['accuracy_change'])}" + (f" [{_pts(r['ci'].low)}, {_pts(r['ci'].high)}]" if r["ci"] else
                                                  " (CI n/a: no per-item scores)")]
            for r in acc.to_dict("records")]
    return [md_table(["setting", "against", "L", "cells paired", "fewer passes", "less wall time",
                      "less time per correct answer", "accuracy change, points [95% CI]"], rows), ""]


def md_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table ('|' in cells escaped)."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def _table1(last: pd.DataFrame) -> list[str]:
    out = []
    tasks = sorted(last["task"].unique())
    for var, dv in last.groupby("variant", sort=True):
        for steps in sorted(dv["steps"].unique(), reverse=True):
            d = dv[dv["steps"] == steps].set_index(["method", "task"])
            rows = []
            for m in _methods(d.index.get_level_values("method")):
                dm = d.loc[m]
                rows.append([m, f"step{int(dm['train_step'].max())}", int(dm["runs"].max())]
                            + [_task_cell(dm.loc[t], t) if t in dm.index else "–" for t in tasks])
            L = sorted(dv["gen_length"].unique())
            tokens = L[0] / steps if len(L) == 1 else None
            per_step = f", {tokens:g} token{'s' if tokens != 1 else ''} per step" if tokens else ""
            title = f"{steps} sampling steps{per_step}"
            if (dv["threshold"] > 0).all():  # threshold decoding: the rows choose their own number of passes
                title = f"threshold decoding, at most {steps} passes (measured NFE: summary.csv)"
            out += [f"### {title}{_suffix(var)}", "",
                    md_table(["method", "checkpoint", "run seeds"]
                             + [f"{t}: cells; puzzles" if is_sudoku(t) else t for t in tasks], rows), ""]
    return out


def _task_cell(r, task: str) -> str:
    """Accuracy with its CI; for Sudoku (blank-cell accuracy) also the share of whole puzzles solved."""
    text = _acc_ci(r)
    return f"{text}; {_pct(r['solved'] / r['items'])}" if is_sudoku(task) else text


def _metrics_note(df: pd.DataFrame) -> list[str]:
    sudoku = [t for t in sorted(df["task"].unique()) if is_sudoku(t)]
    note = ("**Metrics.** `accuracy` is the share of test items judged correct, except for "
            f"{', '.join(sudoku)}, where it is the share of blank cells filled correctly (cell accuracy, the papers' "
            "Sudoku metric); the share of whole puzzles solved is `n_correct / n` in `summary.csv` and follows "
            "\"puzzles\" in Table 1.") if sudoku else "**Metrics.** `accuracy` is the share of test items judged correct."
    return [note, ""]


def _table2(curves: pd.DataFrame) -> list[str]:
    out = []
    for (task, var), d in curves.groupby(["task", "variant"], sort=True):
        steps = sorted(d["train_step"].unique())
        rows = []
        for m in _methods(d["method"]):
            dm = d[d["method"] == m].set_index("train_step")
            rows.append([m] + ["–" if s not in dm.index else
                               _pct(dm.loc[s, "accuracy"]) + ("*" if dm.loc[s, "from_base"] else "") for s in steps])
        out += [f"**{task}**, {int(d['steps'].iloc[0])} sampling steps{_suffix(var)}", "",
                md_table(["method"] + [f"step {s}" for s in steps], rows), ""]
    return out + ["\\* the base model (train step 0), shown as the starting point of each RL run.", ""]


def _table3(rob: pd.DataFrame) -> str:
    rob = rob[rob["variant"].map(_threshold_part).isna()]  # threshold decoding chooses its own passes: no steps grid
    rows = [[r.method, r.task + _suffix(r.variant), int(r.full_steps), _pct(r.acc_full),
             "not in grid" if pd.isna(r.quarter_steps) else int(r.quarter_steps), _pct(r.acc_quarter),
             "–" if r.change != r.change else f"{100 * r.change:+.1f}"] for r in rob.itertuples()]
    return md_table(["method", "task", "full steps", "accuracy (%)", "steps / 4", "accuracy (%)", "change (points)"],
                    rows)


def _provenance(df: pd.DataFrame, profile: str) -> str:
    def uniq(col):
        return ", ".join(f"`{v}`" for v in sorted(df[col].astype(str).unique()))
    versions = "; ".join(f"{c[len('version_'):]} {', '.join(sorted(df[c].dropna().astype(str).unique()))}"
                         for c in sorted(c for c in df.columns if c.startswith("version_")))
    cell_profiles = sorted(df["profile"].astype(str).unique())
    other = f" (cells say {', '.join(cell_profiles)})" if cell_profiles != [profile] else ""
    return (f"Provenance: profile `{profile}`{other}; {len(df)} cells ({df['method'].nunique()} methods, "
            f"{df['task'].nunique()} tasks, {df['checkpoint'].nunique()} checkpoints); git {uniq('git_sha')}; "
            f"config {uniq('config_hash')}; device {uniq('device')}; versions: {versions or 'not recorded'}.")


def _curves_section(curves: pd.DataFrame | None, unfinished: list[str] | None = None) -> list[str]:
    if curves is None:
        return []
    cut = ([f"**Unfinished runs**, read from their `train_log.live.jsonl` (`--partial`): {'; '.join(unfinished)}. "
            "Their rows end where the run stopped; the slopes and budgets below include them as far as they go.",
            ""] if unfinished else [])
    return ["## Training curves", "",
            "Each run's `train_log.jsonl` (one row per rollout batch): `training_curves.csv`, and the plot below "
            "(reward, KL, clip fraction, gradient norm, zero-variance groups; mean over run seeds, band: their "
            "range). Reward at the start and the end of each run:", "", *cut, *curves_table(curves),
            "![training curves](plots/training_curves.png)", "",
            *_trend_section(curves),
            "### Training budget per method", "",
            "Equal rollouts per method; the passes and seconds each method spent on them (per run, mean over run "
            "seeds). Passes are counted in sequences (one row through the network once; a rollout row takes one "
            "per denoising step). Forward-equivalents count a forward + backward as 3. Wall seconds are the run's, "
            "as its device recorded them (jobs that shared a device are slower).", "", *budget_table(curves)]


def _trend_section(curves: pd.DataFrame) -> list[str]:
    rows = trend_table(curves)
    if not rows:
        return []
    return ["### Has training plateaued?", "", TREND_METHOD, "", *rows]


def _paper_sections(paper: PaperTables | None) -> list[str]:
    """Tables P1 and P2 (paper_tables), where the cells are in the papers' layout; nothing otherwise."""
    if paper is None:
        return []
    t1 = paper.table1
    out = ["## Table P1. The papers' Table 1: accuracy (%) at L/2 sampling steps, by task and generation length", "",
           "Rows: each method's numbers (\"ours\": the last checkpoint of each run, named in the cell, never a "
           "best-of; the RL cells of a column come from the run trained on that column's task, the base model's "
           "from the model RL starts from) with the published numbers of that method beside them, as printed "
           "(their flags: `table1.csv` and `results/reference/README.md`). Ours: accuracy [95% CI], the mean over "
           "run seeds and eval seeds, ± the standard deviation across cells where there are several. Sampler: "
           "steps = L/2 with the profile's remasking, no cache, no threshold decoding, as d1 and AGRPO evaluate. "
           "—: no published number.", ""]
    for var, layout in t1.layouts:
        out += ([f"### {var}", ""] if var else []) + [md_table(*_frame_rows(layout)), ""]
    out += [*t1.footnotes, ""] if t1.footnotes else []
    out += ["Published numbers in `results/reference/paper_numbers.csv`, by source:", "",
            *[f"- {line}" for line in t1.sources], "",
            "## Table P2. Accuracy (%) vs sampling steps, per task (last checkpoints)", "",
            "Rows: method and generation length L, at each run's last checkpoint; columns: steps L, L/2, L/4, L/8, "
            "accuracy [95% CI]. The drop at 4x fewer steps than the papers' sampler is acc(L/2) − acc(L/8) in "
            "points (> 0: accuracy lost); its 95% CI is paired over the same test items (each method's per-item "
            "scores averaged over its run and eval seeds, d̄ ± 1.96·s_d/√n), as in Table 4. Table 3 gives the drop "
            "from L to L/4.", ""]
    for st in paper.steps:
        out += [f"**{st.task}**{_suffix(st.variant)}", "", md_table(*_frame_rows(st.layout)), ""]
    return out


def _headroom_section(headroom: dict | None) -> list[str]:
    if headroom is None:
        return []
    from agrpo.headroom import headroom_table, outside_band

    note = outside_band(headroom)
    return ["## What the base model leaves RL to learn", "",
            "Before RL (`agrpo headroom`): accuracy at the eval sampler on the RL prompts and on the test items "
            "(far higher on the RL prompts = memorised), and each method's rollouts on the same RL prompts. A "
            "zero-variance group (all G rewards equal) has no advantage and gives no gradient; RL can raise "
            "pass@1 towards pass@G.", "", headroom_table(headroom), "", *([note, ""] if note else [])]


def render_markdown(df: pd.DataFrame, ref: pd.DataFrame | None, profile: str, title: str | None = None,
                    scores: ItemScores | None = None, published: dict | None = None,
                    curves: pd.DataFrame | None = None, comps: list | None = None,
                    paper: PaperTables | None = None, headroom: dict | None = None,
                    sweep: SweepSummary | None = None, divisor: int = 1,
                    missing_runs: list[str] | None = None, failures: list[str] | None = None,
                    unfinished: list[str] | None = None) -> str:
    """The text of report.md (pure: depends only on the cells, their generations.jsonl, the reference numbers and
    the comparison with a published copy, when there is one). `paper`: Tables P1 and P2, computed here when None
    and the cells are in the papers' layout (paper_tables). `divisor`: eval.claims_steps_divisor, the steps L/d at
    which Tables 3 and 4 answer the claims. `missing_runs`: the profile's runs without cells (a partial grid,
    `agrpo report --partial`), stated under the provenance. `failures`: the lines of "Where answers go wrong"
    (report.failures.failure_section), after Table 4."""
    scores = scores or ItemScores()
    last = last_checkpoints(df)
    std = standard_sampler(df)
    comps = claim_comparisons(std, scores, divisor) if comps is None else comps
    paper = paper_tables(df, ref, scores) if paper is None else paper
    partial = ([f"**Partial grid:** the profile's runs {', '.join(missing_runs)} have no cells; every table and "
                "claim below is over the runs that do.", ""] if missing_runs else [])
    lines = [f"# {title or f'AGRPO and its baselines — {profile} profile'}", "", _provenance(df, profile), "",
             *partial, *reproduction_lines(published),
             "## The claims, answered at this scale", "",
             "Generated from Table 4 (95% CIs paired over test items; about 1 in 20 comparisons without a real "
             "difference still excludes 0); every row of it is also in `claims.csv`.", "",
             *[f"- {a}" for a in claim_summary(comps, divisor)], "",
             *_headroom_section(headroom),
             *_metrics_note(df),
             "All checkpoints are reported, no best-of selection: every cell is a row of `summary.csv`. Tables 1, 3 "
             "and 4 use each method's last checkpoint; accuracies are means over run seeds and eval seeds, with the "
             "mean of the cells' 95% CIs in brackets and ± the standard deviation across cells where there are "
             "several.", "",
             *_paper_sections(paper),
             "## Table 1. Accuracy (%) by method and task, 95% CI", ""]
    lines += _table1(last)
    lines += [f"## Table 2. Accuracy (%) vs RL training step, at {steps_phrase(divisor)}", ""]
    lines += _table2(training_curves(df, divisor))
    lines += ["## Table 3. Step robustness (AGRPO v2: \"4x faster with minimal performance sacrifices\")", "",
              _table3(step_robustness(last_checkpoints(std), divisor)), "",
              "## Table 4. The paper's claims beside ours", "", scale_note(df["task"].unique()), "",
              "Paper numbers come from `results/reference/paper_numbers.csv` (flags as in its README); 'derived' "
              "marks arithmetic done here on those numbers." + ("" if ref is not None else
                                                                " No reference CSV was given."), "",
              "Ours: the papers' sampler (no cache, no threshold decoding; Table 5 has those); last checkpoints, "
              f"accuracy points; differences at {steps_phrase(divisor)}, and drops = accuracy at "
              f"{'full steps' if divisor == 1 else f'L/{divisor}'} − at {'full/4' if divisor == 1 else f'L/{4 * divisor}'}"
              " (> 0: a loss; `eval.claims_steps_divisor` sets the steps). The 95% CI is paired over the same test items: each method's "
              "per-item scores (`generations.jsonl`) are averaged over its run seeds and eval seeds, then "
              "d̄ ± 1.96·s_d/√n over the per-item differences dᵢ (for 'A − B' drops, dᵢ = (A_full − A_fast) − "
              "(B_full − B_fast)). It counts item-level variation only, holding the trained runs fixed; the "
              "per-run-seed column, the same difference for each run seed of the first method (a method without "
              "that run seed, such as base, enters with all its cells), is the check on seed-to-seed variation.",
              "",
              md_table(*_frame_rows(claims_table(comps, ref))), "",
              "Per task and length (the summary at the top counts these):", "",
              *[f"- {a}" for a in claim_answers(comps)], "",
              *(failures or []),
              "## Table 5. Fast-dLLM accelerations against plain sampling, over the whole grid", "",
              "Every checkpoint, method and task: each prefix-cache or threshold-decoding cell is paired with the "
              "plain cell of the same model and task (the cache at the same steps; threshold decoding against plain "
              "sampling at L/2 and at L steps). Ratios are plain ÷ accelerated (> 1: the acceleration is cheaper); "
              "passes are exact (NFE), wall seconds are as the cells recorded them (concurrent jobs on one device "
              "make them noisy: `docs/performance.md` times them in isolation). The CI pairs (cell, item) "
              "pairs, so it counts item-level variation over these models, not run-to-run variation.", "",
              *_table5(acceleration_rows(df, scores)),
              *_curves_section(curves, unfinished),
              *sweep_section(sweep),
              "## Plots", "",
              "![accuracy vs sampling steps](plots/acc_vs_steps.png)", "",
              "![accuracy vs estimated FLOPs per item](plots/acc_vs_flops.png)", "",
              "![accuracy vs RL training step](plots/acc_vs_train_step.png)", ""]
    return "\n".join(lines)


def _frame_rows(d: pd.DataFrame) -> tuple[list[str], list[list]]:
    return list(d.columns), d.values.tolist()
