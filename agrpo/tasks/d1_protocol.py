"""The d1 protocol (``dllm-reasoning/d1``: ``eval/*.py``, ``eval/parse_and_get_acc.py``, ``eval/parser_helper.py``,
``diffu-grpo/reward_func.py``, ``math500_utils.py``): prompts, answer extraction, judging and rewards.

Prompts are one user turn ``SYSTEM + "\\n\\n" + question`` rendered with the chat template, then ``<reasoning>``
is appended (the evaluation's ``add_reasoning``). Judges return (score, parsed, reason): GSM8K exact float
equality, MATH-500 Hendrycks ``is_equiv``, Countdown number multiset + arithmetic value, Sudoku correct empty
cells (the metric is their micro-average over puzzles). Rewards are d1's training reward functions summed.
Deviations, all for robustness and all recorded as reasons: arithmetic is evaluated by ``judging.safe_arith``
instead of ``eval`` (same value, but huge powers are refused), and over-long or over-deep answers are not parsed.
"""

from __future__ import annotations

import re

from agrpo.tasks.judging import JudgeError, guard, safe_arith

_MATH_INSTRUCTION = ("You are a math expert. You will be given a question to solve. Solve it step by step. "
                     "Wrap the final answer in a \\boxed{}.")
_BOXED_FORMAT = ("Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n"
                 "\\boxed{...}\n</answer>")
# d1's GSM8K and MATH-500 prompts differ only in a trailing space and a stray quote (kept: prompts are exact)
GSM_SYSTEM_PROMPT = _MATH_INSTRUCTION + " \n" + _BOXED_FORMAT
MATH_SYSTEM_PROMPT = _MATH_INSTRUCTION + "\n" + _BOXED_FORMAT + '" \n'

COUNTDOWN_SYSTEM_PROMPT = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to exactly the provided target "
    "number. You may use the operations +, -, *, and / as needed, but each number must be used exactly once. Think "
    "step-by-step. After reasoning, provide only your final expression inside \\boxed{} tags without including an "
    "equals sign or the target number. For example: \\boxed{a + b * c}" + _BOXED_FORMAT
)

SUDOKU_SYSTEM_PROMPT = """
Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, top-to-bottom, where '0' represents empty cells.

Rules:
- Fill empty cells with digits 1-4
- Each row must contain digits 1-4 exactly once
- Each column must contain digits 1-4 exactly once
- Each 2x2 box must contain digits 1-4 exactly once

Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.

Respond in this exact format:
<reasoning>
Your step-by-step solving process
</reasoning>
<answer>
[16-character solution string with no spaces or separators]
</answer>
"""

ASSISTANT_PREFIX = "<reasoning>"  # appended after the chat template's generation prompt


def user_message(family: str, ex: dict) -> str:
    if family == "gsm8k":
        return GSM_SYSTEM_PROMPT + "\n\n" + ex["question"]
    if family == "math":
        return MATH_SYSTEM_PROMPT + "\n\n" + ex["problem"]
    if family == "countdown":
        return COUNTDOWN_SYSTEM_PROMPT + "\n\n" + f"Numbers: {ex['numbers']}\nTarget: {ex['target']}"
    if family == "sudoku":
        return SUDOKU_SYSTEM_PROMPT + "\n\n" + f"Solve the following Sudoku puzzle: {ex['puzzle']}\n"
    raise ValueError(f"unknown task family {family!r}")


# d1's RL training prompts (diffu-grpo/data_utils.py): a generic format prompt, the bare answer in <answer> (no
# \boxed{} for GSM8K, Countdown and Sudoku), and no <reasoning> prefill — what its training rewards expect.
TRAIN_SYSTEM_PROMPT = "\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"


