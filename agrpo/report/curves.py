"""Training curves: each run's ``train_log.jsonl`` (one row per rollout batch) as a long table, a plot of reward,
KL, clip fraction, gradient norm, zero-variance groups, each task's reward and (with ``rl.monitor_every``) each
task's greedy test accuracy vs rollout batch per method (mean over run seeds, the seeds' range as a band), and the
reward at the start and end of each run."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: plots are written to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from agrpo.report.cells import _methods  # noqa: E402
from agrpo.report.plots import png  # noqa: E402
from agrpo.rl.train_log import FINAL, LIVE  # noqa: E402
from agrpo.stats import DiffCI, slope_ci  # noqa: E402

METRICS = [("reward_mean", "reward (batch mean)"), ("kl", "KL to the reference (k3)"),
           ("clip_ratio", "clip fraction"), ("grad_norm", "grad norm (before clipping)"),
           ("zero_std_groups", "groups with zero reward variance")]
PASSES = ["passes_rollout", "passes_forward", "passes_forward_backward"]  # per batch, in sequences (the trainer's)
COLUMNS = (["method", "run_seed", "iteration", "rollouts", "optimizer_steps"] + [m for m, _ in METRICS]
           + PASSES + ["seconds"])


def run_logs(runs_dir: Path, live: bool = False) -> dict[Path, bool]:
    """Each run's log under ``runs_dir`` (``<method>-seed<s>/``): its ``train_log.jsonl``, or with ``live`` a run
    that has none, its ``train_log.live.jsonl`` (a run cut short: the trainer appends it per batch and removes it
    when it writes the whole log). Maps the file to whether the run finished."""
    logs = {}
    for run in sorted(p for p in Path(runs_dir).glob("*-seed*") if p.is_dir()):
        if (run / FINAL).is_file():
            logs[run / FINAL] = True
        elif live and (run / LIVE).is_file():
            logs[run / LIVE] = False
    return logs


def _run_of(log: Path) -> tuple[str, int]:
    """(method, run seed) of a run's log file, from its directory ``<method>-seed<s>``."""
    method, seed = log.parent.name.rsplit("-seed", 1)
    return method, int(seed)


def unfinished_runs(runs_dir: Path, curves: pd.DataFrame) -> list[str]:
    """``"<method> seed <s>: <N> rollout batches logged"`` for each run with only a live log, its rows counted in
    ``curves`` (``load_train_logs(runs_dir, live=True)``)."""
    out = []
    for log, finished in run_logs(runs_dir, live=True).items():
        if not finished:
            method, seed = _run_of(log)
            n = int(((curves["method"] == method) & (curves["run_seed"] == seed)).sum())
            out.append(f"{method} seed {seed}: {n:,} rollout batches logged")
    return out


def load_train_logs(runs_dir: Path, live: bool = False) -> pd.DataFrame:
    """Rows of every ``<runs_dir>/<method>-seed<s>/train_log.jsonl`` (with ``live``, also the live log of a run
    without one: ``run_logs``), with method and run_seed; empty when none."""
    rows = []
    for log in run_logs(runs_dir, live):
        method, seed = _run_of(log)
        for line in log.read_text().splitlines():
            if line.strip():
                rows.append({"method": method, "run_seed": seed, **json.loads(line)})
    d = pd.DataFrame(rows)
    if d.empty:
        return pd.DataFrame(columns=COLUMNS)
    for c in COLUMNS:
        if c not in d:
            d[c] = float("nan")
    d["order"] = d["method"].map({m: i for i, m in enumerate(_methods(d["method"]))})
    return d.sort_values(["order", "run_seed", "iteration"])[COLUMNS + per_task_columns(d)].reset_index(drop=True)


PER_TASK = ("reward_mean", "zero_std_groups", "eval_accuracy")  # eval_accuracy: rl.monitor_every's batches only


def per_task_columns(curves: pd.DataFrame) -> list[str]:
    """The trainer's per-task columns (``reward_mean/<task>``, ``zero_std_groups/<task>``, and with
    rl.monitor_every ``eval_accuracy/<task>``), by task."""
    tasks = sorted({c.split("/", 1)[1] for c in curves.columns if c.split("/", 1)[0] in PER_TASK and "/" in c})
    return [f"{m}/{t}" for t in tasks for m in PER_TASK if f"{m}/{t}" in curves]


