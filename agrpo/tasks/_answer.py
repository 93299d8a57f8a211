"""Shared parsing for the synthetic tasks' ``<answer>…</answer>`` format."""

from __future__ import annotations

import re

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def last_answer(completion: str) -> str | None:
    """Content of the last complete ``<answer>…</answer>`` block, stripped; None if there is none."""
    found = _ANSWER.findall(completion[:10_000])
    return found[-1].strip() if found else None


def well_formed(completion: str) -> bool:
    """Exactly one ``<answer>`` followed by exactly one ``</answer>``."""
    return completion.count("<answer>") == 1 and completion.count("</answer>") == 1 and \
        completion.index("<answer>") < completion.index("</answer>")
