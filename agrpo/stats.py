"""Confidence intervals for per-item accuracies and for paired differences of two systems (standard library
only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Hashable, Mapping, Sequence


def mean_ci(scores: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-item scores in [0, 1].

    With n items, mean p̂ and z = Φ⁻¹(1/2 + confidence/2) (1.96 for 95%):

    * all scores 0 or 1 — the Wilson score interval
          centre = (p̂ + z²/2n) / (1 + z²/n)
          half   = z · sqrt(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n)
          (low, high) = (centre − half, centre + half)
    * fractional scores (e.g. Sudoku cell accuracy) — the normal approximation
          (low, high) = p̂ ∓ z · s/√n,   s² = Σ(xᵢ − p̂)² / (n − 1)   (s = 0 when n = 1)
      clipped to [0, 1]. A Student-t quantile would be slightly wider at small n; z keeps this dependency-free.

    Raises ValueError for no scores or a confidence outside (0, 1).
    """
    n = len(scores)
    if n == 0:
        raise ValueError("mean_ci of no scores")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mean = math.fsum(scores) / n
    if all(s in (0, 1) for s in scores):
        denom = 1 + z * z / n
        centre = (mean + z * z / (2 * n)) / denom
        half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / denom
        return mean, max(0.0, centre - half), min(1.0, centre + half)
    var = math.fsum((s - mean) ** 2 for s in scores) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


# ------------------------------------------------------------------------------------- paired differences

