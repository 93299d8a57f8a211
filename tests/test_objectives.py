import torch

from agrpo.rl.objectives import completion_mask
from agrpo.rl.trainer import group_advantages
from helpers import flat_grad as grads
from helpers import make_batch
from baselines.diffu_grpo import DiffuGRPO, perturbed_inputs

def test_group_advantages_subtract_group_mean():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert torch.equal(group_advantages(r, 4), torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))


def test_completion_mask_includes_first_eos(tokenizer):
    e = tokenizer.eos_id
    ids = torch.tensor([[7, 8, e, e], [7, 7, 7, 7]])
    assert completion_mask(ids, e).tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def _diffu(beta=0.0, p=0.5):
    return DiffuGRPO(DiffuGRPO.Args(p_mask_prompt=p, clip_epsilon=0.5, beta=beta), torch.Generator().manual_seed(0))


def test_diffu_grpo_prompt_masks_shared_within_and_fresh_across_iterations(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer)
    obj = _diffu()
    obj.prepare(tiny_model, None, batch, 3)
    seeds = batch.extras["mask_seeds"]
    assert len(set(seeds)) == 3
    a1, _ = perturbed_inputs(batch.sample, tokenizer.mask_id, 0.5, seeds[0])
    a2, _ = perturbed_inputs(batch.sample, tokenizer.mask_id, 0.5, seeds[0])
    b1, _ = perturbed_inputs(batch.sample, tokenizer.mask_id, 0.5, seeds[1])
    assert torch.equal(a1, a2) and not torch.equal(a1, b1)
    assert (a1[:, -8:] == tokenizer.mask_id).all()  # completion fully masked
    pad = batch.sample.prompt_mask == 0
    assert (a1[:, : pad.shape[1]][pad] == tokenizer.pad_id).all()  # padding is never masked
    assert (a1[:, : pad.shape[1]] == tokenizer.mask_id).any()  # some real prompt tokens are
    # the old log-probs of iteration n were computed with seed n: the ratio at iteration n is exactly 1
    for n in range(3):
        _, stats = next(obj.losses(tiny_model, None, batch, n))
        assert abs(stats["ratio_mean"] - 1.0) < 1e-6


def test_diffu_grpo_mu1_beta0_gradient_equals_surrogate_gradient(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer)
    obj = _diffu()
    obj.prepare(tiny_model, None, batch, 1)
    loss, _ = next(obj.losses(tiny_model, None, batch, 0))
    g = grads(tiny_model, loss)
    ids, attn = perturbed_inputs(batch.sample, tokenizer.mask_id, 0.5, batch.extras["mask_seeds"][0])
    logits = tiny_model(ids, attn)[:, -8:]
    logp = logits.log_softmax(-1).gather(-1, batch.sample.completion_ids[..., None]).squeeze(-1)
    c = batch.completion_mask
    surrogate = -(batch.advantages[:, None] * logp * c).sum() / c.sum()
    assert g.abs().max() > 0
    assert torch.allclose(g, grads(tiny_model, surrogate), atol=1e-6, rtol=1e-4)


def test_diffu_grpo_kl_is_zero_when_policy_is_reference(tiny_model, tokenizer):
    import copy

    batch = make_batch(tiny_model, tokenizer)
    obj = _diffu(beta=0.04)
    ref = copy.deepcopy(tiny_model)
    obj.prepare(tiny_model, ref, batch, 2)
    _, stats = next(obj.losses(tiny_model, ref, batch, 1))
    assert stats["kl"] == 0.0
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05)
    obj.prepare(tiny_model, ref, batch, 2)
    assert next(obj.losses(tiny_model, ref, batch, 1))[1]["kl"] > 0
