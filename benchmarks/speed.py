"""Speed against two floors, measured in one run: the bare eager forward and the FLOP floor.

FLOP floor = FLOPs of the work ÷ the matmul throughput measured in the same process on the same device (bf16
and fp32 without TF32: 8192³ matmuls, median of 10). Forward FLOPs are ``model.forward_flops`` (2·params·tokens
+ attention); a forward+backward counts 3 forwards. Ratios are wall time ÷ floor, so 1.0 is unreachable for
small models (kernel launches, memory-bound norms and softmaxes) and a ratio's change between settings is what
the speed work buys.

    python benchmarks/speed.py small --device cuda --tag h200 [--model DIR] [--baseline-repo DIR]
    python benchmarks/speed.py llada8b --device cuda --tag h200 --items 128
    python benchmarks/speed.py small --device cpu --tag cpu --quick      (a smoke run: tiny sizes)
    python benchmarks/speed.py llada8b --device cpu --tag cpu --quick --items 4 --batch 4 --test-steps 8   (the same)

``small``: the small profile's architecture (27.3M parameters; random weights unless ``--model``) on tiny_arith
prompts: per precision (float32, bf16 autocast, bf16 weights) and with and without CUDA graphs — one bare
forward, one sampler step, the whole test set (eval sampler, L/2 steps), one AGRPO update (k = 8), one
diffu-GRPO inner iteration; then whole RL iterations (rollout + update) through ``agrpo train`` for each speed
setting, and the same with the code of ``--baseline-repo`` (an older checkout: its own trainer and config).
``llada8b``: a random LLaDA-8B-shaped checkpoint (bf16): sampler step ÷ forward, ``--items`` GSM8K-length
prompts × 256 tokens at 128 and 64 steps (block 32), one RL iteration per method at the paper profile's
settings. Writes benchmarks/results/speed_<what>_<tag>.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agrpo.io import atomic_write_json  # noqa: E402
from agrpo.provenance import device_name, git_sha, versions  # noqa: E402
from agrpo.sampling import generate  # noqa: E402
from benchmarks.sampler_cost import median_time, sync  # noqa: E402


def median_seconds(fn, device, repeats: int = 5, warmup: int = 2) -> float:
    return median_time(fn, device, repeats, warmup)


def matmul_tflops(device, quick: bool) -> dict:
    """Measured dense matmul throughput: bf16, and fp32 with TF32 off (the default for matmuls)."""
    n = 1024 if quick or torch.device(device).type == "cpu" else 8192
    out = {"size": n}
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        if torch.device(device).type == "cpu" and dtype == torch.bfloat16:
            continue
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        s = median_seconds(lambda: a @ b, device, repeats=10, warmup=3)
        out[name] = 2 * n ** 3 / s / 1e12
    out.setdefault("bfloat16", out["float32"])  # CPU: no bf16 figure; the floor uses fp32's
    return out


def precision_ctx(precision: str, device):
    if precision == "autocast":
        return lambda: torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext


# ------------------------------------------------------------------------------------------------ small profile

def small_setup(args):
    from agrpo.config import load_config
    from agrpo.data import load_split, write_task_data
    from agrpo.model import load_model
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer
    from agrpo.resolve import profile_task

    work = Path(tempfile.mkdtemp(prefix="speed_small_"))
    cfg = load_config(ROOT / "workflow/config/small.yaml", {"work_dir": str(work), "device": args.device})
    for t in cfg.data.tasks:
        write_task_data(cfg, t)
    torch.manual_seed(0)
    if args.model:
        model = load_model(args.model, device=args.device)
    else:
        size = dict(d_model=64, n_layers=2, n_heads=4, d_ff=192) if args.quick else \
            dict(d_model=cfg.model.d_model, n_layers=cfg.model.n_layers, n_heads=cfg.model.n_heads, d_ff=cfg.model.d_ff)
        model = init_tiny(CharTokenizer(), **size).to(args.device)
        model.save_pretrained(work / "base")
    task = profile_task(cfg, "tiny_arith")
    return cfg, work, model, task, load_split(cfg.work_dir, "tiny_arith", "test")


def sampler_and_test_set(cfg, model, task, examples, peak, args) -> list[dict]:
    """Per precision × graphs: bare forward, sampler step (eval sampler, no early exit), whole test set."""
    from agrpo.evaluate import prompt_batch
    from agrpo.resolve import eval_sampler

    dev, rows = args.device, []
    L = cfg.eval.gen_lengths[0]
    batch = min(cfg.eval.batch_size, len(examples))
    precisions = ["float32"] if dev == "cpu" else ["float32", "autocast", "bf16_weights"]
    for precision in precisions:
        m = copy.deepcopy(model).eval()
        if precision == "bf16_weights":
            m = m.to(torch.bfloat16)
        amp = precision_ctx(precision, dev)
        floor_tflops = peak["float32" if precision == "float32" else "bfloat16"]
        ids, mask = prompt_batch(m, task, examples[:batch], dev)
        full = torch.cat([ids, torch.full((ids.shape[0], L), m.mask_id, device=dev)], 1)
        attn = torch.cat([mask, torch.ones((ids.shape[0], L), dtype=mask.dtype, device=dev)], 1)
        with torch.no_grad(), amp():
            fwd = median_seconds(lambda: m(full, attn), dev)
        fwd_flops = m.forward_flops(full.shape[1]) * full.shape[0]
        for graphs in ([False] if dev == "cpu" else [False, True]):
            steady = dataclasses.replace(eval_sampler(cfg, L, L // 2), eos_early_exit=False, cuda_graphs=graphs)
            with amp():
                gen = median_seconds(lambda: generate(m, ids, mask, steady, record=False), dev, repeats=5)
            step = gen / steady.steps
            test = eval_sampler(cfg, L, L // 2)
            test = dataclasses.replace(test, cuda_graphs=graphs)
            with amp():
                generate(m, ids, mask, test, record=False)  # shapes warmed (and graphs captured)
                wall, passes, tokens = 0.0, 0, 0
                for lo in range(0, len(examples), batch):
                    bi, bm = prompt_batch(m, task, examples[lo:lo + batch], dev)
                    sync(dev)
                    t0 = time.perf_counter()
                    out = generate(m, bi, bm, test, record=False)
                    sync(dev)
                    wall += time.perf_counter() - t0
                    passes += int(out.row_nfe.sum())
                    tokens += int(out.row_tokens.sum())
            forward_floor = passes / full.shape[0] * fwd  # rows that exited early cost nothing after
            flop_floor = passes * m.forward_flops(full.shape[1]) / (floor_tflops * 1e12)
            rows.append({"precision": precision, "cuda_graphs": graphs, "batch": full.shape[0], "seq_len": full.shape[1],
                         "forward_s": fwd, "forward_flop_floor_s": fwd_flops / (floor_tflops * 1e12),
                         "forward_over_flop_floor": fwd / (fwd_flops / (floor_tflops * 1e12)),
                         "step_s": step, "step_over_forward": step / fwd,
                         "step_over_flop_floor": step / (fwd_flops / (floor_tflops * 1e12)),
                         "test_set": {"items": len(examples), "steps": test.steps, "eos_early_exit": test.eos_early_exit,
                                      "seconds": wall, "items_per_s": len(examples) / wall, "row_passes": passes,
                                      "over_forward_floor": wall / forward_floor, "over_flop_floor": wall / flop_floor}})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def fwd_bwd_seconds(policy, full, attn, amp, device) -> float:
    """Median seconds of one bare forward+backward of ``policy`` on (``full``, ``attn``) under ``amp``."""
    def once():
        policy.zero_grad(set_to_none=True)
        with amp():
            loss = policy(full, attn).float().sum()
        loss.backward()

    return median_seconds(once, device, repeats=3, warmup=1)


def updates(cfg, model, task, examples, peak, args) -> list[dict]:
    """One AGRPO update (k draws) and one diffu-GRPO inner iteration on a real rollout batch, through the
    trainer's ``update``; ÷ (passes × fwd+bwd) and ÷ the FLOP floor."""
    from agrpo.distributed import Runtime
    from agrpo.evaluate import prompt_batch
    from agrpo.resolve import rollout_for
    from agrpo.rl.objectives import RolloutBatch, completion_mask, objectives
    from agrpo.rl.trainer import group_advantages, update
    from agrpo.config import from_dict

    dev, out = args.device, []
    n_rows = cfg.rl.prompts_per_batch * cfg.rl.group_size
    exs = [e for e in examples for _ in range(cfg.rl.group_size)][:n_rows]
    for precision, fused, compiled in ([("float32", False, False)] if dev == "cpu" else
                                       [("float32", False, False), ("autocast", False, False),
                                        ("autocast", True, False), ("autocast", True, True)]):
        amp = precision_ctx(precision, dev)
        floor_tflops = peak["float32" if precision == "float32" else "bfloat16"]
        for method in ("agrpo", "diffu_grpo"):
            policy = copy.deepcopy(model).train()
            sampler = rollout_for(cfg, method)
            ids, mask = prompt_batch(policy, task, exs, dev)
            with torch.no_grad(), amp():
                sample = generate(policy, ids, mask, sampler, torch.Generator(dev).manual_seed(0))
            rewards = torch.rand(ids.shape[0], generator=torch.Generator(dev).manual_seed(1), device=dev)
            batch = RolloutBatch(sample, sampler, rewards, group_advantages(rewards, cfg.rl.group_size),
                                 cfg.rl.group_size, completion_mask(sample.completion_ids, policy.eos_id))
            mcfg = cfg.methods[method]
            cls = objectives()[mcfg.objective]
            obj = cls(from_dict(cls.Args, mcfg.objective_args, "objective_args"), torch.Generator().manual_seed(0))
            ref = copy.deepcopy(policy).requires_grad_(False) if obj.needs_reference else None
            params = [p for p in policy.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=1e-12, fused=True if fused else None)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
            rt = Runtime(None, torch.device(dev))
            with amp():
                obj.prepare(policy, ref, batch, mcfg.inner_iterations)
            it = 0 if method == "agrpo" else 1
            engine = torch.compile(policy, dynamic=True) if compiled else policy
            t_up = median_seconds(lambda: update(rt, engine, policy, ref, obj, batch, opt, sched, params, it, 1.0, amp),
                                  dev, repeats=3, warmup=2 if compiled else 1)
            full = torch.cat([ids, torch.full_like(sample.completion_ids, policy.mask_id)], 1)
            t_fb = fwd_bwd_seconds(policy, full, torch.ones_like(full), amp, dev)
            passes = obj.chunks_per_iteration() if method == "agrpo" else 1
            flops = 3 * policy.forward_flops(full.shape[1]) * full.shape[0] * passes  # diffu-GRPO: old and
            # reference log-probs are prepare's (before 77ebefd a reference pass was counted here too)
            out.append({"method": method, "precision": precision, "fused_adamw": fused, "compiled": compiled,
                        "rows": full.shape[0],
                        "seq_len": full.shape[1], "passes": passes, "update_s": t_up, "fwd_bwd_s": t_fb,
                        "over_fwd_bwd": t_up / (passes * t_fb), "flop_floor_s": flops / (floor_tflops * 1e12),
                        "over_flop_floor": t_up / (flops / (floor_tflops * 1e12))})
            print(json.dumps(out[-1]), flush=True)
    return out


