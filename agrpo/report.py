"""Aggregation: eval cells → ``summary.csv``, ``report.md`` and ``plots/*.png``.

Every cell is reported; no checkpoint is selected as "best". ``check_complete`` refuses incomplete cells (n below
the test-set size) and duplicates, naming the cell. Outputs are written atomically, and identical cells give
byte-identical ``summary.csv`` and ``report.md`` (cell creation times are left out).

Aggregates ("last checkpoint", "mean over seeds") average the cells' accuracies over run seeds and eval seeds; the
interval shown is the mean of the cells' 95% CIs, and ± is the standard deviation across cells when there are several.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from agrpo.io import atomic_write_bytes, read_jsonl  # noqa: E402
from agrpo.stats import DiffCI, diff_in_diff_ci, item_means, paired_diff_ci, same_ids  # noqa: E402

REQUIRED_KEYS = ["method", "run_seed", "checkpoint", "train_step", "task", "protocol", "gen_length", "block_length",
                 "steps", "remasking", "temperature", "seed", "n", "n_expected", "accuracy", "n_correct", "ci_low",
                 "ci_high", "nfe", "tokens_generated", "seconds", "flops", "params", "device", "git_sha",
                 "config_hash", "profile", "versions", "created_at"]
# what identifies a cell: two metrics.json files with equal values here are duplicates
CELL_KEYS = ["method", "run_seed", "checkpoint", "task", "protocol", "gen_length", "block_length", "steps",
             "remasking", "temperature", "eos_early_exit", "cache", "threshold", "seed"]
FIRST_COLUMNS = ["method", "task", "checkpoint", "train_step", "run_seed", "gen_length", "block_length", "steps",
                 "seed", "accuracy", "ci_low", "ci_high", "n", "n_correct", "nfe", "seconds", "flops", "device",
                 "git_sha", "config_hash"]
# sampler settings other than steps; when one varies across cells, tables and lines are split by it
VARIANT_KEYS = {"gen_length": "L", "block_length": "B", "remasking": "remask", "temperature": "T",
                "eos_early_exit": "early exit", "cache": "cache", "threshold": "threshold"}
METHOD_ORDER = ["base", "agrpo", "diffu_grpo", "d1", "wd1"]
# our method / task → its name in paper_numbers.csv
PAPER_METHOD = {"base": "LLaDA-8B-Instruct", "agrpo": "AGRPO", "diffu_grpo": "diffu-GRPO", "d1": "d1-LLaDA", "wd1": "wd1"}
PAPER_TASK = {"tiny_arith": "gsm8k", "tiny_countdown": "countdown", "tiny_sudoku": "sudoku",
              "gsm8k": "gsm8k", "math500": "math500", "countdown": "countdown", "sudoku": "sudoku"}
REFERENCE_COLUMNS = ["source", "method", "task", "gen_length", "metric", "value", "flag", "note"]
SCALE_NOTE = ("**Different scale:** synthetic tiny tasks on a from-scratch model vs LLaDA-8B on "
              "GSM8K/MATH-500/Countdown/Sudoku — compare directions, not magnitudes.")


class IncompleteCellError(ValueError):
    """A cell has fewer (or more) items than its test set, or appears twice."""


# ---------------------------------------------------------------------------------------------------- loading

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
    return (f"{r['method']} run_seed={r['run_seed']} checkpoint={r['checkpoint']} task={r['task']} "
            f"L={r['gen_length']} steps={r['steps']} seed={r['seed']}")


def check_complete(df: pd.DataFrame) -> None:
    """Raise IncompleteCellError for the first cell with n != n_expected, or for duplicate cells."""
    if df.empty:
        raise IncompleteCellError("no cells to report")
    for _, r in df.iterrows():
        if r["n"] != r["n_expected"]:
            raise IncompleteCellError(f"incomplete cell {_cell_name(r)}: {r['n']} of {r['n_expected']} items "
                                      f"({r.get('file', '?')})")
    dup = df[df.duplicated(CELL_KEYS, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        same = dup[(dup[CELL_KEYS] == first[CELL_KEYS]).all(axis=1)]
        files = ", ".join(same["file"]) if "file" in same else "?"
        raise IncompleteCellError(f"duplicate cell {_cell_name(first)}: {files}")


# ---------------------------------------------------------------------------------------------------- tables

def _method_rank(m: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)


def _methods(values) -> list[str]:
    return sorted(set(values), key=_method_rank)


def _cell_order(df: pd.DataFrame) -> pd.DataFrame:
    """The cells in summary.csv's fixed order: method (base first), run seed, train step, task, sampler keys."""
    out = df.assign(_rank=df["method"].map(lambda m: _method_rank(m)[0]))
    keys = ["_rank", "method", "run_seed", "train_step", "task"] + [k for k in CELL_KEYS if k not in
                                                                   ("method", "run_seed", "task")]
    return out.sort_values(keys, kind="mergesort").drop(columns="_rank").reset_index(drop=True)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell, FIRST_COLUMNS then the other keys alphabetically, in a fixed order (no file, no created_at)."""
    rest = sorted(c for c in df.columns if c not in FIRST_COLUMNS and c not in ("file", "created_at"))
    return _cell_order(df)[FIRST_COLUMNS + rest]


def item_score_table(df: pd.DataFrame, scores: ItemScores | None = None) -> pd.DataFrame:
    """Per-item scores behind the paired CIs of Tables 4 and 5: one row per (cell, item) — the cell's CELL_KEYS,
    ``item_id`` and ``score`` — for every cell with a generations.jsonl, in summary.csv's cell order."""
    scores = scores or ItemScores()
    rows = []
    for r in _cell_order(df).to_dict("records"):
        key = {k: r.get(k) for k in CELL_KEYS}
        rows += [key | {"item_id": i, "score": v} for i, v in (scores(r) or {}).items()]
    return pd.DataFrame(rows, columns=CELL_KEYS + ["item_id", "score"])


