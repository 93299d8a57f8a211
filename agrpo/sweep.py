"""The learning-rate sweep: every swept method trained at each of its rates, with the same budget.

A sweep run is the profile's RL run of one method with ``methods.<m>.learning_rate`` replaced by one rate of
``sweep.learning_rates.<m>`` and ``rl.iterations`` by ``sweep.iterations`` (every method the same), from the
method's usual start model (the base, or its SFT model), with the profile's schedule, warmup and seeds
``sweep.seeds``; it saves its log and its last checkpoint. The chosen rate of a method maximises the training reward
over the last ``sweep.select_window`` of the batches (mean over seeds), **task-balanced** where the log has
per-task rewards: R̄ = (1/|tasks|) Σ_task mean_{batches in the window}(reward_mean/<task>), so that a window whose
batches happened to draw more of an easy task's prompts does not win (with 16 prompts a batch over three tasks the
mix moves the plain batch mean more than 200 batches of learning do); one task: the plain mean. The RL prompts are
drawn in a fresh order each pass over ``rl.jsonl``; while a run takes fewer rollouts than there are RL prompts,
each batch's prompts are ones the policy has not trained on, so that reward measures generalisation, not memory;
the summary says whether that held.

The final runs use ``methods.<m>.learning_rate`` as the profile sets it; the summary says, per method, whether
that is the sweep's choice (set it by hand from the sweep: a profile is a record, not a side effect).

    agrpo sweep-run --config … --method agrpo --lr 3e-5 --seed 0 --base <model> --out <dir>   (rule sweep_run)
    agrpo sweep-report --config … --runs <work>/sweep --out <results>/sweep                   (rule sweep)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from agrpo.config import ProfileConfig

if TYPE_CHECKING:  # pandas only where the sweep is summarised (the GPU machines lack it; Snakemake loads this)
    import pandas as pd


def lr_tag(lr: float) -> str:
    """A learning rate as it appears in a sweep run's name: ``3e-05``."""
    return f"{lr:.0e}" if float(f"{lr:.0e}") == lr else repr(lr)


def sweep_runs(cfg: ProfileConfig) -> list[str]:
    """Run names ``<method>-lr<rate>-seed<s>`` of the whole sweep."""
    return [f"{m}-lr{lr_tag(lr)}-seed{s}" for m, rates in cfg.sweep.learning_rates.items() for lr in rates
            for s in cfg.sweep.seeds]


def parse_run(name: str) -> tuple[str, float, int]:
    method_lr, seed = name.rsplit("-seed", 1)
    method, lr = method_lr.rsplit("-lr", 1)
    return method, float(lr), int(seed)


def sweep_iterations(cfg: ProfileConfig) -> int:
    return cfg.sweep.iterations or cfg.rl.iterations


def sweep_config(cfg: ProfileConfig, method: str, lr: float) -> ProfileConfig:
    """The profile with ``method``'s rate set to ``lr``, the sweep's budget, and a single final save."""
    n = sweep_iterations(cfg)
    methods = dict(cfg.methods)
    methods[method] = dataclasses.replace(cfg.methods[method], learning_rate=lr)
    return dataclasses.replace(cfg, methods=methods, rl=dataclasses.replace(cfg.rl, iterations=n, checkpoint_every=n))


def sweep_run(cfg: ProfileConfig, method: str, lr: float, seed: int, base_dir, out_dir, progress: bool = True) -> dict:
    from agrpo.rl.trainer import train

    return train(sweep_config(cfg, method, lr), method, seed, base_dir, out_dir, progress)


def load_sweep(runs_dir: Path) -> pd.DataFrame:
    """Every sweep run's log as rows: method, lr, run_seed and the trainer's columns."""
    import pandas as pd

    rows = []
    for log in sorted(Path(runs_dir).glob("*-lr*-seed*/train_log.jsonl")):
        method, lr, seed = parse_run(log.parent.name)
        for line in log.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                row["lr_scheduled"] = row.pop("lr", float("nan"))  # the batch's rate (warmup); "lr": the run's
                rows.append({"method": method, "lr": lr, "run_seed": seed, **row})
    return pd.DataFrame(rows)


def task_columns(logs: pd.DataFrame) -> list[str]:
    """The per-task reward columns of a sweep's logs (``reward_mean/<task>``)."""
    return [c for c in logs.columns if c.startswith("reward_mean/")]


def window_reward(rows: pd.DataFrame, tasks: list[str]) -> float:
    """The task-balanced reward of a window of batches: the mean over tasks of each task's mean over the batches
    that drew it; without per-task columns, the mean batch reward."""
    if not tasks:
        return float(rows["reward_mean"].mean())
    per_task = rows[tasks].mean()  # NaN-skipping: a batch that drew no prompt of a task leaves it out
    return float(per_task.dropna().mean())


def summarise(cfg: ProfileConfig, logs: pd.DataFrame) -> pd.DataFrame:
    """Per (method, lr): batches run, reward over the first and the last ``select_window`` of batches (mean over
    seeds, and the seeds' range), whether it is the method's choice and the profile's rate."""
    import pandas as pd

    from agrpo.resolve import batch_prompts

    out = []
    tasks = task_columns(logs)
    for (method, lr), d in logs.groupby(["method", "lr"], sort=True):
        n = int(d["iteration"].max())
        w = max(1, round(cfg.sweep.select_window * n))
        last = d[d["iteration"] > n - w].groupby("run_seed").apply(window_reward, tasks, include_groups=False)
        first = d[d["iteration"] <= w].groupby("run_seed").apply(window_reward, tasks, include_groups=False)
        out.append({"method": method, "lr": lr, "seeds": d["run_seed"].nunique(), "rollout_batches": n,
                    "rollouts": int(d["rollouts"].max()), "prompts_drawn": n * batch_prompts(cfg, method),
                    "reward_first": first.mean(), "reward_last": last.mean(),
                    "reward_last_min": last.min(), "reward_last_max": last.max(),
                    "profile_lr": cfg.methods[method].learning_rate if method in cfg.methods else float("nan")})
    table = pd.DataFrame(out)
    if table.empty:
        return table
    best = table.loc[table.groupby("method")["reward_last"].idxmax(), ["method", "lr"]]
    chosen = dict(zip(best["method"], best["lr"]))
    table["chosen"] = [chosen[m] == lr for m, lr in zip(table["method"], table["lr"])]
    table["profile_uses"] = [lr == p for lr, p in zip(table["lr"], table["profile_lr"])]
    return table


