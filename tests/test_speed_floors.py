"""The RL-iteration floors of benchmarks/speed.py: each row is divided by the floors of its own setting."""

import pytest

from benchmarks.speed import DRAWS_KEY, with_floor_ratios


def test_each_rl_row_gets_the_floors_of_its_own_draws_per_pass():
    floor = {"agrpo_bf16_floor_s": 0.03, "diffu_grpo_bf16_floor_s": 0.025,
             "agrpo_forward_floor_s": {"1": 0.40, "8": 0.10}, "diffu_grpo_forward_floor_s": 0.2}
    rows = [{"method": "agrpo", "edits": {DRAWS_KEY: 8}, "seconds_per_iteration": 0.12},
            {"method": "agrpo", "edits": {}, "seconds_per_iteration": 0.8},  # a baseline: its defaults, c = 1
            {"method": "diffu_grpo", "edits": {DRAWS_KEY: 8}, "seconds_per_iteration": 0.13},
            {"method": "agrpo", "error": "a failed run"}]
    out = with_floor_ratios(rows, floor)
    assert out[0]["over_flop_floor"] == pytest.approx(4.0) and out[0]["over_forward_floor"] == pytest.approx(1.2)
    assert out[1]["over_forward_floor"] == pytest.approx(2.0)
    assert out[2]["over_flop_floor"] == pytest.approx(5.2) and out[2]["over_forward_floor"] == pytest.approx(0.65)
    assert "over_flop_floor" not in out[3]