def _with_variant(df: pd.DataFrame) -> pd.DataFrame:
    """Add a ``variant`` label naming the sampler settings (other than steps) that vary across cells."""
    varying = [k for k in VARIANT_KEYS if df[k].nunique() > 1]
    label = df.apply(lambda r: ", ".join(f"{VARIANT_KEYS[k]}={r[k]:g}" if isinstance(r[k], float) else
                                         f"{VARIANT_KEYS[k]}={r[k]}" for k in varying), axis=1) if varying else ""
    return df.assign(variant=label)


def _aggregate(d: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    out = d.groupby(by, as_index=False, sort=True).agg(
        accuracy=("accuracy", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"),
        acc_sd=("accuracy", "std"), cells=("accuracy", "size"), runs=("run_seed", "nunique"),
        flops=("flops", "sum"), items=("n", "sum"), train_step=("train_step", "max"), nfe=("nfe", "mean"))
    out["flops_per_item"] = out["flops"] / out["items"]
    return out


def last_checkpoints(df: pd.DataFrame) -> pd.DataFrame:
    """Each method's last checkpoint (largest train_step; base: 0), averaged over run and eval seeds,
    per method, task, variant and steps."""
    d = _with_variant(df)
    d = d[d["train_step"] == d.groupby("method")["train_step"].transform("max")]
    return _aggregate(d, ["method", "task", "variant", "gen_length", "steps", "threshold"])


def _full_steps(d: pd.DataFrame) -> pd.Series:
    """Per row: the full steps value of its (task, variant) — steps = gen_length if evaluated, else the largest."""
    full = d.groupby(["task", "variant"])["steps"].transform("max")
    has_l = (d["steps"] == d["gen_length"]).groupby([d["task"], d["variant"]]).transform("any")
    return full.where(~has_l, d["gen_length"])


def training_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy at full steps per method, task, variant and train_step (mean over seeds). Base also appears at
    train_step 0 of every other method lacking its own step-0 cell (column ``from_base``)."""
    d = _with_variant(df)
    cur = _aggregate(d[d["steps"] == _full_steps(d)], ["method", "task", "variant", "gen_length", "steps",
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


def step_robustness(last: pd.DataFrame) -> pd.DataFrame:
    """Per method, task and variant: accuracy at full steps, at full/4 steps, and the change (fractions)."""
    rows = []
    for (m, task, var, L), d in last.groupby(["method", "task", "variant", "gen_length"], sort=True):
        acc = d.set_index("steps")["accuracy"]
        full = L if L in acc.index else acc.index.max()
        quarter = full // 4 if full % 4 == 0 and full // 4 in acc.index else None
        q_acc = acc[quarter] if quarter else float("nan")
        rows.append({"method": m, "task": task, "variant": var, "full_steps": full, "acc_full": acc[full],
                     "quarter_steps": quarter, "acc_quarter": q_acc, "change": q_acc - acc[full]})
    cols = ["method", "task", "variant", "full_steps", "acc_full", "quarter_steps", "acc_quarter", "change"]
    out = pd.DataFrame(rows, columns=cols)
    out["_rank"] = out["method"].map(lambda m: _method_rank(m)[0])
    return out.sort_values(["task", "variant", "_rank"], kind="mergesort").drop(columns="_rank").reset_index(drop=True)


# ------------------------------------------------------------------------------------------- reference numbers

def load_reference(path: Path) -> pd.DataFrame:
    """Published numbers (results/reference/paper_numbers.csv); raises naming the file if malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference numbers not found: {path}")
    ref = pd.read_csv(path, dtype={"task": str, "method": str, "source": str, "flag": str, "note": str})
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise ValueError(f"{path}: reference CSV lacks columns {', '.join(missing)}")
    return ref.fillna({"task": "", "note": "", "flag": ""})


def _ref(ref: pd.DataFrame | None, **eq) -> pd.DataFrame:
    if ref is None:
        return pd.DataFrame(columns=REFERENCE_COLUMNS)
    keep = pd.Series(True, index=ref.index)
    for col, v in eq.items():
        keep &= ref[col].str.contains(v, regex=False) if col == "source" else ref[col] == v
    return ref[keep]


def _src(rows: pd.DataFrame) -> str:
    """'source [flag/flag]; …' for the reference rows behind a paper number."""
    return "; ".join(f"{src} [{'/'.join(sorted(set(d['flag'])))}]"
                     for src, d in rows.groupby("source", sort=False))


def _paper_gain(ref, method: str, task: str) -> tuple[str, str]:
    """Paper gain of `method` over base LLaDA on `task`: AGRPO's abstract number, else d1 Table 1 per length."""
    g = _ref(ref, method=PAPER_METHOD.get(method, method), task=task, metric="gain_over_base_points",
             source="v2 abstract")
    if len(g):
        return f"{g['value'].iloc[0]:+.1f} (length not stated)", _src(g)
    a = _ref(ref, method=PAPER_METHOD.get(method, method), task=task, metric="accuracy", source="d1 paper Table 1")
    b = _ref(ref, method=PAPER_METHOD["base"], task=task, metric="accuracy", source="d1 paper Table 1")
    pairs = a.merge(b, on="gen_length", suffixes=("", "_base")).sort_values("gen_length")
    if not len(pairs):
        return "–", ""
    gains = " / ".join(f"{v:+.1f}" for v in pairs["value"] - pairs["value_base"])
    lengths = " / ".join(str(int(L)) for L in pairs["gen_length"])
    return f"{gains} (L = {lengths}; derived)", _src(pd.concat([a, b]))


def _paper_head_to_head(ref, task: str, other: str = "diffu_grpo") -> tuple[str, str]:
    """AGRPO − `other` as the papers state it. For diffu-GRPO: only a direction and task-less ratios, plus a
    derived difference where an absolute AGRPO accuracy exists; for d1: the derived difference only; else none."""
    if ref is None:
        return "–", ""
    name = PAPER_METHOD.get(other, other)
    rows, text = [], ""
    if other == "diffu_grpo":
        ratios = _ref(ref, method="AGRPO", metric="ratio_over_diffu_grpo")
        text = "> 0 (direction)" + "".join(f"; {v:g}× ({s.replace('AGRPO ', '')}, task not stated)"
                                          for v, s in zip(ratios["value"], ratios["source"]))
        rows.append(ratios)
    a = _ref(ref, method="AGRPO", task=task, metric="accuracy")
    d = _ref(ref, method=name, task=task, metric="accuracy", source="d1 paper Table 1", gen_length=256)
    if len(a) and len(d):
        text += ("; " if text else "") + (
            f"{a['value'].iloc[0]:g} − {d['value'].iloc[0]:g} ({NAMES.get(other, other)}, L = 256) = "
            f"{a['value'].iloc[0] - d['value'].iloc[0]:+.1f} (derived, AGRPO length unverified)")
        rows += [a, d]
    rows = [r for r in rows if len(r)]
    return (text, _src(pd.concat(rows))) if rows else ("–", "")


def _paper_speedup(ref) -> tuple[str, str]:
    s = _ref(ref, method="AGRPO", metric="sampling_speedup_x")
    if not len(s):
        return "–", ""
    return f"small loss at {s['value'].iloc[0]:g}x fewer steps ('minimal'; no number)", _src(s)


# ------------------------------------------------------------------------------------ claims with paired CIs

NAMES = {"base": "base", "agrpo": "AGRPO", "diffu_grpo": "diffu-GRPO", "d1": "d1", "wd1": "wd1"}
# Table 4's verdict by kind of comparison and CI sign (+1: interval above 0, −1: below, 0: includes 0)
VERDICTS = {"diff": {1: "{a} higher", 0: "no detectable difference", -1: "{a} lower"},
            "drop": {1: "{a} loses accuracy", 0: "no detectable drop", -1: "{a} gains accuracy"},
            "did": {1: "{a} drops more than {b}", 0: "no detectable difference", -1: "{a} drops less than {b}"}}


def _name(m: str) -> str:
    return NAMES.get(m, m)


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


@dataclass
class Comparison:
    """One of our answers to a claim on one task: point difference, paired CI, per-run-seed differences (all
    fractions; None where not run or not computable). kind: gain (a − base), h2h (a − b), drop (a's full − fast),
    did (a's drop − b's drop)."""
    kind: str
    a: str
    b: str | None
    task: str
    variant: str
    steps: tuple[int, int | None]  # full, and full/4 for drop/did
    point: float | None = None
    ci: DiffCI | None = None
    per_seed: dict = field(default_factory=dict)

    @property
    def claim(self) -> str:
        return {"gain": f"base → {_name(self.a)} gain", "h2h": f"{_name(self.a)} − {_name(self.b)}",
                "drop": f"accuracy drop at 4x fewer steps: {_name(self.a)}",
                "did": f"accuracy drop at 4x fewer steps: {_name(self.a)} − {_name(self.b or '')}"}[self.kind]

    @property
    def question(self) -> str:
        """The claim as the Answers list asks it."""
        full, quarter = self.steps
        return {"gain": f"{_name(self.a)} vs base", "h2h": f"{_name(self.a)} vs {_name(self.b)} at equal rollouts",
                "drop": f"{_name(self.a)}'s accuracy drop at 4x fewer sampling steps"
                        + (f" ({full} → {quarter})" if quarter else ""),
                "did": f"{_name(self.a)}'s drop at 4x fewer steps minus {_name(self.b or '')}'s"}[self.kind]

    @property
    def verdict(self) -> str:
        """What the CI says (it includes or excludes 0), then whether the run seeds agree in sign."""
        if self.point is None:
            return "–"
        a, b = _name(self.a), _name(self.b or "")
        if self.ci is None:
            text = "no verdict (no per-item scores)"
        elif self.ci.low == self.ci.high == 0:
            return "no difference: identical per-item scores"
        else:
            text = VERDICTS.get(self.kind, VERDICTS["diff"])[self.ci.sign].format(a=a, b=b)
            text += " (CI includes 0)" if self.ci.sign == 0 else " (CI excludes 0)"
        k = len(self.per_seed)
        signs = {(v > 0) - (v < 0) for v in map(_round_pts, self.per_seed.values())}  # as shown, to 0.1 point
        if k < 2:
            return text
        if {1, -1} <= signs:
            return text + (", but" if self.ci is not None and self.ci.sign else ";") + " run seeds disagree in sign"
        if 0 in signs:
            return text + "; run seeds do not all agree in sign (some at 0.0)"
        return text + ("; both run seeds agree in sign" if k == 2 else f"; all {k} run seeds agree in sign")


def _round_pts(x: float) -> float:
    return round(100 * float(x), 1) + 0.0  # + 0.0 turns -0.0 into 0.0


def _pts(x: float) -> str:
    """A difference as signed points, '+3.1'."""
    return f"{_round_pts(x):+.1f}"


def claim_comparisons(df: pd.DataFrame, scores: ItemScores | None = None) -> list[Comparison]:
    """Our side of Table 4, per task and variant, at each method's last checkpoint:

    * gain / h2h: a − b at full sampling steps;
    * drop: a's accuracy at full steps − at full/4 (> 0: a loses accuracy);
    * did: a's drop − b's drop, for every other method b with both steps values.

    Points come from the cells' accuracies (as in Tables 1 and 3). The CI pairs the same test items: each
    method's per-item scores are averaged over its run seeds and eval seeds (item_means), then paired_diff_ci /
    diff_in_diff_ci; generations are read lazily, once per cell, and a cell without them leaves ci None. Per run
    seed r of a: the same difference from a's seed-r cells and b's seed-r cells, or all of b's cells where b has
    no seed r (base).
    """
    last = last_checkpoints(df)
    acc = last.set_index(["method", "task", "variant", "steps"])["accuracy"]
    rob = step_robustness(last).set_index(["method", "task", "variant"])
    d = _with_variant(df)
    d = d[d["train_step"] == d.groupby("method")["train_step"].transform("max")]
    full_steps = _full_steps(last).groupby([last["task"], last["variant"]]).first()
    cell_scores = scores or ItemScores()

    def cells(m, key, steps) -> pd.DataFrame:
        return d[(d["method"] == m) & (d["task"] == key[0]) & (d["variant"] == key[1]) & (d["steps"] == steps)]

    def method_scores(g: pd.DataFrame) -> dict | None:
        per = [cell_scores(r) for r in g.to_dict("records")]
        if any(p is None for p in per):
            return None
        return item_means(per, [str(r.get("file", "?")) for r in g.to_dict("records")])

    def seed_acc(g: pd.DataFrame, r) -> float:
        own = g[g["run_seed"] == r]
        return (own if len(own) else g)["accuracy"].mean()

    def compare(c: Comparison, terms: list[tuple[str, int]]) -> Comparison:
        """terms: (method, steps) of a_full, b_full (gain, h2h) or a_full, a_fast, b_full, b_fast (drop, did)."""
        key = (c.task, c.variant)
        if any((m, *key, s) not in acc.index for m, s in terms):
            return c
        signs = [1, -1] if len(terms) == 2 else [1, -1, -1, 1]
        c.point = float(sum(sg * acc[(m, *key, s)] for sg, (m, s) in zip(signs, terms)))
        groups = [cells(m, key, s) for m, s in terms]
        c.per_seed = {int(r): float(sum(sg * seed_acc(g, r) for sg, g in zip(signs, groups)))
                      for r in sorted(groups[0]["run_seed"].unique())}
        per_item = [method_scores(g) for g in groups]
        if all(s is not None for s in per_item):
            names = [f"{m} at {s} steps" for m, s in terms]
            ids = per_item[0]
            for s, name in zip(per_item[1:], names[1:]):
                same_ids(ids, s, names[0], name)
            cols = [[s[i] for i in ids] for s in per_item]
            c.ci = paired_diff_ci(*cols) if len(cols) == 2 else diff_in_diff_ci(*cols)
        return c

    def fast(m, key) -> tuple[int, int] | None:
        """(full, full/4) steps of m, or None where full/4 is not in its grid."""
        if (m, *key) not in rob.index or pd.isna(rob.loc[(m, *key), "quarter_steps"]):
            return None
        return int(rob.loc[(m, *key), "full_steps"]), int(rob.loc[(m, *key), "quarter_steps"])

    out = []
    for key in sorted(set(zip(last["task"], last["variant"]))):
        full = int(full_steps[key])
        pairs = [("gain", "agrpo", "base"), ("gain", "diffu_grpo", "base")]
        pairs += [("h2h", "agrpo", m) for m in _methods(last["method"]) if m not in ("base", "agrpo")]
        for kind, a, b in pairs:
            out.append(compare(Comparison(kind, a, b, *key, (full, None)), [(a, full), (b, full)]))
        fa = fast("agrpo", key)
        if fa is None:
            out.append(Comparison("drop", "agrpo", None, *key, (full, None)))
            continue
        out.append(compare(Comparison("drop", "agrpo", None, *key, fa), [("agrpo", fa[0]), ("agrpo", fa[1])]))
        for m in _methods(last["method"]):
            fb = fast(m, key) if m != "agrpo" else None
            if fb:
                out.append(compare(Comparison("did", "agrpo", m, *key, fa),
                                   [("agrpo", fa[0]), ("agrpo", fa[1]), (m, fb[0]), (m, fb[1])]))
    return out


def _ours(c: Comparison) -> str:
    if c.point is None:
        return "not run"
    if c.ci is None:
        return f"{_pts(c.point)}, CI n/a (no per-item scores)"
    return f"{_pts(c.point)} [{_pts(c.ci.low)}, {_pts(c.ci.high)}]"


def claims_table(comps: list[Comparison], ref: pd.DataFrame | None) -> pd.DataFrame:
    """The papers' claims beside ours (claim_comparisons): difference [95% CI], per run seed, verdict; points."""
    rows = []
    for c in comps:
        t = PAPER_TASK.get(c.task, "")
        paper, src = {"gain": lambda: _paper_gain(ref, c.a, t), "h2h": lambda: _paper_head_to_head(ref, t, c.b),
                      "drop": lambda: _paper_speedup(ref), "did": lambda: ("–", "")}[c.kind]()
        seeds = ", ".join(f"seed{r} {_pts(v)}" for r, v in c.per_seed.items()) or "–"
        rows.append([c.claim, c.task + _suffix(c.variant), t or "–", paper, src or "–", _ours(c), seeds, c.verdict])
    return pd.DataFrame(rows, columns=["claim", "our task", "paper task", "paper (points)", "paper source [flag]",
                                       "ours: difference [95% CI] (points)", "ours per run seed", "verdict"])


def claim_answers(comps: list[Comparison]) -> list[str]:
    """One plain sentence per claim and task, made from the numbers of claim_comparisons."""
    out = []
    for c in comps:
        head = f"{c.task}{_suffix(c.variant)}: {c.question}: "
        if c.point is None:
            out.append(head + "not run.")
        else:
            ci = f" [{_pts(c.ci.low)}, {_pts(c.ci.high)}]" if c.ci is not None else ""
            out.append(f"{head}{_pts(c.point)} points{ci}: {c.verdict}.")
    return out


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


def claim_summary(comps: list[Comparison]) -> list[str]:
    """The issue's two questions, counted over (task, gen length) settings from claim_comparisons: does AGRPO
    beat each baseline at equal rollouts (h2h), and does it lose less than each when steps drop 4x (did)."""
    out = []
    for kind, question, words in (
            ("h2h", "AGRPO vs {b} at equal rollouts, full sampling steps", ("AGRPO higher", "AGRPO lower")),
            ("did", "accuracy drop at 4x fewer sampling steps, AGRPO's minus {b}'s",
             ("AGRPO drops more", "AGRPO drops less"))):
        for b in dict.fromkeys(c.b for c in comps if c.kind == kind):
            cs = [c for c in comps if c.kind == kind and c.b == b and c.point is not None]
            with_ci = [c for c in cs if c.ci is not None]
            if not cs:
                continue
            same = [c for c in with_ci if c.ci.low == c.ci.high == 0]
            up = [c for c in with_ci if c.ci.sign > 0]
            down = [c for c in with_ci if c.ci.sign < 0]
            where = lambda xs: " (" + ", ".join(f"{c.task}{_suffix(c.variant)} {_pts(c.point)}" for c in xs) + ")" if xs else ""  # noqa: E731
            text = (f"{question.format(b=_name(b))}: of {len(cs)} task × length settings, {words[0]} (CI excludes 0) "
                    f"in {len(up)}{where(up)}, {words[1]} in {len(down)}{where(down)}, no detectable difference in "
                    f"{len(with_ci) - len(up) - len(down) - len(same)}")
            if same:
                text += f", identical per-item scores in {len(same)}{where(same)}"
            if len(with_ci) < len(cs):
                text += f", no per-item scores in {len(cs) - len(with_ci)}"
            out.append(text + ".")
    return out


# ------------------------------------------------------------------------------------------------ markdown

def md_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table ('|' in cells escaped)."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}"


def _acc_ci(r) -> str:
    sd = f" ± {100 * r['acc_sd']:.1f}" if r["cells"] > 1 else ""
    return f"{_pct(r['accuracy'])}{sd} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"


def _suffix(var: str) -> str:
    return f" ({var})" if var else ""


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
                            + [_acc_ci(dm.loc[t]) if t in dm.index else "–" for t in tasks])
            L = sorted(dv["gen_length"].unique())
            tokens = L[0] / steps if len(L) == 1 else None
            per_step = f", {tokens:g} token{'s' if tokens != 1 else ''} per step" if tokens else ""
            title = f"{steps} sampling steps{per_step}"
            if (dv["threshold"] > 0).all():  # threshold decoding: the rows choose their own number of passes
                title = f"threshold decoding, at most {steps} passes (measured NFE: summary.csv)"
            out += [f"### {title}{_suffix(var)}", "",
                    md_table(["method", "checkpoint", "run seeds"] + tasks, rows), ""]
    return out


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


def render_markdown(df: pd.DataFrame, ref: pd.DataFrame | None, profile: str, title: str | None = None,
                    scores: ItemScores | None = None) -> str:
    """The text of report.md (pure: depends only on the cells, their generations.jsonl and the reference numbers)."""
    scores = scores or ItemScores()
    last = last_checkpoints(df)
    std = standard_sampler(df)
    comps = claim_comparisons(std, scores)
    lines = [f"# {title or f'AGRPO and its baselines — {profile} profile'}", "", _provenance(df, profile), "",
             "All checkpoints are reported, no best-of selection: every cell is a row of `summary.csv`. Tables 1, 3 "
             "and 4 use each method's last checkpoint; accuracies are means over run seeds and eval seeds, with the "
             "mean of the cells' 95% CIs in brackets and ± the standard deviation across cells where there are "
             "several.", "",
             "## Table 1. Accuracy (%) by method and task, 95% CI", ""]
    lines += _table1(last)
    lines += ["## Table 2. Accuracy (%) vs RL training step, at full sampling steps", ""]
    lines += _table2(training_curves(df))
    lines += ["## Table 3. Step robustness (AGRPO v2: \"4x faster with minimal performance sacrifices\")", "",
              _table3(step_robustness(last_checkpoints(std))), "",
              "## Table 4. The paper's claims beside ours", "", SCALE_NOTE, "",
              "Paper numbers come from `results/reference/paper_numbers.csv` (flags as in its README); 'derived' "
              "marks arithmetic done here on those numbers." + ("" if ref is not None else
                                                                " No reference CSV was given."), "",
              "Ours: the papers' sampler (no cache, no threshold decoding; Table 5 has those); last checkpoints, "
              "accuracy points; differences at full sampling steps, and drops = accuracy at "
              "full steps − at full/4 (> 0: a loss). The 95% CI is paired over the same test items: each method's "
              "per-item scores (`generations.jsonl`) are averaged over its run seeds and eval seeds, then "
              "d̄ ± 1.96·s_d/√n over the per-item differences dᵢ (for 'A − B' drops, dᵢ = (A_full − A_fast) − "
              "(B_full − B_fast)). It counts item-level variation only, holding the trained runs fixed; the "
              "per-run-seed column, the same difference for each run seed of the first method (a method without "
              "that run seed, such as base, enters with all its cells), is the check on seed-to-seed variation.",
              "",
              md_table(*_frame_rows(claims_table(comps, ref))), "",
              "**Answers at this scale** (generated from the numbers above; each CI at 95%, so about 1 in 20 "
              "comparisons without a real difference still excludes 0):", "",
              *[f"- {a}" for a in claim_summary(comps)], "",
              "Per task and length:", "",
              *[f"- {a}" for a in claim_answers(comps)], "",
              "## Table 5. Fast-dLLM accelerations against plain sampling, over the whole grid", "",
              "Every checkpoint, method and task: each prefix-cache or threshold-decoding cell is paired with the "
              "plain cell of the same model and task (the cache at the same steps; threshold decoding against plain "
              "sampling at L/2 and at L steps). Ratios are plain ÷ accelerated (> 1: the acceleration is cheaper); "
              "passes are exact (NFE), wall seconds are as the cells recorded them (concurrent jobs on one device "
              "make them noisy: `docs/performance.md` times them in isolation). The CI pairs (cell, item) "
              "pairs, so it counts item-level variation over these models, not run-to-run variation.", "",
              *_table5(acceleration_rows(df, scores)),
              "## Plots", "",
              "![accuracy vs sampling steps](plots/acc_vs_steps.png)", "",
              "![accuracy vs estimated FLOPs per item](plots/acc_vs_flops.png)", "",
              "![accuracy vs RL training step](plots/acc_vs_train_step.png)", ""]
    return "\n".join(lines)


def _frame_rows(d: pd.DataFrame) -> tuple[list[str], list[list]]:
    return list(d.columns), d.values.tolist()


# ---------------------------------------------------------------------------------------------------- plots

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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _threshold_part(variant: str) -> str | None:
    """The 'threshold=τ' part of a variant label when τ > 0 (confidence-threshold decoding), else None."""
    return next((p for p in variant.split(", ") if p.startswith("threshold=") and p != "threshold=0"), None)


def _panel(variant: str) -> str:
    """The variant label without its threshold: threshold cells share the panel of plain sampling."""
    return ", ".join(p for p in variant.split(", ") if p and not p.startswith("threshold="))


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
            y = 100 * d["accuracy"]
            err = [(y - 100 * d["ci_low"]).clip(lower=0), (100 * d["ci_high"] - y).clip(lower=0)]
            style = dict(marker="*", markersize=11, linestyle="none") if thr > 0 else dict(marker="o")
            ax.errorbar(xs, y, yerr=err, capsize=3, color=colors[m], **style,
                        label=f"{m} (step{int(d['train_step'].max())})" + (f", threshold {thr:g}" if thr > 0 else ""))
        ax.set_xscale("log", base=base)
        if x == "steps":
            ticks = sorted(last["steps"].unique())
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(t) for t in ticks])
        ax.set(title=f"{task}{_suffix(row)}", xlabel=xlabel, ylabel="accuracy (%)")
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
            ax.plot(d["train_step"], 100 * d["accuracy"], marker="s" if m == "base" else "o", color=colors[m],
                    linestyle="--" if thr else "-", label=m + (f", {thr.replace('=', ' ')}" if thr else ""))
        steps = sorted(here["steps"].unique())
        ax.set(title=f"{task}{_suffix(row)}", xlabel="RL train step (rollout batches)",
               ylabel=f"accuracy (%) at {'/'.join(map(str, steps))} steps")
    return _finish(fig, axes, f"{profile}: accuracy vs training step at full sampling steps (base = step 0)")


