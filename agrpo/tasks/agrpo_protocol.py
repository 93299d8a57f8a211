"""The AGRPO protocol (``probablyabot/agrpo``: ``data.py``, ``rewards.py``, ``eval.py``; reference agrpo.md §4):
system-role prompts, ``<think>``/``<answer>`` with ``\\boxed{}``, math-verify judging, rewards.

Messages are ``[system, user]``; the chat template renders them (LLaDA-8B-Instruct's template drops the system
turn — see docs/tasks.md). Judging, as the released ``eval.py``: the answer is the ``<answer>`` content, then its
first ``\\boxed{}``; GSM8K takes its first integer; MATH and GSM8K compare with math-verify; Countdown takes the
last ``lhs = rhs`` line, requires the exact number multiset on the left and math-verify equality with the target;
Sudoku scores the fraction of blank cells right (per puzzle). Rewards: think format 0.5 + answer format 0.5 +
correctness 3.0 (GSM8K, MATH); Countdown format (thirds, −0.5 for several "=") + 3.0 correctness; Sudoku format
(0.25 + 0.25 + 0.5) + 3.0 × cell fraction.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

from agrpo.tasks.judging import JudgeError, first_boxed, guard, math_verify_equal

SYSTEM_PROMPT = r"""You will be given a math problem.
Think through the problem step by step, enclosing your reasoning process in <think> tags.
Provide your final answer in <answer> tags, with only the number or expression enclosed in \boxed{}, as follows:
<think>
...
</think>
<answer>
\boxed{...}
</answer>
"""

COUNTDOWN_SYSTEM_PROMPT = r"""You will be given a target number and a list of numbers. Create a mathematical expression using each number exactly once and the operations +, -, *, / (with parentheses allowed) to reach the target.
Think through different combinations systematically, exploring which operations might work. Enclose your reasoning process in <think> tags.
Format your response as:
<think>
reasoning process here
</think>
<answer>
final expression = target
</answer>
For example, if the target is 67 and the numbers are [17, 18, 5], a valid answer is:
<answer>
17 * 5 - 18 = 67
</answer>
"""

_SUDOKU_EXAMPLES = [
    ("3014002020004130", ["R1: 3 0 1 4", "R2: 0 0 2 0", "R3: 2 0 0 0", "R4: 4 1 3 0"],
     ["R1 missing 2 → R1C2=2.", "R4 missing 2 → R4C4=2.",
      "Box D (R3-4,C3-4) then needs {1,4}; column4 can only accept 1 → R3C4=1, R3C3=4.",
      "R3 now missing 3 → R3C2=3.", "Column1 missing 1 → R2C1=1.", "Column2 missing 4 → R2C2=4.",
      "Last cell R2C4=3."],
     ["R1: 3 2 1 4", "R2: 1 4 2 3", "R3: 2 3 4 1", "R4: 4 1 3 2"], "3214142323414132"),
    ("0000100420013142", ["R1: 0 0 0 0", "R2: 1 0 0 4", "R3: 2 0 0 1", "R4: 3 1 4 2"],
     ["Col1 missing 4 → R1C1=4.", "Col4 missing 3 → R1C4=3.",
      "Box A (R1-2,C1-2) missing {2,3} and R1 now needs {1,2} → R1C2=2, R2C2=3.", "R1C3=1.",
      "R2 now missing 2 → R2C3=2.", "Col2 missing 4 → R3C2=4, then R3C3=3."],
     ["R1: 4 2 1 3", "R2: 1 3 2 4", "R3: 2 4 3 1", "R4: 3 1 4 2"], "4213132424313142"),
    ("2001403002001420", ["R1: 2 0 0 1", "R2: 4 0 3 0", "R3: 0 2 0 0", "R4: 1 4 2 0"],
     ["R1 missing {3,4}; Col2 can't be 1 so R1C2=3 → R1C3=4.", "R4 missing 3 → R4C4=3.",
      "Col4 missing {2,4}; R2 must take 2 → R2C4=2 → R2C2=1.", "Col1 missing 3 → R3C1=3.",
      "Col3 missing 1 → R3C3=1 → R3C4=4."],
     ["R1: 2 3 4 1", "R2: 4 1 3 2", "R3: 3 2 1 4", "R4: 1 4 2 3"], "2341413232141423"),
]


def _sudoku_example(puzzle, rows, steps, final, answer) -> str:
    return (f"Puzzle: {puzzle}\n\n<think>\nInterpret puzzle as 4 rows of 4:\n" + "\n".join(rows)
            + "\n\nFill easy singles:\n" + "\n".join(steps) + "\n\nFinal grid:\n" + "\n".join(final)
            + f"\n</think>\n<answer>\n{answer}\n</answer>\n")


# The three worked examples come from SPG's data_utils.py, as in the released AGRPO prompt.
SUDOKU_SYSTEM_PROMPT = r"""You will be given a 4x4 Sudoku puzzle, provided as a 16-character string from left to right, top to bottom, with 0s representing empty cells.
Fill in the empty cells with the correct digits 1-4 such that each row, column, and 2x2 subgrid contains each digit exactly once.
Think through the puzzle step by step, enclosing your reasoning process in <think> tags.
Your final answer should be a complete 16-character string with only the digits 1-4 representing the filled-in grid.
Format your response as:
<think>
reasoning process here
</think>
<answer>
[16-character string with no spaces]
</answer>

