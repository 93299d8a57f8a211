"""tiny_countdown: reach a target with three small numbers, a miniature of Countdown (cd3).

Prompt ``3 5 7 to 15``; completion ``3+5=8 8+7=15<answer>3+5+7</answer>``. Synthetic: numbers in 1..12, the
target is built from a random left-to-right expression ((a ∘ b) ∘ c) with + and − by default, so a solution always exists.
"""

from __future__ import annotations

import random
import re

from agrpo.tasks._answer import last_answer, well_formed
from agrpo.tasks.base import Task, Verdict, split_of

_ALLOWED = re.compile(r"^[0-9+\-*/() ]+$")
_OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}


class _Parser:
    """Recursive descent over + − * / and parentheses with standard precedence; integers only as literals."""

    def __init__(self, text: str):
        self.tokens = re.findall(r"\d+|[+\-*/()]", text)
        self.pos = 0
        self.numbers: list[int] = []

    def parse(self):
        value = self.expr(0)
        if self.pos != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def expr(self, depth):
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            value = value + self.term(depth) if self.take() == "+" else value - self.term(depth)
        return value

    def term(self, depth):
        value = self.factor(depth)
        while self.peek() in ("*", "/"):
            op, rhs = self.take(), self.factor(depth)
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise ValueError("division by zero")
            else:
                value /= rhs
        return value

    def factor(self, depth):
        if depth > 10:
            raise ValueError("nesting too deep")
        tok = self.take()
        if tok == "(":
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise ValueError("unbalanced parentheses")
            return value
        if tok is not None and tok.isdigit() and len(tok) <= 4:
            self.numbers.append(int(tok))
            return int(tok)
        raise ValueError(f"unexpected token {tok!r}")


def evaluate_expression(text: str) -> tuple[float, list[int]]:
    """Value of an arithmetic expression and the integer literals it uses; ValueError if invalid."""
    if len(text) > 40 or not _ALLOWED.match(text):
        raise ValueError("not a short arithmetic expression")
    p = _Parser(text)
    return p.parse(), p.numbers


class TinyCountdown(Task):
    """Three numbers in [1, max_number] and a non-negative target ((a ∘ b) ∘ c), ∘ ∈ {+, −, *}.
    Knobs: ``max_number`` (default 12), ``max_target`` (default 40),
    ``ops`` (default "+-"; "+-*" for multiplication too)."""

    name = "tiny_countdown"

    def __init__(self, max_number: int = 12, max_target: int = 40, ops: str = "+-"):
        self.max_number, self.max_target, self.ops = max_number, max_target, ops

    def _random(self, rng: random.Random) -> dict:
        while True:
            a, b, c = (rng.randint(1, self.max_number) for _ in range(3))
            o1, o2 = rng.choice(self.ops), rng.choice(self.ops)
            mid = _OPS[o1](a, b)
            target = _OPS[o2](mid, c)
            if mid < 0 or not 0 <= target <= self.max_target:
                continue
            inner = f"{a}{o1}{b}"
            expr = f"({inner}){o2}{c}" if o2 == "*" and o1 in "+-" else f"{inner}{o2}{c}"
            numbers = [a, b, c]
            rng.shuffle(numbers)
            key = f"{sorted(numbers)}->{target}"
            return {"id": key, "numbers": numbers, "target": target, "solution": expr,
                    "trace": f"{a}{o1}{b}={mid} {mid}{o2}{c}={target}"}

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
        raise ValueError(f"tiny_countdown: could not draw {n} distinct {split} problems (only {len(out)} found)")

    def prompt(self, ex):
        return " ".join(map(str, ex["numbers"])) + f" to {ex['target']}"

    def reference_completion(self, ex):
        return f"{ex['trace']}<answer>{ex['solution']}</answer>"

    def judge(self, completion, ex):
        ans = last_answer(completion)
        if ans is None:
            return Verdict(False, 0.0, None, "no answer block")
        try:
            value, used = evaluate_expression(ans)
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            return Verdict(False, 0.0, ans, f"parse error: {e}")
        if sorted(used) != sorted(ex["numbers"]):
            return Verdict(False, 0.0, ans, "wrong numbers")
        if abs(value - ex["target"]) > 1e-6:
            return Verdict(False, 0.0, ans, "wrong value")
        return Verdict(True, 1.0, ans)

    def reward(self, completion, ex):
        """Correctness (1) plus a 0.1 format bonus for exactly one answer block."""
        return self.judge(completion, ex).score + 0.1 * well_formed(completion)