@dataclass(frozen=True)
class DiffCI:
    """A difference of mean per-item scores with its confidence interval (fractions, not points), over n items."""
    diff: float
    low: float
    high: float
    n: int

    @property
    def sign(self) -> int:
        """+1 if the interval lies above 0, −1 if below, 0 if it includes 0."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _diff_ci(d: Sequence[float], confidence: float) -> DiffCI:
    """d̄ ∓ z · s_d/√n for per-item differences dᵢ (s_d undefined at n = 1: the interval is (−∞, ∞))."""
    n = len(d)
    if n == 0:
        raise ValueError("a difference CI needs at least one item")
    z = _z(confidence)
    mean = math.fsum(d) / n
    if n == 1:
        return DiffCI(mean, -math.inf, math.inf, 1)
    half = z * math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1) / n)
    return DiffCI(mean, mean - half, mean + half, n)


def _same_length(**seqs: Sequence[float]) -> None:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("per-item scores must cover the same items in the same order; lengths differ: "
                         + ", ".join(f"{k} {v}" for k, v in lengths.items()))


def paired_diff_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> DiffCI:
    """Mean difference of two systems' per-item scores on the same items (aᵢ, bᵢ for item i, same order).

    With dᵢ = aᵢ − bᵢ over n items, d̄ = Σdᵢ/n, s_d² = Σ(dᵢ − d̄)²/(n − 1) and z = Φ⁻¹(1/2 + confidence/2):

        (low, high) = d̄ ∓ z · s_d/√n        (normal approximation; 1.96 for 95%)

    Pairing removes the between-item variance the two systems share, so this is narrower than comparing two
    separate per-system intervals. Not clipped (dᵢ ∈ [−1, 1] for scores in [0, 1]); s_d = 0 gives a zero-width
    interval; n = 1 leaves s_d undefined and gives (−∞, ∞).

    Raises ValueError if a and b differ in length or are empty.
    """
    _same_length(a=a, b=b)
    return _diff_ci([x - y for x, y in zip(a, b)], confidence)


def diff_in_diff_ci(a_full: Sequence[float], a_fast: Sequence[float], b_full: Sequence[float],
                    b_fast: Sequence[float], confidence: float = 0.95) -> DiffCI:
    """How much more system A loses than system B when sampling gets cheaper (e.g. 4x fewer steps).

    Per item, dᵢ = (a_fullᵢ − a_fastᵢ) − (b_fullᵢ − b_fastᵢ) (A's drop minus B's drop; > 0: A drops more), then
    d̄ ∓ z · s_d/√n exactly as in paired_diff_ci. All four lists hold the same items in the same order.

    Approximation: only the test items are treated as random. The trained models (run seeds) are held fixed, so
    the interval says whether the difference is real for these runs on this test set, not whether it would
    survive retraining with new seeds; seed-to-seed variation is not in it.

    Raises ValueError if the lists differ in length or are empty.
    """
    _same_length(a_full=a_full, a_fast=a_fast, b_full=b_full, b_fast=b_fast)
    d = [(af - aq) - (bf - bq) for af, aq, bf, bq in zip(a_full, a_fast, b_full, b_fast)]
    return _diff_ci(d, confidence)


def _show(ids, k: int = 5) -> str:
    ids = sorted(ids, key=repr)
    return ", ".join(map(repr, ids[:k])) + (f" and {len(ids) - k} more" if len(ids) > k else "")


def same_ids(a: Mapping[Hashable, float], b: Mapping[Hashable, float], a_name: str = "a",
             b_name: str = "b") -> list:
    """The item ids of a (in a's order) after checking that b has exactly the same ids; ValueError names the
    ids one side lacks."""
    only_a, only_b = a.keys() - b.keys(), b.keys() - a.keys()
    if only_a or only_b:
        parts = [f"{b_name} lacks {len(only_a)} item(s) of {a_name}: {_show(only_a)}"] if only_a else []
        parts += [f"{a_name} lacks {len(only_b)} item(s) of {b_name}: {_show(only_b)}"] if only_b else []
        raise ValueError("per-item scores are not over the same items: " + "; ".join(parts))
    return list(a)


def item_means(cells: Sequence[Mapping[Hashable, float]], names: Sequence[str] | None = None) -> dict:
    """Per-item mean over several cells of one system (run seeds × eval seeds): {id: Σ_c score_c(id) / C}.

    Every cell must score the same items; otherwise ValueError names the cell and the ids it lacks or adds
    (cells are named by `names`, else by position). Ids keep the first cell's order.
    """
    if not cells:
        raise ValueError("item_means of no cells")
    names = list(names) if names is not None else [f"cell {i}" for i in range(len(cells))]
    for c, name in zip(cells[1:], names[1:]):
        same_ids(cells[0], c, names[0], name)
    return {i: math.fsum(c[i] for c in cells) / len(cells) for i in cells[0]}


# ------------------------------------------------------------------------------------- trends

def slope_ci(x: Sequence[float], y: Sequence[float], groups: Sequence[Hashable] | None = None,
             confidence: float = 0.95) -> DiffCI:
    """The least-squares slope b of y on x within groups (each run seed its own level: x and y centred per group),
    b = Σ x̃ỹ / Σ x̃², with b ∓ z · √(σ̂² / Σ x̃²), σ̂² = Σ (ỹ − b x̃)² / (n − g − 1), as a ``DiffCI`` (``n`` points).
    Approximate: it treats the points as independent, which successive rollout batches of one run only roughly
    are. Fewer than g + 2 points, or no spread in x: the interval is (−∞, ∞) (slope NaN without spread)."""
    _same_length(x=x, y=y)
    groups = [0] * len(x) if groups is None else list(groups)
    _same_length(x=x, groups=groups)
    by: dict = {}
    for gi, xi, yi in zip(groups, x, y):
        by.setdefault(gi, []).append((float(xi), float(yi)))
    xs, ys = [], []
    for pts in by.values():
        mx, my = math.fsum(p[0] for p in pts) / len(pts), math.fsum(p[1] for p in pts) / len(pts)
        xs += [p[0] - mx for p in pts]
        ys += [p[1] - my for p in pts]
    sxx = math.fsum(a * a for a in xs)
    if sxx == 0:
        return DiffCI(math.nan, -math.inf, math.inf, len(xs))
    b = math.fsum(a * c for a, c in zip(xs, ys)) / sxx
    dof = len(xs) - len(by) - 1
    if dof < 1:
        return DiffCI(b, -math.inf, math.inf, len(xs))
    half = _z(confidence) * math.sqrt(math.fsum((c - b * a) ** 2 for a, c in zip(xs, ys)) / dof / sxx)
    return DiffCI(b, b - half, b + half, len(xs))
