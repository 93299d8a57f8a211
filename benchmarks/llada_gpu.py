"""LLaDA-8B at real size on one GPU: loading, sampling, one AGRPO update and one diffu-GRPO inner iteration.

An 8B-shaped checkpoint with random weights (LLaDA-8B-Instruct's config: 32 layers, d 4096, MLP 12,288, vocab
126,464) is written in the official layout and loaded back with our loader, in bf16. Then, each timed with CUDA
synchronisation and its peak memory reset before:
- sampling, evaluation settings: 8 × (128 prompt + 256) tokens, block 32, 128 steps, low-confidence, greedy;
  the step cost is compared with one bare forward of the same batch (target ≤ 1.10);
- sampling, AGRPO's training settings: 8 × (256 + 384), block 12, 128 steps, random, T 0.6, top-k 150, top-p 0.99,
  recording log-probs and masks (the rollout of the update below);
- one AGRPO update: LoRA r 64 / α 64 on LLaDA's seven projections, k = 24 timesteps, activation checkpointing,
  batch 8 × 640 tokens;
- one diffu-GRPO inner iteration (LoRA r 128 / α 64, β = 0.04 with the adapter-off reference) and its prepare.

    python benchmarks/llada_gpu.py --out results.json [--skip-write DIR]

Random weights make the timings and memory real and the generated text meaningless; nothing here is accuracy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from agrpo.model.llada import LLaDA, LLaDAConfig, load_llada
from agrpo.provenance import device_name, git_sha, versions
from agrpo.rl.agrpo import AGRPO
from agrpo.rl.objectives import RolloutBatch, completion_mask
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate
from baselines.diffu_grpo import DiffuGRPO


def timed(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**30


def write_random_checkpoint(d: Path, device: str = "cuda", dtype=torch.bfloat16, **shape) -> float:
    """A random LLaDA checkpoint, LLaDA-8B-Instruct's configuration unless ``shape`` overrides some of it, built
    on ``device`` in ``dtype`` and written in the official layout; returns the seconds it took."""
    t0 = time.perf_counter()
    with torch.device("meta"):
        model = LLaDA(LLaDAConfig(**shape))
    model = model.to_empty(device=device).to(dtype)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("ln_f.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0, 0.02, generator=g)
    model.save_pretrained(d)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/llada8b-random")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--k", type=int, default=24)
    args = ap.parse_args(argv)
    res = {"device": device_name("cuda"), "git_sha": git_sha(), "versions": versions(), "batch": args.batch}
    d = Path(args.dir)
    if not (d / "config.json").is_file():
        res["write_seconds"] = write_random_checkpoint(d)
    model, res["load_seconds"], _ = timed(lambda: load_llada(str(d), dtype=torch.bfloat16, device="cuda",
                                                             with_tokenizer=False))
    res["params"] = model.num_parameters()
    model.eval()
    b, g = args.batch, torch.Generator(device="cuda").manual_seed(1)

    def prompts(n):
        ids = torch.randint(0, 126000, (b, n), generator=g, device="cuda")
        return ids, torch.ones_like(ids)

    # --- evaluation sampling vs bare forwards
    ids, mask = prompts(128)
    ev = SamplerConfig(256, 32, 128, "low_confidence", 0.0)
    with torch.no_grad():
        full = torch.cat([ids, torch.full((b, 256), model.mask_id, device="cuda")], 1)
        model(full, torch.ones_like(full))
        _, t_fwd, _ = timed(lambda: [model(full, torch.ones_like(full)) for _ in range(5)])
        t_fwd /= 5
        out, t_gen, mem_gen = timed(lambda: generate(model, ids, mask, ev, g, record=False))
    res["eval_sampling"] = {"seconds": t_gen, "nfe": out.nfe, "seconds_per_step": t_gen / out.nfe,
                            "bare_forward_seconds": t_fwd, "step_over_forward": t_gen / out.nfe / t_fwd,
                            "peak_gib": mem_gen, "tokens": [b, 128, 256]}
    print(json.dumps(res["eval_sampling"]), flush=True)

    # --- AGRPO: training rollout, then one update with LoRA + activation checkpointing
    from peft import LoraConfig, get_peft_model

    ids, mask = prompts(256)
    tr = SamplerConfig(384, 12, 128, "random", 0.6, top_k=150, top_p=0.99, eos_early_exit=True)
    with torch.no_grad():
        sample, t_roll, mem_roll = timed(lambda: generate(model, ids, mask, tr, g, record=True))
    res["train_rollout"] = {"seconds": t_roll, "nfe": sample.nfe, "peak_gib": mem_roll, "tokens": [b, 256, 384]}
    print(json.dumps(res["train_rollout"]), flush=True)
    rewards = torch.rand(b, device="cuda")
    group = b if b <= 8 else 8
    batch = RolloutBatch(sample, tr, rewards, group_advantages(rewards, group), group,
                         completion_mask(sample.completion_ids, model.eos_id))
    model.activation_checkpointing = True
    policy = get_peft_model(model, LoraConfig(r=64, lora_alpha=64, lora_dropout=0.0,
                                              target_modules=["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj",
                                                              "up_proj", "ff_out"]))
    policy.train()
    obj = AGRPO(AGRPO.Args(mc_samples=args.k), torch.Generator().manual_seed(0))

    def agrpo_update():
        obj.prepare(policy, None, batch, 1)
        for loss, _ in obj.losses(policy, None, batch, 0):
            loss.backward()

    _, t_up, mem_up = timed(agrpo_update)
    res["agrpo_update"] = {"seconds": t_up, "k": args.k, "peak_gib": mem_up, "tokens": [b, 640],
                           "lora": {"r": 64, "alpha": 64, "targets": 7}, "activation_checkpointing": True,
                           "trainable_params": sum(p.numel() for p in policy.parameters() if p.requires_grad)}
    print(json.dumps(res["agrpo_update"]), flush=True)
    policy.zero_grad(set_to_none=True)

    # --- diffu-GRPO: one inner iteration (d1: LoRA r 128; the reference is the adapter-off policy)
    from agrpo.model.lora import AdapterOff

    ids, mask = prompts(256)
    with torch.no_grad():
        s2 = generate(model, ids, mask, SamplerConfig(256, 32, 8, "low_confidence", 0.9), g, record=False)
    batch2 = RolloutBatch(s2, ev, rewards, group_advantages(rewards, group), group,
                          completion_mask(s2.completion_ids, model.eos_id))
    d1 = DiffuGRPO(DiffuGRPO.Args(), torch.Generator().manual_seed(0))
    ref = AdapterOff(policy)
    mu = 2
    _, t_prep, mem_prep = timed(lambda: d1.prepare(policy, ref, batch2, mu))

    def diffu_iteration():
        for loss, _ in d1.losses(policy, ref, batch2, 1):
            loss.backward()

    _, t_it, mem_it = timed(diffu_iteration)
    res["diffu_grpo"] = {"inner_iteration_seconds": t_it, "inner_iteration_peak_gib": mem_it,
                         "prepare_seconds_mu2": t_prep, "prepare_peak_gib": mem_prep, "tokens": [b, 512],
                         "lora_note": "LoRA r 64 adapter of the AGRPO run reused (d1 uses r 128)"}
    print(json.dumps(res["diffu_grpo"]), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
