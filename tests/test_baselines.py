"""diffu-GRPO as d1 ships it, d1's SFT stage and quirks, wd1, and LoRA with the adapter-off reference."""

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from agrpo.config import ConfigError, from_dict, load_config, MethodConfig
from agrpo.resolve import rollout_for
from agrpo.model.lora import AdapterOff, adapted_module_names, apply_lora, merged_copy
from agrpo.pretrain import encode_pairs, masked_diffusion_loss
from agrpo.sampling import SamplerConfig, generate_grouped, left_pad
from agrpo.sft import D1_SYSTEM_PROMPT, load_s1k
from agrpo.tasks.d1_protocol import boxed_and_answer_tags_format_reward
from baselines.diffu_grpo import DiffuGRPO, one_step_logprobs, perturbed_inputs
from baselines.wd1 import WD1
from helpers import G, flat_grad, make_batch

ROOT = Path(__file__).resolve().parent.parent


def diffu(beta=0.0, p=0.5, normalization="group"):
    return DiffuGRPO(DiffuGRPO.Args(p_mask_prompt=p, clip_epsilon=0.5, beta=beta, loss_normalization=normalization),
                     torch.Generator().manual_seed(0))


def uneven_completion_mask(batch):
    """Give the two groups different completion lengths, so the two normalisations differ."""
    c = torch.ones_like(batch.completion_mask)
    c[:G, 5:] = 0  # group 1: 5 tokens per completion; group 2: all 8
    batch.completion_mask = c
    return batch


# ---------------------------------------------------------------------------------------------------- diffu-GRPO

def test_diffu_grpo_prompt_masks_shared_within_and_fresh_across_iterations(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer)
    obj = diffu()
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
    # old (and reference) log-probs of iteration n used seed n: the ratio at iteration n is exactly 1
    for n in range(3):
        _, stats = next(obj.losses(tiny_model, None, batch, n))
        assert abs(stats["ratio_mean"] - 1.0) < 1e-6
        assert torch.equal(batch.extras["old_logp"][n], one_step_logprobs(tiny_model, batch.sample, 0.5, seeds[n]))


@pytest.mark.parametrize("normalization", ["group", "batch"])
def test_diffu_grpo_mu1_beta0_gradient_equals_surrogate_gradient(tiny_model, tokenizer, normalization):
    """μ = 1, β = 0: the loss gradient is the gradient of −Â·log p_θ(o | q', [MASK]^L), token-averaged as d1."""
    batch = uneven_completion_mask(make_batch(tiny_model, tokenizer))
    obj = diffu(normalization=normalization)
    obj.prepare(tiny_model, None, batch, 1)
    g = flat_grad(tiny_model, next(obj.losses(tiny_model, None, batch, 0))[0])
    ids, attn = perturbed_inputs(batch.sample, tokenizer.mask_id, 0.5, batch.extras["mask_seeds"][0])
    logp = tiny_model(ids, attn)[:, -8:].log_softmax(-1).gather(-1, batch.sample.completion_ids[..., None]).squeeze(-1)
    term, c = -batch.advantages[:, None] * logp * batch.completion_mask, batch.completion_mask
    if normalization == "batch":
        surrogate = term.sum() / c.sum()
    else:  # d1: one prompt group per device micro-batch, token mean inside it, mean over micro-batches
        surrogate = (term[:G].sum() / c[:G].sum() + term[G:].sum() / c[G:].sum()) / 2
    assert g.abs().max() > 0
    assert torch.allclose(g, flat_grad(tiny_model, surrogate), atol=1e-6, rtol=1e-4)


def test_diffu_grpo_normalisations_differ_when_lengths_differ(tiny_model, tokenizer):
    batch = uneven_completion_mask(make_batch(tiny_model, tokenizer))
    grads = {}
    for norm in ("group", "batch"):
        obj = diffu(normalization=norm)
        obj.prepare(tiny_model, None, batch, 1)
        grads[norm] = flat_grad(tiny_model, next(obj.losses(tiny_model, None, batch, 0))[0])
    assert (grads["group"] - grads["batch"]).abs().max() > 1e-4 * grads["batch"].abs().max()


