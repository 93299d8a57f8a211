"""Aggregation: eval cells → summary.csv, report.md and plots (``agrpo report``).

Every cell is reported; nothing is selected as "best". Aggregation refuses incomplete cells (n below the test-set
size) and duplicates, naming the cell. Outputs are written atomically; identical cells give identical bytes.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from agrpo.io import atomic_write_text  # noqa: E402

CELL_KEYS = ["method", "run_seed", "checkpoint", "task", "protocol", "gen_length", "block_length", "steps",
             "remasking", "temperature", "seed"]
FIRST_COLUMNS = ["method", "task", "checkpoint", "train_step", "run_seed", "gen_length", "block_length", "steps",
                 "seed", "accuracy", "ci_low", "ci_high", "n", "n_correct", "nfe", "seconds", "flops", "device",
                 "git_sha", "config_hash"]
# the real task each synthetic task miniaturises (for the claims table)
PAPER_TASK = {"tiny_arith": "gsm8k", "tiny_countdown": "countdown", "tiny_sudoku": "sudoku",
              "gsm8k": "gsm8k", "math500": "math500", "countdown": "countdown", "sudoku": "sudoku"}
METHOD_ORDER = ["base", "agrpo", "diffu_grpo", "d1"]


class IncompleteCellError(ValueError):
    """A cell has fewer items than its test set, or appears twice."""


def load_cells(paths: Iterable[Path]) -> pd.DataFrame:
    files = []
    for p in map(Path, paths):
        files += sorted(p.rglob("metrics.json")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no metrics.json found under {', '.join(map(str, paths))}")
    rows = []
    for f in files:
        try:
            row = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{f}: unreadable cell metrics ({e})") from None
        missing = [k for k in CELL_KEYS + FIRST_COLUMNS if k not in row]
        if missing:
            raise ValueError(f"{f}: cell metrics lack {', '.join(missing)}")
        for k, v in row.pop("versions", {}).items():
            row[f"version_{k}"] = v
        row["file"] = str(f)
        rows.append(row)
    return pd.DataFrame(rows)


def check_complete(df: pd.DataFrame) -> None:
    for r in df.itertuples():
        if r.n != r.n_expected:
            raise IncompleteCellError(f"incomplete cell {r.method}/{r.checkpoint}/{r.task} steps={r.steps} seed={r.seed}: "
                                      f"{r.n} of {r.n_expected} items ({r.file})")
    dup = df[df.duplicated(CELL_KEYS, keep=False)]
    if len(dup):
        raise IncompleteCellError(f"duplicate cell {dict(dup.iloc[0][CELL_KEYS])}: {', '.join(dup.file)}")


def _order(methods) -> list[str]:
    return sorted(set(methods), key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    rest = sorted(c for c in df.columns if c not in FIRST_COLUMNS and c not in ("file", "created_at"))
    out = df[FIRST_COLUMNS + rest].copy()
    out["_m"] = out.method.map(lambda m: _order(out.method).index(m))
    out = out.sort_values(["_m", "run_seed", "train_step", "task", "gen_length", "steps", "seed"]).drop(columns="_m")
    return out.reset_index(drop=True)


def final_checkpoints(df: pd.DataFrame) -> pd.DataFrame:
    """Each method's last checkpoint (base: step 0), averaged over run and eval seeds."""
    last = df.groupby("method").train_step.transform("max")
    d = df[df.train_step == last]
    g = d.groupby(["method", "task", "gen_length", "steps"], as_index=False)
    return g.agg(accuracy=("accuracy", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"),
                 flops_per_item=("flops", "sum"), n=("n", "sum"), train_step=("train_step", "first"),
                 runs=("run_seed", "nunique"))


def _md(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _accuracy_tables(fin: pd.DataFrame) -> list[str]:
    out = []
    for (task, L), d in fin.groupby(["task", "gen_length"]):
        steps = sorted(d.steps.unique(), reverse=True)
        rows = []
        for m in _order(d.method):
            dm = d[d.method == m].set_index("steps")
            rows.append([m, int(dm.train_step.iloc[0])] + [
                f"{_pct(dm.accuracy[s])} [{_pct(dm.ci_low[s])}, {_pct(dm.ci_high[s])}]" if s in dm.index else "–" for s in steps])
        out += [f"**{task}**, generation length {L} (accuracy %, 95% CI; columns = sampling steps)", "",
                _md(pd.DataFrame(rows, columns=["method", "checkpoint step"] + [f"{s} steps" for s in steps])), ""]
    return out


def _training_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy at full steps (steps = gen_length) per method, task and train_step; base at step 0 for all."""
    full = df[df.steps == df.gen_length]
    curves = full.groupby(["method", "task", "gen_length", "train_step"], as_index=False).accuracy.mean()
    base = curves[curves.method == "base"]
    parts = [curves[curves.method != "base"]]
    for m in set(curves.method) - {"base"}:
        parts.append(base.assign(method=m))
    return pd.concat(parts).sort_values(["method", "task", "gen_length", "train_step"]).reset_index(drop=True)


def _robustness(fin: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (m, task, L), d in fin.groupby(["method", "task", "gen_length"]):
        acc = d.set_index("steps").accuracy
        if L in acc.index and L // 4 in acc.index:
            rows.append([m, task, L, _pct(acc[L]), _pct(acc[L // 4]), f"{100 * (acc[L // 4] - acc[L]):+.1f}"])
    out = pd.DataFrame(rows, columns=["method", "task", "gen length", "acc @ L steps", "acc @ L/4 steps", "change (points)"])
    if len(out):
        out["_m"] = out.method.map(lambda m: _order(out.method).index(m))
        out = out.sort_values(["task", "_m"]).drop(columns="_m")
    return out


def _claims(fin: pd.DataFrame, ref: pd.DataFrame | None) -> pd.DataFrame:
    """Paper claims (direction and size) beside the same comparison measured here."""
    full = fin[fin.steps == fin.gen_length].groupby(["method", "task"]).accuracy.mean()
    rob = fin.groupby(["method", "task", "gen_length"]).apply(
        lambda d: d.set_index("steps").accuracy.get(d.name[2] // 4, float("nan")) - d.set_index("steps").accuracy.get(d.name[2], float("nan")),
        include_groups=False).groupby(["method", "task"]).mean()

    def ours(a, b, task):
        if (a, task) in full.index and (b, task) in full.index:
            return f"{100 * (full[(a, task)] - full[(b, task)]):+.1f}"
        return "not run"

    def paper(method, task, metric="gain_over_base_points", base="LLaDA-8B-Instruct", L=256):
        if ref is None:
            return "–", ""
        t = PAPER_TASK.get(task, task)
        r = ref[(ref.method == method) & (ref.task == t) & (ref.metric == metric)]
        if len(r):
            return f"{r.value.iloc[0]:+.1f}", f"{r.source.iloc[0]} ({r.flag.iloc[0]})"
        a = ref[(ref.method == method) & (ref.task == t) & (ref.metric == "accuracy") & (ref.gen_length == L)]
        b = ref[(ref.method == base) & (ref.task == t) & (ref.metric == "accuracy") & (ref.gen_length == L) & (ref.source == a.source.iloc[0] if len(a) else False)]
        if len(a) and len(b):
            return f"{a.value.iloc[0] - b.value.iloc[0]:+.1f} (L={L})", f"{a.source.iloc[0]} ({a.flag.iloc[0]}/{b.flag.iloc[0]})"
        return "–", ""

    rows = []
    for task in sorted(fin.task.unique()):
        t = PAPER_TASK.get(task, task)
        p, src = paper("AGRPO", task)
        rows.append(["AGRPO improves on the base model", task, t, p, src, ours("agrpo", "base", task)])
        p, src = paper("diffu-GRPO", task)
        rows.append(["diffu-GRPO improves on the base model", task, t, p, src, ours("diffu_grpo", "base", task)])
        rows.append(["AGRPO beats diffu-GRPO at equal rollouts", task, t, "> 0 (abstract; no per-task number available)",
                     "AGRPO v2 abstract", ours("agrpo", "diffu_grpo", task)])
        drops = {m: rob.get((m, task)) for m in ("agrpo", "diffu_grpo", "base")}
        txt = ", ".join(f"{m} {100 * v:+.1f}" for m, v in drops.items() if v is not None and v == v) or "not run"
        rows.append(["4x fewer sampling steps cost little (AGRPO)", task, t, "'minimal' (abstract; figure not available)",
                     "AGRPO v2 abstract", txt])
    return pd.DataFrame(rows, columns=["claim", "our task", "paper task", "paper (points)", "paper source", "ours (points)"])


def _savefig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def _plots(df: pd.DataFrame, fin: pd.DataFrame, out: Path) -> None:
    tasks = sorted(fin.task.unique())
    for name, x, xlabel, logx in (("acc_vs_steps", "steps", "sampling steps", 2), ("acc_vs_flops", "flops_per_item", "estimated FLOPs per item", 10)):
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            for m in _order(fin.method):
                for L, d in fin[(fin.task == task) & (fin.method == m)].groupby("gen_length"):
                    d = d.sort_values("steps")
                    xs = d[x] / d.n * d.runs if x == "flops_per_item" else d[x]
                    label = m if fin.gen_length.nunique() == 1 else f"{m} L={L}"
                    ax.errorbar(xs, 100 * d.accuracy, yerr=[100 * (d.accuracy - d.ci_low), 100 * (d.ci_high - d.accuracy)],
                                marker="o", capsize=3, label=label)
            ax.set_xscale("log", base=logx)
            ax.set(title=task, xlabel=xlabel, ylabel="accuracy (%)")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.suptitle("last checkpoint of each method (95% CI)", fontsize=9)
        fig.tight_layout()
        _savefig(fig, out / "plots" / f"{name}.png")
    curves = _training_curves(df)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for m in _order(curves.method):
            for L, d in curves[(curves.task == task) & (curves.method == m)].groupby("gen_length"):
                ax.plot(d.train_step, 100 * d.accuracy, marker="o", label=m if curves.gen_length.nunique() == 1 else f"{m} L={L}")
        ax.set(title=task, xlabel="RL training step (rollout batches)", ylabel="accuracy (%) at steps = L")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    _savefig(fig, out / "plots" / "acc_vs_train_step.png")


def write_report(df: pd.DataFrame, out_dir: Path, reference_csv: Path | None, profile: str, title: str | None = None) -> None:
    out_dir = Path(out_dir)
    summary = summary_table(df)
    atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False, float_format="%.10g"))
    fin = final_checkpoints(df)
    ref = pd.read_csv(reference_csv) if reference_csv and Path(reference_csv).is_file() else None
    _plots(df, fin, out_dir)
    curves = _training_curves(df)
    version_cols = sorted(c for c in df.columns if c.startswith("version_"))
    lines = [f"# {title or f'Results: {profile} profile'}", "",
             f"{len(df)} eval cells; methods {', '.join(_order(df.method))}; tasks {', '.join(sorted(df.task.unique()))}.",
             f"Provenance: git {', '.join(sorted(df.git_sha.unique()))}; config {', '.join(sorted(df.config_hash.unique()))}; "
             f"device {', '.join(sorted(df.device.unique()))}; "
             + "; ".join(f"{c[8:]} {', '.join(sorted(df[c].astype(str).unique()))}" for c in version_cols) + ".",
             "", "All checkpoints are reported (summary.csv); no best-of selection. Tables below use each method's "
             "last checkpoint unless they say otherwise; with several RL seeds, accuracies are means over seeds.", "",
             "## Accuracy by method, task and sampling steps", ""] + _accuracy_tables(fin)
    lines += ["## Accuracy vs RL training step (steps = generation length)", ""]
    for (task, L), d in curves.groupby(["task", "gen_length"]):
        piv = d.pivot_table(index="method", columns="train_step", values="accuracy").reindex(_order(d.method))
        piv = piv.map(lambda v: _pct(v) if v == v else "–")
        piv.insert(0, "method", piv.index)
        piv.columns = ["method"] + [f"step {c}" for c in piv.columns[1:]]
        lines += [f"**{task}**, L = {L} (accuracy %)", "", _md(piv), ""]
    lines += ["## Step robustness (the paper's \"4x fewer steps\" claim)", "", _md(_robustness(fin)), "",
              "## The papers' claims beside ours", "",
              "**Different scale:** ours are synthetic tiny tasks on a from-scratch model; the papers use LLaDA-8B-Instruct "
              "on GSM8K / MATH-500 / Countdown / Sudoku. Compare directions, not magnitudes. Paper numbers and their "
              "provenance flags: `results/reference/paper_numbers.csv`.", "", _md(_claims(fin, ref)), "",
              "## Plots", "", "![accuracy vs steps](plots/acc_vs_steps.png)", "",
              "![accuracy vs FLOPs](plots/acc_vs_flops.png)", "", "![accuracy vs training step](plots/acc_vs_train_step.png)", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