def train_user_message(family: str, ex: dict) -> str:
    if family == "gsm8k":
        return TRAIN_SYSTEM_PROMPT + "\n\n" + ex["question"]
    if family == "math":
        return (TRAIN_SYSTEM_PROMPT + "\n\nYou are a math expert. You will be given a question to solve. Solve it step "
                "by step. Wrap the final answer in a \\boxed{}. \n\n" + ex["problem"])
    if family == "countdown":
        return (f"{TRAIN_SYSTEM_PROMPT}\nUsing only the numbers {ex['numbers']}, create an arithmetic expression that "
                f"evaluates to exactly {ex['target']}. You must use all numbers from the list, and each number must be "
                "used exactly once. You may use the operations +, -, *, and / as needed. After reasoning, provide only "
                "your final expression inside <answer></answer> tags without including an equals sign or the target "
                "number. For example, if the numbers are [2, 3, 4] and the target is 5, a valid answer is: "
                "<answer>\n2*4-3\n</answer>")
    if family == "sudoku":
        return f"{SUDOKU_SYSTEM_PROMPT}\n\nSolve the following Sudoku puzzle: {ex['puzzle']}\n"
    raise ValueError(f"unknown task family {family!r}")


# ---------------------------------------------------------------------------------------------------- MATH helpers

def last_boxed_only_string(s: str) -> str | None:
    """The last ``\\boxed{…}`` (or ``\\boxed x``, or ``\\fbox{…}``) with balanced braces; the whole string if none;
    None if unclosed (Hendrycks' helper, as d1)."""
    idx = s.rfind("\\boxed")
    if "\\boxed " in s:
        return "\\boxed " + s.split("\\boxed ")[-1].split("$")[0]
    if idx < 0:
        idx = s.rfind("\\fbox")
        if idx < 0:
            return s
    depth, i = 0, idx
    while i < len(s):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[idx:i + 1]
        i += 1
    return None


def remove_boxed(s: str) -> str:
    if s.startswith("\\boxed "):
        return s[len("\\boxed "):]
    if s.startswith("\\boxed{") and s.endswith("}"):
        return s[len("\\boxed{"):-1]
    return s


