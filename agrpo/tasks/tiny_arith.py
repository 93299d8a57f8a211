"""tiny_arith: two-step arithmetic word problems, a miniature of GSM8K.

Prompt ``has 7, buys 5, eats 3. left?``; completion ``7+5=12 12-3=9<answer>9</answer>``. Synthetic and far easier
than GSM8K: one sentence template, a handful of verbs, small numbers, and the "reasoning" is always exactly two
explicit operations in the order they are stated. It keeps GSM8K's shape (words in, a chain of arithmetic steps,
one integer out) and its metric (exact match of the final integer), nothing else.
"""

from __future__ import annotations

import itertools
import random
import re
from functools import cached_property

from agrpo.tasks._answer import last_answer, well_formed
from agrpo.tasks.base import PooledTask, Verdict, split_of

# (verb, operator): what happens to the quantity. Order matters: the default data depend on it.
_VERBS = [("gets", "+"), ("buys", "+"), ("finds", "+"), ("eats", "-"), ("gives", "-"), ("loses", "-"), ("times", "*")]
_FACTORS = (2, 3)  # "times n" multiplies by a small number


def _apply(op: str, x: int, y: int) -> int:
    return x + y if op == "+" else x - y if op == "-" else x * y


class TinyArith(PooledTask):
    """Start with ``a`` in [1, max_number] and apply two operations, each + or - a number in [1, max_number] or,
    when ``ops`` has "*", "times 2"/"times 3". Every running value stays in [0, 99].

    Knobs: ``max_number`` (default 6; at most 9 so the prompt fits 32 characters), ``ops`` (default "+-").
    Reward: the judge's score (1/0) plus a 0.1 format bonus when the completion has exactly one ``<answer>``
    followed by exactly one ``</answer>``.
    """

    name = "tiny_arith"
    family = "gsm8k"

    def __init__(self, max_number: int = 6, ops: str = "+-"):
        if not 1 <= max_number <= 9:
            raise ValueError(f"tiny_arith: max_number must be in 1..9, got {max_number}")
        if not ops or set(ops) - set("+-*"):
            raise ValueError(f"tiny_arith: ops must be a non-empty subset of '+-*', got {ops!r}")
        self.max_number, self.ops = max_number, ops
        self.verbs = [v for v in _VERBS if v[1] in ops]

    def _numbers(self, op: str) -> range | tuple:
        return _FACTORS if op == "*" else range(1, self.max_number + 1)

    def _make(self, a: int, steps: list) -> dict | None:
        values = [a]
        for _, op, n in steps:
            values.append(_apply(op, values[-1], n))
        if min(values) < 0 or max(values) > 99:
            return None
        key = f"{a}|" + "|".join(f"{v}{n}" for v, _, n in steps)
        return {"id": key, "start": a, "steps": [[v, o, n] for v, o, n in steps], "answer": values[-1]}

    def _random(self, rng: random.Random) -> dict:
        while True:
            a = rng.randint(1, self.max_number)
            steps = []
            for _ in range(2):
                verb, op = rng.choice(self.verbs)
                n = rng.choice(_FACTORS) if op == "*" else rng.randint(1, self.max_number)
                steps.append((verb, op, n))
            if ex := self._make(a, steps):
                return ex

    @cached_property
    def _pools(self) -> dict[str, dict[str, dict]]:
        """Every distinct problem, by split (a few thousand: cheap to enumerate)."""
        pools = {"train": {}, "test": {}}
        for a, (v1, o1), (v2, o2) in itertools.product(range(1, self.max_number + 1), self.verbs, self.verbs):
            for n1, n2 in itertools.product(self._numbers(o1), self._numbers(o2)):
                if ex := self._make(a, [(v1, o1, n1), (v2, o2, n2)]):
                    pools[split_of(ex["id"])][ex["id"]] = ex
        return pools

    def prompt(self, ex):
        parts = ", ".join(f"{v} {n}" for v, _, n in ex["steps"])
        return f"has {ex['start']}, {parts}. left?"

    def reference_completion(self, ex):
        value, trace = ex["start"], []
        for _, op, n in ex["steps"]:
            new = _apply(op, value, n)
            trace.append(f"{value}{op}{n}={new}")
            value = new
        return " ".join(trace) + f"<answer>{value}</answer>"

    def judge(self, completion, ex):
        ans = last_answer(completion)
        if ans is None:
            return Verdict(False, 0.0, None, "no answer block")
        if not re.fullmatch(r"[0-9]{1,6}", ans):
            return Verdict(False, 0.0, ans[:40], "answer is not a small non-negative integer")
        if int(ans) != ex["answer"]:
            return Verdict(False, 0.0, ans, "wrong answer")
        return Verdict(True, 1.0, ans)

    def reward(self, completion, ex):
        """Correctness (1/0) plus a 0.1 format bonus for exactly one ``<answer>…</answer>`` block."""
        return self.judge(completion, ex).score + 0.1 * well_formed(completion)
