"""AGRPO: exactness (the estimator is the step-level objective it claims) and unbiasedness (its expected gradient
is the gradient of the expected reward), on tiny models made here."""

import copy

import pytest
import torch

import agrpo.rl.agrpo as agrpo_module
from agrpo.config import RLConfig, RolloutConfig
from agrpo.model.toy import TabularDLLM
from agrpo.rl.agrpo import (AGRPO, TIMESTEP_SAMPLERS, draw_uniforms, sample_timesteps, step_entropies,
                            steps_per_trajectory)
from agrpo.rl.objectives import RolloutBatch, completion_mask
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate
from helpers import flat_grad, make_batch

TOPKP = SamplerConfig(gen_length=8, block_length=4, steps=4, remasking="random", temperature=0.8, top_k=20, top_p=0.95,
                      eos_early_exit=True)


def agrpo(**kw):
    return AGRPO(AGRPO.Args(**kw), torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------------- exact

def test_agrpo_exact_rebuilt_state_logprob_equals_rollout_logprob(tiny_model, tokenizer):
    """Every token's log-prob recomputed by AGRPO from the rebuilt state s_t (same T, same stored top-k/top-p
    mask) equals what the sampler had when it committed the token, to 1e-5."""
    batch = make_batch(tiny_model, tokenizer, TOPKP)
    s, obj = batch.sample, agrpo()
    assert s.sampling_mask is not None and (s.sampling_mask.sum(-1) < s.sampling_mask.shape[-1]).any()
    scored = torch.zeros_like(s.completion_ids, dtype=torch.bool)
    with torch.no_grad():
        for t in range(s.steps):
            logp, revealed = obj.step_logprobs(tiny_model, batch, torch.full((s.completion_ids.shape[0],), t))
            assert torch.allclose(logp, s.token_logprobs[revealed], atol=1e-5, rtol=0)
            scored |= revealed
    assert torch.equal(scored, ~s.filled)  # every sampled token is scored exactly at its own step


def test_agrpo_exact_k_equals_m_gives_full_objective_and_plain_policy_gradient(tiny_model, tokenizer):
    """Drawing every step once (k = m) gives the full step-level objective; at ρ = 1 its gradient is the plain
    policy gradient −1/(m·B) Σ_i Â_i Σ_t ∇ log π_θ(a_{i,t} | s_{i,t})."""
    batch = make_batch(tiny_model, tokenizer, SamplerConfig(8, 4, 4, "random", 0.8, top_k=20, top_p=0.95))
    m, b = batch.sample.steps, batch.rewards.shape[0]
    obj = agrpo(mc_samples=m, restrict_to_content_steps=False)
    obj.prepare(tiny_model, None, batch, 1)
    assert (batch.extras["agrpo_m"] == m).all()
    total = sum(obj.step_loss(tiny_model, None, batch, torch.full((b,), t), torch.ones(b), m)[0] for t in range(m))
    g_agrpo = flat_grad(tiny_model, total)
    objective = 0.0
    for t in range(m):
        logp, revealed = obj.step_logprobs(tiny_model, batch, torch.full((b,), t))
        rows = revealed.nonzero(as_tuple=True)[0]
        objective = objective + (batch.advantages[rows] * logp).sum() / (m * b)
    g_pg = flat_grad(tiny_model, -objective)
    assert g_agrpo.abs().max() > 0
    assert torch.allclose(g_agrpo, g_pg, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("c,k,beta", [(2, 4, 0.0), (3, 5, 0.1), (5, 5, 0.0)])
def test_agrpo_stacked_draws_give_the_same_loss_and_gradient_in_fewer_passes(tiny_model, tokenizer, c, k, beta):
    """``draws_per_pass: c`` stacks c timestep draws into one pass of c·B rows: the same draws, the same summed
    loss and gradient as one pass per draw (to float round-off), in ⌈k/c⌉ forward passes (the last may hold fewer
    draws); stats stay token means."""
    batch = make_batch(tiny_model, tokenizer, TOPKP)
    ref = copy.deepcopy(tiny_model).requires_grad_(False) if beta else None
    results = {}
    for per_pass in (1, c):
        policy = ForwardCounter(tiny_model)
        obj = agrpo(mc_samples=k, beta=beta, draws_per_pass=per_pass)
        obj.prepare(policy, ref, batch, 1)
        chunks = list(obj.losses(policy, ref, batch, 0))
        assert len(chunks) == obj.chunks_per_iteration() == -(-k // per_pass) and obj.step_after() == [len(chunks) - 1]
        assert policy.calls == len(chunks)
        total = sum(loss for loss, _ in chunks)
        results[per_pass] = (total.detach(), flat_grad(tiny_model, total), chunks[0][1])
    (l1, g1, st1), (lc, gc, stc) = results[1], results[c]
    assert torch.allclose(l1, lc, atol=1e-6) and l1.abs() > 0
    assert torch.allclose(g1, gc, atol=1e-7, rtol=1e-5) and g1.abs().max() > 0
    assert abs(stc["ratio_mean"] - 1.0) < 1e-4 and set(st1) == set(stc)


def test_agrpo_stacked_draws_are_refused_where_they_cannot_apply():
    with pytest.raises(ValueError, match="draws_per_pass must be >= 1"):
        agrpo(draws_per_pass=0)
    with pytest.raises(ValueError, match="draws_per_pass > 1 needs released_launcher_steps 0"):
        agrpo(draws_per_pass=2, released_launcher_steps=2)


class ForwardCounter:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *a, **k):
        self.calls += 1
        return self.model(*a, **k)


def test_agrpo_exact_mu1_ratio_is_one_without_an_extra_forward_pass(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer, TOPKP)
    policy = ForwardCounter(tiny_model)
    obj = agrpo(mc_samples=3, importance_sampling="uniform")
    obj.prepare(policy, None, batch, 1)
    assert policy.calls == 0  # old log-probs come from the rollout
    for j, (loss, stats) in enumerate(obj.losses(policy, None, batch, 0)):
        assert policy.calls == j + 1  # one forward per timestep draw
        assert abs(stats["ratio_mean"] - 1.0) < 1e-5 and stats["clip_ratio"] == 0.0


def test_agrpo_current_old_logprobs_make_the_ratio_exactly_one_with_the_same_gradient(tiny_model, tokenizer):
    """``old_logprobs: current`` (θ_old = θ, detached): ρ ≡ 1 bit for bit, and the same loss and gradient as the
    rollout's recorded log-probs up to their round-off (what makes bf16 rollouts safe at μ = 1)."""
    batch = make_batch(tiny_model, tokenizer, TOPKP)
    grads = {}
    for old in ("rollout", "current"):
        obj = agrpo(mc_samples=2, importance_sampling="uniform", old_logprobs=old)
        obj.prepare(tiny_model, None, batch, 1)
        total = 0.0
        for loss, stats in obj.losses(tiny_model, None, batch, 0):
            total = total + loss
            if old == "current":
                assert stats["ratio_mean"] == 1.0 and stats["clip_ratio"] == 0.0
        grads[old] = flat_grad(tiny_model, total)
    assert grads["current"].abs().max() > 0
    torch.testing.assert_close(grads["current"], grads["rollout"], rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="released_launcher_steps"):
        agrpo(old_logprobs="current", released_launcher_steps=2)


def test_agrpo_exact_ratio_and_clipping_after_an_update(tiny_model, tokenizer):
    """μ > 1: later inner iterations compare with the rollout's log-probs; PPO clipping then bites."""
    batch = make_batch(tiny_model, tokenizer, TOPKP)
    obj = agrpo(mc_samples=2, clip_epsilon=0.01)
    obj.prepare(tiny_model, None, batch, 2)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    stats = [st for _, st in obj.losses(tiny_model, None, batch, 1)]
    assert any(abs(st["ratio_mean"] - 1) > 1e-3 for st in stats) and any(st["clip_ratio"] > 0 for st in stats)


def test_agrpo_kl_to_reference_and_ratio_correction(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer, TOPKP)
    b = batch.rewards.shape[0]
    t, w = torch.full((b,), 1), torch.ones(b)
    ref = copy.deepcopy(tiny_model)
    _, st = agrpo(beta=0.1).step_loss(tiny_model, ref, batch, t, w, 1)
    assert st["kl"] == 0.0  # policy = reference
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05)
    batch.sample.token_logprobs -= 0.2  # old log-probs lower by 0.2: ρ = e^0.2 on every scored token
    _, plain = agrpo(beta=0.1, kl_ratio_correction=False).step_loss(tiny_model, ref, batch, t, w, 1)
    _, corrected = agrpo(beta=0.1, kl_ratio_correction=True).step_loss(tiny_model, ref, batch, t, w, 1)
    assert plain["kl"] > 0 and corrected["kl"] == pytest.approx(plain["kl"] * torch.e ** 0.2, rel=1e-4)


def test_agrpo_group_std_normalisation_option():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 4.0])
    assert torch.equal(group_advantages(r, 4), torch.tensor([0.5, -0.5, -0.5, 0.5, -0.5, -0.5, -0.5, 1.5]))
    scaled = group_advantages(r, 4, scale=True)
    assert torch.allclose(scaled[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (r[:4].std() + 1e-4))


def test_agrpo_steps_per_trajectory_and_early_exit(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer, TOPKP)
    s = batch.sample
    s.completion_ids[0, :] = tokenizer.eos_id
    s.completion_ids[0, 0] = 7
    m = steps_per_trajectory(batch, tokenizer.eos_id, restrict=True)
    assert m[0] == s.reveal_step[0, 0] + 1
    s.completion_ids[1, :] = tokenizer.eos_id  # EOS only: every step the row ran
    assert steps_per_trajectory(batch, tokenizer.eos_id, restrict=True)[1] == s.row_nfe[1]
    assert torch.equal(steps_per_trajectory(batch, tokenizer.eos_id, restrict=False), s.row_nfe)
    assert torch.allclose(step_entropies(batch).sum(1), s.token_entropy.double().sum(1))


# ---------------------------------------------------------------------------------------------------- timestep draws

@pytest.mark.parametrize("preset", sorted(TIMESTEP_SAMPLERS))
def test_agrpo_unbiased_timestep_average(preset):
    """E over draws of w·f(t) equals the uniform average of f over t < m_i, for every sampler (MC, 5σ)."""
    m = torch.tensor([5, 3])
    ent = torch.tensor([[0.1, 2.0, 0.5, 1.0, 0.3, 9.0], [1.0, 0.2, 3.0, 7.0, 7.0, 7.0]])
    f = torch.tensor([[1.0, -2.0, 3.0, 0.5, 4.0, 100.0], [2.0, -1.0, 5.0, 100.0, 100.0, 100.0]], dtype=torch.float64)
    t, w = sample_timesteps(m, 100_000, *TIMESTEP_SAMPLERS[preset], torch.Generator().manual_seed(0), ent)
    assert (t < m[:, None]).all()
    est = (w * f.gather(1, t)).mean(1)
    exact = torch.stack([f[i, : m[i]].mean() for i in range(2)])
    se = (w * f.gather(1, t)).std(1) / 100_000 ** 0.5
    assert ((est - exact).abs() < 5 * se + 1e-9).all(), (est, exact)


def test_agrpo_low_discrepancy_uniforms_are_stratified():
    u = draw_uniforms(6, 4, True, torch.Generator().manual_seed(0))
    assert sorted((u.flatten() * 24).floor().long().tolist()) == list(range(24))  # one draw per stratum


def test_agrpo_group_strata_are_the_released_per_micro_batch_strata():
    """``stratify: group``: each block of G rows has one draw in each of its G·k strata (released: one prompt group
    per device micro-batch); ``batch`` stratifies the whole batch, which leaves some groups unbalanced."""
    u = draw_uniforms(6, 4, True, torch.Generator().manual_seed(0), stratum=3)
    for g in range(2):
        assert sorted((u[3 * g:3 * g + 3].flatten() * 12).floor().long().tolist()) == list(range(12))
    with pytest.raises(ValueError, match="strata of 4"):
        draw_uniforms(6, 4, True, torch.Generator(), stratum=4)
    m, ent = torch.tensor([4, 4]), torch.tensor([[1.0, 3.0, 0.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    t64, w64 = sample_timesteps(m, 500, "entropy", True, torch.Generator().manual_seed(1), ent)
    t32, w32 = sample_timesteps(m, 500, "entropy", True, torch.Generator().manual_seed(1), ent, cdf_dtype=torch.float32)
    assert (t64 == t32).float().mean() > 0.99 and (t32 < 4).all() and torch.allclose(w64, w32, rtol=1e-5)


def test_agrpo_entropy_weights_are_exact_importance_ratios():
    m = torch.tensor([4])
    ent = torch.tensor([[1.0, 3.0, 0.0, 4.0]])
    t, w = sample_timesteps(m, 2000, "entropy", True, torch.Generator().manual_seed(1), ent)
    q = (ent[0].double() + 1e-8) / (ent[0].double() + 1e-8).sum()
    assert torch.allclose(w[0], 0.25 / q[t[0]])


# ---------------------------------------------------------------------------------------------------- unbiasedness

TOY_T, TOY_G, TOY_PROMPTS, TOY_BATCHES = 1.0, 4, 256, 200


@pytest.fixture(scope="module")
def toy_truth():
    """Exact ∇_θ E[R] on the enumerable toy dLLM (vocabulary 3, 3 tokens, one per step: 6 orders × 27 texts)."""
    toy = TabularDLLM(vocab=3, length=3, seed=0)
    g = torch.Generator().manual_seed(0)
    reward = {c: float(torch.rand(1, generator=g, dtype=torch.float64)) for c in toy.completions()}
    grad = torch.autograd.grad(toy.expected_reward(reward, TOY_T), toy.table)[0].flatten()
    return toy, reward, grad


def mc_agrpo_gradient(toy, reward, preset, k=2):
    """Per-batch AGRPO loss gradients over independent rollout batches from the real sampler, (N, |θ|)."""
    sampler = SamplerConfig(3, 3, 3, "random", TOY_T)
    gen = torch.Generator().manual_seed(1)
    imp, low = TIMESTEP_SAMPLERS[preset]
    obj = AGRPO(AGRPO.Args(mc_samples=k, importance_sampling=imp, low_discrepancy=low), gen)
    ids = torch.zeros((TOY_PROMPTS * TOY_G, 1), dtype=torch.long)
    grads = []
    for _ in range(TOY_BATCHES):
        s = generate(toy, ids, torch.ones_like(ids), sampler, gen)
        r = torch.tensor([reward[tuple(c)] for c in s.completion_ids.tolist()])
        batch = RolloutBatch(s, sampler, r, group_advantages(r, TOY_G), TOY_G, completion_mask(s.completion_ids, toy.eos_id))
        obj.prepare(toy, None, batch, 1)
        toy.zero_grad()
        for loss, _ in obj.losses(toy, None, batch, 0):
            loss.backward()
        grads.append(toy.table.grad.flatten().clone())
    return torch.stack(grads)


def bias_z_scores(grads, exact_grad):
    """z = (MC mean − expected) / standard error on every coordinate that the estimator ever moves.

    Expected loss gradient: −(1/m)(1 − 1/G) ∇E[R]. The 1/m is AGRPO's average over steps; (1 − 1/G) is the
    group-mean baseline: Â_i = R_i − R̄ includes R_i/G, which is correlated with trajectory i.
    """
    expected = -(1 / 3) * (1 - 1 / TOY_G) * exact_grad
    mean, se = grads.mean(0), grads.std(0) / grads.shape[0] ** 0.5
    live = se > 0
    return (mean - expected)[live] / se[live], (mean - expected)[~live]


@pytest.mark.parametrize("preset", ["uniform", "stratified", "entropy"])
def test_agrpo_unbiased_gradient_on_enumerable_toy(toy_truth, preset):
    """The expected AGRPO gradient equals the exact policy gradient of E[R], for each timestep sampler.

    MC tolerance: 200 independent rollout batches of 256 groups × G = 4 with k = 2; every one of the 144 live
    coordinates within 5 standard errors, and the mean squared z-score (≈ χ²/df, 1 when unbiased, sd ≈ 0.12)
    below 1.5. Coordinates the estimator never moves must have an exact gradient of 0.
    """
    toy, reward, exact = toy_truth
    z, dead = bias_z_scores(mc_agrpo_gradient(toy, reward, preset), exact)
    assert len(z) == 144  # θ[x, j, :] with position j masked in state x: 3 positions × 16 states × 3 tokens
    assert dead.abs().max() < 1e-12
    assert z.abs().max() < 5 and (z ** 2).mean() < 1.5, (z.abs().max(), (z ** 2).mean())


def _entropy_without_weights(*args, **kw):
    t, w = sample_timesteps(*args, **kw)
    return t, torch.ones_like(w)


def _initial_commit_off_by_one(m, k, imp, low, gen, ent=None, shard=(0, 1), stratum=0, cdf_dtype=None):
    """The released code's first commit: t = ⌊u · last_step⌋, which never draws the last content step."""
    u = draw_uniforms(m.shape[0], k, low, gen)
    return (u * (m[:, None] - 1).double()).floor().long(), torch.ones_like(u)


@pytest.mark.parametrize("biased,preset", [(_entropy_without_weights, "entropy"), (_initial_commit_off_by_one, "stratified")])
def test_agrpo_unbiased_check_detects_biased_estimators(toy_truth, monkeypatch, biased, preset):
    """Negative controls: the same check rejects entropy sampling without importance weights and the off-by-one
    timestep draw of the released code's first commit."""
    toy, reward, exact = toy_truth
    monkeypatch.setattr(agrpo_module, "sample_timesteps", biased)
    z, dead = bias_z_scores(mc_agrpo_gradient(toy, reward, preset), exact)
    assert z.abs().max() > 10 or dead.abs().max() > 1e-6


# ---------------------------------------------------------------------------------------------------- defaults

def test_agrpo_released_defaults():
    """Objective, rollout sampler and trainer defaults are the released train.yaml values (reference §3)."""
    a, r, rl = AGRPO.Args(), RolloutConfig(), RLConfig()
    assert (a.mc_samples, a.importance_sampling, a.low_discrepancy, a.clip_epsilon, a.beta) == (24, "entropy", True, 0.2, 0.0)
    assert (r.gen_length, r.block_length, r.steps, r.remasking, r.temperature, r.top_k, r.top_p, r.eos_early_exit) == \
        (384, 12, 128, "random", 0.6, 150, 0.99, True)
    assert (rl.group_size, rl.prompts_per_batch, rl.lr_schedule, rl.warmup_ratio, rl.weight_decay, rl.adam_beta2,
            rl.max_grad_norm, rl.scale_rewards) == (8, 16, "cosine", 0.01, 0.01, 0.99, 1.0, False)


# ---------------------------------------------------------------------------------------------------- released launcher

def test_agrpo_released_launcher_steps_split_the_same_loss_into_per_draw_steps(tiny_model, tokenizer):
    """``released_launcher_steps: A``: the same draws and the same total loss, cut into A micro-batches of prompt
    groups × k draws, with optimizer steps after every draw of the last micro-batch (the released launcher)."""
    batch = make_batch(tiny_model, tokenizer)  # 2 prompt groups
    off = AGRPO(AGRPO.Args(mc_samples=3), torch.Generator().manual_seed(4))
    on = AGRPO(AGRPO.Args(mc_samples=3, released_launcher_steps=2), torch.Generator().manual_seed(4))
    for obj in (off, on):
        obj.prepare(tiny_model, None, batch, 1)
    assert (off.chunks_per_iteration(), off.step_after()) == (3, [2])
    assert (on.chunks_per_iteration(), on.step_after()) == (6, [3, 4, 5])
    with torch.no_grad():
        total_off = sum(loss for loss, _ in off.losses(tiny_model, None, batch, 0))
        total_on = sum(loss for loss, _ in on.losses(tiny_model, None, batch, 0))
    assert torch.allclose(total_off, total_on, atol=1e-6) and total_off.abs() > 0
    with pytest.raises(ValueError, match="not a multiple of 4"):
        next(AGRPO(AGRPO.Args(mc_samples=3, released_launcher_steps=4), torch.Generator()).losses(tiny_model, None, batch, 0))


@pytest.mark.parametrize("launcher", [0, 2])
def test_trainer_counts_the_optimizer_steps_the_option_names(tmp_path, launcher):
    """Counted on the torch optimizer itself: one AdamW step per rollout batch, or k = 2 with the released launcher's
    behaviour (measured: 24 per nominal step at k = 24 under ZeRO-2 on an H200), the scheduler once per batch."""
    import json

    from torch.optim.optimizer import register_optimizer_step_post_hook

    from agrpo.rl.trainer import train
    from helpers import minute_run

    cfg = minute_run(tmp_path, rl=dict(iterations=3, checkpoint_every=3, prompts_per_batch=2, group_size=4,
                                       lr_schedule="cosine", warmup_ratio=0.0))
    cfg.methods["agrpo"].objective_args["released_launcher_steps"] = launcher  # k = 2 (minute_run)
    lrs = []
    handle = register_optimizer_step_post_hook(lambda opt, *_: lrs.append(opt.param_groups[0]["lr"]))
    try:
        train(cfg, "agrpo", 0, tmp_path / "base", tmp_path / "run", progress=False,
              reward_fn=lambda text, ex: float(text.count("1")))
    finally:
        handle.remove()
    per_batch = 2 if launcher else 1
    assert len(lrs) == 3 * per_batch
    assert all(lrs[i] == lrs[i - i % per_batch] for i in range(len(lrs)))  # one learning rate within a batch
    assert len(set(lrs)) == 3  # the cosine schedule advanced once per rollout batch
    log = [json.loads(line) for line in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    assert [r["optimizer_steps"] for r in log] == [per_batch, 2 * per_batch, 3 * per_batch]
    assert [r["rollouts"] for r in log] == [8, 16, 24]