def train_command(repo: Path, work: Path, edits: dict, method: str, run: Path, args) -> tuple[list[str], dict]:
    """``agrpo train`` of ``repo``'s small profile with dotted-key ``edits``, ``--iterations`` batches, into ``run``
    (its config beside it, ``<run>.yaml``): the command and its environment."""
    d = yaml.safe_load((repo / "workflow/config/small.yaml").read_text())
    d.update(work_dir=str(work), device=args.device)
    d["rl"].update(iterations=args.iterations, checkpoint_every=args.iterations, seeds=[0])
    for key, value in edits.items():
        node = d
        *path, last = key.split(".")
        for k in path:
            node = node.setdefault(k, {})
        node[last] = value
    if repo == ROOT and edits.get("rl.autocast") and method == "agrpo":
        d["methods"]["agrpo"]["objective_args"]["old_logprobs"] = "current"
    cfg_file = run.with_suffix(".yaml")
    cfg_file.write_text(yaml.safe_dump(d))
    env = dict(os.environ, PYTHONPATH=str(repo), AGRPO_GIT_SHA=git_sha())
    return [sys.executable, "-m", "agrpo.cli", "train", "--config", str(cfg_file), "--quiet", "--method", method,
            "--seed", "0", "--base", str(args.model or work / "base"), "--out", str(run)], env