""" + "\n".join(_sudoku_example(*e) for e in _SUDOKU_EXAMPLES)

THINK_TAG = re.compile(r"<think>\s*(.*?)\s*</think>", re.DOTALL | re.IGNORECASE)
ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL | re.IGNORECASE)


def messages(family: str, ex: dict) -> list[dict]:
    if family == "gsm8k":
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ex["question"]}]
    if family == "math":
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ex["problem"]}]
    if family == "countdown":
        return [{"role": "system", "content": COUNTDOWN_SYSTEM_PROMPT},
                {"role": "user", "content": f"Target: {ex['target']}\nNumbers: {ex['numbers']}"}]
    if family == "sudoku":
        return [{"role": "system", "content": SUDOKU_SYSTEM_PROMPT}, {"role": "user", "content": f"Puzzle: {ex['puzzle']}"}]
    raise ValueError(f"unknown task family {family!r}")


def parse_ans(completion: str) -> str:
    """The ``<answer>`` content (stripped) if any, then its first ``\\boxed{}`` content if any."""
    if m := ANSWER_TAG.search(completion):
        completion = m.group(1).strip()
    if (boxed := first_boxed(completion)) is not None and boxed:
        completion = boxed
    return completion


def gsm8k_gold(answer_text: str) -> str:
    if "####" not in answer_text:
        raise ValueError(f"no '####' in GSM8K answer {answer_text[-80:]!r}")
    return answer_text.split("####")[1].strip()


# ---------------------------------------------------------------------------------------------------- judges

def equal(gold: str, pred: str) -> tuple[bool, str]:
    """math-verify's verdict; when both sides are plain unsigned integers it is integer equality, computed
    directly (``tests/test_real_tasks.py`` cross-checks the fast path against math-verify)."""
    if _INT.match(gold) and _INT.match(pred) and len(pred) <= 15 and len(gold) <= 15:
        return int(gold) == int(pred), ""
    return math_verify_equal(gold, pred)


_INT = re.compile(r"^\d+$")


def judge_math(completion: str, gold: str, first_integer: bool = False) -> tuple[float, str, str]:
    ans = parse_ans(completion)
    if first_integer and (m := re.search(r"\d+", ans)):
        ans = m.group(0)
    ok, reason = equal(gold, ans)
    return float(ok), ans[:200], reason or ("" if ok else "math-verify: not equal")


def verify_equation(equation: str, target: int, numbers: list[int]) -> tuple[bool, str]:
    if "=" not in equation:
        return False, "no '=' in the equation"
    lhs = equation.split("=", 1)[0]
    try:
        used = sorted(int(n) for n in re.findall(r"\d+", guard(lhs, "expression")))
    except (JudgeError, ValueError) as e:
        return False, str(e)
    if used != sorted(numbers):
        return False, f"uses {used}, not the numbers {sorted(numbers)}"
    exact = exact_value(lhs) if all(n < 10_000 for n in numbers) and len(numbers) <= 4 else None
    if exact is not None:  # same verdict as math-verify (see exact_value), without a sympy round trip
        return exact == target, "" if exact == target else f"does not equal {target}"
    ok, reason = math_verify_equal(str(target), lhs)
    return ok, reason or ("" if ok else f"does not equal {target}")


def exact_value(expr: str) -> Fraction | None:
    """The exact rational value of + − * / and parentheses over integer literals, or None for anything else (then
    math-verify decides). Equivalent to math-verify's equality test with an integer target: with at most 4
    literals below 10⁴ a non-integer value has a denominator below 10¹², so it is never within math-verify's
    6-decimal rounding of an integer unless it equals it."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Div):
                if b == 0:
                    raise ZeroDivisionError
                return a / b
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
        raise ValueError("not plain arithmetic")

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None


