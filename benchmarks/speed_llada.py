"""The 8B shape for benchmarks/speed.py: a random LLaDA-8B-shaped checkpoint (bf16) on one GPU.

1. sampler step ÷ bare forward, 8 × (128 + 256), block 32, 128 steps, greedy low-confidence: eager and CUDA graphs;
2. GSM8K-length prompts (``benchmarks/gsm8k_prompt_lengths.json``: the test set's user turns, lengths estimated
   without LLaDA's tokenizer) × 256 tokens at 128 and 64 steps, block 32, ``--items`` of the 1,319 in test-set
   order at batch ``--batch``: seconds, ÷ the forward floor (row passes × a bare forward of each batch) and ÷ the
   FLOP floor; the whole test set projected from the per-item time;
3. one RL iteration per method at the paper profile's settings, one GPU's share of the 8-GPU batch (AGRPO:
   2 groups of 8, 384 tokens, block 12, 128 steps, k = 24; diffu-GRPO: 2 groups of 6, 256 tokens, block 32,
   128 steps, μ = 12, β = 0.04 against the adapter-off reference), LoRA r 64 with activation checkpointing:
   rollout + update seconds, ÷ their FLOP floors and ÷ their forward floors (the same passes as bare forwards
   and forward+backwards of the batch's shape).
Random weights: time and memory are real, the text is not (no early exits: every row takes every pass).

The whole test set does not fit one 30-minute lease (at 128 steps ≈ 38 minutes): ``--item-start`` and
``--items`` run a slice, ``--llada-parts test`` skips the other parts, and
    python benchmarks/speed_llada.py merge speed_llada8b_a.json speed_llada8b_b.json
adds the slices' seconds and floors up to the whole set per step count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from agrpo.provenance import device_name, git_sha, versions
from agrpo.sampling import SamplerConfig, generate, left_pad

ROOT = Path(__file__).resolve().parent.parent


QUICK_SHAPE = dict(d_model=32, n_heads=2, n_kv_heads=2, n_layers=1, mlp_hidden_size=64)  # --quick: a CPU smoke run


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def prompts(lengths: list[int], pad_id: int, g, device="cuda"):
    seqs = [torch.randint(0, 126000, (n,), generator=g).tolist() for n in lengths]
    ids, mask = left_pad(seqs, pad_id)
    return ids.to(device), mask.to(device)


def bare_forward(model, ids, mask, gen_length, repeats=3) -> float:
    full = torch.cat([ids, torch.full((ids.shape[0], gen_length), model.mask_id, device=ids.device)], 1)
    attn = torch.cat([mask, torch.ones_like(full[:, ids.shape[1]:])], 1)
    with torch.no_grad():
        model(full, attn)
        return min(timed(lambda: model(full, attn))[1] for _ in range(repeats))


def llada8b(args, peak: dict, save=None) -> dict:
    """The parts in ``args.llada_parts``; ``save(res)``, if given, is called after every test-set batch with the
    results so far, so a run cut by the end of a lease leaves a slice of whole batches that ``merge`` accepts."""
    from agrpo.model.llada import load_llada
    from benchmarks.llada_gpu import write_random_checkpoint

    bf = peak["bfloat16"] * 1e12
    dev = args.device
    dtype = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    res = {"what": "llada8b", "device": device_name(dev), "git_sha": git_sha(), "versions": versions(),
           "matmul_tflops": peak}
    d = Path(args.dir + "-quick" if args.quick else args.dir)  # a quick checkpoint never stands in for the 8B one
    if not (d / "config.json").is_file():
        res["write_seconds"] = write_random_checkpoint(d, dev, dtype, **(QUICK_SHAPE if args.quick else {}))
    model, res["load_seconds"] = timed(lambda: load_llada(str(d), dtype=dtype, device=dev, with_tokenizer=False))
    res["shape"] = {k: getattr(model.config, k) for k in ("d_model", "n_layers", "n_heads", "mlp_hidden_size",
                                                           "vocab_size")}
    model.eval()
    res["params"] = model.num_parameters()
    parts = set(args.llada_parts.split(","))
    if parts - {"step", "test", "rl"}:
        raise ValueError(f"--llada-parts: unknown {sorted(parts - {'step', 'test', 'rl'})} (step, test, rl)")
    g = torch.Generator().manual_seed(1)

    if "step" in parts:  # 1. sampler step vs bare forward
        ids, mask = prompts([128] * 8, model.pad_id, g, dev)
        fwd = bare_forward(model, ids, mask, 256)
        res["step"] = {"batch": 8, "tokens": [128, 256], "forward_s": fwd,
                       "forward_over_flop_floor": fwd / (model.forward_flops(384) * 8 / bf)}
        steps = 8 if args.quick else 128
        for graphs in (False, True) if dev.startswith("cuda") else (False,):
            sc = SamplerConfig(256, 32, steps, "low_confidence", 0.0, cuda_graphs=graphs)
            with torch.no_grad():
                generate(model, ids, mask, SamplerConfig(256, 32, 8, "low_confidence", 0.0, cuda_graphs=graphs))  # warm
                _, t = timed(lambda: generate(model, ids, mask, sc, record=False))
            key = "graphs" if graphs else "eager"
            res["step"][key] = {"step_s": t / steps, "step_over_forward": t / steps / fwd,
                                "step_over_flop_floor": t / steps / (model.forward_flops(384) * 8 / bf)}
        print(json.dumps(res["step"]), flush=True)

    if "test" in parts:  # 2. GSM8K-length prompts × 256 tokens: items [start, start + items) of the test set
        res["test_set"] = []
        for steps in map(int, args.test_steps.split(",")):
            res["test_set"].append(None)

            def progress(row):
                res["test_set"][-1] = row
                if save is not None:
                    save(res)
            test_set_slice(model, args, steps, bf, progress)

    if "rl" in parts:  # 3. one RL iteration per method
        res["rl_iteration"] = rl_iterations(model, bf, g, dev, args.quick)
    return res


def test_set_slice(model, args, steps: int, bf: float, progress=None) -> dict:
    """Items [args.item_start, + args.items) of the GSM8K test set's prompt lengths × 256 tokens at ``steps``,
    in batches of ``args.batch`` (each batch's random prompt tokens seeded by its first item, so slices of one
    test set are the batches of the whole). Sums (seconds, forward floor, FLOP floor) add up over slices:
    ``merge_test_set_slices``. ``progress(row)`` gets the row of the batches done so far after each batch."""
    lengths = json.loads((ROOT / "benchmarks/gsm8k_prompt_lengths.json").read_text())["lengths"]
    order = "by length" if args.sort_by_length else "test set"
    if order == "by length":  # as eval.sort_by_length batches (stable), so slices of it are its batches
        lengths = sorted(lengths)
    start = args.item_start
    if start % args.batch:
        raise ValueError(f"--item-start {start}: must be a multiple of --batch {args.batch} (the whole set's batches)")
    items = lengths[start:start + args.items]
    if not items:
        raise ValueError(f"--item-start {start}: past the test set's {len(lengths)} items")
    graphs = args.device.startswith("cuda")
    sc = SamplerConfig(256, 32, steps, "low_confidence", 0.0, cuda_graphs=graphs)
    wall = fwd_floor = flop_floor = 0.0
    for lo in range(0, len(items), args.batch):
        ids, mask = prompts(items[lo:lo + args.batch], model.pad_id, torch.Generator().manual_seed(start + lo),
                            args.device)
        with torch.no_grad():
            if lo == 0:
                generate(model, ids, mask, SamplerConfig(256, 32, 8, "low_confidence", 0.0, cuda_graphs=graphs))
            out, t = timed(lambda: generate(model, ids, mask, sc, record=False))
        wall += t
        passes = int(out.row_nfe.sum())
        fwd_floor += passes / ids.shape[0] * bare_forward(model, ids, mask, 256, repeats=2)
        flop_floor += passes * model.forward_flops(ids.shape[1] + 256) / bf
        row = {**slice_row(steps, start, lo + ids.shape[0], len(items), len(lengths), args.batch,
                           wall, fwd_floor, flop_floor), "order": order}
        if progress is not None:
            progress(row)
    print(json.dumps(row), flush=True)
    return row


def slice_row(steps, start, done, asked, of_items, batch, wall, fwd_floor, flop_floor) -> dict:
    """A slice's row after ``done`` of the ``asked`` items starting at ``start``: its sums and ratios."""
    return {"steps": steps, "item_start": start, "items": done, "items_asked": asked, "of_items": of_items,
            "batch": batch, "seconds": wall, "forward_floor_s": fwd_floor, "flop_floor_s": flop_floor,
            "seconds_per_item": wall / done, "over_forward_floor": wall / fwd_floor,
            "over_flop_floor": wall / flop_floor, "projected_1319_items_s": wall / done * of_items}


