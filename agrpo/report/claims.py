"""The papers' claims against ours: the published numbers (``results/reference``), paired differences with
95% CIs over test items (Table 4), verdicts, and the generated answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agrpo.stats import DiffCI, diff_in_diff_ci, item_means, paired_diff_ci, same_ids
from agrpo.report.cells import _methods, ItemScores
from agrpo.report.tables import _full_steps, _suffix, last_checkpoint_cells, last_checkpoints, step_robustness


PAPER_METHOD = {"base": "LLaDA-8B-Instruct", "agrpo": "AGRPO", "diffu_grpo": "diffu-GRPO", "d1": "d1-LLaDA", "wd1": "wd1"}


PAPER_TASK = {"tiny_arith": "gsm8k", "tiny_countdown": "countdown", "tiny_sudoku": "sudoku",
              "gsm8k": "gsm8k", "math500": "math500", "countdown": "countdown", "sudoku": "sudoku",
              "gsm8k_platinum": "gsm8k", "sudoku_spg": "sudoku"}  # AGRPO's test sets: compared with the papers' tasks


REFERENCE_COLUMNS = ["source", "method", "task", "gen_length", "metric", "value", "flag", "note"]


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


NAMES = {"base": "base", "agrpo": "AGRPO", "diffu_grpo": "diffu-GRPO", "d1": "d1", "wd1": "wd1"}


VERDICTS = {"diff": {1: "{a} higher", 0: "no detectable difference", -1: "{a} lower"},
            "drop": {1: "{a} loses accuracy", 0: "no detectable drop", -1: "{a} gains accuracy"},
            "did": {1: "{a} drops more than {b}", 0: "no detectable difference", -1: "{a} drops less than {b}"}}


def _name(m: str) -> str:
    return NAMES.get(m, m)


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


def method_item_scores(cells: pd.DataFrame, scores: ItemScores) -> dict | None:
    """{item id: score} of one method's cells averaged over their run and eval seeds (item_means); None where a
    cell has no generations.jsonl."""
    rows = cells.to_dict("records")
    per = [scores(r) for r in rows]
    if not per or any(p is None for p in per):
        return None
    return item_means(per, [str(r.get("file", "?")) for r in rows])


def paired_ci(groups: list[pd.DataFrame], names: list[str], scores: ItemScores) -> DiffCI | None:
    """95% CI paired over the same test items of g₀ − g₁ (two groups of cells) or (g₀ − g₁) − (g₂ − g₃) (four),
    each group's per-item scores from method_item_scores; None where a cell has no per-item scores. Raises
    ValueError naming the groups when they are not over the same items."""
    per_item = [method_item_scores(g, scores) for g in groups]
    if any(s is None for s in per_item):
        return None
    ids = per_item[0]
    for s, name in zip(per_item[1:], names[1:]):
        same_ids(ids, s, names[0], name)
    cols = [[s[i] for i in ids] for s in per_item]
    return paired_diff_ci(*cols) if len(cols) == 2 else diff_in_diff_ci(*cols)


def claim_comparisons(df: pd.DataFrame, scores: ItemScores | None = None, divisor: int = 1) -> list[Comparison]:
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
    rob = step_robustness(last, divisor).set_index(["method", "task", "variant"])
    d = last_checkpoint_cells(df)
    full_steps = _full_steps(last, divisor).groupby([last["task"], last["variant"]]).first()
    cell_scores = scores or ItemScores()

    def cells(m, key, steps) -> pd.DataFrame:
        return d[(d["method"] == m) & (d["task"] == key[0]) & (d["variant"] == key[1]) & (d["steps"] == steps)]

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
        c.ci = paired_ci(groups, [f"{m} at {s} steps" for m, s in terms], cell_scores)
        return c

    def fast(m, key) -> tuple[int, int] | None:
        """(full, full/4) steps of m, or None where full/4 is not in its grid."""
        if (m, *key) not in rob.index or pd.isna(rob.loc[(m, *key), "quarter_steps"]):
            return None
        return int(rob.loc[(m, *key), "full_steps"]), int(rob.loc[(m, *key), "quarter_steps"])

    out = []
    for key in sorted(set(zip(last["task"], last["variant"]))):
        full = int(full_steps[key])
        pairs = [("gain", m, "base") for m in _methods(last["method"]) if m != "base"]
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


def steps_phrase(divisor: int) -> str:
    """The sampling steps the claims are answered at (eval.claims_steps_divisor), in words."""
    if divisor == 1:
        return "full sampling steps"
    return f"steps L/{divisor}" + (" (the papers' sampler)" if divisor == 2 else "")


def claim_summary(comps: list[Comparison], divisor: int = 1) -> list[str]:
    """The issue's two questions, counted over (task, gen length) settings from claim_comparisons: does AGRPO
    beat each baseline at equal rollouts (h2h), and does it lose less than each when steps drop 4x (did)."""
    out = []
    for a in dict.fromkeys(c.a for c in comps if c.kind == "gain"):
        gains = [c for c in comps if c.kind == "gain" and c.a == a]
        out += _counted([c for c in gains if c.point is not None],
                        f"{_name(a)} vs base, {steps_phrase(divisor)}", (f"{_name(a)} higher", f"{_name(a)} lower"))
    for kind, question, words in (
            ("h2h", "AGRPO vs {b} at equal rollouts, " + steps_phrase(divisor), ("AGRPO higher", "AGRPO lower")),
            ("did", "accuracy drop at 4x fewer sampling steps, AGRPO's minus {b}'s",
             ("AGRPO drops more", "AGRPO drops less"))):
        for b in dict.fromkeys(c.b for c in comps if c.kind == kind):
            cs = [c for c in comps if c.kind == kind and c.b == b and c.point is not None]
            out += _counted(cs, question.format(b=_name(b)), words)
    return out


def _counted(cs: list[Comparison], question: str, words: tuple[str, str]) -> list[str]:
    """One summary sentence: of the settings in cs, how many CIs exclude 0 upwards, downwards, neither."""
    if not cs:
        return []
    with_ci = [c for c in cs if c.ci is not None]
    same = [c for c in with_ci if c.ci.low == c.ci.high == 0]
    up = [c for c in with_ci if c.ci.sign > 0]
    down = [c for c in with_ci if c.ci.sign < 0]
    where = lambda xs: " (" + ", ".join(f"{c.task}{_suffix(c.variant)} {_pts(c.point)}" for c in xs) + ")" if xs else ""  # noqa: E731
    text = (f"{question}: of {len(cs)} task × length settings, {words[0]} (CI excludes 0) "
            f"in {len(up)}{where(up)}, {words[1]} in {len(down)}{where(down)}, no detectable difference in "
            f"{len(with_ci) - len(up) - len(down) - len(same)}")
    if same:
        text += f", identical per-item scores in {len(same)}{where(same)}"
    if len(with_ci) < len(cs):
        text += f", no per-item scores in {len(cs) - len(with_ci)}"
    return [text + "."]
