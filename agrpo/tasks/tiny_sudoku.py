"""tiny_sudoku: 4x4 Sudoku with a few blanks, a miniature of d1's 4x4 Sudoku task.

Prompt ``sudoku 1034341221034301`` (the grid in reading order, 0 = blank); completion lists the fills of the blanks
by cell letter (a..p in reading order), then the full grid: ``b2 j4 o2<answer>1234341221434321</answer>``.
Synthetic: a random valid grid (one of all 288) with a few cells blanked, kept only if the completion is unique.
d1's puzzles come from a fixed dataset with more blanks and no trace; the metric is d1's: the fraction of the
blank cells filled correctly.
"""

from __future__ import annotations

import itertools
import random
import re
from functools import lru_cache

from agrpo.tasks._answer import last_answer, well_formed
from agrpo.tasks.base import Task, Verdict, draw_split

_CELLS = "abcdefghijklmnop"
_FILL = re.compile(r"(?<![a-z])([a-p])([1-4])(?![0-9])")  # one fill of the trace: cell letter, digit
# The cells sharing a row, column or 2x2 box with each cell (reading order).
_PEERS = [[j for j in range(16) if j != i and (j // 4 == i // 4 or j % 4 == i % 4 or
                                               (j // 8, j % 4 // 2) == (i // 8, i % 4 // 2))] for i in range(16)]


@lru_cache(maxsize=1)
def all_grids() -> tuple[str, ...]:
    """All 288 valid 4x4 Sudoku grids as 16-character strings."""
    rows = ["".join(p) for p in itertools.permutations("1234")]
    grids = []
    for r in itertools.product(rows, repeat=4):
        cols_ok = all(len({r[i][j] for i in range(4)}) == 4 for j in range(4))
        boxes_ok = all(len({r[i][j] for i in (bi, bi + 1) for j in (bj, bj + 1)}) == 4
                       for bi in (0, 2) for bj in (0, 2))
        if cols_ok and boxes_ok:
            grids.append("".join(r))
    return tuple(grids)


def completions(puzzle: str) -> list[str]:
    """The valid grids that agree with ``puzzle`` on its given (non-'0') cells."""
    return [g for g in all_grids() if all(p == "0" or p == c for p, c in zip(puzzle, g))]


class TinySudoku(Task):
    """A random valid grid with ``min_blanks``..``max_blanks`` cells blanked, kept only if its completion is unique.

    Knobs: ``min_blanks``, ``max_blanks`` (default 6 and 6, so the trace has a fixed length and the answer grid a
    fixed offset; at most 12, four givens, the fewest a unique 4x4 completion needs: the completion is 3·blanks + 17
    tokens, 53 at 12, which must fit the profile's canvas). The blank count is drawn with each candidate, so counts
    whose puzzles are rarely unique are rarer among the examples (acceptance ~46% at 10 blanks, ~23% at 11, ~5% at
    12). Reward: the judge's score (cell accuracy over the
    blanks, partial credit as in d1/AGRPO) plus a 0.1 format bonus when the completion has exactly one ``<answer>``
    followed by exactly one ``</answer>``.
    """

    name = "tiny_sudoku"
    family = "sudoku"

    def __init__(self, min_blanks: int = 6, max_blanks: int = 6):
        if not 1 <= min_blanks <= max_blanks <= 12:
            raise ValueError(f"tiny_sudoku: need 1 <= min_blanks <= max_blanks <= 12 (got {min_blanks}, {max_blanks})")
        self.min_blanks, self.max_blanks = min_blanks, max_blanks

    def _random(self, rng: random.Random) -> dict:
        grids = all_grids()
        while True:
            solution = grids[rng.randrange(len(grids))]
            blanks = set(rng.sample(range(16), rng.randint(self.min_blanks, self.max_blanks)))
            puzzle = "".join("0" if i in blanks else c for i, c in enumerate(solution))
            if len(completions(puzzle)) == 1:
                return {"id": puzzle, "puzzle": puzzle, "solution": solution}

    def examples(self, split, n, seed):
        # Every split holds at least ~0.1 * 288 * 16 (one blank) distinct puzzles, ~200k or more with the
        # defaults, too many to enumerate cheaply; so draw, and give up after a generous budget.
        return draw_split(self.name, split, n, seed, self._random)

    def prompt(self, ex):
        return f"sudoku {ex['puzzle']}"

    def reference_completion(self, ex):
        fills = " ".join(f"{_CELLS[i]}{ex['solution'][i]}" for i, p in enumerate(ex["puzzle"]) if p == "0")
        return f"{fills}<answer>{ex['solution']}</answer>"

    def judge(self, completion, ex):
        ans = last_answer(completion)
        if ans is None:
            return Verdict(False, 0.0, None, "no answer block")
        digits = "".join(ch for ch in ans[:200] if ch in "0123456789")
        grid = (digits + "0" * 16)[:16]
        blanks = [i for i, p in enumerate(ex["puzzle"]) if p == "0"]
        right = sum(grid[i] == ex["solution"][i] for i in blanks)
        correct = right == len(blanks) and grid == ex["solution"]
        reason = "" if correct else f"{len(blanks) - right} of {len(blanks)} blanks wrong" if right < len(blanks) \
            else "blanks right but a given cell was changed"
        return Verdict(correct, right / len(blanks), grid, reason, {"cells_right": right, "blanks": len(blanks)})

    def reward(self, completion, ex):
        """Cell accuracy over the blanks (partial credit, as d1/AGRPO) plus a 0.1 format bonus."""
        return self.judge(completion, ex).score + 0.1 * well_formed(completion)

    def diagnose(self, completion, ex):
        """Where a wrong completion first goes wrong, walking its fills (``b2 j4 …``) in order over the puzzle:
        ``fills a filled cell`` (a given cell, or a blank a second time), ``a fill breaks a rule`` (its digit is
        already in the cell's row, column or box), ``fills skip a blank``; right fills with a wrong grid are
        ``answer ≠ fills`` (fills that break no rule and cover every blank are the unique solution). A grid whose
        blanks are right but a given changed: ``a given cell changed``. Without an answer: the judge's reason."""
        verdict = self.judge(completion, ex)
        if verdict.correct:
            return ""
        if verdict.parsed is None:
            return verdict.reason
        if verdict.extra["cells_right"] == verdict.extra["blanks"]:
            return "a given cell changed"
        grid = list(ex["puzzle"])
        for cell, digit in _FILL.findall(completion[:completion.rfind("<answer>")]):
            i = _CELLS.index(cell)
            if grid[i] != "0":
                return "fills a filled cell"
            if digit in (grid[j] for j in _PEERS[i]):
                return "a fill breaks a rule"
            grid[i] = digit
        return "fills skip a blank" if "0" in grid else "answer ≠ fills"
