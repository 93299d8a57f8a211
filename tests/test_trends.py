"""Has training plateaued? The slope of a series within run seeds (stats.slope_ci) and the report's reading of
the first and second half of the batches (report.curves.trend_rows)."""

import math
import random

import pandas as pd
import pytest

from agrpo.report.curves import trend_reading, trend_rows, trend_table
from agrpo.stats import DiffCI, slope_ci


def test_slope_within_groups_ignores_their_levels():
    x = [0, 1, 2, 3] * 2
    y = [0.0, 0.5, 1.0, 1.5] + [10.0, 10.5, 11.0, 11.5]  # slope 0.5 in both; levels 10 apart
    s = slope_ci(x, y, ["a"] * 4 + ["b"] * 4)
    assert s.diff == pytest.approx(0.5) and s.low == pytest.approx(0.5) and s.high == pytest.approx(0.5)
    pooled = slope_ci(x, y)  # one group: the level gap is mistaken for noise, not slope
    assert pooled.diff == pytest.approx(0.5) and pooled.high - pooled.low > 1


def test_slope_ci_covers_the_true_slope_about_95_percent_of_the_time():
    rng, hits = random.Random(0), 0
    for _ in range(400):
        x = list(range(40))
        y = [0.01 * xi + rng.gauss(0, 0.3) for xi in x]
        s = slope_ci(x, y)
        hits += s.low <= 0.01 <= s.high
    assert 0.91 <= hits / 400 <= 0.98


def test_slope_ci_without_spread_or_points_is_unbounded():
    assert math.isnan(slope_ci([3, 3, 3], [1, 2, 3]).diff)
    s = slope_ci([0, 1], [0, 1])  # no residual degrees of freedom
    assert s.diff == pytest.approx(1) and s.low == -math.inf


@pytest.mark.parametrize("first, second, reading", [
    (1, 0, "rose, then plateaued"), (1, 1, "still rising"), (0, 1, "still rising"), (0, -1, "falling"),
    (-1, 0, "fell, then flat"), (0, 0, "no detectable trend")])
def test_reading_of_two_halves(first, second, reading):
    ci = {1: DiffCI(1, 0.5, 1.5, 9), -1: DiffCI(-1, -1.5, -0.5, 9), 0: DiffCI(0, -1, 1, 9)}
    assert trend_reading(ci[first], ci[second]) == reading


def _curves(shape, seeds=(0, 1, 2), batches=200, noise=0.02):
    rng, rows = random.Random(1), []
    for s in seeds:
        for i in range(1, batches + 1):
            r = {"method": "agrpo", "run_seed": s, "iteration": i, "reward_mean": 0.3 + 0.05 * s + shape(i)
                 + rng.gauss(0, noise)}
            r["reward_mean/tiny_arith"] = r["reward_mean"]
            if i % 20 == 0:
                r["eval_accuracy/tiny_arith"] = 0.2 + shape(i) + rng.gauss(0, noise)
            rows.append(r)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("shape, reading", [
    (lambda i: 0.2 * min(i, 100) / 100, "rose, then plateaued"),
    (lambda i: 0.2 * i / 200, "still rising"),
    (lambda i: 0.0, "no detectable trend"),
    (lambda i: -0.2 * max(0, i - 100) / 100, "falling")])
def test_trend_rows_read_the_shape_of_each_series(shape, reading):
    rows = trend_rows(_curves(shape))
    assert [r["series"] for r in rows] == ["reward_balanced", "reward_mean/tiny_arith", "eval_accuracy/tiny_arith"]
    assert {r["reading"] for r in rows} == {reading}


def test_trend_table_gives_accuracy_in_points_per_100_batches():
    table = "\n".join(trend_table(_curves(lambda i: 0.2 * i / 200, noise=0.0)))
    assert "| agrpo | greedy accuracy, tiny_arith (points) | +10.0 [+10.0, +10.0] | +10.0 [+10.0, +10.0] |" in table
    assert "| agrpo | reward, task-balanced | +0.100 [+0.100, +0.100] |" in table
    assert trend_table(pd.DataFrame(columns=["method", "run_seed", "iteration", "reward_mean"])) == []
