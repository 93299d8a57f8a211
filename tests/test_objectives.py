
import pytest
import torch

from agrpo.rl.agrpo import AGRPO, sample_timesteps, step_entropies, steps_per_trajectory
from agrpo.rl.objectives import RolloutBatch, completion_mask
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate, left_pad
from baselines.diffu_grpo import DiffuGRPO, perturbed_inputs

G = 4


def make_batch(model, tokenizer, sampler=None, seed=0):
    sampler = sampler or SamplerConfig(gen_length=8, block_length=4, steps=4, remasking="random", temperature=0.8)
    prompts = [tokenizer.encode(p) for p in ("has 3, gets 4", "1 2 3>6") for _ in range(G)]
    ids, mask = left_pad(prompts, tokenizer.pad_id)
    sample = generate(model, ids, mask, sampler, torch.Generator().manual_seed(seed))
    rewards = torch.arange(len(prompts), dtype=torch.float32) % 3
    return RolloutBatch(sample, sampler, rewards, group_advantages(rewards, G), G,
                        completion_mask(sample.completion_ids, tokenizer.eos_id))


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_group_advantages_subtract_group_mean():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert torch.equal(group_advantages(r, 4), torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))


def test_completion_mask_includes_first_eos(tokenizer):
    e = tokenizer.eos_id
    ids = torch.tensor([[7, 8, e, e], [7, 7, 7, 7]])
    assert completion_mask(ids, e).tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_agrpo_exact_ratio_is_one_with_mu1(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer)
    obj = AGRPO(AGRPO.Args(mc_samples=4, timestep_sampler="uniform"), torch.Generator().manual_seed(0))
    obj.prepare(tiny_model, None, batch, 1)
    for loss, stats in obj.losses(tiny_model, None, batch, 0):
        assert abs(stats["ratio_mean"] - 1.0) < 1e-5 and stats["clip_ratio"] == 0.0


def test_agrpo_exact_k_equals_m_gives_full_step_objective_and_plain_policy_gradient(tiny_model, tokenizer):
    """Enumerating every step once (k = m) gives the full step-level objective; at ρ = 1 its gradient is
    −1/(m·B) Σ_i Â_i Σ_t ∇ log π_θ(a_{i,t} | s_{i,t}) (the plain policy gradient)."""
    batch = make_batch(tiny_model, tokenizer)
    m, b = batch.sample.steps, batch.rewards.shape[0]
    obj = AGRPO(AGRPO.Args(mc_samples=m, restrict_to_content_steps=False), torch.Generator().manual_seed(0))
    total = sum(obj.step_loss(tiny_model, None, batch, torch.full((b,), t), torch.ones(b), m)[0] for t in range(m))
    g_agrpo = grads(tiny_model, total)
    pg = 0.0
    for t in range(m):
        logp, revealed = obj.step_logprobs(tiny_model, batch, torch.full((b,), t))
        pg = pg - (batch.advantages[:, None] * logp * revealed).sum() / (m * b)
    g_pg = grads(tiny_model, pg)
    assert g_agrpo.abs().max() > 0
    assert torch.allclose(g_agrpo, g_pg, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kind", ["uniform", "stratified", "entropy"])
def test_agrpo_unbiased_timestep_estimator(kind):
    """E over draws of w·f(t) equals the uniform average of f over t < m_i, for every sampler (MC, 5σ)."""
    m = torch.tensor([5, 3])
    ent = torch.tensor([[0.1, 2.0, 0.5, 1.0, 0.3, 9.0], [1.0, 0.2, 3.0, 7.0, 7.0, 7.0]])
    f = torch.tensor([[1.0, -2.0, 3.0, 0.5, 4.0, 100.0], [2.0, -1.0, 5.0, 100.0, 100.0, 100.0]], dtype=torch.float64)
    t, w = sample_timesteps(m, 100_000, kind, torch.Generator().manual_seed(0), ent)
    assert (t < m[:, None]).all()
    est = (w * f.gather(1, t)).mean(1)
    exact = torch.stack([f[i, : m[i]].mean() for i in range(2)])
    se = (w * f.gather(1, t)).std(1) / 100_000 ** 0.5
    assert ((est - exact).abs() < 5 * se + 1e-9).all(), (est, exact)


def test_agrpo_entropy_weights_are_exact_importance_ratios():
    m = torch.tensor([4])
    ent = torch.tensor([[1.0, 3.0, 0.0, 4.0]])
    t, w = sample_timesteps(m, 2000, "entropy", torch.Generator().manual_seed(1), ent)
    q = (ent[0].double() + 1e-8) / (ent[0].double() + 1e-8).sum()
    assert torch.allclose(w[0], 0.25 / q[t[0]])


def test_agrpo_steps_per_trajectory_stop_at_last_content_step(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer)
    s = batch.sample
    s.completion_ids[0, :] = tokenizer.eos_id
    s.completion_ids[0, 0] = 7
    m = steps_per_trajectory(batch, tokenizer.eos_id, restrict=True)
    assert m[0] == s.reveal_step[0, 0] + 1
    assert (steps_per_trajectory(batch, tokenizer.eos_id, restrict=False) == s.steps).all()
    assert torch.allclose(step_entropies(batch).sum(1), s.token_entropy.double().sum(1))


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
