"""Shared test helpers: a small rollout batch from the real sampler, and flattened gradients."""

import torch

from agrpo.rl.objectives import RolloutBatch, completion_mask
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate, left_pad

G = 4
DEFAULT_SAMPLER = SamplerConfig(gen_length=8, block_length=4, steps=4, remasking="random", temperature=0.8)


def make_batch(model, tokenizer, sampler=DEFAULT_SAMPLER, seed=0):
    """Two prompts × G completions; rewards 0, 1, 2, 0, … so every group has a spread."""
    prompts = [tokenizer.encode(p) for p in ("has 3, gets 4", "1 2 3>6") for _ in range(G)]
    ids, mask = left_pad(prompts, tokenizer.pad_id)
    sample = generate(model, ids, mask, sampler, torch.Generator().manual_seed(seed))
    rewards = torch.arange(len(prompts), dtype=torch.float32) % 3
    return RolloutBatch(sample, sampler, rewards, group_advantages(rewards, G), G,
                        completion_mask(sample.completion_ids, tokenizer.eos_id))


def flat_grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])
