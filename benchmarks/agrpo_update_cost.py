"""Cost of one AGRPO update relative to plain forward+backward passes of the same batch.

Target (issue 4): t(AGRPO update with k timesteps) ≤ k × t(one forward + backward of the same batch) + 10%.

Both sides run on the same model, the same rollout batch (B sequences of prompt + L completion tokens) and the
same device, interleaved in one process:
- baseline: ``model(ids, attn).sum().backward()`` on the batch with its completion part masked — the bare network
  cost, the strictest baseline (no loss transform at all);
- AGRPO: ``prepare`` + the k loss chunks of one inner iteration, each back-propagated (the trainer's loop),
  including the state rebuild, the selection of revealed tokens, the temperature/top-k/top-p transform and the
  clipped surrogate.
The figure is the median of ``--repeats`` paired measurements after warm-up: ratio = t_AGRPO / (k · t_fwd+bwd).

    python benchmarks/agrpo_update_cost.py --device cpu
    python benchmarks/agrpo_update_cost.py --device cuda --d-model 1024 --n-layers 8 --batch 64 --gen-length 256

Writes benchmarks/results/agrpo_update_cost_<device>.json and refreshes the table in docs/agrpo.md from every
such file present.
"""

from __future__ import annotations

import argparse
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
from agrpo.rl.objectives import RolloutBatch, completion_mask
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- cost-table:start -->", "<!-- cost-table:end -->"


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
    ap.add_argument("--doc", default=str(ROOT / "docs/agrpo.md"))
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
    imp, low = TIMESTEP_SAMPLERS[args.sampler]
    obj = AGRPO(AGRPO.Args(mc_samples=args.k, importance_sampling=imp, low_discrepancy=low),
                torch.Generator().manual_seed(args.seed))
    ids = torch.cat([prompts, torch.full_like(sample.completion_ids, tok.mask_id)], 1)
    attn = torch.ones_like(ids)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        model(ids, attn).sum().backward()

    def agrpo_update():
        model.zero_grad(set_to_none=True)
        obj.prepare(model, None, batch, 1)
        for loss, _ in obj.losses(model, None, batch, 0):
            loss.backward()

    for _ in range(3):  # warm-up (allocator, kernels)
        forward_backward()
        agrpo_update()
    fb, up = [], []
    for _ in range(args.repeats):
        fb.append(timed(forward_backward, dev))
        up.append(timed(agrpo_update, dev))
    t_fb, t_up = statistics.median(fb), statistics.median(up)
    ratio = t_up / (args.k * t_fb)
    result = {"device": device_name(dev), "git_sha": git_sha(), "versions": versions(), "seed": args.seed,
              "settings": vars(args) | {"params": model.num_parameters(), "vocab": tok.vocab_size},
              "seconds_forward_backward": t_fb, "seconds_agrpo_update": t_up, "ratio": ratio,
              "target": 1.10, "meets_target": ratio <= 1.10, "samples_fb": fb, "samples_update": up}
    out = Path(args.out or ROOT / f"benchmarks/results/agrpo_update_cost_{dev.split(':')[0]}.json")
    atomic_write_json(out, result)
    print(f"{result['device']}: fwd+bwd {t_fb * 1e3:.1f} ms, AGRPO update (k={args.k}) {t_up * 1e3:.1f} ms, "
          f"ratio {ratio:.3f} (target ≤ 1.10)")
    refresh_table(Path(args.doc), out.parent)
    return result


def refresh_table(doc: Path, results_dir: Path) -> None:
    rows = ["Measured by `benchmarks/agrpo_update_cost.py`: median of paired measurements; ratio = t(AGRPO update) / "
            "(k · t(forward+backward of the same batch)); target ≤ 1.10.", "",
            "| device | params | B × (prompt + L) | steps | k | fwd+bwd (ms) | AGRPO update (ms) | ratio | commit |",
            "|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(results_dir.glob("agrpo_update_cost_*.json")):
        r = json.loads(f.read_text())
        s = r["settings"]
        rows.append(f"| {r['device']} | {s['params']:,} | {s['batch']} × ({s['prompt_length']} + {s['gen_length']}) | "
                    f"{s['steps']} | {s['k']} | {r['seconds_forward_backward'] * 1e3:.1f} | "
                    f"{r['seconds_agrpo_update'] * 1e3:.1f} | {r['ratio']:.3f} | {r['git_sha']} |")
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    atomic_write_text(doc, f"{head}{START}\n" + "\n".join(rows) + f"\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