def sweep_markdown(table: pd.DataFrame, rl_prompts: int | None) -> str:
    lines = ["# Learning-rate sweep", "",
             "Every method at each rate for the same rollout batches; the choice maximises the training reward over "
             "the last batches, task-balanced (the mean over tasks of each task's mean reward; mean over seeds; range "
             "in brackets). The final runs use the profile's `methods.<m>.learning_rate`.", ""]
    if rl_prompts is not None and not table.empty:
        drawn = int(table["prompts_drawn"].max())
        lines += [f"RL prompts: {rl_prompts}; the longest run drew {drawn} prompts" + (
            ", so every batch's prompts were new to the policy." if drawn <= rl_prompts else
            ": more than one pass, so its late batches repeat prompts it trained on."), ""]
    lines += ["| method | lr | seeds | batches | reward, first | reward, last [range] | chosen | profile's rate |",
              "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.method} | {r.lr:g} | {r.seeds} | {r.rollout_batches} | {r.reward_first:.3f} | "
                     f"{r.reward_last:.3f} [{r.reward_last_min:.3f}, {r.reward_last_max:.3f}] | "
                     f"{'**yes**' if r.chosen else ''} | {'yes' if r.profile_uses else ''} |")
    for method, d in table.groupby("method", sort=False):
        choice, used = d[d["chosen"]]["lr"].iloc[0], d["profile_lr"].iloc[0]
        if choice != used:
            lines.append(f"\n{method}: the profile's rate {used:g} is not the sweep's choice {choice:g}.")
    return "\n".join(lines) + "\n"


def plot_sweep(logs: pd.DataFrame) -> bytes:
    """Reward vs rollout batch, a column per method, a line per rate (mean over seeds): the batch reward in the top
    row, then a row per task (``reward_mean/<task>``) where the logs have them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agrpo.report.plots import png

    methods = list(dict.fromkeys(logs["method"])) or ["(none)"]
    tasks = task_columns(logs)
    rows = ["reward_mean"] + (tasks if len(tasks) > 1 else [])
    rows += [c for c in logs.columns if c.startswith("eval_accuracy/")]  # rl.monitor_every: greedy test accuracy
    fig, axes = plt.subplots(len(rows), len(methods), figsize=(3.8 * len(methods), 2.9 * len(rows)), squeeze=False)
    for j, method in enumerate(methods):
        d = logs[logs["method"] == method]
        for i, col in enumerate(rows):
            ax = axes[i][j]
            sparse = col.startswith("eval_accuracy/")  # measured every rl.monitor_every batches: not smoothed
            for lr, g in d.groupby("lr"):
                mean = g.groupby("iteration")[col].mean().dropna()
                ax.plot(mean.index, mean.values if sparse else mean.rolling(10 if i else 5, min_periods=1).mean().values,
                        label=f"lr {lr:g}", lw=1.2, marker="o" if sparse else None, ms=3)
            label = ("reward (5-batch mean)" if not i else f"greedy accuracy: {col.split('/', 1)[1]}" if sparse
                     else f"{col.split('/', 1)[1]} (10-batch mean)")
            ax.set(title=method if not i else "", xlabel="rollout batch", ylabel=label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


def trend_markdown(logs: pd.DataFrame) -> str:
    """Each run's trend over the first and second half of its batches (``report.curves.trend_table``; a method at
    one rate is one line, over its seeds): whether a longer budget would still have gained."""
    from agrpo.report.curves import TREND_METHOD, trend_table

    rows = trend_table(logs.assign(method=[f"{m} {lr:g}" for m, lr in zip(logs["method"], logs["lr"])]))
    if not rows:
        return ""
    return "\n".join(["", "## Trends", "", TREND_METHOD, "", *rows])


def write_sweep_report(cfg: ProfileConfig, runs_dir: Path, out_dir: Path) -> pd.DataFrame:
    from agrpo.data import load_split
    from agrpo.io import atomic_write_bytes

    logs = load_sweep(runs_dir)
    if logs.empty:
        raise ValueError(f"{runs_dir}: no sweep runs (<method>-lr<rate>-seed<s>/train_log.jsonl)")
    table = summarise(cfg, logs)
    try:
        rl_prompts = sum(len(load_split(cfg.work_dir, t, "rl")) for t in cfg.data.tasks)
    except FileNotFoundError:
        rl_prompts = None
    out_dir = Path(out_dir)
    atomic_write_bytes(out_dir / "sweep.csv", table.to_csv(index=False, lineterminator="\n").encode())
    atomic_write_bytes(out_dir / "sweep_curves.csv", logs.to_csv(index=False, lineterminator="\n").encode())
    atomic_write_bytes(out_dir / "sweep.md", (sweep_markdown(table, rl_prompts) + trend_markdown(logs)).encode())
    atomic_write_bytes(out_dir / "sweep.png", plot_sweep(logs))
    return table
