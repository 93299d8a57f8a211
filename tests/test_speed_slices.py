"""The 8B test-set benchmark run in slices over several leases (benchmarks/speed_llada.py): slices add up to
the whole set, and overlaps or gaps are refused."""

import pytest

from benchmarks.speed_llada import merge_test_set_slices


def _slice(steps, start, items, seconds, of=100, batch=32):
    return {"steps": steps, "item_start": start, "items": items, "of_items": of, "batch": batch, "seconds": seconds,
            "forward_floor_s": seconds / 1.02, "flop_floor_s": seconds / 1.6}


def test_slices_of_one_test_set_add_up_to_the_whole():
    rows = [_slice(64, 64, 36, 30.0), _slice(128, 0, 64, 100.0), _slice(64, 0, 64, 50.0)]
    whole = merge_test_set_slices(rows)
    assert [r["steps"] for r in whole] == [128, 64]
    full = whole[1]
    assert (full["items"], full["complete"], full["slices"], full["seconds"]) == (100, True, 2, 80.0)
    assert full["over_forward_floor"] == pytest.approx(1.02) and full["over_flop_floor"] == pytest.approx(1.6)
    assert whole[0]["complete"] is False and whole[0]["items"] == 64  # 128 steps: one slice so far


@pytest.mark.parametrize("rows,message", [
    ([_slice(64, 0, 64, 1.0), _slice(64, 32, 68, 1.0)], "steps 64: slices overlap at item 64"),
    ([_slice(64, 0, 32, 1.0), _slice(64, 64, 36, 1.0)], "steps 64: slices leave a gap at item 32"),
    ([_slice(64, 0, 64, 1.0), _slice(64, 64, 36, 1.0, batch=16)], r"steps 64: slices differ in batch \(\[16, 32\]\)"),
])
def test_overlapping_or_gapped_slices_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        merge_test_set_slices(rows)
