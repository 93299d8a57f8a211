"""The four real tasks (GSM8K, MATH-500, Countdown, 4×4 Sudoku), each under the `d1` or the `agrpo` protocol.

A task instance is (dataset, protocol, stage): ``get_task("gsm8k", protocol="agrpo")``; ``stage="train"`` gives the
prompts RL trains on (d1: its training prompts, which differ from its evaluation prompts; AGRPO: the same) and the
protocol's training split (``train_filter``). Examples are normalised to the
fields `agrpo score` reads — gsm8k: ``question``, ``answer`` (with ``####``); math500: ``problem``, ``answer``;
countdown: ``numbers``, ``target``; sudoku: ``puzzle``, ``solution`` — plus ``id``. Datasets load through
``datasets`` from a local file (.jsonl/.json/.csv) or a hub id. Prompts, judges and rewards live in
``d1_protocol`` and ``agrpo_protocol``; docs/tasks.md lists the sources and every difference between the two.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agrpo.tasks import agrpo_protocol as A
from agrpo.tasks import d1_protocol as D
from agrpo.tasks.base import Task, Verdict

PROTOCOLS = ("d1", "agrpo")
STAGES = ("eval", "train")
D1_SPLIT_SEED, D1_HELD_OUT = 42, 500  # d1's diffu_grpo_train.py: dataset.shuffle(seed=42), last 500 held out
MAX_COMPLETION_CHARS = 20_000


def load_rows(source: str, split: str = "test", config: str | None = None) -> list[dict]:
    """Rows of a local .jsonl/.json/.csv file (CSV columns kept as strings), or of a hub dataset split."""
    import datasets

    path = Path(source)
    if path.is_file():
        if path.suffix in (".jsonl", ".json"):
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        elif path.suffix == ".csv":
            import csv

            with path.open(newline="", encoding="utf-8") as f:
                header = next(csv.reader(f))
            features = datasets.Features({c: datasets.Value("string") for c in header})
            ds = datasets.load_dataset("csv", data_files=str(path), split="train", features=features)
        else:
            raise ValueError(f"{path}: expected a .jsonl, .json or .csv file")
    elif path.suffix in (".jsonl", ".json", ".csv"):
        raise FileNotFoundError(f"{source}: no such data file")
    else:
        ds = datasets.load_dataset(source, config, split=split)
    return [dict(r) for r in ds]


def d1_shuffled_train(examples: list[dict]) -> list[dict]:
    """d1's Countdown/Sudoku training split: ``Dataset.shuffle(seed=42)`` (NumPy ``default_rng(42).permutation``,
    as ``datasets`` does), then every row but the last 500 (held out by d1 for evaluation)."""
    import numpy as np

    order = np.random.default_rng(D1_SPLIT_SEED).permutation(len(examples))
    return [examples[i] for i in order[: max(0, len(examples) - D1_HELD_OUT)]]


def _id(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


class RealTask(Task):
    """Shared machinery; subclasses set ``name``, ``family``, ``source`` and implement ``normalise``."""

    source: str = ""  # default test source: hub id (a local path works too)
    config: str | None = None
    split: str = "test"
    train_source: str = ""  # default train source (AGRPO protocol)
    train_config: str | None = None
    d1_train_source: str | None = None  # d1's own train source where it differs (None = train_source)

    def __init__(self, protocol: str = "d1", source: str | None = None, train_source: str | None = None,
                 stage: str = "eval"):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.protocol, self.stage = protocol, stage
        self.data_source = source or self.source
        default_train = self.d1_train_source if protocol == "d1" and self.d1_train_source is not None else self.train_source
        self.data_train_source = train_source or default_train

    # ------------------------------------------------------------------ data
    def normalise(self, row: dict) -> dict:
        raise NotImplementedError

    def select(self, examples: list[dict]) -> list[dict]:
        """The evaluated subset (all, unless the papers evaluate a sample)."""
        return examples

    def train_filter(self, examples: list[dict]) -> list[dict]:
        """The training split as AGRPO builds it from the raw training rows."""
        return examples

    def d1_train_filter(self, examples: list[dict]) -> list[dict]:
        """The training split as d1 builds it (``diffu_grpo_train.py``); the whole set unless a task says more."""
        return examples

    def test_examples(self) -> list[dict]:
        if not self.data_source:
            raise ValueError(f"{self.name}: no test source; set data.sources['{self.name}/test'] to a file or hub id")
        return self.select([self.normalise(r) for r in load_rows(self.data_source, "test", self.config)])

    def examples(self, split: str = "test", n: int | None = None, seed: int = 0) -> list[dict]:
        """The test set (all items unless the paper samples), or the first ``n`` training items after the
        papers' filters (the trainer shuffles)."""
        if split == "test":
            rows = self.test_examples()
        else:
            if not self.data_train_source:
                raise ValueError(f"{self.name}: no train source; set data.sources['{self.name}/train']")
            raw = load_rows(self.data_train_source, "train", self.train_config)
            examples = [self.normalise(r) for r in raw]
            rows = self.d1_train_filter(examples) if self.protocol == "d1" else self.train_filter(examples)
        return rows[:n] if n else rows

    # ------------------------------------------------------------------ prompts
    def messages(self, ex: dict) -> list[dict]:
        if self.protocol == "d1":
            message = D.train_user_message if self.stage == "train" else D.user_message
            return [{"role": "user", "content": message(self.family, ex)}]
        return A.messages(self.family, ex)  # AGRPO trains on its evaluation prompts

    @property
    def assistant_prefix(self) -> str:
        return D.ASSISTANT_PREFIX if self.protocol == "d1" and self.stage == "eval" else ""

    def prompt(self, ex: dict) -> str:
        """Plain-text rendering for tokenizers without a chat template: turns joined by blank lines, then the
        assistant prefix. Chat models render ``messages`` with their template instead."""
        return "\n\n".join(m["content"] for m in self.messages(ex)) + "\n\n" + self.assistant_prefix

    def reference_completion(self, ex: dict) -> str:
        raise NotImplementedError(f"{self.name}: real tasks have no synthetic reference traces")

    # ------------------------------------------------------------------ judging
    def judge(self, completion: str, ex: dict) -> Verdict:
        """The protocol's verdict; completions beyond MAX_COMPLETION_CHARS are judged false unparsed (no
        generation of ≤ 4,096 tokens is that long, and the protocols' regexes are quadratic in the worst case)."""
        if len(completion) > MAX_COMPLETION_CHARS:
            extra = {"correct_cells": 0, "empty_cells": ex["puzzle"].count("0")} if self.family == "sudoku" else {}
            return Verdict(False, 0.0, None, f"completion of {len(completion)} characters exceeds "
                           f"{MAX_COMPLETION_CHARS}; not parsed", extra=extra)
        return self._judge(completion, ex)

    def reward(self, completion: str, ex: dict, **options) -> float:
        if len(completion) > MAX_COMPLETION_CHARS:
            return 0.0
        return float(self._reward(completion, ex, **options))