def budget_table(curves: pd.DataFrame) -> list[str]:
    """Markdown: each method's training budget per run (mean over run seeds): rollouts; network passes in
    sequences (a row through the network once) — the rollouts', the objective's without gradients (old and
    reference log-probs) and with (forward + backward); their sum in forward-equivalents, a forward/backward
    counted as 3 forwards (so sequences of one length compare as FLOPs do); and the run's wall seconds. Runs
    logged before the trainer counted passes show "—"."""
    if curves.empty:
        return []
    lines = ["| method | run seeds | rollout batches | rollouts | rollout passes | forward (no grad) | "
             "forward + backward | forward-equivalents | wall seconds |", "|---|---|---|---|---|---|---|---|---|"]

    def cell(x, fmt="{:,.0f}"):
        return "—" if pd.isna(x) else fmt.format(x)

    for m, d in curves.groupby("method", sort=False):
        runs = d.groupby("run_seed")
        sums = runs[PASSES].sum(min_count=1).mean()
        equivalents = sums["passes_rollout"] + sums["passes_forward"] + 3 * sums["passes_forward_backward"]
        lines.append(f"| {m} | {d['run_seed'].nunique()} | {cell(runs['iteration'].max().mean())} | "
                     f"{cell(runs['rollouts'].max().mean())} | {cell(sums['passes_rollout'])} | "
                     f"{cell(sums['passes_forward'])} | {cell(sums['passes_forward_backward'])} | "
                     f"{cell(equivalents)} | {cell(runs['seconds'].max().mean(), '{:,.1f}')} |")
    return lines + [""]


def curves_table(curves: pd.DataFrame, window: float = 0.2) -> list[str]:
    """Markdown: per method and run seed, the mean reward over the first and last ``window`` of its batches."""
    if curves.empty:
        return []
    lines = ["| method | run seed | rollout batches | reward, first 20% | reward, last 20% | optimizer steps |",
             "|---|---|---|---|---|---|"]
    for (m, s), d in curves.groupby(["method", "run_seed"], sort=False):
        n = max(1, round(window * len(d)))
        lines.append(f"| {m} | {s} | {len(d)} | {d['reward_mean'].head(n).mean():.3f} | "
                     f"{d['reward_mean'].tail(n).mean():.3f} | {d['optimizer_steps'].max():g} |")
    return lines + [""]


def trend_reading(first: DiffCI, second: DiffCI) -> str:
    """A series' shape from its slopes over the first and the second half of the batches (95% CIs)."""
    if second.sign:
        return "still rising" if second.sign > 0 else "falling"
    return {1: "rose, then plateaued", -1: "fell, then flat", 0: "no detectable trend"}[first.sign]


def trend_rows(curves: pd.DataFrame) -> list[dict]:
    """Per method and series (the batch reward: task-balanced, the mean of each task's batch mean, and each task's,
    where the logs have per-task columns; with rl.monitor_every each task's greedy test accuracy): the slope
    per 100 rollout batches over the first and the second half of the method's batches, pooled over run seeds
    with each seed its own level (``stats.slope_ci``), and ``trend_reading``'s verdict. "Plateaued" means no
    detectable slope in the second half after a rise in the first: a statement about power as much as shape."""
    rows, tasks = [], per_task_columns(curves)
    rewards = [c for c in tasks if c.startswith("reward_mean/")]
    if rewards:  # a batch's task mix moves the plain mean more than learning does: each task's mean, averaged
        curves = curves.assign(reward_balanced=curves[rewards].mean(axis=1, skipna=True))
    series = (["reward_balanced"] + rewards if rewards else ["reward_mean"]) + [
        c for c in tasks if c.startswith("eval_accuracy/")]
    for m, d in curves.groupby("method", sort=False):
        half = d["iteration"].max() / 2
        for col in series:
            pts = d[["iteration", "run_seed", col]].dropna()
            if len(pts) < 4:
                continue
            first, second = (slope_ci(p["iteration"], p[col], p["run_seed"])
                             for p in (pts[pts["iteration"] <= half], pts[pts["iteration"] > half]))
            rows.append({"method": m, "series": col, "first": first, "second": second,
                         "reading": trend_reading(first, second)})
    return rows


