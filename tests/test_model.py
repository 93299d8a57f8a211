import torch

from agrpo.model.tiny import TinyDLLM, load_model
from agrpo.sampling import left_pad


def test_model_logits_shape_and_ids(tiny_model, tokenizer):
    x = torch.randint(5, tokenizer.vocab_size, (3, 7))
    assert tiny_model(x).shape == (3, 7, tokenizer.vocab_size)
    assert tiny_model.mask_id == tokenizer.mask_id and tiny_model.eos_id == tokenizer.eos_id


def test_model_left_padding_does_not_change_logits(tiny_model, tokenizer):
    a, b = tokenizer.encode("has 3, gets 4"), tokenizer.encode("1+2")
    ids, mask = left_pad([a, b], tokenizer.pad_id)
    batched = tiny_model(ids, mask)
    alone = tiny_model(torch.tensor([b]))
    assert torch.allclose(batched[1, -len(b):], alone[0], atol=1e-5)


def test_model_is_bidirectional(tiny_model):
    x = torch.randint(5, 40, (1, 6))
    y = x.clone()
    y[0, -1] = (y[0, -1] + 1) % 40 + 5
    assert not torch.allclose(tiny_model(x)[0, 0], tiny_model(y)[0, 0])  # the first position sees the last


def test_model_save_load_roundtrip(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TinyDLLM)
    x = torch.randint(5, 40, (2, 5))
    assert torch.equal(tiny_model(x), loaded(x))


def test_model_load_missing_names_path(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "nothing")


def test_model_flops_positive_and_grow_with_length(tiny_model):
    assert 0 < tiny_model.forward_flops(10) < tiny_model.forward_flops(20)
