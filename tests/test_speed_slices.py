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


def test_slices_in_length_order_are_a_test_set_of_their_own():
    rows = [_slice(64, 0, 64, 50.0), _slice(64, 64, 36, 30.0),
            {**_slice(64, 0, 100, 60.0), "order": "by length"}]
    plain, by_length = merge_test_set_slices(rows)
    assert (plain["order"], plain["complete"], plain["seconds"]) == ("test set", True, 80.0)
    assert (by_length["order"], by_length["complete"], by_length["seconds"]) == ("by length", True, 60.0)


@pytest.mark.parametrize("rows,message", [
    ([_slice(64, 0, 64, 1.0), _slice(64, 32, 68, 1.0)], "steps 64: slices overlap at item 64"),
    ([_slice(64, 0, 32, 1.0), _slice(64, 64, 36, 1.0)], "steps 64: slices leave a gap at item 32"),
    ([_slice(64, 0, 64, 1.0), _slice(64, 64, 36, 1.0, batch=16)], r"steps 64: slices differ in batch \(\[16, 32\]\)"),
])
def test_overlapping_or_gapped_slices_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        merge_test_set_slices(rows)


def test_a_slice_cut_mid_run_leaves_whole_batches_that_the_next_slice_continues(monkeypatch):
    """The end of a lease kills a run between batches: what ``progress`` last saw is a slice of whole batches, and
    a run from its end completes the set (the GPU parts replaced by counters)."""
    import types

    import torch

    import benchmarks.speed_llada as sl

    batches = []

    def generate(model, ids, mask, sc, record=True):
        if sc.steps == 8:  # the warm-up
            return None
        if len(batches) == 2 and cut["on"]:
            raise KeyboardInterrupt  # the lease ends during the third batch
        batches.append(ids.shape[0])
        return types.SimpleNamespace(row_nfe=torch.full((ids.shape[0],), sc.steps))

    cut = {"on": True}
    monkeypatch.setattr(sl, "prompts", lambda lengths, pad, g, device: (torch.zeros(len(lengths), 3), None))
    monkeypatch.setattr(sl, "timed", lambda fn: (fn(), 2.0))
    monkeypatch.setattr(sl, "generate", generate)
    monkeypatch.setattr(sl, "bare_forward", lambda *a, **k: 0.01)
    model = types.SimpleNamespace(pad_id=0, forward_flops=lambda n: 1e9 * n)
    n = len(__import__("json").loads((sl.ROOT / "benchmarks/gsm8k_prompt_lengths.json").read_text())["lengths"])
    seen = []

    def run(start, progress=None):
        args = types.SimpleNamespace(item_start=start, items=n, batch=512, device="cpu", sort_by_length=False)
        return sl.test_set_slice(model, args, 64, 1e12, progress)

    with pytest.raises(KeyboardInterrupt):
        run(0, seen.append)
    first = seen[-1]
    assert (first["item_start"], first["items"], first["items_asked"]) == (0, 1024, n)
    cut["on"] = False
    rest = run(first["items"])
    whole = merge_test_set_slices([first, rest])[0]
    assert (whole["items"], whole["complete"], whole["slices"]) == (n, True, 2)
    assert whole["seconds"] == pytest.approx(2.0 * 3)  # three timed batches: two, then the cut run's remainder