def _fix_fracs(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for sub in parts[1:]:
        out += "\\frac"
        if sub[0] == "{":  # IndexError on a trailing \frac, as d1 (is_equiv then compares the raw strings)
            out += sub
            continue
        if len(sub) < 2:
            return s
        a, b, rest = sub[0], sub[1], sub[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _fix_sqrt(s: str) -> str:
    if "\\sqrt" not in s:
        return s
    parts = s.split("\\sqrt")
    out = parts[0]
    for sub in parts[1:]:
        out += "\\sqrt" + sub if sub[0] == "{" else "\\sqrt{" + sub[0] + "}" + sub[1:]
    return out


def _fix_a_slash_b(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    a, b = int(parts[0]), int(parts[1])  # ValueError propagates, as d1 (is_equiv then compares the raw strings)
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if s == f"{a}/{b}" else s


def strip_string(s: str) -> str:
    """Hendrycks' MATH normalisation (as d1's ``strip_string``)."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in s:
        parts = s.split("\\text{ ")
        if len(parts) != 2:
            raise ValueError("several \\text{ units")
        s = parts[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    eq = s.split("=")
    if len(eq) == 2 and len(eq[0]) <= 2:
        s = eq[1]
    s = _fix_sqrt(s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def is_equiv(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return strip_string(a) == strip_string(b)
    except Exception:
        return a == b


# ---------------------------------------------------------------------------------------------------- judges

def gsm8k_gold(answer_text: str) -> float | None:
    """d1's ``Parser.extract_answer_gsm8k``: the number after ``####`` (no sign, commas dropped); None when the
    regex finds none — a negative answer such as ``#### -10``, which d1 can then never score as correct."""
    m = re.search(r"####\s*\$?([\d,]+(?:\.\d+)?)", answer_text)
    return float(m.group(1).replace(",", "")) if m else None


def _to_float(text: str, last: bool) -> float | None:
    try:
        return float(text)
    except ValueError:
        nums = re.findall(r"-?\d+\.?\d*", text)
        if not nums:
            return None
        try:
            return float(nums[-1] if last else nums[0])
        except ValueError:
            return None


def judge_gsm8k(completion: str, gold: float | None) -> tuple[float, str | None, str]:
    if gold is None:
        return 0.0, None, "d1's gold parser reads no unsigned number after #### (negative answer): never correct under d1"
    parsed = None
    for content in re.findall(r"\\boxed{(.*?)}", completion):
        content = content.strip()
        if content and not re.match(r"^\.+$", content):
            parsed = _to_float(content, last=False)
            if parsed is not None:
                break
    if parsed is None:
        m = re.search(r"<answer>(.*?)</answer>", completion, re.DOTALL)
        if m and m.group(1).strip():
            parsed = _to_float(m.group(1).strip(), last=True)
    if parsed is None:
        return 0.0, None, "no number in \\boxed{} or <answer>"
    ok = parsed == gold
    return float(ok), repr(parsed), "" if ok else f"{parsed!r} != {gold!r}"


def judge_math(completion: str, gold: str) -> tuple[float, str | None, str]:
    boxed = last_boxed_only_string(completion)
    parsed = remove_boxed(boxed) if boxed is not None else None
    if not parsed:
        m = re.search(r"<answer>(.*?)</answer>", completion, re.DOTALL)
        parsed = m.group(1).strip() if m else parsed
    if parsed is None:
        return 0.0, None, "unbalanced \\boxed{ and no <answer>"
    try:
        guard(parsed)
    except JudgeError as e:
        return 0.0, parsed[:200], str(e)
    ok = is_equiv(parsed, gold)
    return float(ok), parsed, "" if ok else "not equivalent (Hendrycks strip_string)"


def countdown_equation(completion: str) -> str:
    boxed = last_boxed_only_string(completion)
    if boxed is not None:
        equation = remove_boxed(boxed)
    else:
        m = re.search(r"<answer>(.*?)</answer>", completion, re.DOTALL)
        equation = m.group(1).strip() if m else completion
    equation = equation.replace(r"\div", "/").replace(r"\times", "*").replace(r"\cdot", "*")
    lhs = _first_expression_equals_number(equation)
    return lhs.strip() if lhs is not None else equation


def _first_expression_equals_number(text: str) -> str | None:
    r"""What ``re.search(r"([0-9+\-*/() ]+)=[0-9. ]+", text).group(1)`` returns, in linear time: the regex's
    leftmost match is the first maximal run of [0-9+-*/() ] directly followed by "=" and a [0-9. ] character."""
    for run in re.finditer(r"[0-9+\-*/() ]+", text):
        end = run.end()
        if text[end:end + 1] == "=" and text[end + 1:end + 2] and text[end + 1] in "0123456789. ":
            return run.group(0)
    return None


def judge_countdown(completion: str, numbers: list[int], target: int) -> tuple[float, str | None, str]:
    equation = countdown_equation(completion)
    try:
        used = sorted(int(n) for n in re.findall(r"\d+", guard(equation, "equation")))
    except (JudgeError, ValueError) as e:
        return 0.0, equation[:200], str(e)
    if used != sorted(numbers):
        return 0.0, equation, f"uses {used}, not the numbers {sorted(numbers)}"
    if not re.match(r"^[\d+\-*/().\s]+$", equation):
        return 0.0, equation, "characters outside digits, + - * / ( ) ."
    try:
        value = safe_arith(equation)
    except (JudgeError, SyntaxError, ZeroDivisionError, ValueError, OverflowError, RecursionError) as e:
        return 0.0, equation, f"not evaluable: {type(e).__name__}"
    ok = abs(value - target) < 1e-5
    return float(ok), equation, "" if ok else f"evaluates to {value:g}, not {target}"


# d1's patterns in order; the fourth, ".*?(\d{16})\s*</answer>", is written without its leading lazy ".*?" (the
# same first match under re.search, without the quadratic scan)
SUDOKU_PATTERNS = [r"<answer>.*?```\s*([\d\s]+)```", r"<answer>(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|</answer>)",
                   r"</answer>\s*(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|$)", r"(\d{16})\s*</answer>", r"\b(\d{16})\b"]


def sudoku_solution_string(completion: str) -> str:
    for pattern in SUDOKU_PATTERNS:
        m = re.search(pattern, completion, re.DOTALL)
        if m and m.group(1).strip():
            return re.sub(r"\s", "", m.group(1).strip())
    return ""


def judge_sudoku(completion: str, puzzle: str, solution: str) -> tuple[int, int, str]:
    """(correct empty cells, empty cells, parsed): the metric is Σ correct / Σ empty over puzzles (micro-average)."""
    empty = [i for i in range(16) if puzzle[i] == "0"]
    parsed = sudoku_solution_string(completion)
    if not parsed:
        return 0, len(empty), ""
    parsed = (parsed + "0" * 16)[:16]
    return sum(parsed[i] == solution[i] for i in empty), len(empty), parsed


# ---------------------------------------------------------------------------------------------------- rewards

def _xml_answer(text: str) -> str:
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def count_xml(text: str) -> float:
    c = 0.0
    if text.count("<reasoning>\n") == 1:
        c += 0.125
    if text.count("\n</reasoning>\n") == 1:
        c += 0.125
    if text.count("\n<answer>\n") == 1:
        c += 0.125 - len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        c += 0.125 - (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return c


def gsm8k_reward(completion: str, gold_text: str) -> float:
    """xmlcount + soft format + strict format + integer + correctness (string equality with the #### answer)."""
    answer = _xml_answer(completion)
    r = count_xml(completion)
    r += 0.5 if re.match(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", completion) else 0.0
    r += 0.5 if re.match(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$", completion) else 0.0
    r += 0.5 if answer.isdigit() else 0.0
    r += 2.0 if answer == gold_text.split("####")[1].strip() else 0.0
    return r


def boxed_in_answer(completion: str, backspace_bug: bool = False) -> float:
    """1.0 if an ``<answer>…</answer>`` span can be split out (then only that span is searched), plus 1.0 if it
    contains ``\\boxed``, else 0.5. ``backspace_bug`` reproduces the released non-raw literal ``"\\boxed"``
    (``\\b`` = backspace), which never matches."""
    span, r = completion, 0.0
    if "<answer>" in completion:
        span, r = completion.split("<answer>")[1].split("</answer>")[0], 1.0
    needle = "\boxed" if backspace_bug else "\\boxed"
    return r + (1.0 if needle in span else 0.5)


def boxed_and_answer_tags_format_reward(completion: str, backspace_bug: bool = False) -> float:
    """d1's MATH format reward: 0.5 × ``boxed_in_answer`` — 1.0 / 0.75 / 0.5 / 0.25 as intended; with the released
    bug 0.75 with answer tags and 0.25 without, whatever the ``\\boxed``."""
    return 0.5 * boxed_in_answer(completion, backspace_bug)


def math_reward(completion: str, gold_solution_or_answer: str, backspace_bug: bool = False) -> float:
    """correctness 2.0 (last \\boxed of the completion ≡ last \\boxed of the reference) + the format reward."""
    gold = last_boxed_only_string(gold_solution_or_answer)
    gold = remove_boxed(gold) if gold is not None and "\\boxed" in gold else gold_solution_or_answer
    pred = last_boxed_only_string(completion)
    pred = remove_boxed(pred) if pred is not None else completion  # d1 keeps the raw text when \boxed{ is unclosed
    ok = len(pred) <= 2_000 and is_equiv(pred, gold)
    return 2.0 * ok + boxed_and_answer_tags_format_reward(completion, backspace_bug)


def countdown_reward(completion: str, numbers: list[int], target: int) -> float:
    """TinyZero's compute_score: last <answer> span; 0 if none, 0.1 if numbers differ or not evaluable, 1.0 if
    it evaluates to the target (|Δ| < 1e-5), else 0.1."""
    spans = re.findall(r"<answer>(.*?)</answer>", completion, re.DOTALL)
    if not spans:
        return 0.0
    eq = spans[-1].strip()
    try:
        if sorted(int(n) for n in re.findall(r"\d+", guard(eq, "equation"))) != sorted(numbers):
            return 0.1
        if not re.match(r"^[\d+\-*/().\s]+$", eq):
            return 0.1
        return 1.0 if abs(safe_arith(eq) - target) < 1e-5 else 0.1
    except Exception:
        return 0.1


def sudoku_reward(completion: str, puzzle: str, solution: str) -> float:
    """Fraction of the empty cells right in the last <answer> span (digits only, padded/cut to 16); 0 if none."""
    spans = re.findall(r"<answer>(.*?)</answer>", completion, re.DOTALL)
    if not spans:
        return 0.0
    digits = "".join(ch for ch in spans[-1].strip() if ch.isdigit())
    if not digits:
        return 0.0
    digits = (digits + "0" * 16)[:16]
    empty = [i for i in range(16) if puzzle[i] == "0"]
    return sum(digits[i] == solution[i] for i in empty) / len(empty) if empty else 0.0
