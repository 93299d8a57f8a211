"""Variance of AGRPO's gradient estimator over timestep draws, per timestep sampler and k.

For a fixed rollout batch the estimator ĝ_k (k timesteps per trajectory) is unbiased for the full step-level
gradient g (every step of every trajectory, k = m). What the timestep sampler controls is the conditional
variance over draws; we report it relative to the signal,

    V_k = Σ_batches E_draws ‖ĝ_k − g‖² / Σ_batches ‖g‖²,

with g computed exactly by enumerating the steps. Each draw costs k forward+backward passes per trajectory, so
an i.i.d. uniform sampler has V_k ≈ V_1 / k; a good sampler beats that at equal k.

Two models: the enumerable toy dLLM (vocabulary 3, 4 tokens, one per step, T = 1; random reward table) and the
tiny profile's pretrained base model with the tiny profile's AGRPO rollout sampler on its three tasks.

    python benchmarks/agrpo_variance.py [--model-dir work/tiny/models/base] [--config workflow/config/tiny.yaml]

Writes benchmarks/results/agrpo_variance.json (with provenance) and the table between the markers in
docs/agrpo.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from agrpo.config import load_config
from agrpo.resolve import rollout_for
from agrpo.data import data_path, load_split, write_task_data
from agrpo.io import atomic_write_json, atomic_write_text
from agrpo.model import load_model
from agrpo.model.toy import TabularDLLM
from agrpo.provenance import device_name, git_sha, versions
from agrpo.rl.agrpo import AGRPO, TIMESTEP_SAMPLERS
from agrpo.rl.objectives import RolloutBatch, completion_mask
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate, left_pad
from agrpo.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- variance-table:start -->", "<!-- variance-table:end -->"
PRESETS = ["uniform", "stratified", "entropy", "entropy_iid"]


def flat_grad(model) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().double()
                      for p in model.parameters()])


def full_gradient(model, batch, obj) -> torch.Tensor:
    """g: Σ_t of the step loss with weight 1/m_i on every step t < m_i (k = m, each step exactly once)."""
    m = batch.extras["agrpo_m"]
    b = m.shape[0]
    model.zero_grad()
    for t in range(int(m.max())):
        w = (t < m).double() / m.double()
        loss, _ = obj.step_loss(model, None, batch, torch.full((b,), t), w, 1)
        loss.backward()
    return flat_grad(model)


def estimator_draws(model, batch, obj, repeats: int) -> torch.Tensor:
    out = []
    for _ in range(repeats):
        model.zero_grad()
        for loss, _ in obj.losses(model, None, batch, 0):
            loss.backward()
        out.append(flat_grad(model))
    return torch.stack(out)


def study(name, model, batches, ks, repeats, seed) -> list[dict]:
    rows = []
    prep = AGRPO(AGRPO.Args(importance_sampling="entropy"), torch.Generator().manual_seed(seed))
    exact = []
    for batch in batches:  # m_i, step entropies and g depend on the batch only
        prep.prepare(model, None, batch, 1)
        exact.append(full_gradient(model, batch, prep))
    for preset in PRESETS:
        imp, low = TIMESTEP_SAMPLERS[preset]
        for k in ks:
            obj = AGRPO(AGRPO.Args(mc_samples=k, importance_sampling=imp, low_discrepancy=low),
                        torch.Generator().manual_seed(seed))
            err = sig = bias_num = 0.0
            t0 = time.perf_counter()
            for batch, g in zip(batches, exact):
                draws = estimator_draws(model, batch, obj, repeats)
                err += ((draws - g) ** 2).sum(1).mean().item()
                sig += (g ** 2).sum().item()
                bias_num += ((draws.mean(0) - g) ** 2).sum().item()
            rows.append({"model": name, "sampler": preset, "importance_sampling": imp, "low_discrepancy": low, "k": k,
                         "relative_variance": err / sig, "relative_bias_sq": bias_num / sig,
                         "repeats": repeats, "batches": len(batches), "seconds": round(time.perf_counter() - t0, 2)})
            print(f"{name:5s} {preset:11s} k={k:2d}  V_k={err / sig:.4g}", file=sys.stderr)
    return rows


def toy_batches(n_batches: int, prompts: int, group: int, seed: int):
    toy = TabularDLLM(vocab=3, length=4, seed=seed)
    g = torch.Generator().manual_seed(seed)
    reward = {c: float(torch.rand(1, generator=g, dtype=torch.float64)) for c in toy.completions()}
    sampler = SamplerConfig(4, 4, 4, "random", 1.0)
    ids = torch.zeros((prompts * group, 1), dtype=torch.long)
    batches = []
    for _ in range(n_batches):
        s = generate(toy, ids, torch.ones_like(ids), sampler, g)
        r = torch.tensor([reward[tuple(c)] for c in s.completion_ids.tolist()])
        batches.append(RolloutBatch(s, sampler, r, group_advantages(r, group), group, completion_mask(s.completion_ids, toy.eos_id)))
    return toy, batches


def tiny_batches(cfg, model_dir: Path, n_batches: int, seed: int):
    model = load_model(model_dir)
    sampler = rollout_for(cfg, "agrpo")
    g = torch.Generator().manual_seed(seed)
    tasks = {t: get_task(t) for t in cfg.data.tasks}
    for t in tasks:
        if not data_path(cfg.work_dir, t, "train").is_file():
            write_task_data(cfg, t)
    pool = [(t, ex) for t in tasks for ex in load_split(cfg.work_dir, t, "train")]
    tok, group = model.tokenizer, cfg.rl.group_size
    batches = []
    for _ in range(n_batches):
        chunk = [pool[i] for i in torch.randperm(len(pool), generator=g)[: cfg.rl.prompts_per_batch].tolist()]
        ids, mask = left_pad([tok.encode(tasks[t].prompt(ex)) for t, ex in chunk for _ in range(group)], tok.pad_id)
        s = generate(model, ids, mask, sampler, g)
        texts = [tok.decode(c) for c in s.completion_ids]
        r = torch.tensor([tasks[t].reward(x, ex) for x, (t, ex) in zip(texts, [p for p in chunk for _ in range(group)])])
        batches.append(RolloutBatch(s, sampler, r, group_advantages(r, group), group, completion_mask(s.completion_ids, tok.eos_id)))
    return model, batches, sampler


def markdown(rows: list[dict], meta: dict) -> str:
    base = {(r["model"], r["k"]): r["relative_variance"] for r in rows if r["sampler"] == "uniform"}
    out = [f"Measured by `benchmarks/agrpo_variance.py` ({meta['device']}, commit {meta['git_sha']}, "
           f"{meta['seconds']:.0f} s). V_k = E‖ĝ_k − g‖² / ‖g‖² over timestep draws for fixed rollout batches "
           "(g = every step once, exact); lower is better; the last column divides by i.i.d. uniform at the same k.",
           "", "| model | sampler | k | V_k | V_k / V_k(uniform) |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['sampler']} | {r['k']} | {r['relative_variance']:.3g} | "
                   f"{r['relative_variance'] / base[(r['model'], r['k'])]:.2f} |")
    return "\n".join(out)


def write_table(doc: Path, table: str) -> None:
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(doc, f"{head}{START}\n{table}\n{END}{tail}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "workflow/config/tiny.yaml"))
    ap.add_argument("--model-dir", default=None, help="tiny base model (default: <work_dir>/models/base)")
    ap.add_argument("--repeats", type=int, default=40, help="timestep redraws per batch")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/agrpo_variance.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs/agrpo.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()

    toy, batches = toy_batches(args.batches, prompts=64, group=4, seed=args.seed)
    rows = study("toy", toy, batches, [1, 2, 4], args.repeats, args.seed)

    cfg = load_config(args.config)
    model_dir = Path(args.model_dir or Path(cfg.work_dir) / "models/base")
    if not (model_dir / "config.json").is_file():
        raise SystemExit(f"{model_dir}: no tiny base model; run `snakemake {model_dir} --cores all` first")
    model, batches, sampler = tiny_batches(cfg, model_dir, args.batches, args.seed)
    model.train()
    rows += study("tiny", model, batches, [1, 2, 4, 8], args.repeats, args.seed)

    meta = {"git_sha": git_sha(), "device": device_name("cpu"), "versions": versions(), "seed": args.seed,
            "seconds": time.perf_counter() - t0, "tiny_model_dir": str(model_dir), "tiny_rollout": sampler.__dict__,
            "toy": {"vocab": 3, "length": 4, "steps": 4, "temperature": 1.0, "prompts": 64, "group": 4}}
    atomic_write_json(args.out, {"meta": meta, "rows": rows})
    table = markdown(rows, meta)
    write_table(Path(args.doc), table)
    print(table)


if __name__ == "__main__":
    main()
