"""Judging helpers shared by the protocols: brace-balanced \\boxed{} extraction, a safe arithmetic evaluator,
and math-verify behind a timeout. Every judge returns a verdict; nothing here may raise or hang on model output
(100 kB completions, deep nesting, huge numbers, control characters): failures become a recorded reason.
"""

from __future__ import annotations

import ast
import atexit
import math
import operator
import re

MAX_ANSWER_CHARS = 2_000  # an extracted answer longer than this is not parsed (verdict false, reason recorded)
MAX_NESTING = 64  # brace / parenthesis depth above which LaTeX and arithmetic are not parsed
VERIFY_TIMEOUT_S = 5  # seconds, per item (math-verify's default)


class JudgeError(ValueError):
    """An answer the judge refuses to parse (too long, too deep, too large): the verdict is false, with this reason."""


def nesting_depth(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]":
            depth = max(0, depth - 1)
    return best


def guard(text: str, what: str = "answer") -> str:
    if len(text) > MAX_ANSWER_CHARS:
        raise JudgeError(f"{what} of {len(text)} characters exceeds {MAX_ANSWER_CHARS}")
    if nesting_depth(text) > MAX_NESTING:
        raise JudgeError(f"{what} nested deeper than {MAX_NESTING}")
    return text


def first_boxed(text: str) -> str | None:
    """Content of the first ``\\boxed{…}``, braces balanced (AGRPO's ``extract_boxed``); None if absent/unclosed."""
    m = re.search(r"\\boxed\{", text)
    if not m:
        return None
    depth = 1
    for j in range(m.end(), len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[m.end():j]
    return None


# ---------------------------------------------------------------------------------------------------- arithmetic

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_MAGNITUDE = 1e100


def safe_arith(expr: str) -> float:
    """Value of a Python arithmetic expression over numeric literals, as ``eval`` would give it, without ``eval``:
    only + − * / // % ** and parentheses; powers with |exponent| > 64 or results beyond 1e100 raise JudgeError."""
    guard(expr, "expression")
    tree = ast.parse(expr.strip(), mode="eval")

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and (abs(b) > 64 or abs(a) > MAX_MAGNITUDE):
                raise JudgeError("power too large to evaluate")
            out = _BINOPS[type(node.op)](a, b)
            if isinstance(out, complex) or (isinstance(out, (int, float)) and abs(out) > MAX_MAGNITUDE):
                raise JudgeError("value out of range")
            return out
        raise JudgeError(f"not arithmetic: {type(node).__name__}")

    value = ev(tree)
    return float(value)


# ---------------------------------------------------------------------------------------------------- math-verify

def _verify_in_worker(gold: str, pred: str, timeout: float) -> tuple[bool, str]:
    from math_verify import parse, verify

    seconds = max(1, math.ceil(timeout))  # math-verify's signal.alarm takes whole seconds (a float disables parsing)
    try:
        g = parse(f"${gold}$", parsing_timeout=seconds)
        p = parse(f"${pred}$", parsing_timeout=seconds)
        return bool(verify(g, p, timeout_seconds=seconds)), ""
    except Exception as e:  # math-verify's TimeoutException, sympy errors, RecursionError …
        return False, f"math-verify failed: {type(e).__name__}"


class _Verifier:
    """math-verify in a worker process with a hard per-item timeout: a big-integer power inside sympy runs in C
    and ignores math-verify's own signal timeout, so a stuck worker is killed and replaced."""

    def __init__(self):
        self.pool = None

    def __call__(self, gold: str, pred: str, timeout: float) -> tuple[bool, str]:
        import multiprocessing as mp

        if self.pool is None:
            self.pool = mp.get_context("fork").Pool(1)
            atexit.register(self.close)
        job = self.pool.apply_async(_verify_in_worker, (gold, pred, timeout))
        try:
            return job.get(timeout + 1.0)
        except mp.TimeoutError:
            self.close()
            return False, f"math-verify exceeded {timeout:g} s (worker killed)"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


_verifier = _Verifier()


def math_verify_equal(gold: str, pred: str, timeout: float | None = None) -> tuple[bool, str]:
    """math-verify's ``verify(parse(gold), parse(pred))`` on ``$…$``-wrapped strings, with a hard per-item
    timeout; returns (equal, reason). Over-long or over-deep answers are refused before parsing."""
    try:
        guard(pred)
    except JudgeError as e:
        return False, str(e)
    return _verifier(gold, pred, VERIFY_TIMEOUT_S if timeout is None else timeout)


def is_finite_number(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
