"""``eval.sort_by_length``: batches of prompts of similar length, rows still reported in test-set order."""

import torch

import agrpo.evaluate as ev
from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer
from agrpo.sampling import SamplerConfig
from agrpo.tasks import get_task


def test_length_sorted_batches_pad_less_and_give_the_same_rows_in_test_set_order(monkeypatch):
    torch.manual_seed(0)
    model = init_tiny(CharTokenizer(), d_model=32, n_layers=1, n_heads=2, d_ff=64)
    task = get_task("tiny_countdown")
    examples = task.examples("test", 24, 0)
    lengths = [len(model.encode_prompt(task, ex)) for ex in examples]
    assert len(set(lengths)) > 3  # prompts of different lengths, or the test shows nothing
    widths = []
    generate = ev.generate

    def spy(model, ids, mask, *a, **k):
        widths.append(ids.shape[0] * ids.shape[1])  # prompt tokens with their padding
        return generate(model, ids, mask, *a, **k)

    monkeypatch.setattr(ev, "generate", spy)
    sampler = SamplerConfig(16, 8, 8)  # greedy: the tiny model's positions skip padding, so rows cannot change
    plain, _ = ev.run_cell(model, task, examples, sampler, 0, 6)
    padded_plain, widths[:] = sum(widths), []
    sorted_rows, _ = ev.run_cell(model, task, examples, sampler, 0, 6, sort_by_length=True)
    assert sum(widths) < padded_plain
    assert sum(widths) == sum(sorted(lengths)[i + 5] * 6 for i in range(0, 24, 6))  # each batch as wide as its longest
    assert [r["id"] for r in sorted_rows] == [ex["id"] for ex in examples]
    assert [r["completion"] for r in sorted_rows] == [r["completion"] for r in plain]