def test_diffu_grpo_kl_is_zero_when_policy_is_reference(tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer)
    obj = diffu(beta=0.04)
    ref = copy.deepcopy(tiny_model)
    obj.prepare(tiny_model, ref, batch, 2)
    _, stats = next(obj.losses(tiny_model, ref, batch, 1))
    assert stats["kl"] == 0.0
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05)
    obj.prepare(tiny_model, ref, batch, 2)
    assert next(obj.losses(tiny_model, ref, batch, 1))[1]["kl"] > 0


# ---------------------------------------------------------------------------------------------------- wd1

def test_diffu_wd1_loss_is_the_weighted_likelihood(tiny_model, tokenizer):
    """wd1: −Σ softmax(Â)·log π + Σ softmax(−Â)·log π per group (d1's estimate of log π), mean over groups."""
    batch = uneven_completion_mask(make_batch(tiny_model, tokenizer))
    obj = WD1(WD1.Args(p_mask_prompt=0.5), torch.Generator().manual_seed(0))
    obj.prepare(tiny_model, None, batch, 2)
    loss, _ = next(obj.losses(tiny_model, None, batch, 1))
    logp = one_step_logprobs(tiny_model, batch.sample, 0.5, batch.extras["mask_seeds"][1])
    total = 0.0
    for g in range(2):
        rows = slice(g * G, (g + 1) * G)
        seq = (logp[rows] * batch.completion_mask[rows]).sum(1)
        a = batch.advantages[rows]
        total = total + (-(torch.softmax(a, 0) * seq).sum() + (torch.softmax(-a, 0) * seq).sum()) / 2
    assert torch.allclose(loss, total, atol=1e-6)
    # the gradient step raises the likelihood of the best completion of a group
    best = int(batch.advantages[:G].argmax())
    with torch.no_grad():
        before = (logp[best] * batch.completion_mask[best]).sum()
    flat_grad(tiny_model, loss)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.sub_(1e-2 * p.grad)
        after = (one_step_logprobs(tiny_model, batch.sample, 0.5, batch.extras["mask_seeds"][1])[best]
                 * batch.completion_mask[best]).sum()
    assert after > before


# ---------------------------------------------------------------------------------------------------- d1 SFT

def test_sft_loss_equals_direct_computation(tiny_model, tokenizer):
    """LLaDA/d1 SFT: Σ_masked −log p(oⁱ) / p_mask over the response positions, prompt clean, p_mask = (1−ε)t + ε."""
    pairs = [("has 3, gets 4", "7<answer>7</answer>"), ("1 2 3>6", "1+2+3<answer>6</answer>")]
    prompt_ids, prompt_mask, targets, _ = encode_pairs(tiny_model, pairs, 24)
    loss = masked_diffusion_loss(tiny_model, prompt_ids, prompt_mask, targets, torch.Generator().manual_seed(5), 1e-3)
    g = torch.Generator().manual_seed(5)  # replay the same draws
    t = 1.0 - torch.rand((2, 1), generator=g)
    p_mask = (1 - 1e-3) * t + 1e-3
    masked = torch.rand((2, 24), generator=g) < p_mask
    total = 0.0
    for b in range(2):
        noisy = targets[b].clone()
        noisy[masked[b]] = tokenizer.mask_id
        logits = tiny_model(torch.cat([prompt_ids[b], noisy])[None], torch.cat([prompt_mask[b], torch.ones(24, dtype=torch.long)])[None])[0]
        for i in range(24):
            if masked[b, i]:
                total += -logits[prompt_ids.shape[1] + i].log_softmax(-1)[targets[b, i]] / p_mask[b, 0]
    assert masked.any() and torch.allclose(loss, total / (2 * 24), atol=1e-6)
    assert (targets[0, len(tokenizer.encode(pairs[0][1])):] == tokenizer.eos_id).all()  # responses padded with EOS


