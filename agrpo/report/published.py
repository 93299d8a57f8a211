"""The published numbers that Table P1 puts beside ours: which paper each row of ``paper_numbers.csv`` comes from,
the test set behind it, and how our task names map onto the CSV's task keys (explicitly: a test set that differs
from ours marks the cell, it is never compared silently)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from agrpo.report.claims import PAPER_METHOD


# our task → (paper_numbers.csv task key, our test set). gsm8k_platinum and sudoku_spg (the AGRPO protocol's test
# sets) are compared with the CSV's gsm8k and sudoku rows, which d1 measured on other test sets: footnoted.
REFERENCE_TASK = {
    "gsm8k": ("gsm8k", "GSM8K test (1,319 questions)"),
    "gsm8k_platinum": ("gsm8k", "GSM8K-Platinum"),
    "math500": ("math500", "MATH-500"),
    "countdown": ("countdown", "Countdown cd3 test (256)"),
    "sudoku": ("sudoku", "d1's Sudoku split (256 puzzles)"),
    "sudoku_spg": ("sudoku", "SPG's Sudoku split (256 puzzles, 3-shot)"),
}

D1_TEST_SETS = {"gsm8k": "GSM8K test (1,319 questions)", "math500": "MATH-500", "countdown": "Countdown cd3 test (256)",
                "sudoku": "d1's Sudoku split (256 puzzles)"}


@dataclass(frozen=True)
class Source:
    """A paper whose numbers may stand beside ours. `match`: the CSV rows whose ``source`` contains it; `own`: our
    methods it introduces (they get its row even where it published no number); `protocol`: whose prompts and
    judges its numbers use; `test_sets`: CSV task key → test set; `checkpoint`: which checkpoint it reports."""
    label: str
    match: str
    own: tuple[str, ...]
    protocol: str
    test_sets: dict
    checkpoint: str


SOURCES = (
    Source("d1 Table 1", "d1 paper Table 1", ("diffu_grpo", "d1"), "d1", D1_TEST_SETS,
           "the best checkpoint per length (d1 §4.6)"),
    Source("d1 released eval", "d1 released evaluation", (), "d1",
           D1_TEST_SETS | {"gsm8k": "GSM8K test, 1,130 of its 1,319 questions"}, "the base model only"),
    Source("AGRPO paper", "AGRPO", ("agrpo",), "agrpo",   # test sets of its released eval (agrpo.md §4.1)
           {"gsm8k": "GSM8K-Platinum", "math500": "MATH-500", "countdown": "Countdown cd3 test (256)",
            "sudoku": "SPG's Sudoku split (256 puzzles, 3-shot)"}, "not stated"),
    Source("SPG paper", "SPG paper", ("spg",), "d1",
           D1_TEST_SETS | {"sudoku": "SPG's Sudoku split (256 puzzles, 3-shot)"},
           "the base model only"),   # SPG's own method: no per-length numbers in the reference notes
)


def source_rows(ref: pd.DataFrame | None, source: Source) -> pd.DataFrame:
    """The CSV rows of one source (none without a reference CSV)."""
    if ref is None:
        return pd.DataFrame(columns=["source", "method", "task", "gen_length", "metric", "value", "flag", "note"])
    return ref[ref["source"].str.contains(source.match, regex=False)]


def per_length_accuracy(ref: pd.DataFrame | None, source: Source, method: str) -> pd.DataFrame:
    """A source's accuracies of our `method` (PAPER_METHOD's name) that state a gen length."""
    rows = source_rows(ref, source)
    rows = rows[(rows["metric"] == "accuracy") & (rows["method"] == PAPER_METHOD.get(method, method))]
    return rows[rows["gen_length"].notna()]


def test_set_note(source: Source, task: str) -> str | None:
    """'published on X, ours on Y' where the source's test set for our `task` is not ours; None where equal."""
    ref_task, ours = REFERENCE_TASK.get(task, (None, None))
    theirs = source.test_sets.get(ref_task)
    if ours is None or theirs is None or theirs == ours:
        return None
    return f"{source.label}: published on {theirs}, ours on {ours}"


def sources_lines(ref: pd.DataFrame | None) -> list[str]:
    """What each source holds in paper_numbers.csv (per-length accuracies, other numbers, or none)."""
    if ref is None:
        return ["No reference CSV was given: no published numbers."]
    ours = {v: k for k, v in PAPER_METHOD.items()}
    lines = []
    for s in SOURCES:
        rows = source_rows(ref, s)
        acc = rows[(rows["metric"] == "accuracy") & rows["gen_length"].notna()]
        parts = []
        if len(acc):
            names = [f"{m}" + ("" if m in ours else " (no method of ours)") for m in dict.fromkeys(acc["method"])]
            lengths = "/".join(str(int(L)) for L in sorted(acc["gen_length"].unique()))
            parts.append(f"accuracies at L = {lengths} for {', '.join(names)}; {s.checkpoint}")
        other = rows.drop(acc.index)
        no_length = other[other["metric"] == "accuracy"]
        if len(no_length):
            parts.append("accuracy without a stated length: " + "; ".join(
                f"{r.method} {r.task or '(task not stated)'} {r.value:g}" for r in no_length.itertuples()))
        rest = other.drop(no_length.index)
        if len(rest):
            metrics = ", ".join(dict.fromkeys(rest["metric"]))
            parts.append(f"{len(rest)} other numbers ({metrics}), compared in Table 4")
        lines.append(f"{s.label}: " + (" — ".join(parts) if parts else "no numbers in paper_numbers.csv") + ".")
    return lines
