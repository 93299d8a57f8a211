"""tiny_arith: two-step arithmetic word problems, a miniature of GSM8K.

Prompt ``has 7, buys 5, eats 3. left?``; completion ``7+5=12 12-3=9<answer>9</answer>``. Synthetic: short
templates over small numbers, so the "reasoning" is two explicit operations, not a real word problem.
"""

from __future__ import annotations

import random

from agrpo.tasks._answer import last_answer, well_formed
from agrpo.tasks.base import Task, Verdict, split_of

# (verb, operator): what happens to the quantity
_VERBS = [("gets", "+"), ("buys", "+"), ("finds", "+"), ("eats", "-"), ("gives", "-"), ("loses", "-")]


class TinyArith(Task):
    """Start with a in [1, max_number], apply two operations (+/- b, c in [1, max_number]); the running value
    stays in [0, 99]. Knobs: ``max_number`` (default 6)."""

    name = "tiny_arith"

    def __init__(self, max_number: int = 6):
        self.max_number = max_number

    def _random(self, rng: random.Random) -> dict:
        while True:
            a = rng.randint(1, self.max_number)
            steps, value = [], a
            for _ in range(2):
                verb, op = rng.choice(_VERBS)
                n = rng.randint(1, self.max_number)
                value = value + n if op == "+" else value - n
                steps.append((verb, op, n))
            running = [a + sum(n if op == "+" else -n for _, op, n in steps[:i + 1]) for i in range(2)]
            if min(running) >= 0:
                key = f"{a}|" + "|".join(f"{v}{n}" for v, _, n in steps)
                return {"id": key, "start": a, "steps": [[v, o, n] for v, o, n in steps], "answer": value}

    def examples(self, split, n, seed):
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")
        rng, seen, out = random.Random(seed), set(), []
        for _ in range(200 * n + 10_000):
            ex = self._random(rng)
            if ex["id"] not in seen and split_of(ex["id"]) == split:
                seen.add(ex["id"])
                out.append(ex)
                if len(out) == n:
                    return out
        raise ValueError(f"tiny_arith: could not draw {n} distinct {split} problems (only {len(out)} found)")

    def prompt(self, ex):
        parts = ", ".join(f"{v} {n}" for v, _, n in ex["steps"])
        return f"has {ex['start']}, {parts}. left?"

    def reference_completion(self, ex):
        value, trace = ex["start"], []
        for _, op, n in ex["steps"]:
            new = value + n if op == "+" else value - n
            trace.append(f"{value}{op}{n}={new}")
            value = new
        return " ".join(trace) + f"<answer>{value}</answer>"

    def judge(self, completion, ex):
        ans = last_answer(completion)
        if ans is None:
            return Verdict(False, 0.0, None, "no answer block")
        if not (ans.isdigit() and len(ans) <= 6):
            return Verdict(False, 0.0, ans, "answer is not a small integer")
        if int(ans) != ex["answer"]:
            return Verdict(False, 0.0, ans, "wrong answer")
        return Verdict(True, 1.0, ans)

    def reward(self, completion, ex):
        """Correctness (1) plus a 0.1 format bonus for exactly one answer block."""
        return self.judge(completion, ex).score + 0.1 * well_formed(completion)