def rl_iterations(cfg, work, peak, args) -> list[dict]:
    """Whole RL iterations through ``agrpo train`` (a fresh process per setting): seconds per rollout batch over
    the last ``--iterations`` − 2 batches (the first two warm up; the last one writes the checkpoint)."""
    defaults = [("float32, eager (the defaults)", {})]
    standard = [] if args.device == "cpu" else [
        ("bf16 autocast, fused AdamW, CUDA graphs",
         {"rl.autocast": "bfloat16", "rl.fused_adamw": True, "rl.rollout.cuda_graphs": True}),
        ("bf16 autocast, fused AdamW, CUDA graphs, compiled updates",
         {"rl.autocast": "bfloat16", "rl.fused_adamw": True, "rl.rollout.cuda_graphs": True, "rl.compile": True})]
    ours = (list(args.extra_settings) if args.settings_only else defaults + standard + list(args.extra_settings))
    repos = [("this commit", ROOT, ours)]
    if args.baseline_repo:
        repos.append(("baseline", Path(args.baseline_repo).resolve(), defaults))  # its own defaults only
    out = []
    for repo_name, repo, settings in repos:
        for name, edits in settings:
            for method in ("agrpo", "diffu_grpo"):
                run = work / f"rl_{len(out)}"
                cmd, env = train_command(repo, work, edits, method, run, args)
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
                if proc.returncode:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    out.append({"repo": repo_name, "setting": name, "method": method, "error": proc.stderr[-500:]})
                    continue
                log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
                secs = [b["seconds"] - a["seconds"] for a, b in zip(log, log[1:])][1:-1]
                out.append({"repo": repo_name, "setting": name, "method": method, "edits": edits,
                            "iterations": len(log), "wall_s": time.perf_counter() - t0,
                            "seconds_per_iteration": statistics.median(secs), "samples": secs,
                            "reward_first": log[0]["reward_mean"], "reward_last": log[-1]["reward_mean"],
                            "nfe_rollout": statistics.mean(r["nfe_rollout"] for r in log),
                            "phases_s": {ph: statistics.median(r[f"seconds_{ph}"] for r in log[2:-1])
                                         for ph in ("rollout", "reward", "update") if f"seconds_{ph}" in log[0]},
                            "ratio_mean": statistics.mean(r.get("ratio_mean", 1.0) for r in log)})
                print(json.dumps({k: v for k, v in out[-1].items() if k != "samples"}), flush=True)
    return out