def test_sft_s1k_rows_are_formatted_as_d1(tmp_path):
    f = tmp_path / "s1k.jsonl"
    f.write_text(json.dumps({"question": "What is 2+2?", "thinking_trajectories": ["2 and 2 make 4."], "attempt": "4"}) + "\n")
    [(prompt, completion)] = load_s1k(str(f))
    assert prompt == D1_SYSTEM_PROMPT + "\n\nWhat is 2+2?"
    assert completion == "<reasoning>2 and 2 make 4.</reasoning>\n<answer>4</answer>"
    f.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"s1k.jsonl:1: not an s1K row"):
        load_s1k(str(f))


# ---------------------------------------------------------------------------------------------------- d1 quirks

def d1_cfg(tmp_path, **method):
    d = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    d["methods"]["d1"] = {"objective": "diffu_grpo", "rollout": {"remasking": "low_confidence", "temperature": 0.9},
                          "task_temperature": {"sudoku": 0.3}, **method}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    return load_config(tmp_path / "c.yaml")


def test_d1_compat_sudoku_temperature_flag(tmp_path):
    """Off: Sudoku rollouts at the intended 0.3. On: at the method's 0.9, as d1's broken sbatch line runs them.
    Other tasks are untouched either way."""
    cfg = d1_cfg(tmp_path)
    assert rollout_for(cfg, "d1", "tiny_sudoku").temperature == 0.3
    assert rollout_for(cfg, "d1", "tiny_arith").temperature == 0.9
    cfg = d1_cfg(tmp_path, d1_compat={"sudoku_temperature_unset": True})
    assert rollout_for(cfg, "d1", "tiny_sudoku").temperature == 0.9
    assert rollout_for(cfg, "d1", "tiny_arith").temperature == 0.9


def test_d1_compat_lora_target_flag(tiny_model, tmp_path):
    """Off: all seven LLaDA projections. On: d1's Llama names, of which only q/k/v/up_proj exist."""
    full = from_dict(MethodConfig, {"lora": {"r": 4, "alpha": 8}})
    quirk = from_dict(MethodConfig, {"lora": {"r": 4, "alpha": 8}, "d1_compat": {"lora_targets": True}})
    assert adapted_module_names(apply_lora(copy.deepcopy(tiny_model), full)) == \
        {"q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"}
    assert adapted_module_names(apply_lora(copy.deepcopy(tiny_model), quirk)) == {"q_proj", "k_proj", "v_proj", "up_proj"}
    with pytest.raises(ConfigError, match="lora_targets: needs LoRA"):
        d1_cfg(tmp_path, d1_compat={"lora_targets": True})


def test_d1_compat_math_boxed_backspace_flag(tmp_path):
    """Off: 1.0 / 0.75 / 0.5 / 0.25 as intended. On: the released literal never finds \\boxed."""
    cases = ["<answer>\\boxed{3}</answer>", "<answer>3</answer>", "so \\boxed{3}", "so 3"]
    assert [boxed_and_answer_tags_format_reward(c) for c in cases] == [1.0, 0.75, 0.5, 0.25]
    assert [boxed_and_answer_tags_format_reward(c, backspace_bug=True) for c in cases] == [0.75, 0.75, 0.25, 0.25]
    with pytest.raises(ConfigError, match="math_boxed_backspace: no MATH task"):
        d1_cfg(tmp_path, d1_compat={"math_boxed_backspace": True})


def test_d1_compat_math_boxed_backspace_reaches_the_trainers_rewards(tmp_path):
    """Regression: the flag was read only by MATH500's reward, which no caller passed it to."""
    from agrpo.rl.trainer import task_rewards
    from agrpo.tasks import get_task

    d = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    d["data"] = {"tasks": ["math500", "tiny_arith"], "protocol": "d1"}
    d["methods"]["d1"]["d1_compat"] = {"math_boxed_backspace": True}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    cfg = load_config(tmp_path / "c.yaml")
    tasks = {"math500": get_task("math500", protocol="d1", stage="train"), "tiny_arith": get_task("tiny_arith")}
    completion, ex = "<answer>\\boxed{3}</answer>", {"problem": "p", "answer": "3", "solution": "\\boxed{3}"}
    assert task_rewards(cfg, "d1", tasks)["math500"](completion, ex) == 2.0 + 0.75  # the released literal: format 0.75
    assert task_rewards(cfg, "diffu_grpo", tasks)["math500"](completion, ex) == 2.0 + 1.0  # as intended
    arith = {"start": 3, "steps": [["gets", "+", 4], ["eats", "-", 1]], "answer": 6, "id": "x"}
    assert task_rewards(cfg, "d1", tasks)["tiny_arith"]("3+4=7 7-1=6<answer>6</answer>", arith) == 1.1


