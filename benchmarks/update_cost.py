"""Cost of one objective update relative to plain forward+backward passes of the same batch.

Targets: AGRPO (k timesteps) ≤ k × t(one forward + backward of the same batch) + 10%; diffu-GRPO and wd1, per
inner iteration, ≤ 1 × t(forward + backward) + 10%.

Both sides run on the same model, the same rollout batch (B sequences of prompt + L completion tokens) and the
same device, interleaved in one process:
- baseline: ``model(ids, attn).sum().backward()`` on the batch with its completion part masked — the bare network
  cost, the strictest baseline (no loss transform at all);
- AGRPO: ``prepare`` + the k loss chunks of one inner iteration, each back-propagated (the trainer's loop),
  including the state rebuild, the selection of revealed tokens, the temperature/top-k/top-p transform and the
  clipped surrogate; ratio = t / (k · t_fwd+bwd);
- diffu-GRPO / wd1: the loss of one inner iteration (prompt masking from its seed, one forward, surrogate, KL)
  and its backward; ratio = t / t_fwd+bwd. Their once-per-rollout ``prepare`` (μ no-grad forwards for the old and
  the reference log-probs) is reported separately, in units of t_fwd+bwd.
Each figure is the median of ``--repeats`` paired measurements after warm-up.

    python benchmarks/update_cost.py --objective agrpo --device cpu
    python benchmarks/update_cost.py --objective diffu_grpo --device cpu
    python benchmarks/update_cost.py --objective agrpo --device cuda --d-model 1024 --n-layers 8 --n-heads 16 --batch 32

Writes benchmarks/results/update_cost_<objective>_<device>[_<tag>].json and refreshes the cost table of
docs/agrpo.md (AGRPO) or docs/baselines.md (the baselines) from every such file present.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from agrpo.io import atomic_write_json, atomic_write_text
from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer
from agrpo.provenance import device_name, git_sha, versions
from agrpo.rl.agrpo import AGRPO, TIMESTEP_SAMPLERS
from agrpo.rl.objectives import RolloutBatch, completion_mask, objectives
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- cost-table:start -->", "<!-- cost-table:end -->"
DOCS = {"agrpo": "docs/agrpo.md", "diffu_grpo": "docs/baselines.md", "wd1": "docs/baselines.md"}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objective", default="agrpo", choices=sorted(DOCS))
    ap.add_argument("--mu", type=int, default=4, help="inner iterations prepared for (diffu_grpo, wd1)")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=3)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64, help="B: sequences per rollout batch")
    ap.add_argument("--prompt-length", type=int, default=32)
    ap.add_argument("--gen-length", type=int, default=40)
    ap.add_argument("--block-length", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--sampler", default="entropy", choices=sorted(TIMESTEP_SAMPLERS))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--doc", default=None, help="doc with the cost table (default: the objective's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = args.device
    tok = CharTokenizer()
    model = init_tiny(tok, d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
                      d_ff=3 * args.d_model).to(dev)
    g = torch.Generator(device=dev).manual_seed(args.seed)
    prompts = torch.randint(5, tok.vocab_size, (args.batch, args.prompt_length), generator=g, device=dev)
    prompt_mask = torch.ones_like(prompts)
    sampler = SamplerConfig(args.gen_length, args.block_length, args.steps, "random", 0.6, top_k=150, top_p=0.99,
                            eos_early_exit=True)
    model.eval()
    sample = generate(model, prompts, prompt_mask, sampler, g)
    rewards = torch.rand(args.batch, generator=g, device=dev)
    group = 8 if args.batch % 8 == 0 else 1
    batch = RolloutBatch(sample, sampler, rewards, group_advantages(rewards, group), group,
                         completion_mask(sample.completion_ids, tok.eos_id))
    model.train()
    if args.objective == "agrpo":
        imp, low = TIMESTEP_SAMPLERS[args.sampler]
        obj = AGRPO(AGRPO.Args(mc_samples=args.k, importance_sampling=imp, low_discrepancy=low),
                    torch.Generator().manual_seed(args.seed))
        passes, mu, ref = args.k, 1, None
    else:
        cls = objectives()[args.objective]
        obj = cls(cls.Args(), torch.Generator().manual_seed(args.seed))
        passes, mu = 1, args.mu
        ref = copy.deepcopy(model).requires_grad_(False) if obj.needs_reference else None
    ids = torch.cat([prompts, torch.full_like(sample.completion_ids, tok.mask_id)], 1)
    attn = torch.ones_like(ids)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        model(ids, attn).sum().backward()

    def prepare():
        obj.prepare(model, ref, batch, mu)

    def update():  # AGRPO: prepare + k draws (prepare is bookkeeping only); baselines: one inner iteration
        model.zero_grad(set_to_none=True)
        if args.objective == "agrpo":
            prepare()
        for loss, _ in obj.losses(model, ref, batch, mu - 1):
            loss.backward()

    prepare()
    for _ in range(3):  # warm-up (allocator, kernels)
        forward_backward()
        update()
    fb, up, pr = [], [], []
    for _ in range(args.repeats):
        fb.append(timed(forward_backward, dev))
        up.append(timed(update, dev))
        if args.objective != "agrpo":
            pr.append(timed(prepare, dev))
    t_fb, t_up = statistics.median(fb), statistics.median(up)
    ratio = t_up / (passes * t_fb)
    result = {"objective": args.objective, "device": device_name(dev), "git_sha": git_sha(), "versions": versions(),
              "seed": args.seed, "settings": vars(args) | {"params": model.num_parameters(), "vocab": tok.vocab_size},
              "seconds_forward_backward": t_fb, "seconds_update": t_up, "passes": passes, "ratio": ratio,
              "target": 1.10, "meets_target": ratio <= 1.10, "samples_fb": fb, "samples_update": up}
    if pr:
        result |= {"seconds_prepare": statistics.median(pr), "prepare_in_fwd_bwd": statistics.median(pr) / t_fb,
                   "samples_prepare": pr}
    tag = f"_{args.tag}" if args.tag else ""
    out = Path(args.out or ROOT / f"benchmarks/results/update_cost_{args.objective}_{dev.split(':')[0]}{tag}.json")
    atomic_write_json(out, result)
    unit = f"k={args.k}" if args.objective == "agrpo" else "one inner iteration"
    print(f"{result['device']}: {args.objective} fwd+bwd {t_fb * 1e3:.1f} ms, update ({unit}) {t_up * 1e3:.1f} ms, "
          f"ratio {ratio:.3f} (target ≤ 1.10)" + (f", prepare (μ = {mu}) {result['prepare_in_fwd_bwd']:.2f} fwd+bwd" if pr else ""))
    doc = Path(args.doc or ROOT / DOCS[args.objective])
    refresh_table(doc, out.parent, [o for o, d in DOCS.items() if d == DOCS[args.objective]])
    return result


def refresh_table(doc: Path, results_dir: Path, objective_names: list[str]) -> None:
    rows = ["Measured by `benchmarks/update_cost.py`: median of paired measurements; ratio = t(update) / (passes · "
            "t(forward+backward of the same batch)), passes = k for AGRPO and 1 per inner iteration for the "
            "baselines; target ≤ 1.10. `prepare` = the baselines' once-per-rollout old/reference log-probs (μ no-grad "
            "forwards each), in units of one forward+backward.", "",
            "| objective | device | params | B × (prompt + L) | steps | passes | fwd+bwd (ms) | update (ms) | ratio | prepare | commit |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(results_dir.glob("update_cost_*.json")):
        r = json.loads(f.read_text())
        if r.get("objective", "agrpo") not in objective_names:
            continue
        s = r["settings"]
        prep = f"{r['prepare_in_fwd_bwd']:.2f} (μ = {s['mu']})" if "prepare_in_fwd_bwd" in r else "–"
        rows.append(f"| {r.get('objective', 'agrpo')} | {r['device']} | {s['params']:,} | {s['batch']} × ({s['prompt_length']} + "
                    f"{s['gen_length']}) | {s['steps']} | {r.get('passes', s['k'])} | {r['seconds_forward_backward'] * 1e3:.1f} | "
                    f"{r.get('seconds_update', r.get('seconds_agrpo_update')) * 1e3:.1f} | {r['ratio']:.3f} | {prep} | {r['git_sha']} |")
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    atomic_write_text(doc, f"{head}{START}\n" + "\n".join(rows) + f"\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
