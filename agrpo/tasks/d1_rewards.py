"""d1's reward functions (``dllm-reasoning/d1``: ``diffu-grpo/reward_func.py``, ``math500_utils.py``), as plain
callables of (completion text, …). The real tasks of the d1 protocol use them; quirks of the released code are
reproduced only through named flags (see docs/baselines.md).
"""

from __future__ import annotations


def boxed_in_answer(completion: str, backspace_bug: bool = False) -> float:
    """1.0 if an ``<answer>…</answer>`` span can be split out (then only that span is searched), plus 1.0 if it
    contains ``\\boxed``, else 0.5.

    ``backspace_bug`` reproduces the released test ``"\\boxed" in r`` written as a non-raw Python literal: ``"\\b"``
    is a backspace, so the string searched for is "\\x08oxed" and the test never succeeds.
    """
    span = completion
    reward = 0.0
    if "<answer>" in completion:
        span = completion.split("<answer>")[1].split("</answer>")[0]
        reward += 1.0
    needle = "\boxed" if backspace_bug else "\\boxed"  # noqa: the first literal is the released bug on purpose
    return reward + (1.0 if needle in span else 0.5)


def boxed_and_answer_tags_format_reward(completion: str, backspace_bug: bool = False) -> float:
    """d1's MATH format reward: 0.5 × ``boxed_in_answer`` — 1.0 / 0.75 / 0.5 / 0.25 as intended; with the released
    bug 0.75 with answer tags and 0.25 without, whatever the ``\\boxed``."""
    return 0.5 * boxed_in_answer(completion, backspace_bug)
