"""tiny_sudoku: 4x4 Sudoku with a few blanks, a miniature of d1's 4x4 Sudoku task.

Prompt ``sudoku 1034341221034301`` (16 digits, 0 = blank); completion lists the fills of the blanks by cell
letter (a..p in reading order), then the full grid: ``b2 j4 o2<answer>1234341221434321</answer>``. Synthetic:
6 blanks with a unique completion. The metric is d1's: the fraction of blank cells filled correctly.
"""

from __future__ import annotations

import itertools
import random
from functools import lru_cache

from agrpo.tasks._answer import last_answer, well_formed
from agrpo.tasks.base import Task, Verdict, split_of

_CELLS = "abcdefghijklmnop"


@lru_cache(maxsize=1)
def all_grids() -> tuple[str, ...]:
    """All 288 valid 4x4 Sudoku grids as 16-character strings."""
    rows = ["".join(p) for p in itertools.permutations("1234")]
    grids = []
    for r in itertools.product(rows, repeat=4):
        cols_ok = all(len({r[i][j] for i in range(4)}) == 4 for j in range(4))
        boxes_ok = all(len({r[i][j] for i in (bi, bi + 1) for j in (bj, bj + 1)}) == 4 for bi in (0, 2) for bj in (0, 2))
        if cols_ok and boxes_ok:
            grids.append("".join(r))
    return tuple(grids)


def completions(puzzle: str) -> list[str]:
    return [g for g in all_grids() if all(p == "0" or p == c for p, c in zip(puzzle, g))]


class TinySudoku(Task):
    """A random valid grid with ``min_blanks``..``max_blanks`` cells blanked (default 6, so the trace has a fixed
    length and the answer grid a fixed offset from the puzzle), unique solution."""

    name = "tiny_sudoku"

    def __init__(self, min_blanks: int = 6, max_blanks: int = 6):
        self.min_blanks, self.max_blanks = min_blanks, max_blanks

    def _random(self, rng: random.Random) -> dict:
        grids = all_grids()
        while True:
            solution = grids[rng.randrange(len(grids))]
            blanks = sorted(rng.sample(range(16), rng.randint(self.min_blanks, self.max_blanks)))
            puzzle = "".join("0" if i in blanks else c for i, c in enumerate(solution))
            if len(completions(puzzle)) == 1:
                return {"id": puzzle, "puzzle": puzzle, "solution": solution}

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
        raise ValueError(f"tiny_sudoku: could not draw {n} distinct {split} problems (only {len(out)} found)")

    def prompt(self, ex):
        return f"sudoku {ex['puzzle']}"

    def reference_completion(self, ex):
        fills = " ".join(f"{_CELLS[i]}{ex['solution'][i]}" for i, p in enumerate(ex["puzzle"]) if p == "0")
        return f"{fills}<answer>{ex['solution']}</answer>"

    def judge(self, completion, ex):
        ans = last_answer(completion)
        if ans is None:
            return Verdict(False, 0.0, None, "no answer block")
        digits = "".join(ch for ch in ans[:100] if ch.isdigit())
        grid = (digits + "0" * 16)[:16]
        blanks = [i for i, p in enumerate(ex["puzzle"]) if p == "0"]
        right = sum(grid[i] == ex["solution"][i] for i in blanks)
        score = right / len(blanks)
        correct = grid == ex["solution"]
        return Verdict(correct, score, grid, "" if correct else f"{len(blanks) - right} of {len(blanks)} blanks wrong",
                       {"cells_right": right, "blanks": len(blanks)})

    def reward(self, completion, ex):
        """Cell accuracy over the blanks (partial credit, as d1/AGRPO) plus a 0.1 format bonus."""
        return self.judge(completion, ex).score + 0.1 * well_formed(completion)