DRAWS_KEY = "methods.agrpo.objective_args.draws_per_pass"


def rl_floor(cfg, model, task, examples, peak, device, draws_per_pass=(1,)) -> dict:
    """Both floors of one small-profile RL iteration without early exits: rollout (steps passes) + update.
    FLOP floor: FLOPs ÷ the bf16 matmul peak. Forward floor: the same passes timed as bare eager passes of the
    batch's shape (bf16 autocast on a GPU, float32 on a CPU): a forward per rollout step; AGRPO: ⌈k/c⌉
    forward+backwards of c·n rows (c = ``draws_per_pass``, one floor per c the settings use); diffu-GRPO:
    prepare's 2μ forwards (old and reference log-probs, one per mask seed) and μ forward+backwards."""
    from agrpo.evaluate import prompt_batch

    n = cfg.rl.prompts_per_batch * cfg.rl.group_size
    ids, mask = prompt_batch(model, task, [e for e in examples[:cfg.rl.prompts_per_batch]
                                           for _ in range(cfg.rl.group_size)], device)
    seq = ids.shape[1] + cfg.rl.rollout.gen_length
    f = model.forward_flops(seq) * n
    k = cfg.methods["agrpo"].objective_args.get("mc_samples", 24)
    mu = cfg.methods["diffu_grpo"].inner_iterations
    steps = cfg.rl.rollout.steps
    agrpo_flops = steps * f + 3 * k * f
    diffu_flops = steps * f + 2 * mu * f + mu * 3 * f  # prepare: old + ref per mask seed; μ fwd+bwd
    bf = peak["bfloat16"] * 1e12
    policy = copy.deepcopy(model).train()
    full = torch.cat([ids, torch.full((n, cfg.rl.rollout.gen_length), policy.mask_id, device=device)], 1)
    attn = torch.cat([mask, torch.ones_like(full[:, ids.shape[1]:])], 1)
    amp = precision_ctx("autocast" if torch.device(device).type == "cuda" else "float32", device)

    def fwd():
        with torch.no_grad(), amp():
            policy(full, attn)

    t_f = median_seconds(fwd, device)
    t_fb = {c: fwd_bwd_seconds(policy, full.repeat(c, 1), attn.repeat(c, 1), amp, device)
            for c in sorted(set(draws_per_pass) | {1})}
    return {"seq_len": seq, "rows": n, "agrpo_flops": agrpo_flops, "agrpo_bf16_floor_s": agrpo_flops / bf,
            "diffu_grpo_flops_per_inner_iteration_mean": diffu_flops / mu, "diffu_grpo_bf16_floor_s": diffu_flops / bf,
            "forward_s": t_f, "fwd_bwd_s": {str(c): t for c, t in t_fb.items()},
            "forward_precision": "bf16 autocast" if torch.device(device).type == "cuda" else "float32",
            "agrpo_forward_floor_s": {str(c): steps * t_f + -(-k // c) * t for c, t in t_fb.items()},
            "diffu_grpo_forward_floor_s": steps * t_f + 2 * mu * t_f + mu * t_fb[1],
            "note": "rollout at steps full passes (no early exit), a fwd+bwd counted as 3 forwards; diffu-GRPO: "
                    "μ inner iterations over one rollout batch, as one trainer iteration; forward floor: the same "
                    "passes as bare eager passes of the batch's shape (AGRPO: per draws_per_pass c)"}


def with_floor_ratios(rows: list[dict], floor: dict) -> list[dict]:
    """Each RL-iteration row with its seconds ÷ the iteration's FLOP floor and ÷ its forward floor (AGRPO: the
    floor of the row's ``draws_per_pass``)."""
    for r in rows:
        if "seconds_per_iteration" in r:
            m = r["method"]
            fwd_floor = floor[f"{m}_forward_floor_s"]
            if m == "agrpo":
                fwd_floor = fwd_floor[str(r.get("edits", {}).get(DRAWS_KEY, 1))]
            r["over_flop_floor"] = r["seconds_per_iteration"] / floor[f"{m}_bf16_floor_s"]
            r["over_forward_floor"] = r["seconds_per_iteration"] / fwd_floor
    return rows


def run_small(args) -> dict:
    peak = matmul_tflops(args.device, args.quick)
    print(json.dumps({"matmul_tflops": peak}), flush=True)
    cfg, work, model, task, examples = small_setup(args)
    if args.quick:
        examples = examples[:32]
    res = {"what": "small", "device": device_name(args.device), "git_sha": git_sha(), "versions": versions(),
           "matmul_tflops": peak, "params": model.num_parameters(), "model": args.model or "random init",
           "rl_floor": rl_floor(cfg, model, task, examples, peak, args.device,
                                [edits.get(DRAWS_KEY, 1) for _, edits in args.extra_settings])}
    if not args.rl_only:
        res["sampler"] = sampler_and_test_set(cfg, model, task, examples, peak, args)
        res["updates"] = updates(cfg, model, task, examples, peak, args)
    res["rl_iterations"] = with_floor_ratios(rl_iterations(cfg, work, peak, args), res["rl_floor"])
    return res


def run_concurrency(args) -> dict:
    from benchmarks.speed_concurrency import concurrency

    return concurrency(args)


def run_accel(args) -> dict:
    from benchmarks.speed_accel import accelerations

    return accelerations(args)


# ------------------------------------------------------------------------------------------------ 8B shape

def run_llada8b(args) -> dict:
    from benchmarks.speed_llada import llada8b

    peak = matmul_tflops(args.device, args.quick)
    return llada8b(args, peak, save=lambda res: atomic_write_json(args.out_path, res))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["small", "llada8b", "accel", "concurrency"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--model", default=None, help="small: a checkpoint instead of random weights")
    ap.add_argument("--baseline-repo", default=None, help="small: an older checkout whose trainer is timed too")
    ap.add_argument("--iterations", type=int, default=12, help="small: rollout batches per timed training run")
    ap.add_argument("--items", type=int, default=128, help="llada8b: prompts of the test-set run")
    ap.add_argument("--batch", type=int, default=32, help="llada8b: prompts per test-set batch")
    ap.add_argument("--item-start", type=int, default=0,
                    help="llada8b: first test-set item (a multiple of --batch): a slice of a test set run over leases")
    ap.add_argument("--test-steps", default="128,64", help="llada8b: step counts of the test-set run")
    ap.add_argument("--sort-by-length", action="store_true",
                    help="llada8b: batch the test set by prompt length (as eval.sort_by_length) instead of test-set order")
    ap.add_argument("--llada-parts", default="step,test,rl",
                    help="llada8b: which parts: step (sampler step vs forward), test (the test set), rl (iterations)")
    ap.add_argument("--gen-length", type=int, default=128, help="accel: generation length")
    ap.add_argument("--jobs", default="1,2,4", help="concurrency: numbers of concurrent training jobs")
    ap.add_argument("--dir", default="/tmp/llada8b-random", help="llada8b: where the random checkpoint goes")
    ap.add_argument("--setting", dest="extra_settings", action="append", default=[], type=lambda v: (v, json.loads(v)),
                    help="small: one more RL setting as JSON config edits, e.g. '{\"rl.rollout.cuda_graphs\": true}'")
    ap.add_argument("--rl-only", action="store_true", help="small: only the RL iterations")
    ap.add_argument("--settings-only", action="store_true",
                    help="small: this commit runs only the --setting entries (the baseline its defaults)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the script itself")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.iterations < 4:
        ap.error(f"--iterations {args.iterations}: at least 4 (the first two batches warm up, the last writes the checkpoint, "
                 "and the seconds are differences between batches)")
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the default; stated for the record)
    args.out_path = out = Path(args.out or ROOT / f"benchmarks/results/speed_{args.what}_{args.tag}.json")
    res = {"small": run_small, "llada8b": run_llada8b, "accel": run_accel,
           "concurrency": run_concurrency}[args.what](args)
    atomic_write_json(out, res)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
