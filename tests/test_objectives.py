import torch

from agrpo.rl.objectives import completion_mask
from agrpo.rl.trainer import group_advantages


def test_group_advantages_subtract_group_mean():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert torch.equal(group_advantages(r, 4), torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))


def test_completion_mask_includes_first_eos(tokenizer):
    e = tokenizer.eos_id
    ids = torch.tensor([[7, 8, e, e], [7, 7, 7, 7]])
    assert completion_mask(ids, e).tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
