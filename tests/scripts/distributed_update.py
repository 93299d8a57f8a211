"""One RL update per objective on a fixed global rollout batch, run as 1 plain process or under
``accelerate launch --num_processes W`` (gloo on CPU). Launched by tests/test_distributed_llada.py.

Every rank builds the same random LLaDA-architecture model and samples the same global batch (same seed, one CPU
thread); rank r keeps prompt groups [r·B/W, (r+1)·B/W) and calls the trainer's own ``update``. Rank 0 writes the
loss (mean over ranks), the gradient norm and a parameter checksum after each inner iteration to argv[1]."""

import copy
import json
import os
import sys

import torch

from agrpo.config import MethodConfig, from_dict
from agrpo.distributed import all_mean, make_runtime
from agrpo.model.llada import LLaDA, LLaDAConfig
from agrpo.rl.objectives import RolloutBatch, completion_mask, objectives
from agrpo.rl.trainer import group_advantages, prepare_engine, update
from agrpo.sampling import SamplerConfig, generate

CASES = {  # name -> (objective, args, μ, LoRA rank)
    "agrpo": ("agrpo", {"mc_samples": 3, "beta": 0.04}, 2, 0),
    "agrpo_lora": ("agrpo", {"mc_samples": 2}, 2, 4),
    "diffu_grpo_group": ("diffu_grpo", {"loss_normalization": "group"}, 2, 0),
    "diffu_grpo_batch": ("diffu_grpo", {"loss_normalization": "batch"}, 2, 0),
    "wd1": ("wd1", {}, 1, 0),
}
GROUPS, G = 4, 2


def main(out_path: str, only: str | None = None) -> None:
    torch.set_num_threads(1)
    # AGRPO_TEST_DEVICE / AGRPO_TEST_DTYPE: the GPU variant (benchmarks/gpu_paths.sh: plain vs ZeRO-2)
    rt = make_runtime(os.environ.get("AGRPO_TEST_DEVICE", "cpu"))
    dtype = getattr(torch, os.environ.get("AGRPO_TEST_DTYPE", "float32"))
    torch.manual_seed(0)
    base = LLaDA(LLaDAConfig(d_model=32, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=48, vocab_size=64,
                             embedding_size=64, mask_token_id=63, eos_token_id=61, pad_token_id=61))
    base = base.to(rt.device, dtype)
    prompt_gen = torch.Generator().manual_seed(1)
    gen = torch.Generator(rt.device).manual_seed(1)
    lengths = torch.randint(3, 9, (GROUPS,), generator=prompt_gen).tolist()
    prompt_ids = torch.full((GROUPS * G, 8), 61, dtype=torch.long)
    prompt_mask = torch.zeros_like(prompt_ids)
    for g, n in enumerate(lengths):  # left-padded prompts of different lengths, G copies each
        tokens = torch.randint(0, 60, (n,), generator=prompt_gen)
        prompt_ids[g * G:(g + 1) * G, 8 - n:] = tokens
        prompt_mask[g * G:(g + 1) * G, 8 - n:] = 1
    sampler = SamplerConfig(gen_length=12, block_length=4, steps=6, remasking="random", temperature=0.9, top_k=20,
                            top_p=0.95, eos_early_exit=True)
    sample = generate(base.eval(), prompt_ids.to(rt.device), prompt_mask.to(rt.device), sampler, gen)
    rewards = torch.rand(GROUPS * G, generator=prompt_gen).round(decimals=1).to(rt.device)
    # one-step estimators only read the token ids: give rows different lengths (EOS from a row-dependent
    # position) so token-count normalisations differ between ranks
    ended = copy.copy(sample)
    ended.completion_ids = sample.completion_ids.clone()
    for i, stop in enumerate(torch.randint(2, 12, (GROUPS * G,), generator=prompt_gen).tolist()):
        ended.completion_ids[i, stop:] = 61
    b = GROUPS * G // rt.world_size
    lo = rt.rank * b
    results = {}
    for name, (objective_name, args, mu, r) in CASES.items():
        if only is not None and name != only:
            continue  # DeepSpeed supports one engine per process: the GPU script runs one case per process
        policy = copy.deepcopy(base).train()
        mcfg = from_dict(MethodConfig, {"lora": {"r": r, "alpha": 8}})
        obj_cls = objectives()[objective_name]
        objective = obj_cls(from_dict(obj_cls.Args, args), torch.Generator().manual_seed(7))
        ref = None
        if r > 0:
            from agrpo.model.lora import AdapterOff, apply_lora

            policy = apply_lora(policy, mcfg)
            ref = AdapterOff(policy)
        elif objective.needs_reference:
            ref = copy.deepcopy(base).requires_grad_(False)
        trainable = [p for p in policy.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        engine, opt = prepare_engine(rt, policy, opt, max_grad_norm=1e9)
        adv = group_advantages(rewards, G)
        s = sample if objective_name == "agrpo" else ended
        batch = RolloutBatch(s.rows(lo, lo + b), sampler, rewards[lo:lo + b], adv[lo:lo + b], G,
                             completion_mask(s.completion_ids, 61)[lo:lo + b], shard=(rt.rank, rt.world_size))
        objective.prepare(policy, ref, batch, mu)
        steps = []
        for n in range(mu):
            loss, grad_norm, _, _, _ = update(rt, engine, policy, ref, objective, batch, opt, sched, trainable, n, 1e9)
            checksum = sum(p.detach().double().pow(2).sum().item() for p in trainable)
            steps.append({"loss": all_mean({"loss": loss}, rt.device)["loss"], "grad_norm": grad_norm,
                          "param_sq_sum": checksum})
        results[name] = steps
    if rt.is_main:
        with open(out_path, "w") as f:
            json.dump({"world_size": rt.world_size, "results": results}, f, indent=1)
    rt.barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