TREND_METHOD = ("Least-squares slope per 100 rollout batches over the first and the second half of the batches, pooled "
                "over run seeds (each seed its own level), with a 95% CI that treats batches as independent "
                "(approximate). \"Plateaued\": a rise in the first half and no detectable slope in the second; no "
                "detectable slope can also mean too few batches to see one.")


def trend_table(curves: pd.DataFrame) -> list[str]:
    """Markdown of ``trend_rows``: rewards in reward units, accuracies in points, per 100 rollout batches."""
    rows = trend_rows(curves)
    if not rows:
        return []
    lines = ["| method | series | slope per 100 batches, first half [95% CI] | second half | reading |",
             "|---|---|---|---|---|"]
    for r in rows:
        scale, fmt = (100, "{:+.1f}") if r["series"].startswith("eval_accuracy/") else (1, "{:+.3f}")

        def ci(c):
            return f"{fmt.format(100 * scale * c.diff)} [{fmt.format(100 * scale * c.low)}, " \
                   f"{fmt.format(100 * scale * c.high)}]"
        kind, _, task = r["series"].partition("/")
        label = {"reward_mean": f"reward, {task}" if task else "reward", "reward_balanced": "reward, task-balanced",
                 "eval_accuracy": f"greedy accuracy, {task} (points)"}[kind]
        lines.append(f"| {r['method']} | {label} | {ci(r['first'])} | {ci(r['second'])} | {r['reading']} |")
    return lines + [""]


def plot_curves(curves: pd.DataFrame, profile: str, smooth: float = 0.05) -> bytes:
    """A panel per metric, a line per method (mean over run seeds), a band over the seeds' range; each run's
    series first a trailing mean over W = max(1, round(smooth · batches)) rollout batches (training_curves.csv
    keeps the raw values)."""
    w = max(1, round(smooth * curves["iteration"].nunique())) if not curves.empty else 1
    present = [(m, label) for m, label in METRICS if curves[m].notna().any()] or METRICS[:1]
    present += [(c, f"reward: {c.split('/', 1)[1]}") for c in per_task_columns(curves) if c.startswith("reward_mean/")]
    present += [(c, f"greedy accuracy: {c.split('/', 1)[1]} (test items)") for c in per_task_columns(curves)
                if c.startswith("eval_accuracy/")]
    ncols = min(5, len(present))
    nrows = -(-len(present) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(present):]:
        ax.set_visible(False)
    palette = plt.get_cmap("tab10").colors
    for i, method in enumerate(_methods(curves["method"])):
        d = curves[curves["method"] == method]
        for ax, (metric, label) in zip(axes.flat, present):
            sparse = metric.startswith("eval_accuracy/")  # measured every rl.monitor_every batches: not smoothed
            run = d[metric] if sparse else d.groupby("run_seed")[metric].transform(
                lambda x: x.rolling(w, min_periods=1).mean())
            g = run.groupby(d["iteration"])
            mean, lo, hi = g.mean().dropna(), g.min().dropna(), g.max().dropna()
            if mean.notna().any():
                ax.plot(mean.index, mean.values, color=palette[i % len(palette)], label=method, lw=1.3,
                        marker="o" if sparse else None, ms=3)
                if d["run_seed"].nunique() > 1:
                    ax.fill_between(mean.index, lo.values, hi.values, color=palette[i % len(palette)], alpha=0.15)
            ax.set(title=label, xlabel="rollout batch")
            ax.grid(alpha=0.3)
    if curves.empty:
        axes[0][0].text(0.5, 0.5, "no training runs", ha="center", va="center", transform=axes[0][0].transAxes)
    else:
        axes[0][0].legend(fontsize=7)
    smoothed = f"each run a trailing mean over {w} batches; " if w > 1 else ""
    fig.suptitle(f"{profile}: training curves ({smoothed}line: mean over run seeds; band: their range)", fontsize=10,
                 x=0.02, ha="left")
    fig.tight_layout()
    return png(fig)
