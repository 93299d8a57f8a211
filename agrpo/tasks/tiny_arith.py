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
from agrpo.tasks.base import PooledTask, Verdict, draw_split, split_of

# (verb, operator): what happens to the quantity. Order matters: the default data depend on it.
_VERBS = [("gets", "+"), ("buys", "+"), ("finds", "+"), ("eats", "-"), ("gives", "-"), ("loses", "-"), ("times", "*")]
_FACTORS = (2, 3)  # "times n" multiplies by a small number
_TRACE_STEP = re.compile(r"(\d+)([+*-])(\d+)=(\d+)")  # one step of the reference trace: 12-3=9


def _apply(op: str, x: int, y: int) -> int:
    return x + y if op == "+" else x - y if op == "-" else x * y


class TinyArith(PooledTask):
    """Start with ``a`` in [1, max_number] and apply ``min_steps``..``max_steps`` operations (default two), each +
    or - a number in [1, max_number] or, when ``ops`` has "*", "times 2"/"times 3". Every running value stays in
    [0, 99].

    Knobs: ``max_number`` (default 6, at most 9), ``ops`` (default "+-"), ``min_steps`` / ``max_steps`` (default
    2 / 2, at most 6: longer chains are harder and their completions longer, ≈ 7 tokens a step). Two-step problems
    are enumerated (a few thousand); longer ones are drawn at random and split by the hash of the problem, as
    tiny_sudoku's. Reward: the judge's score (1/0) plus a 0.1 format bonus when the completion has exactly one
    ``<answer>`` followed by exactly one ``</answer>``.
    """

    name = "tiny_arith"
    family = "gsm8k"

    def __init__(self, max_number: int = 6, ops: str = "+-", min_steps: int = 2, max_steps: int = 2):
        if not 1 <= max_number <= 9:
            raise ValueError(f"tiny_arith: max_number must be in 1..9, got {max_number}")
        if not ops or set(ops) - set("+-*"):
            raise ValueError(f"tiny_arith: ops must be a non-empty subset of '+-*', got {ops!r}")
        if not 1 <= min_steps <= max_steps <= 6:
            raise ValueError(f"tiny_arith: need 1 <= min_steps <= max_steps <= 6 (got {min_steps}, {max_steps})")
        self.max_number, self.ops, self.min_steps, self.max_steps = max_number, ops, min_steps, max_steps
        self.verbs = [v for v in _VERBS if v[1] in ops]

    @property
    def _enumerated(self) -> bool:
        return self.max_steps <= 2

    def split_size(self, split: str) -> int:
        if not self._enumerated:
            raise ValueError(f"tiny_arith: {self.max_steps}-step problems are drawn, not enumerated")
        return super().split_size(split)

    def examples(self, split, n, seed):
        if self._enumerated:
            return super().examples(split, n, seed)
        return draw_split(self.name, split, n, seed, self._random)

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
            n_steps = 2 if self.min_steps == self.max_steps == 2 else rng.randint(self.min_steps, self.max_steps)
            for _ in range(n_steps):  # (the default draws no step count: the data of earlier runs stay the same)
                verb, op = rng.choice(self.verbs)
                n = rng.choice(_FACTORS) if op == "*" else rng.randint(1, self.max_number)
                steps.append((verb, op, n))
            if ex := self._make(a, steps):
                return ex

    @cached_property
    def _pools(self) -> dict[str, dict[str, dict]]:
        """Every distinct problem, by split (a few thousand: cheap to enumerate)."""
        pools = {"train": {}, "test": {}}
        for n_steps in range(self.min_steps, self.max_steps + 1):
            for a, *verbs in itertools.product(range(1, self.max_number + 1), *[self.verbs] * n_steps):
                for ns in itertools.product(*(self._numbers(op) for _, op in verbs)):
                    if ex := self._make(a, [(v, op, x) for (v, op), x in zip(verbs, ns)]):
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

    def diagnose(self, completion, ex):
        """Where a wrong completion first goes wrong, walking its trace ``a op n = v`` step by step against the
        prompt's: ``trace misreads a step`` (another operation or number than the prompt's step, or a step too
        many), ``wrong value carried`` (a step starts from other than the last result), ``arithmetic slip`` (a
        step's result is wrong), ``trace skips a step`` (fewer steps than the prompt); a right trace with a
        wrong answer is ``answer ≠ trace``. Without a usable answer: the judge's reason."""
        verdict = self.judge(completion, ex)
        if verdict.correct:
            return ""
        if verdict.reason != "wrong answer":
            return "answer not an integer" if verdict.reason.startswith("answer is not") else verdict.reason
        trace = _TRACE_STEP.findall(completion[:completion.rfind("<answer>")])
        value = ex["start"]
        for i, (a, op, n, result) in enumerate(trace):
            if i >= len(ex["steps"]) or (op, int(n)) != (ex["steps"][i][1], ex["steps"][i][2]):
                return "trace misreads a step"
            if int(a) != value:
                return "wrong value carried"
            if _apply(op, int(a), int(n)) != int(result):
                return "arithmetic slip"
            value = int(result)
        return "trace skips a step" if len(trace) < len(ex["steps"]) else "answer ≠ trace"
