"""Views of the cells the report is built from: sampler variants, the last checkpoint of each run, training-step
curves, step robustness (the 4×-fewer-steps claim), the papers' sampler, and the acceleration pairs (Table 5)."""

from __future__ import annotations

import pandas as pd

from agrpo.stats import paired_diff_ci, same_ids
from agrpo.report.cells import _method_rank, _methods, ItemScores


VARIANT_KEYS = {"gen_length": "L", "block_length": "B", "remasking": "remask", "temperature": "T",
                "eos_early_exit": "early exit", "cache": "cache", "threshold": "threshold"}


def _with_variant(df: pd.DataFrame, skip: tuple[str, ...] = ()) -> pd.DataFrame:
    """Add a ``variant`` label naming the sampler settings (other than steps and `skip`) that vary across cells."""
    varying = [k for k in VARIANT_KEYS if k not in skip and df[k].nunique() > 1]
    label = df.apply(lambda r: ", ".join(f"{VARIANT_KEYS[k]}={r[k]:g}" if isinstance(r[k], float) else
                                         f"{VARIANT_KEYS[k]}={r[k]}" for k in varying), axis=1) if varying else ""
    return df.assign(variant=label)


def _aggregate(d: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    out = d.groupby(by, as_index=False, sort=True).agg(
        accuracy=("accuracy", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"),
        acc_sd=("accuracy", "std"), cells=("accuracy", "size"), runs=("run_seed", "nunique"),
        flops=("flops", "sum"), items=("n", "sum"), train_step=("train_step", "max"), nfe=("nfe", "mean"),
        solved=("n_correct", "sum"))
    out["flops_per_item"] = out["flops"] / out["items"]
    return out


def last_checkpoint_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The cells of each method's last checkpoint (largest train_step; base: 0), every run and eval seed, with
    their ``variant``."""
    d = _with_variant(df)
    return d[d["train_step"] == d.groupby("method")["train_step"].transform("max")]


def last_checkpoints(df: pd.DataFrame) -> pd.DataFrame:
    """Each method's last checkpoint (last_checkpoint_cells), averaged over run and eval seeds, per method, task,
    variant and steps."""
    return _aggregate(last_checkpoint_cells(df), ["method", "task", "variant", "gen_length", "steps", "threshold"])


def _full_steps(d: pd.DataFrame, divisor: int = 1) -> pd.Series:
    """Per row: the full steps value of its (task, variant) — steps = gen_length / divisor if evaluated, else
    the largest."""
    full = d.groupby(["task", "variant"])["steps"].transform("max")
    target = d["gen_length"] // divisor
    has_l = (d["steps"] == target).groupby([d["task"], d["variant"]]).transform("any")
    return full.where(~has_l, target)


def training_curves(df: pd.DataFrame, divisor: int = 1) -> pd.DataFrame:
    """Accuracy at full steps (gen_length / divisor where evaluated: eval.claims_steps_divisor) per method, task,
    variant and train_step (mean over seeds). Base also appears at train_step 0 of every other method lacking its
    own step-0 cell (column ``from_base``)."""
    d = _with_variant(df)
    cur = _aggregate(d[d["steps"] == _full_steps(d, divisor)], ["method", "task", "variant", "gen_length", "steps",
                                                       "train_step"])
    cur["from_base"] = False
    base = cur[(cur["method"] == "base") & (cur["train_step"] == 0)]
    parts = [cur]
    for m in _methods(cur["method"]):
        if m == "base":
            continue
        own = cur[(cur["method"] == m) & (cur["train_step"] == 0)][["task", "variant"]]
        b = base.merge(own, on=["task", "variant"], how="left", indicator=True)
        parts.append(b[b["_merge"] == "left_only"].drop(columns="_merge").assign(method=m, from_base=True))
    out = pd.concat(parts, ignore_index=True)
    out["_rank"] = out["method"].map(lambda m: _method_rank(m)[0])
    return (out.sort_values(["_rank", "method", "task", "variant", "train_step"], kind="mergesort")
            .drop(columns="_rank").reset_index(drop=True))


def step_robustness(last: pd.DataFrame, divisor: int = 1) -> pd.DataFrame:
    """Per method, task and variant: accuracy at full steps (gen_length / divisor where evaluated, else the
    largest: eval.claims_steps_divisor), at full/4 steps, and the change (fractions)."""
    rows = []
    for (m, task, var, L), d in last.groupby(["method", "task", "variant", "gen_length"], sort=True):
        acc = d.set_index("steps")["accuracy"]
        full = L // divisor if L // divisor in acc.index else acc.index.max()
        quarter = full // 4 if full % 4 == 0 and full // 4 in acc.index else None
        q_acc = acc[quarter] if quarter else float("nan")
        rows.append({"method": m, "task": task, "variant": var, "full_steps": full, "acc_full": acc[full],
                     "quarter_steps": quarter, "acc_quarter": q_acc, "change": q_acc - acc[full]})
    cols = ["method", "task", "variant", "full_steps", "acc_full", "quarter_steps", "acc_quarter", "change"]
    out = pd.DataFrame(rows, columns=cols)
    out["_rank"] = out["method"].map(lambda m: _method_rank(m)[0])
    return out.sort_values(["task", "variant", "_rank"], kind="mergesort").drop(columns="_rank").reset_index(drop=True)


def standard_sampler(df: pd.DataFrame) -> pd.DataFrame:
    """The cells sampled as the papers sample: no KV cache, no confidence-threshold decoding (Tables 3 and 4
    answer the papers' claims on these). Grids without those axes are returned whole."""
    keep = pd.Series(True, index=df.index)
    if "cache" in df:
        keep &= df["cache"].fillna("none") == "none"
    if "threshold" in df:
        keep &= df["threshold"].fillna(0.0) == 0
    return df[keep] if keep.any() else df


ACCEL_KEYS = ["method", "run_seed", "checkpoint", "task", "protocol", "gen_length", "block_length", "remasking",
              "temperature", "eos_early_exit", "seed"]


def acceleration_rows(df: pd.DataFrame, scores: ItemScores | None = None) -> pd.DataFrame:
    """Fast-dLLM's options against plain sampling over the whole grid (every checkpoint, method and task).

    Each accelerated cell (prefix cache and/or threshold τ > 0) is paired with the plain cell of the same model,
    task and sampler: the cache at the same steps (its own cost), threshold decoding against plain sampling at
    L/2 steps (the d1 protocol) and at L steps. Per setting and gen length: cells paired, the ratio of forward
    passes (Σ NFE plain / Σ NFE fast), of wall seconds and of seconds per correct answer
    (Σ seconds / Σ correct, plain over fast), and the accuracy change fast − plain with a 95% CI paired over
    (cell, item) pairs from generations.jsonl (None where a cell has none). Wall seconds are as the cells
    recorded them: cells that shared a device are noisy; NFE is exact.
    """
    if not {"cache", "threshold"} <= set(df.columns):
        return pd.DataFrame()
    d = df.assign(cache=df["cache"].fillna("none"), threshold=df["threshold"].fillna(0.0))
    plain = d[(d["cache"] == "none") & (d["threshold"] == 0)]
    fast = d[(d["cache"] != "none") | (d["threshold"] > 0)]
    if fast.empty:
        return pd.DataFrame()

    def key(r, steps) -> tuple:
        return tuple(str(r.get(c)) for c in ACCEL_KEYS) + (int(steps),)

    plain_at = {key(r, r["steps"]): r for r in plain.to_dict("records")}
    scores = scores or ItemScores()  # plain cells pair with several settings: each file is read once
    rows = []
    for (cache, thr), f in fast.groupby(["cache", "threshold"], sort=True):
        setting = " + ".join(([f"{cache} cache"] if cache != "none" else []) + ([f"threshold {thr:g}"] if thr else []))
        against = [("same steps", lambda r: r["steps"])] if not thr else \
            [("plain, steps L/2", lambda r: r["gen_length"] // 2), ("plain, steps L", lambda r: r["gen_length"])]
        for label, steps_of in against:
            for L, fl in f.groupby("gen_length", sort=True):
                pairs = [(r, plain_at[key(r, steps_of(r))]) for r in fl.to_dict("records")
                         if key(r, steps_of(r)) in plain_at]
                if not pairs:
                    continue
                fr, pr = pd.DataFrame([a for a, _ in pairs]), pd.DataFrame([b for _, b in pairs])
                a_items, b_items = [], []
                for a, b in pairs:
                    sa, sb = scores(a), scores(b)
                    if sa is None or sb is None:
                        a_items = None
                        break
                    ids = same_ids(sa, sb, str(a.get("file")), str(b.get("file")))
                    a_items += [sa[i] for i in ids]
                    b_items += [sb[i] for i in ids]
                ci = paired_diff_ci(a_items, b_items) if a_items else None
                spc = lambda x: x["seconds"].sum() / max(x["n_correct"].sum(), 1)  # noqa: E731
                rows.append({"setting": setting, "against": label, "gen_length": int(L), "cells": len(pairs),
                             "passes_ratio": pr["nfe"].sum() / fr["nfe"].sum(),
                             "seconds_ratio": pr["seconds"].sum() / fr["seconds"].sum(),
                             "seconds_per_correct_ratio": spc(pr) / spc(fr),
                             "accuracy_change": (fr["accuracy"] - pr["accuracy"]).mean(), "ci": ci})
    return pd.DataFrame(rows)


def _suffix(var: str) -> str:
    return f" ({var})" if var else ""


def _threshold_part(variant: str) -> str | None:
    """The 'threshold=τ' part of a variant label when τ > 0 (confidence-threshold decoding), else None."""
    return next((p for p in variant.split(", ") if p.startswith("threshold=") and p != "threshold=0"), None)


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}"


def _acc_ci(r) -> str:
    """'acc ± sd [lo, hi]' in percent (± the standard deviation across cells, where there are several)."""
    sd = f" ± {100 * r['acc_sd']:.1f}" if r["cells"] > 1 else ""
    return f"{_pct(r['accuracy'])}{sd} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"


def is_sudoku(task: str) -> bool:
    """Sudoku tasks report blank-cell accuracy as ``accuracy``; ``n_correct`` counts whole puzzles."""
    from agrpo.tasks import TASKS

    return task in TASKS and TASKS[task].family == "sudoku"


def metric_label(task: str) -> str:
    return "blank-cell accuracy (%)" if is_sudoku(task) else "accuracy (%)"