class GSM8K(RealTask):
    name, family, source, config = "gsm8k", "gsm8k", "openai/gsm8k", "main"
    train_source, train_config = "openai/gsm8k", "main"

    def normalise(self, row):
        return {"id": _id(row["question"]), "question": row["question"], "answer": row["answer"]}

    def _judge(self, completion, ex):
        if self.protocol == "d1":
            score, parsed, reason = D.judge_gsm8k(completion, D.gsm8k_gold(ex["answer"]))
        else:  # the released eval: <answer> → \boxed{} → first integer, then math-verify
            score, parsed, reason = A.judge_math(completion, A.gsm8k_gold(ex["answer"]), first_integer=True)
        return Verdict(score == 1.0, score, parsed, reason)

    def _reward(self, completion, ex, **options):
        if self.protocol == "d1":
            return D.gsm8k_reward(completion, ex["answer"])
        return A.math_reward(completion, A.gsm8k_gold(ex["answer"]))


class GSM8KPlatinum(GSM8K):
    """GSM8K-Platinum (the cleaned test set AGRPO's released eval uses)."""
    name, source, config = "gsm8k_platinum", "madrylab/gsm8k-platinum", None  # as AGRPO loads it (no config)


class MATH500(RealTask):
    name, family, source = "math500", "math", "HuggingFaceH4/MATH-500"
    train_source = "qwedsacf/competition_math"
    d1_train_source = "ankner/math-500"  # d1: its train split (MATH train minus MATH-500, every level)

    def normalise(self, row):
        from agrpo.tasks.judging import first_boxed

        answer = row.get("answer")
        if answer is None:  # MATH train rows: the answer is the solution's first \boxed{} (AGRPO's extract_boxed)
            answer = first_boxed(row.get("solution", "")) or ""
        ex = {"id": row.get("unique_id") or _id(row["problem"]), "problem": row["problem"], "answer": answer}
        for key in ("solution", "level"):
            if key in row:
                ex[key] = row[key]
        return ex

    def train_filter(self, examples):
        """MATH train minus every MATH-500 problem minus Level 5 ("too hard for LLaDA"), rows with an answer."""
        test = {e["problem"] for e in self.test_examples()}
        level_ok = lambda lv: str(lv)[-1:].isdigit() and int(str(lv)[-1]) <= 4  # noqa: E731
        return [e for e in examples if e["problem"] not in test and level_ok(e.get("level", "")) and e["answer"]]

    def _judge(self, completion, ex):
        if self.protocol == "d1":
            score, parsed, reason = D.judge_math(completion, ex["answer"])
        else:
            score, parsed, reason = A.judge_math(completion, ex["answer"])
        return Verdict(score == 1.0, score, parsed, reason)

    def _reward(self, completion, ex, math_boxed_backspace: bool = False, **options):
        if self.protocol == "d1":
            return D.math_reward(completion, ex.get("solution") or ex["answer"], math_boxed_backspace)
        return A.math_reward(completion, ex["answer"])