def test_one_family_batch_is_rescored_at_its_own_temperature(tmp_path):
    """Regression: with ``task_temperature`` set, a batch whose rows all came from one task family was re-scored by
    AGRPO at the method's default temperature (ratios ≠ 1 at μ = 1). Now ρ = 1 and nothing is clipped."""
    from agrpo.rl.trainer import train
    from helpers import minute_run

    cfg = minute_run(tmp_path, rl=dict(iterations=2, checkpoint_every=2, prompts_per_batch=2, group_size=4),
                     data=dict(tasks=["tiny_countdown"]))
    cfg.methods["agrpo"].task_temperature = {"countdown": 0.3}  # rollout.temperature stays 0.6
    train(cfg, "agrpo", 0, tmp_path / "base", tmp_path / "run", progress=False,
          reward_fn=lambda text, ex: float(text.count("1")))
    log = [json.loads(line) for line in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    assert all(abs(r["ratio_mean"] - 1) < 1e-5 and r["clip_ratio"] == 0 for r in log)


# ---------------------------------------------------------------------------------------------------- d1 SFT on LLaDA

def test_sft_on_a_llada_checkpoint_renders_the_chat_template_and_truncates(tmp_path):
    """Regression: SFT crashed on LLaDA (tokenizer ids), skipped the chat template d1 applies, and refused traces
    longer than the canvas where d1 truncates."""
    from agrpo.model import load_model
    from agrpo.sft import sft
    from test_llada import CFG, write_checkpoint

    write_checkpoint(tmp_path / "ckpt")
    rows = [{"question": "w1 w2", "thinking_trajectories": ["w3 " * n], "attempt": "w4"} for n in (2, 40)]
    (tmp_path / "s1k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = load_model(tmp_path / "ckpt")
    prompt, completion = model.encode_pair("w1 w2", "w3 w4")
    assert prompt[:2] == [58, 59] and prompt[-2:] == [0, 60]  # BOS, user header … assistant header
    assert completion == [3, 4, 62]  # the reply, then the template's <|eot_id|>
    _, _, targets, cut = encode_pairs(model, [("w1", "w3 " * 40), ("w1", "w3")], 16, truncate=True)
    assert cut == 1 and targets.shape == (2, 16) and (targets[1, 2:] == CFG["eos_token_id"]).all()
    with pytest.raises(ValueError, match="exceeds gen_length"):
        encode_pairs(model, [("w1", "w3 " * 40)], 16)
    d = yaml.safe_load((ROOT / "workflow/config/paper.yaml").read_text())
    d["model"].update(name_or_path=str(tmp_path / "ckpt"), dtype="float32")
    d["device"] = "cpu"
    d["methods"] = {"d1": d["methods"]["d1"]}
    d["methods"]["d1"]["sft"].update(steps=2, batch_size=2, completion_length=16, dataset=f"s1k:{tmp_path / 's1k.jsonl'}",
                                     lora={"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj"]})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    summary = sft(load_config(tmp_path / "c.yaml"), "d1", tmp_path / "ckpt", tmp_path / "sft", progress=False)
    assert summary["truncated_completions"] == 1 and summary["examples"] == 2
    assert load_model(tmp_path / "sft").config.d_model == CFG["d_model"]


# ---------------------------------------------------------------------------------------------------- LoRA, per-task temperature

def test_d1_lora_reference_is_the_adapter_off_policy(tiny_model, tokenizer):
    base = copy.deepcopy(tiny_model)
    policy = apply_lora(tiny_model, from_dict(MethodConfig, {"lora": {"r": 4, "alpha": 8}}))
    ref = AdapterOff(policy)
    ids = torch.tensor([tokenizer.encode("has 3, gets 4")])
    attn = torch.ones_like(ids)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(0.1)  # as after training: the adapter now changes the output
        assert not torch.allclose(policy(ids, attn), base(ids, attn))
        assert torch.equal(ref(ids, attn), base(ids, attn))  # reference = base weights, no copy kept
        assert torch.allclose(merged_copy(policy)(ids, attn), policy(ids, attn), atol=1e-5)
    assert sum(p.numel() for p in ref.parameters()) == 0


def test_d1_per_task_temperatures_are_rescored_exactly(tiny_model, tokenizer):
    """Rows sampled at different temperatures (d1's Sudoku at 0.3) keep exact rollout log-probs under AGRPO."""
    from agrpo.rl.agrpo import AGRPO
    from agrpo.rl.objectives import RolloutBatch, completion_mask

    ids, mask = left_pad([tokenizer.encode(p) for p in ("a", "bb", "ccc", "dd")], tokenizer.pad_id)
    hot = SamplerConfig(8, 4, 4, "random", 0.9, top_k=20)
    cold = SamplerConfig(8, 4, 4, "random", 0.3, top_k=20)
    sample, temps = generate_grouped(tiny_model, ids, mask, [hot, cold, hot, cold], torch.Generator().manual_seed(0))
    assert temps.tolist() == pytest.approx([0.9, 0.3, 0.9, 0.3])
    batch = RolloutBatch(sample, hot, torch.zeros(4), torch.zeros(4), 2, completion_mask(sample.completion_ids, tokenizer.eos_id),
                         row_temperature=temps)
    obj = AGRPO(AGRPO.Args(), torch.Generator())
    with torch.no_grad():
        for t in range(4):
            logp, revealed = obj.step_logprobs(tiny_model, batch, torch.full((4,), t))
            assert torch.allclose(logp, sample.token_logprobs[revealed], atol=1e-5)


def test_method_batch_overrides_reach_the_rollouts(tmp_path, monkeypatch):
    """d1/wd1's released batch settings: a method's own G and prompts per batch, prompts cut to their last N
    tokens (TRL's max_prompt_length), and its own optimizer settings."""
    from agrpo.rl import trainer
    from helpers import minute_run

    cfg = minute_run(tmp_path, rl=dict(iterations=2, checkpoint_every=2, prompts_per_batch=2, group_size=4))
    m = cfg.methods["wd1"]
    m.group_size, m.prompts_per_batch, m.max_prompt_length = 3, 4, 6
    m.optimizer = {"weight_decay": 0.1, "max_grad_norm": 0.2}
    shapes, real, clips, decay = [], trainer.generate_grouped, [], []
    real_clip, real_adamw = torch.nn.utils.clip_grad_norm_, torch.optim.AdamW

    def recording(model, ids, mask, samplers, generator, **kwargs):
        shapes.append(tuple(ids.shape))
        return real(model, ids, mask, samplers, generator, **kwargs)
    monkeypatch.setattr(trainer, "generate_grouped", recording)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, norm: clips.append(norm) or real_clip(p, norm))
    monkeypatch.setattr(torch.optim, "AdamW", lambda p, **kw: decay.append(kw["weight_decay"]) or real_adamw(p, **kw))
    trainer.train(cfg, "wd1", 0, tmp_path / "base", tmp_path / "run", progress=False,
                  reward_fn=lambda text, ex: float(text.count("1")))
    assert shapes == [(12, 6), (12, 6)]  # 4 prompts x G 3, each prompt its last 6 tokens
    log = [json.loads(line) for line in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    assert [r["rollouts"] for r in log] == [12, 24]
    assert decay == [0.1] and set(clips) == {0.2}


def test_d1_released_numerics_attend_padding_and_take_bf16_cross_entropy(tiny_model, tokenizer):
    """``released_numerics``: d1's one-step passes without an attention mask and with the cross-entropy of the
    model's own-dtype logits. Unpadded float32 prompts: identical; padded prompts or a bf16 model: different."""
    batch = make_batch(tiny_model, tokenizer)  # two prompts of different lengths: the shorter is left-padded
    ours = one_step_logprobs(tiny_model, batch.sample, 0.5, 7)
    d1 = one_step_logprobs(tiny_model, batch.sample, 0.5, 7, released_numerics=True)
    padded = batch.sample.prompt_mask.eq(0).any(1)
    assert padded.any() and not padded.all()
    assert torch.allclose(ours[~padded], d1[~padded], atol=1e-5)
    assert not torch.allclose(ours[padded], d1[padded], atol=1e-3)  # its [PAD] positions are attended
    bf16 = copy.deepcopy(tiny_model).to(torch.bfloat16)
    a = one_step_logprobs(bf16, batch.sample, 0.5, 7)
    b = one_step_logprobs(bf16, batch.sample, 0.5, 7, released_numerics=True)
    assert a.dtype == b.dtype == torch.float32 and not torch.equal(a[~padded], b[~padded])


def test_d1_compat_train_mode_rollouts(tmp_path, monkeypatch):
    """d1 samples inside its training step, so LoRA dropout is on during its rollouts; the flag reproduces it and
    is refused where it would change nothing (no LoRA dropout)."""
    from agrpo.rl import trainer
    from helpers import minute_run

    with pytest.raises(ConfigError, match="train_mode_rollouts: needs LoRA with dropout > 0"):
        d1_cfg(tmp_path, d1_compat={"train_mode_rollouts": True})
    cfg = minute_run(tmp_path, rl=dict(iterations=1, checkpoint_every=1, prompts_per_batch=2, group_size=2))
    m = cfg.methods["wd1"]
    m.lora.r, m.lora.alpha, m.lora.dropout, m.lora.target_modules = 2, 4.0, 0.5, ["q_proj"]
    modes, real = [], trainer.generate_grouped
    monkeypatch.setattr(trainer, "generate_grouped", lambda model, *a, **k: modes.append(model.training) or real(model, *a, **k))
    for flag in (False, True):
        m.d1_compat.train_mode_rollouts = flag
        trainer.train(cfg, "wd1", 0, tmp_path / "base", tmp_path / f"run{flag}", progress=False,
                      reward_fn=lambda text, ex: float(text.count("1")))
    assert modes == [False, True]


def test_a_per_task_run_trains_on_its_task_with_its_overrides(tmp_path, monkeypatch):
    """rl.runs per_task: the run of (diffu_grpo, tiny_countdown) samples only countdown prompts and takes the
    method's per_task override (μ 3 instead of 2: 3 optimizer steps per rollout batch)."""
    from agrpo.data import load_split
    from agrpo.resolve import run_config
    from agrpo.rl import trainer
    from agrpo.tasks import get_task
    from helpers import minute_run

    cfg = minute_run(tmp_path, rl=dict(iterations=2, checkpoint_every=2, prompts_per_batch=2, group_size=2))
    cfg.rl.runs = "per_task"
    cfg.methods["diffu_grpo"].per_task = {"tiny_countdown": {"inner_iterations": 3}}
    resolved = run_config(cfg, "diffu_grpo", "tiny_countdown")
    assert resolved.data.tasks == ["tiny_countdown"] and resolved.methods["diffu_grpo"].inner_iterations == 3
    assert list(resolved.methods) == ["diffu_grpo"] and cfg.methods["diffu_grpo"].inner_iterations == 2
    seen, real = [], trainer.generate_grouped

    def recording(model, ids, mask, samplers, generator, **kwargs):
        seen.extend(model.tokenizer.decode(row.tolist()) for row in ids)
        return real(model, ids, mask, samplers, generator, **kwargs)

    monkeypatch.setattr(trainer, "generate_grouped", recording)
    trainer.train(cfg, "diffu_grpo", 0, tmp_path / "base", tmp_path / "run", progress=False, task="tiny_countdown")
    log = [json.loads(line) for line in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    assert [r["optimizer_steps"] for r in log] == [3, 6]
    task = get_task("tiny_countdown")
    countdown = {task.prompt(ex) for ex in load_split(cfg.work_dir, "tiny_countdown", "train")}
    assert len(seen) == 2 * 2 * 2 and all(any(p.endswith(q) for q in countdown) for p in seen), seen[:2]
