"""tiny_countdown: reach a target with three small numbers, a miniature of Countdown (d1's 3-number variant).

Prompt ``3 5 7 to 15``; completion ``3+5=8 8+7=15<answer>3+5+7</answer>``. Synthetic: the target is built from a
random left-to-right expression ``(a o b) o c`` over the three numbers, so a solution always exists, and the
default is the easy end (numbers 1..12, only + and -); real Countdown uses larger numbers, all four operations and
often has no generator-given solution shape. The metric is Countdown's: the answer expression must use each given
number exactly once and evaluate to the target.
"""

from __future__ import annotations

import itertools
import random
import re
from functools import cached_property

from agrpo.tasks._answer import last_answer, well_formed
from agrpo.tasks.base import PooledTask, Verdict, split_of

_ALLOWED = re.compile(r"[0-9+\-*/() ]{1,40}")


def _apply(op: str, x: int, y: int) -> int | None:
    """``x op y`` over integers; None for an inexact or undefined division."""
    if op == "/":
        return x // y if y and x % y == 0 else None
    return x + y if op == "+" else x - y if op == "-" else x * y


class _Parser:
    """Recursive descent over + - * / and parentheses with standard precedence; literals are integers."""

    def __init__(self, text: str):
        self.tokens = re.findall(r"[0-9]+|[+\-*/()]", text)
        self.pos = 0
        self.numbers: list[int] = []

    def parse(self) -> float:
        value = self.expr(0)
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]!r}")
        return value

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def expr(self, depth):  # expr := term (('+' | '-') term)*
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self, depth):  # term := factor (('*' | '/') factor)*
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

    def factor(self, depth):  # factor := number | '(' expr ')'
        if depth > 10:
            raise ValueError("nesting too deep")
        tok = self.take()
        if tok == "(":
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise ValueError("unbalanced parentheses")
            return value
        if tok is not None and tok.isdigit():
            if len(tok) > 4 or (len(tok) > 1 and tok[0] == "0"):
                raise ValueError(f"bad number {tok!r}")
            self.numbers.append(int(tok))
            return int(tok)
        raise ValueError(f"unexpected {tok!r}")


def evaluate_expression(text: str) -> tuple[float, list[int]]:
    """Value of an arithmetic expression and the integer literals it uses; ValueError if it is not one.

    Only digits, + - * / ( ) and spaces, at most 40 characters (which also bounds nesting and magnitudes)."""
    if not _ALLOWED.fullmatch(text):
        raise ValueError("not a short expression over digits, + - * / ( )")
    p = _Parser(text)
    return p.parse(), p.numbers


class TinyCountdown(PooledTask):
    """Three numbers in [1, max_number] and a target in [0, max_target] equal to ``(a o b) o c`` with o from
    ``ops`` (intermediate value non-negative; "/" only when exact). A problem is (sorted numbers, target).

    Knobs: ``max_number`` (default 12, at most 99), ``max_target`` (default 40, at most 99), ``ops`` (default
    "+-"; any non-empty subset of "+-*/"). Reward: the judge's score (1/0) plus a 0.1 format bonus when the
    completion has exactly one ``<answer>`` followed by exactly one ``</answer>``.
    """

    name = "tiny_countdown"
    family = "countdown"

    def __init__(self, max_number: int = 12, max_target: int = 40, ops: str = "+-"):
        if not (1 <= max_number <= 99 and 0 <= max_target <= 99):
            raise ValueError(f"tiny_countdown: need 1 <= max_number <= 99 and 0 <= max_target <= 99 "
                             f"(got {max_number}, {max_target})")
        if not ops or set(ops) - set("+-*/"):
            raise ValueError(f"tiny_countdown: ops must be a non-empty subset of '+-*/', got {ops!r}")
        self.max_number, self.max_target, self.ops = max_number, max_target, ops

    def _make(self, a: int, b: int, c: int, o1: str, o2: str) -> dict | None:
        mid = _apply(o1, a, b)
        target = None if mid is None else _apply(o2, mid, c)
        if target is None or mid < 0 or not 0 <= target <= self.max_target:
            return None
        inner = f"{a}{o1}{b}"
        expr = f"({inner}){o2}{c}" if o2 in "*/" and o1 in "+-" else f"{inner}{o2}{c}"
        return {"id": f"{sorted([a, b, c])}->{target}", "numbers": [a, b, c], "target": target, "solution": expr,
                "trace": f"{a}{o1}{b}={mid} {mid}{o2}{c}={target}"}

    def _random(self, rng: random.Random) -> dict:
        while True:
            a, b, c = (rng.randint(1, self.max_number) for _ in range(3))
            o1, o2 = rng.choice(self.ops), rng.choice(self.ops)
            if ex := self._make(a, b, c, o1, o2):
                rng.shuffle(ex["numbers"])  # the prompt must not give the solution's order away
                return ex

    @cached_property
    def _pools(self) -> dict[str, dict[str, dict]]:
        """Every distinct problem, by split (at most ~30k expressions to try: cheap)."""
        pools = {"train": {}, "test": {}}
        nums = range(1, self.max_number + 1)
        for a, b, c, o1, o2 in itertools.product(nums, nums, nums, self.ops, self.ops):
            if (ex := self._make(a, b, c, o1, o2)) and ex["id"] not in pools[split_of(ex["id"])]:
                pools[split_of(ex["id"])][ex["id"]] = ex
        return pools

    def _refill(self, ex, rng):
        return dict(ex, numbers=rng.sample(ex["numbers"], 3))  # shuffle the shown order, as _random does

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
        except (ValueError, ZeroDivisionError, OverflowError, RecursionError) as e:
            return Verdict(False, 0.0, ans[:40], f"parse error: {e}")
        if sorted(used) != sorted(ex["numbers"]):
            return Verdict(False, 0.0, ans, "wrong numbers")
        if abs(value - ex["target"]) > 1e-6:
            return Verdict(False, 0.0, ans, "wrong value")
        return Verdict(True, 1.0, ans)

    def reward(self, completion, ex):
        """Correctness (1/0) plus a 0.1 format bonus for exactly one ``<answer>…</answer>`` block."""
        return self.judge(completion, ex).score + 0.1 * well_formed(completion)
