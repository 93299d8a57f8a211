"""The task interface: data, prompt, reference completion, reward and judge.

Every task (synthetic ones for the tiny profile; GSM8K, MATH-500, Countdown and Sudoku later) implements
``Task``. Rewards are plain callables of (completion text, example), as in TRL; the judge returns a
``Verdict`` whose ``score`` is the per-item accuracy contribution (1/0, or cell accuracy for Sudoku).
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

Example = dict  # one task item: problem fields plus "id"; JSON-serialisable


@dataclass(frozen=True)
class Verdict:
    correct: bool  # the whole item is right
    score: float  # accuracy contribution in [0, 1]; equals float(correct) except for partial-credit metrics
    parsed: str | None = None  # what the judge extracted as the answer
    reason: str = ""  # why it is wrong (empty when correct)
    extra: dict = field(default_factory=dict)


def split_of(key: str, test_fraction: float = 0.1) -> str:
    """Deterministic train/test assignment of a problem by the hash of its canonical key (disjoint by construction)."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def draw_from_pool(task: str, split: str, pool: dict[str, Example], n: int, seed: int, draw, refill=None) -> list[Example]:
    """``n`` distinct examples of a fully enumerated ``pool`` (id → example), deterministic in ``seed``.

    Examples are drawn with ``draw(rng)`` (the generator's own distribution) and kept if they belong to the pool;
    only near the pool's capacity are the remaining ids filled in, shuffled, through ``refill(example, rng)``.
    """
    if n > len(pool):
        raise ValueError(f"{task}: asked for {n} {split} problems but the split holds only "
                         f"{len(pool)} distinct ones with these settings")
    rng, out = random.Random(seed), {}
    for _ in range(200 * n + 10_000):
        if len(out) == n:
            break
        ex = draw(rng)
        if ex["id"] in pool:
            out.setdefault(ex["id"], ex)
    rest = sorted(pool.keys() - out.keys())
    rng.shuffle(rest)
    for k in rest[:n - len(out)]:
        out[k] = refill(pool[k], rng) if refill else pool[k]
    return list(out.values())


def draw_split(task: str, split: str, n: int, seed: int, draw) -> list[Example]:
    """``n`` distinct examples of ``split`` from a space too large to enumerate: drawn with ``draw(rng)`` and
    kept when the hash of their id falls in ``split`` (``split_of``), deterministic in ``seed``."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")
    rng, out = random.Random(seed), {}
    for _ in range(200 * n + 10_000):
        if len(out) == n:
            break
        ex = draw(rng)
        if split_of(ex["id"]) == split:
            out.setdefault(ex["id"], ex)
    if len(out) < n:
        raise ValueError(f"{task}: could not draw {n} distinct {split} problems with these settings (found "
                         f"{len(out)}); the split is too small for that many")
    return list(out.values())


class Task(ABC):
    name: str
    protocol: str = "synthetic"
    family: str = ""  # the paper task it stands for: gsm8k, math, countdown or sudoku (method settings key on it)

    @abstractmethod
    def examples(self, split: str, n: int, seed: int) -> list[Example]:
        """``n`` distinct examples of ``split`` ("train" | "test"), deterministic in ``seed``."""

    @abstractmethod
    def prompt(self, example: Example) -> str:
        """The prompt text the model conditions on."""

    @abstractmethod
    def reference_completion(self, example: Example) -> str:
        """A correct completion: short reasoning trace, then ``<answer>…</answer>`` (used for pretraining/SFT)."""

    @abstractmethod
    def judge(self, completion: str, example: Example) -> Verdict:
        """Grade a completion (text after the prompt, cut at EOS)."""

    @abstractmethod
    def reward(self, completion: str, example: Example) -> float:
        """Scalar RL reward of a completion."""

    def diagnose(self, completion: str, example: Example) -> str:
        """Why a completion is wrong, as one of a few categories; "" when the judge counts it correct (the report's
        "Where answers go wrong" counts them). Here the judge's reason as a category (``reason_category``); tasks
        with a reasoning trace override this to say where the trace first goes wrong."""
        verdict = self.judge(completion, example)
        return "" if verdict.correct else reason_category(verdict.reason)


def reason_category(reason: str) -> str:
    """A judge's reason as a category: the text before any ":", every run of digits read as N (so "3/5 blank
    cells right" and "1/5 blank cells right" are one category)."""
    return re.sub(r"\d+", "N", reason.split(":")[0]).strip() or "wrong"


def reads_trace(task: Task | type[Task]) -> bool:
    """Whether a task (or task class) diagnoses from the completion and example (its own ``diagnose``); otherwise
    the judge's recorded reason gives the category, with no need to judge again."""
    return (task if isinstance(task, type) else type(task)).diagnose is not Task.diagnose


class PooledTask(Task):
    """A task whose problems are all enumerated per split in ``_pools`` (id → example) and drawn with ``_random``."""

    _pools: dict[str, dict[str, Example]]

    def _random(self, rng: random.Random) -> Example:
        raise NotImplementedError

    def _refill(self, ex: Example, rng: random.Random) -> Example:
        """How an example taken straight from the pool (near capacity) is presented; identity by default."""
        return ex

    def split_size(self, split: str) -> int:
        """How many distinct problems ``split`` holds with these settings."""
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")
        return len(self._pools[split])

    def examples(self, split, n, seed):
        self.split_size(split)  # validates the split name
        return draw_from_pool(self.name, split, self._pools[split], n, seed, self._random, self._refill)
