"""Learnability curves of every objective on the probe reward (agrpo/rl/probe.py), over several RL seeds, with the
negated-advantage control; and a learning-rate × model-size sweep of AGRPO for the lr guidance in docs/config.md.

    python benchmarks/learnability.py --seeds 0 1 2 --out benchmarks/results/learnability_cpu.json \\
        --plot docs/img/learnability.png
    python benchmarks/learnability.py --sweep --out benchmarks/results/learnability_lr_sweep_cpu.json
    python benchmarks/learnability.py --seeds 0 --variants agrpo-entropy diffu_grpo wd1 --reward-scale 0.03 \\
        --no-negated --batches 12 [--objective-arg beta=0] --out benchmarks/results/learnability_small_advantages_cpu.json

Each run is one process (1 thread); ``--jobs`` runs that many at a time. The probes are those of
tests/test_learnability.py (``agrpo.rl.probe.TINY_PROBES``) on the tiny profile's settings; ``--sweep`` runs the
AGRPO probe on R at three model sizes × several learning rates (one seed each).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZES = {"d32x1": dict(d_model=32, n_layers=1, n_heads=2, d_ff=64), "d64x3": dict(d_model=64, n_layers=3, n_heads=4, d_ff=192),
         "d128x4": dict(d_model=128, n_layers=4, n_heads=4, d_ff=384)}
SWEEP_LRS = [3e-5, 1e-4, 3e-4, 1e-3]


def one_run(job: dict) -> dict:
    import torch

    from agrpo.rl import probe

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if "size" in job:  # the sweep: AGRPO's probe at another size / lr
            patched = _sized_profile(Path(tmp), job["size"], job["lr"])
            r = probe.tiny_probe(patched, "agrpo-entropy", Path(tmp) / "p", seed=job["seed"])
        else:
            r = probe.tiny_probe(ROOT / "workflow/config/tiny.yaml", job["variant"], Path(tmp) / "p",
                                 negated=job["negated"], seed=job["seed"],
                                 reward=probe.CountReward(scale=job.get("reward_scale", 3.0)),
                                 objective_args=job.get("objective_args"), batches=job.get("batches"))
    return {**job, "rewards": [round(x, 4) for x in r.rewards], "seconds": round(r.seconds, 1)}


def _sized_profile(tmp: Path, size: str, lr: float) -> Path:
    import yaml

    d = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    d["model"].update(SIZES[size])
    d["methods"]["agrpo"]["learning_rate"] = lr
    (tmp / "profile.yaml").write_text(yaml.safe_dump(d))
    return tmp / "profile.yaml"


def n_params(size: str) -> int:
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer

    return init_tiny(CharTokenizer(), **SIZES[size]).num_parameters()


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in runs))
    cols = 4
    rows = -(-len(variants) // cols)
    fig, grid_ = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.5 * rows), sharey=True, squeeze=False)
    axes = grid_.flatten()
    for ax in axes[len(variants):]:
        ax.axis("off")
    for ax, v in zip(axes, variants):
        for r in (r for r in runs if r["variant"] == v):
            ax.plot(range(1, len(r["rewards"]) + 1), r["rewards"], color="C3" if r["negated"] else "C0",
                    ls="--" if r["negated"] else "-", alpha=0.8, lw=1.2)
        ax.set(title=v, xlabel="rollout batch" if ax in grid_[-1] or len(variants) - list(axes).index(ax) <= cols else "")
        ax.grid(alpha=0.3)
    for row in grid_:
        row[0].set_ylabel("probe reward R (0-3)")
    axes[0].plot([], [], color="C0", label="on R")
    axes[0].plot([], [], color="C3", ls="--", label="on -R (control)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def table(results: dict) -> str:
    """Markdown: per variant, over seeds, the first batch R_0 and the mean of the last 4 batches on R and on −R."""
    runs = results["runs"]
    if "size" in runs[0]:
        lines = ["| model | params | lr | R_0 | R̄ (last 4 of 16) |", "|---|---|---|---|---|"]
        for r in runs:
            lines.append(f"| {r['size']} | {r['params']:,} | {r['lr']:g} | {r['rewards'][0]:.2f} | "
                         f"{sum(r['rewards'][-4:]) / 4:.2f} |")
        return "\n".join(lines)
    lines = ["| variant | batches on R / −R | R_0 (per seed) | R̄ on R (per seed) | R̄ on −R (per seed) |", "|---|---|---|---|---|"]
    key = lambda r: (r["variant"], json.dumps(r.get("objective_args") or {}), r.get("reward_scale", 3.0))  # noqa: E731
    for k in dict.fromkeys(key(r) for r in runs):
        pos = [r for r in runs if key(r) == k and not r["negated"]]
        neg = [r for r in runs if key(r) == k and r["negated"]]
        digits = ".2f" if k[2] >= 0.3 else ".4f"
        fmt = lambda rs, f: " / ".join(f"{f(r['rewards']):{digits}}" for r in rs) or "—"  # noqa: E731
        tag = "".join(f", {a}={v}" for a, v in json.loads(k[1]).items()) + (f", R × {k[2] / 3:g}" if k[2] != 3.0 else "")
        n_neg = len(neg[0]["rewards"]) if neg else 0
        lines.append(f"| {k[0]}{tag} | {len(pos[0]['rewards'])} / {n_neg or '—'} | {fmt(pos, lambda x: x[0])} | "
                     f"{fmt(pos, lambda x: sum(x[-4:]) / 4)} | {fmt(neg, lambda x: sum(x[-4:]) / 4)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    from agrpo.provenance import git_sha
    from agrpo.rl.probe import TINY_PROBES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(TINY_PROBES))
    ap.add_argument("--sweep", action="store_true", help="AGRPO lr x model size instead of the method curves")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--reward-scale", type=float, default=3.0, help="R = scale·min(#7, 4)/4 (0.03: advantages ≈ 0.01)")
    ap.add_argument("--no-negated", action="store_true", help="skip the negated-advantage controls")
    ap.add_argument("--batches", type=int, help="rollout batches of every run (default: the probe's own)")
    ap.add_argument("--objective-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="override an objective argument (JSON value), e.g. beta=0")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--table", action="store_true", help="print the markdown table of an existing --out file and stop")
    a = ap.parse_args(argv)
    if a.table:
        print(table(json.loads(a.out.read_text())))
        return
    if a.sweep:
        jobs = [{"size": s, "lr": lr, "seed": 0, "params": n_params(s)} for s in SIZES for lr in SWEEP_LRS]
    else:
        extra = {"reward_scale": a.reward_scale} if a.reward_scale != 3.0 else {}
        if a.batches:
            extra["batches"] = a.batches
        if a.objective_arg:
            extra["objective_args"] = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.objective_arg)}
        jobs = [{"variant": v, "negated": neg, "seed": s, **extra} for v in a.variants for s in a.seeds
                for neg in (False, True) if not neg or (TINY_PROBES[v][3] and not a.no_negated)]
    start = time.time()
    with ProcessPoolExecutor(a.jobs) as pool:
        runs = []
        for r in pool.map(one_run, jobs):
            runs.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "rewards"}), "R:", r["rewards"][0], "->",
                  round(sum(r["rewards"][-4:]) / 4, 3), flush=True)
    out = {"what": "probe reward per rollout batch (agrpo/rl/probe.py)", "git_sha": git_sha(),
           "cpu": platform.processor() or platform.machine(), "seconds": round(time.time() - start, 1), "runs": runs}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    if a.plot and not a.sweep:
        plot(runs, a.plot)


if __name__ == "__main__":
    main()