def merge_test_set_slices(rows: list[dict]) -> list[dict]:
    """The whole test set per step count and batch order (test-set order, or by length) from slices
    (``test_set_slice`` rows, from one run or several), refusing overlaps and gaps; a set whose slices do not cover
    every item is reported with ``complete: false``."""
    out = []
    groups = sorted({(r["steps"], r.get("order", "test set")) for r in rows}, key=lambda g: (-g[0], g[1] != "test set"))
    for steps, order in groups:
        mine = sorted((r for r in rows if (r["steps"], r.get("order", "test set")) == (steps, order)),
                      key=lambda r: r["item_start"])
        where = f"steps {steps}" + (f" ({order})" if order != "test set" else "")
        covered = 0
        for r in mine:
            if r["item_start"] != covered:
                raise ValueError(f"{where}: slices {'overlap' if r['item_start'] < covered else 'leave a gap'}"
                                 f" at item {covered} (next slice starts at {r['item_start']})")
            covered += r["items"]
        for key in ("batch", "of_items"):
            if len({r[key] for r in mine}) > 1:
                raise ValueError(f"{where}: slices differ in {key} ({sorted({r[key] for r in mine})})")
        n = mine[0]["of_items"]
        total = {k: sum(r[k] for r in mine) for k in ("seconds", "forward_floor_s", "flop_floor_s")}
        out.append({"steps": steps, "order": order, "items": covered, "of_items": n, "complete": covered == n,
                    "slices": len(mine), **total, "over_forward_floor": total["seconds"] / total["forward_floor_s"],
                    "over_flop_floor": total["seconds"] / total["flop_floor_s"]})
    return out