# ---------------------------------------------------------------------------------------------------- writing

def write_report(df: pd.DataFrame, out_dir: Path, reference_csv: Path | None, profile: str,
                 title: str | None = None) -> None:
    """Write summary.csv, report.md, plots/acc_vs_{steps,flops,train_step}.png and item_scores.csv.gz (the
    per-item scores of cells with generations; gzip without a timestamp: identical cells, identical bytes with
    the same zlib) under `out_dir`, atomically.

    `df` comes from load_cells (run check_complete first). A given reference_csv must exist; None omits the
    papers' numbers from the claims table.
    """
    if df.empty:
        raise ValueError("no cells to report")
    out_dir = Path(out_dir)
    ref = load_reference(reference_csv) if reference_csv is not None else None
    last = last_checkpoints(df)
    csv_text = summary_table(df).to_csv(index=False, lineterminator="\n")
    scores = ItemScores()  # Tables 4 and 5 and item_scores.csv.gz read each generations.jsonl once between them
    md_text = render_markdown(df, ref, profile, title, scores)
    plots = {"acc_vs_steps": _plot_vs(last, "steps", "sampling steps (log2)", 2, profile),
             "acc_vs_flops": _plot_vs(last, "flops_per_item", "estimated FLOPs per item (log10)", 10, profile),
             "acc_vs_train_step": _plot_train(training_curves(df), profile)}
    for name, png in plots.items():
        atomic_write_bytes(out_dir / "plots" / f"{name}.png", png)
    items = item_score_table(df, scores).to_csv(index=False, lineterminator="\n").encode("utf-8")
    atomic_write_bytes(out_dir / "item_scores.csv.gz", gzip.compress(items, mtime=0))
    atomic_write_bytes(out_dir / "summary.csv", csv_text.encode("utf-8"))
    atomic_write_bytes(out_dir / "report.md", md_text.encode("utf-8"))
