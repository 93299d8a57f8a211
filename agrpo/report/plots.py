"""The report's plots: accuracy vs sampling steps, vs estimated FLOPs, and vs training step."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: plots are written to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, LogLocator, NullFormatter, NullLocator  # noqa: E402

from agrpo.report.cells import _method_rank, _methods
from agrpo.report.tables import _suffix, _threshold_part, metric_label


def _colors(methods) -> dict[str, str]:
    palette = plt.get_cmap("tab10").colors
    return {m: palette[i % len(palette)] for i, m in enumerate(_methods(methods))}


def _task_axes(tasks: list[str], rows: list[str] | None = None):
    """One column per task; one row per entry of `rows` (default: a single row). Returns (fig, {(row, task): ax})."""
    rows = rows or [""]
    fig, axes = plt.subplots(len(rows), len(tasks), figsize=(4.3 * len(tasks), 3.4 * len(rows) + 0.4),
                             squeeze=False)
    return fig, {(r, t): axes[i][j] for i, r in enumerate(rows) for j, t in enumerate(tasks)}


def _finish(fig, axes: dict, suptitle: str) -> bytes:
    handles, labels = {}, []
    for ax in axes.values():
        ax.grid(alpha=0.3)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    ncol = min(len(labels), 5)
    height = fig.get_size_inches()[1]
    legend_in = 0.25 * -(-len(labels) // max(ncol, 1)) + 0.15  # legend rows below the panels, in inches
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(suptitle, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, legend_in / height, 1, 1 - 0.35 / height))
    return png(fig)


def png(fig) -> bytes:
    """The figure as PNG bytes (no software tag: identical plots, identical bytes), closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _panel(variant: str) -> str:
    """The variant label without its threshold: threshold cells share the panel of plain sampling."""
    return ", ".join(p for p in variant.split(", ") if p and not p.startswith("threshold="))


def _accuracy_bars(d: pd.DataFrame):
    """Accuracy in points and its asymmetric 95% CI error bars (never negative)."""
    y = 100 * d["accuracy"]
    return y, [(y - 100 * d["ci_low"]).clip(lower=0), (100 * d["ci_high"] - y).clip(lower=0)]


def _plot_vs(last: pd.DataFrame, x: str, xlabel: str, base: int, profile: str) -> bytes:
    """Accuracy vs `x` (sampling steps or FLOPs per item): a line per method for plain sampling, and a star per
    method for confidence-threshold decoding, placed at its measured mean passes (NFE) on the steps plot."""
    last = last.assign(panel=last["variant"].map(_panel))
    rows = sorted(last["panel"].unique())
    fig, axes = _task_axes(sorted(last["task"].unique()), rows)
    colors = _colors(last["method"])
    for (row, task), ax in axes.items():
        here = last[(last["task"] == task) & (last["panel"] == row)]
        for (m, thr), d in sorted(here.groupby(["method", "threshold"]), key=lambda kv: (_method_rank(kv[0][0]), kv[0][1])):
            d = d.sort_values(x)
            xs = d["nfe"] if (thr > 0 and x == "steps") else d[x]
            y, err = _accuracy_bars(d)
            style = dict(marker="*", markersize=11, linestyle="none") if thr > 0 else dict(marker="o")
            ax.errorbar(xs, y, yerr=err, capsize=3, color=colors[m], **style,
                        label=f"{m} (step{int(d['train_step'].max())})" + (f", threshold {thr:g}" if thr > 0 else ""))
        ax.set_xscale("log", base=base)
        if x == "steps":
            ticks = sorted(last["steps"].unique())
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(t) for t in ticks])
        else:  # a few decades at most: label the decades only, so the labels cannot collide
            ax.xaxis.set_major_locator(LogLocator(base=base, numticks=5))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(title=f"{task}{_suffix(row)}", xlabel=xlabel, ylabel=metric_label(task))
    note = "; stars: threshold decoding at its mean passes (NFE)" if x == "steps" and (last["threshold"] > 0).any() else ""
    return _finish(fig, axes, f"{profile}: last checkpoint of each method, mean over seeds, 95% CI{note}")


def _plot_train(curves: pd.DataFrame, profile: str) -> bytes:
    """Accuracy at full sampling steps vs RL step: a row per sampler variant; threshold decoding dashed."""
    curves = curves.assign(panel=curves["variant"].map(_panel))
    rows = sorted(curves["panel"].unique())
    fig, axes = _task_axes(sorted(curves["task"].unique()), rows)
    colors = _colors(curves["method"])
    for (row, task), ax in axes.items():
        here = curves[(curves["task"] == task) & (curves["panel"] == row)]
        for (m, var), d in sorted(here.groupby(["method", "variant"]), key=lambda kv: (_method_rank(kv[0][0]), kv[0][1])):
            d = d.sort_values("train_step")
            thr = _threshold_part(var)
            y, err = _accuracy_bars(d)
            ax.errorbar(d["train_step"], y, yerr=err, capsize=2, marker="s" if m == "base" else "o", color=colors[m],
                        linestyle="--" if thr else "-", label=m + (f", {thr.replace('=', ' ')}" if thr else ""))
        steps = sorted(here["steps"].unique())
        ax.set(title=f"{task}{_suffix(row)}", xlabel="RL train step (rollout batches)",
               ylabel=f"{metric_label(task)} at {'/'.join(map(str, steps))} steps")
    return _finish(fig, axes, f"{profile}: accuracy vs training step at full sampling steps, 95% CI (step 0: the model "
                              "RL starts from, the base or d1's SFT model)")