def fwd_bwd_seconds(policy, ids, mask, gen_length: int, repeats: int = 2) -> float:
    """A bare forward+backward of the rollout batch's shape (all completion positions masked, the prompts'
    padding masked as in ``bare_forward``), as the update's passes run: train mode, the adapter's gradients,
    activation checkpointing if on."""
    full = torch.cat([ids, torch.full((ids.shape[0], gen_length), policy.mask_id, device=ids.device)], 1)
    attn = torch.cat([mask, torch.ones_like(full[:, ids.shape[1]:])], 1)

    def once():
        policy.zero_grad(set_to_none=True)
        policy(full, attn).float().logsumexp(-1).mean().backward()

    once()
    t = min(timed(once)[1] for _ in range(repeats))
    policy.zero_grad(set_to_none=True)
    return t


def rl_iterations(model, bf: float, g, dev: str = "cuda", quick: bool = False) -> list[dict]:
    """One RL iteration per method at the paper profile's settings (``quick``: one group of 8 / 6 rows, 24 / 32
    tokens, 4 steps, k = 2, μ = 2: a CPU smoke run of this code). Peak memory is read before the floors' passes."""
    from peft import LoraConfig, get_peft_model

    from agrpo.distributed import Runtime
    from agrpo.model.lora import AdapterOff
    from agrpo.rl.agrpo import AGRPO
    from agrpo.rl.objectives import RolloutBatch, completion_mask
    from agrpo.rl.trainer import group_advantages, update
    from baselines.diffu_grpo import DiffuGRPO

    lengths = json.loads((ROOT / "benchmarks/gsm8k_prompt_lengths.json").read_text())["lengths"]
    model.activation_checkpointing = True
    policy = get_peft_model(model, LoraConfig(r=64, lora_alpha=64, lora_dropout=0.0, target_modules=[
        "q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]))
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-12, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    rt = Runtime(None, torch.device(dev))
    out = []
    k, mu_diffu, groups = (2, 2, 1) if quick else (24, 12, 2)
    settings = [("agrpo", 8, SamplerConfig(24 if quick else 384, 12, 4 if quick else 128, "random", 0.6, top_k=150,
                                            top_p=0.99, eos_early_exit=True)),
                ("diffu_grpo", 6, SamplerConfig(32 if quick else 256, 16 if quick else 32, 4 if quick else 128,
                                                "low_confidence", 0.9))]
    for method, group, sc in settings:
        rows = groups * group
        ids, mask = prompts([lengths[i] for i in range(rows // group) for _ in range(group)], model.pad_id, g, dev)
        row = {"method": method, "rows": rows, "prompt_tokens": ids.shape[1], "gen_length": sc.gen_length}
        for graphs in (False, True):
            policy.eval()
            with torch.no_grad():
                sample, t = timed(lambda: generate(policy, ids, mask, SamplerConfig(**{
                    **vars(sc), "cuda_graphs": graphs and dev.startswith("cuda")}), torch.Generator(dev).manual_seed(0)))
            row["rollout_graphs_s" if graphs else "rollout_eager_s"] = t  # on a CPU: eager twice
        seq = ids.shape[1] + sc.gen_length
        f = model.forward_flops(seq) * rows
        row["rollout_flop_floor_s"] = sc.steps * f / bf
        t_fwd = bare_forward(policy, ids, mask, sc.gen_length, repeats=2)
        row["forward_s"] = t_fwd
        row["rollout_forward_floor_s"] = sc.steps * t_fwd
        rewards = torch.rand(rows, device=dev)
        batch = RolloutBatch(sample, sc, rewards, group_advantages(rewards, group), group,
                             completion_mask(sample.completion_ids, model.eos_id))
        policy.train()
        if method == "agrpo":
            obj, ref, mu = AGRPO(AGRPO.Args(mc_samples=k), torch.Generator().manual_seed(0)), None, 1
            flops = k * 4 * f  # k fwd+bwd with activation checkpointing (a second forward per backward)
        else:
            obj, ref, mu = DiffuGRPO(DiffuGRPO.Args(), torch.Generator().manual_seed(0)), AdapterOff(policy), mu_diffu
            flops = 2 * mu * f + mu * 4 * f  # prepare (old + ref per mask seed) + μ fwd+bwd (recomputed forward)
        _, t_prep = timed(lambda: obj.prepare(policy, ref, batch, mu))

        def iterate():
            for n in range(mu):
                update(rt, policy, policy, ref, obj, batch, opt, sched, params, n, 1.0)

        _, t_up = timed(iterate)
        peak_gib = torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else None
        t_fb = fwd_bwd_seconds(policy, ids, mask, sc.gen_length)
        fwd_floor = k * t_fb if method == "agrpo" else 2 * mu * t_fwd + mu * t_fb  # the passes of flops
        iteration = row["rollout_graphs_s"] + t_prep + t_up
        row.update(prepare_s=t_prep, update_s=t_up, update_flop_floor_s=flops / bf,
                   update_over_flop_floor=(t_prep + t_up) / (flops / bf),
                   fwd_bwd_s=t_fb, update_forward_floor_s=fwd_floor, update_over_forward_floor=(t_prep + t_up) / fwd_floor,
                   rollout_over_forward_floor=row["rollout_graphs_s"] / row["rollout_forward_floor_s"],
                   iteration_s=iteration,
                   iteration_over_flop_floor=iteration / (row["rollout_flop_floor_s"] + flops / bf),
                   iteration_over_forward_floor=iteration / (row["rollout_forward_floor_s"] + fwd_floor),
                   peak_gib=peak_gib)
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "merge":
        sys.exit("usage: python benchmarks/speed_llada.py merge RESULT.json [RESULT.json ...]")
    slices = [row for path in sys.argv[2:] for row in json.loads(Path(path).read_text()).get("test_set", []) if row]
    print(json.dumps(merge_test_set_slices(slices), indent=1))