class Countdown(RealTask):
    name, family = "countdown", "countdown"
    source = ""  # the cd3 test file (d1's dataset/countdown_cd3_test.jsonl) is not on the hub: give its path
    train_source = "Jiayi-Pan/Countdown-Tasks-3to4"
    train_rows = 20_000

    def train_filter(self, examples):
        """The first 20,000 rows, 3-number problems only, minus any whose number tuple is a test problem's."""
        test = {tuple(e["numbers"]) for e in self.test_examples()}
        return [e for e in examples[: self.train_rows] if len(e["numbers"]) == 3 and tuple(e["numbers"]) not in test]

    def d1_train_filter(self, examples):
        """d1: every 3-number row, shuffled with seed 42, minus the last 500 (no test-overlap filter)."""
        return d1_shuffled_train([e for e in examples if len(e["numbers"]) == 3])

    def normalise(self, row):
        if "input" in row:  # cd3 test file: {"input": "a,b,c", "output": "t"}
            numbers, target = [int(x) for x in str(row["input"]).split(",")], int(row["output"])
        elif "nums" in row:  # Countdown-Tasks-3to4
            numbers, target = [int(x) for x in row["nums"]], int(row["target"])
        else:
            numbers, target = [int(x) for x in row["numbers"]], int(row["target"])
        return {"id": _id(numbers, target), "numbers": numbers, "target": target}

    def _judge(self, completion, ex):
        mod = D if self.protocol == "d1" else A
        score, parsed, reason = mod.judge_countdown(completion, ex["numbers"], ex["target"])
        return Verdict(score == 1.0, score, parsed, reason)

    def _reward(self, completion, ex, **options):
        mod = D if self.protocol == "d1" else A
        return mod.countdown_reward(completion, ex["numbers"], ex["target"])


class Sudoku(RealTask):
    """d1's test set: 256 of the 500 puzzles of 4x4_test_sudoku.csv (numpy seed 42), under either protocol."""
    name, family, sample = "sudoku", "sudoku", 256
    source = ""  # 4x4_test_sudoku.csv is not on the hub: give its path (e.g. d1's dataset/ folder)

    def normalise(self, row):
        puzzle = str(row.get("Puzzle", row.get("puzzle"))).zfill(16)
        solution = str(row.get("Solution", row.get("solution"))).zfill(16)
        return {"id": puzzle, "puzzle": puzzle, "solution": solution}

    def train_filter(self, examples):
        return examples[:20_000]  # AGRPO: the first 20,000 rows of SPG's train split

    def d1_train_filter(self, examples):
        """d1: 4x4_sudoku_unique_puzzles.csv shuffled with seed 42, minus the last 500."""
        return d1_shuffled_train(examples)

    def select(self, examples):
        if self.sample is None or len(examples) <= self.sample:
            return examples
        import numpy as np

        np.random.seed(42)  # d1's eval.py: init_seed(42), then np.random.choice(N, 256, replace=False)
        return [examples[i] for i in np.random.choice(len(examples), self.sample, replace=False)]

    def _judge(self, completion, ex):
        if self.protocol == "d1":
            right, empty, parsed = D.judge_sudoku(completion, ex["puzzle"], ex["solution"])
            frac = right / empty if empty else 0.0
            return Verdict(right == empty, frac, parsed, "" if right == empty else f"{right}/{empty} blank cells right",
                           extra={"correct_cells": right, "empty_cells": empty})
        frac, grid = A.judge_sudoku(completion, ex["puzzle"], ex["solution"])
        empty = ex["puzzle"].count("0")
        return Verdict(frac == 1.0, frac, grid, "" if frac == 1.0 else f"{frac:.3f} of blank cells right",
                       extra={"correct_cells": round(frac * empty), "empty_cells": empty})

    def _reward(self, completion, ex, **options):
        mod = D if self.protocol == "d1" else A
        return mod.sudoku_reward(completion, ex["puzzle"], ex["solution"])


class SudokuSPG(Sudoku):
    """SPG's split (test_sudoku_split_new.csv, 256 puzzles; train/test disjoint by solution), used by AGRPO."""
    name, sample = "sudoku_spg", None


REAL_TASKS = {cls.name: cls for cls in (GSM8K, GSM8KPlatinum, MATH500, Countdown, Sudoku, SudokuSPG)}


def aggregate_accuracy(task: RealTask, verdicts: list[Verdict]) -> float:
    """The task's headline metric: Sudoku under d1 = Σ correct blank cells / Σ blank cells (micro-average);
    otherwise the mean item score (accuracy; per-puzzle cell fraction for Sudoku under AGRPO)."""
    if not verdicts:
        return 0.0
    if task.family == "sudoku" and task.protocol == "d1":
        empty = sum(v.extra["empty_cells"] for v in verdicts)
        return sum(v.extra["correct_cells"] for v in verdicts) / empty if empty else 0.0
    return sum(v.score for v in verdicts) / len(verdicts)
