"""Confidence intervals for per-item accuracies (standard library only)."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence


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