def judge_countdown(completion: str, numbers: list[int], target: int) -> tuple[float, str, str]:
    ans = parse_ans(completion)
    lines = re.findall(r"([^=\n]+=.*)$", ans, re.MULTILINE)
    eq = lines[-1] if lines else ""
    ok, reason = verify_equation(eq, target, numbers)
    return float(ok), eq[:200], reason


def judge_sudoku(completion: str, puzzle: str, solution: str) -> tuple[float, str]:
    """Fraction of the blank cells right (per puzzle), on ``parse_ans`` left-padded with zeros (``zfill``) to 16."""
    grid = parse_ans(completion).zfill(16)[:16]
    empty = [i for i in range(16) if puzzle[i] == "0"]
    return (sum(grid[i] == solution[i] for i in empty) / len(empty) if empty else 0.0), grid


# ---------------------------------------------------------------------------------------------------- rewards

def format_reward(completion: str) -> float:
    return 0.5 * bool(THINK_TAG.search(completion)) + 0.5 * bool(ANSWER_TAG.search(completion))


def math_reward(completion: str, gold: str) -> float:
    ans = parse_ans(completion)
    ok, _ = equal(gold, ans)
    return format_reward(completion) + 3.0 * ok


def countdown_format_reward(completion: str, numbers: list[int], target: int) -> float:
    m = ANSWER_TAG.search(completion)
    if not m or "=" not in (eq := m.group(1).strip()):
        return 0.0
    parts = eq.split("=")
    r = -0.5 if len(parts) > 2 else 0.0
    lhs, rhs = parts[0].strip(), parts[-1].strip()
    if re.match(r"^\d+$", rhs) and len(rhs) <= 100 and int(rhs) == target:
        r += 1 / 3
    if re.match(r"^[\d\s+\-*/()]+$", lhs):
        r += 1 / 3
    if sorted(int(n) for n in re.findall(r"\d+", lhs[:MAX_CHARS])) == sorted(numbers):
        r += 1 / 3
    return r


MAX_CHARS = 2_000


def countdown_reward(completion: str, numbers: list[int], target: int) -> float:
    r = countdown_format_reward(completion, numbers, target)
    if m := ANSWER_TAG.search(completion):
        r += 3.0 * verify_equation(m.group(1).strip(), target, numbers)[0]
    return r


def sudoku_reward(completion: str, puzzle: str, solution: str) -> float:
    r = 0.0
    if m := ANSWER_TAG.search(completion):
        grid = m.group(1).strip()
        if len(grid) == 16:
            r += 0.25
            if "".join(sorted(grid)) == "1111222233334444":
                r += 0.25
            if all(puzzle[i] == "0" or puzzle[i] == grid[i] for i in range(16)):
                r += 0.5
    return r + 3.0 * judge_sudoku(completion, puzzle, solution)[0]
