"""Calibrate a profile's tasks and pretraining for RL headroom (issue 19): for each candidate (a set of dotted config
overrides of one profile), write the data, pretrain the base model, and measure its headroom (agrpo/headroom.py:
eval accuracy on the RL prompts and the test items, each method's rollout reward, pass@G, zero-variance groups).

    python benchmarks/small_headroom.py --config workflow/config/small.yaml --out headroom_sweep.json \\
        --candidate '{"pretrain.steps": 600}' --candidate '{"pretrain.steps": 1200}'

The results file is rewritten after every candidate, so a run cut short (a lease's end) keeps the candidates it
finished. Each candidate works in its own directory under ``--work``.

``--sweep '{"sweep.learning_rates": {…}, "sweep.iterations": 200}'`` then runs the learning-rate sweep
(agrpo/sweep.py) from the base model of the candidate with the most tasks whose test accuracy lies in
``--band`` (default 0.15–0.60; ties: the smaller summed distance of the other tasks from the band, then the earlier
candidate; ``--sweep-candidate i`` picks one), with those overrides on top of the candidate's. It runs them
method by method or (``--order rate``) each rate across every method before the next, and adds every sweep run's
log to the results file as it ends, with its final checkpoint's per-item test scores (and the base model's) at
each eval length, at L/2 and L/8 steps (``test_scores``: the held-out check of the sweep's choice by training
reward, and a first look at the 4×-fewer-steps drop). Summarise it where pandas is (sweep.md, sweep_test.md,
calibration.md, curves and plot):
``python benchmarks/small_headroom.py --summarise results.json --out-dir results/small/sweep``; several results
files of one base model (leases that each ran part of a sweep) summarise as one sweep.
CPU smoke: ``--config workflow/config/tiny.yaml --device cpu --items 8 --candidate '{"pretrain.steps": 20}'``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_candidate(config: str, overrides: dict, work: Path, items: int, device: str | None, progress: bool,
                  methods: list[str] | None = None) -> dict:
    from agrpo.config import load_config
    from agrpo.data import write_task_data
    from agrpo.headroom import headroom, headroom_table
    from agrpo.pretrain import pretrain

    tag = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:10]
    base = {"work_dir": str(work / tag), **({"device": device} if device else {})}
    cfg = load_config(config, {**base, **overrides})
    t0 = time.time()
    for task in cfg.data.tasks:
        write_task_data(cfg, task)
    model_dir = Path(cfg.work_dir) / "models/base"
    try:
        summary = pretrain(cfg, model_dir, progress)
    except RuntimeError as e:  # an op without a deterministic kernel here: the lease goes on without (recorded)
        if not (cfg.pretrain.deterministic and "determinis" in str(e)):
            raise
        print(f"pretrain.deterministic failed ({str(e)[:300]}); pretraining without it", flush=True)
        cfg = load_config(config, {**base, **overrides, "pretrain.deterministic": False})
        summary = {**pretrain(cfg, model_dir, progress), "deterministic_error": str(e)[:1000]}
    result = headroom(cfg, model_dir, items, methods)
    print(json.dumps(overrides), f"pretrain {summary['seconds']} s, loss {summary['final_loss']}", flush=True)
    print(headroom_table(result), flush=True)
    return {"overrides": overrides, "pretrain": summary, "headroom": result, "seconds": round(time.time() - t0, 1)}


def band_score(candidate: dict, band: tuple[float, float]) -> tuple[int, float]:
    """(tasks whose base test accuracy lies inside ``band``, minus the summed distance of the others from it): the
    candidate with the highest score is swept. The distance breaks ties, so of two candidates with one task in the
    band each, the one whose other tasks lie nearer the band wins (not simply the earlier one)."""
    accs = [t["test_accuracy"]["mean"] for t in candidate["headroom"]["tasks"].values()]
    return (sum(band[0] <= a <= band[1] for a in accs),
            -sum(max(band[0] - a, a - band[1], 0.0) for a in accs))


ORDERS = ("method", "rate", "rate_desc")


def ordered_runs(runs: list[str], order: str) -> list[str]:
    """The sweep's runs method by method (``method``) or rate by rate, each rate across every method before the
    next (``rate``: a lease that ends early leaves every method with the same rates run), lowest rate first or,
    with ``rate_desc``, highest first."""
    if order == "method":
        return runs
    from agrpo.sweep import parse_run

    parsed = {r: parse_run(r) for r in runs}
    rates = {m: sorted({lr for mm, lr, _ in parsed.values() if mm == m}) for m, _, _ in parsed.values()}
    # stable: methods keep their order within a rate
    rank = (lambda m, lr: -rates[m].index(lr)) if order == "rate_desc" else (lambda m, lr: rates[m].index(lr))
    return sorted(runs, key=lambda r: (rank(parsed[r][0], parsed[r][1]), parsed[r][2]))


def heldout_cells(cfg) -> list[tuple[str, int, int]]:
    """(task, L, steps) of the sweep's test check: every task and eval length at L/2 and L/8 steps (greedy, the
    profile's eval sampler otherwise)."""
    return [(t, L, L // d) for t in cfg.data.tasks for L in cfg.eval.gen_lengths for d in (2, 8)]


def heldout_name(task: str, L: int, steps: int) -> str:
    """A held-out cell's key in the results file, ``"<task> L<L> S<steps>"``; ``heldout_cell`` reads it back."""
    return f"{task} L{L} S{steps}"


def heldout_cell(name: str) -> tuple[str, int, int]:
    task, L, steps = name.rsplit(" ", 2)
    return task, int(L[1:]), int(steps[1:])


def heldout_scores(cfg, model_dir: Path) -> dict:
    """``{"<task> L<L> S<steps>": {item id: score}}`` of one checkpoint over the whole test split."""
    from agrpo.data import load_split
    from agrpo.evaluate import load_eval_model, run_cell
    from agrpo.resolve import eval_sampler, profile_task

    model, out = load_eval_model(cfg, model_dir), {}
    for task, L, steps in heldout_cells(cfg):
        rows, _ = run_cell(model, profile_task(cfg, task), load_split(cfg.work_dir, task, "test"),
                           eval_sampler(cfg, L, steps), 0, cfg.eval.batch_size)
        out[heldout_name(task, L, steps)] = {r["id"]: r["score"] for r in rows}
    return out


def window_rewards(rows: list[dict], fraction: float) -> tuple[float, float]:
    """(first, last) task-balanced training reward of one run's log over its first and last ``fraction`` of
    batches, as ``agrpo.sweep.summarise`` computes it (the choice's criterion), without pandas: per window, the
    mean over tasks of each task's mean over the batches that drew it (the mean batch reward without per-task
    columns)."""
    rows = [r for r in rows if "reward_mean" in r]
    n = max(r["iteration"] for r in rows)
    w = max(1, round(fraction * n))
    tasks = sorted({k for r in rows for k in r if k.startswith("reward_mean/")})

    def balanced(window):
        if not tasks:
            return sum(r["reward_mean"] for r in window) / len(window)
        means = []
        for t in tasks:
            vals = [r[t] for r in window if r.get(t) is not None and r[t] == r[t]]  # NaN: the task not drawn
            if vals:
                means.append(sum(vals) / len(vals))
        return sum(means) / len(means)

    return (balanced([r for r in rows if r["iteration"] <= w]), balanced([r for r in rows if r["iteration"] > n - w]))


def run_sweep(config: str, candidate: dict, extra: dict, work: Path, device: str | None, out: dict, save,
              progress: bool, order: str = "method") -> None:
    from agrpo.config import load_config
    from agrpo.sweep import parse_run, sweep_iterations, sweep_run, sweep_runs

    model_dir = Path(candidate["headroom"]["model"])
    base = {"work_dir": str(model_dir.parent.parent), **({"device": device} if device else {})}
    cfg = load_config(config, {**base, **candidate["overrides"], **extra})
    out["sweep"] = {"candidate": candidate["overrides"], "overrides": extra, "runs": {}}
    out["sweep"]["base_test_scores"] = heldout_scores(cfg, model_dir)
    save()
    for run in ordered_runs(sweep_runs(cfg), order):
        method, lr, seed = parse_run(run)
        if cfg.methods[method].sft.steps > 0:
            print(f"{run}: skipped (the sweep here starts from the base model; {method} needs its SFT model)")
            continue
        import torch._dynamo

        torch._dynamo.reset()  # each run compiles afresh (not against the last run's guards and recompile limit)
        t0 = time.time()
        run_dir = Path(cfg.work_dir) / "sweep" / run
        sweep_run(cfg, method, lr, seed, model_dir, run_dir, progress)
        rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines() if line.strip()]
        seconds = round(time.time() - t0, 1)
        scores = heldout_scores(cfg, run_dir / f"step{sweep_iterations(cfg)}")
        first, last = window_rewards(rows, cfg.sweep.select_window)
        out["sweep"]["runs"][run] = {"seconds": seconds, "log": rows, "test_scores": scores,
                                     "reward_first": first, "reward_last": last}
        print(f"{run}: {time.time() - t0:.0f} s, task-balanced reward over the first / last "
              f"{cfg.sweep.select_window:.0%} of batches {first:.3f} -> {last:.3f} (the choice's criterion)", flush=True)
        save()


def merge_results(paths: list[Path]) -> dict:
    """One results dict from several files that each ran part of one sweep: the first file's calibration, every
    file's sweep runs, and each method's rates united. Refused, naming the file: a different candidate, a
    different base (its test scores differ), or a run that two files both hold."""
    datas = [json.loads(p.read_text()) for p in paths]
    merged = datas[0]
    if len(datas) == 1 or "sweep" not in merged:
        return merged
    sweep = merged["sweep"]
    rates = {m: set(v or []) for m, v in sweep["overrides"].get("sweep.learning_rates", {}).items()}
    for path, data in zip(paths[1:], datas[1:]):
        other = data.get("sweep")
        if other is None:
            raise SystemExit(f"{path}: no sweep to merge")
        if other["candidate"] != sweep["candidate"]:
            raise SystemExit(f"{path}: its sweep's candidate differs from {paths[0]}'s")
        if other.get("base_test_scores") != sweep.get("base_test_scores"):
            raise SystemExit(f"{path}: its base model's test scores differ from {paths[0]}'s (another base)")
        both = sorted(set(other["runs"]) & set(sweep["runs"]))
        if both:
            raise SystemExit(f"{path}: run(s) {', '.join(both)} already in an earlier file")
        sweep["runs"].update(other["runs"])
        for m, v in other["overrides"].get("sweep.learning_rates", {}).items():
            rates.setdefault(m, set()).update(v or [])
        merged["git_sha"] = ", ".join(dict.fromkeys([merged.get("git_sha", "?"), data.get("git_sha", "?")]))
    if rates:
        sweep["overrides"]["sweep.learning_rates"] = {m: sorted(v) or None for m, v in rates.items()}
    return merged


def summarise(results: list[Path], config: str, out_dir: Path) -> None:
    """Write the sweep of one results file, or of several merged (``merge_results``), as agrpo sweep-report does
    (needs pandas)."""
    from agrpo.config import load_config
    from agrpo.sweep import write_sweep_report

    data = merge_results(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calibration.md").write_text(calibration_markdown(data))
    if "sweep" not in data:
        print(f"{results[0]}: no sweep; wrote {out_dir / 'calibration.md'}")
        return
    sweep = data["sweep"]
    runs = out_dir / "runs"
    for run, r in sweep["runs"].items():
        (runs / run).mkdir(parents=True, exist_ok=True)
        (runs / run / "train_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in r["log"]))
    cfg = load_config(data["config"] if Path(data["config"]).exists() else config,
                      {**sweep["candidate"], **sweep["overrides"], "work_dir": str(out_dir / "no_work_dir")})
    print(write_sweep_report(cfg, runs, out_dir).to_string(index=False))
    if "base_test_scores" in sweep:
        text = heldout_markdown(sweep["base_test_scores"], {r: v["test_scores"] for r, v in sweep["runs"].items()
                                                         if "test_scores" in v})
        (out_dir / "sweep_test.md").write_text(text)
        print(text)


def calibration_markdown(data: dict) -> str:
    """Each candidate's overrides, pretraining summary and headroom table; which one the sweep started from."""
    from agrpo.headroom import headroom_table

    lines = ["# Calibration candidates", "", f"git {data.get('git_sha', '?')}; band {data.get('band')}; the sweep "
             f"started from candidate {data.get('chosen_candidate', '(none)')}.", ""]
    for i, c in enumerate(data["candidates"]):
        pt = c["pretrain"]
        lines += [f"## Candidate {i}", "", "`" + json.dumps(c["overrides"], sort_keys=True) + "`", "",
                  f"Pretraining: {pt['steps']} steps, {pt['seconds']} s, final loss {pt['final_loss']}, "
                  f"{pt['examples']} examples, weights {pt.get('weights_sha256', 'not recorded')}; headroom "
                  f"{c['headroom']['seconds']} s on {c['headroom']['device']}.", "", headroom_table(c["headroom"]), ""]
    return "\n".join(lines)


def heldout_markdown(base: dict, runs: dict) -> str:
    """Each sweep run's test accuracy per cell with its paired difference from the base model [95% CI], and each
    model's drop from L/2 to L/8 steps (paired over items)."""
    from agrpo.report.claims import _pts
    from agrpo.stats import paired_diff_ci

    def pct(d):
        return f"{_pts(d.diff)} [{_pts(d.low)}, {_pts(d.high)}]"

    models = {"base": base, **runs}
    lines = ["# Sweep checkpoints on the test set", "",
             "Greedy eval sampler; every run's last checkpoint against the base model, paired over test items.", "",
             "| cell | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for cell, b in base.items():
        ids = sorted(b)
        row = [f"{100 * sum(b.values()) / len(b):.1f}%"]
        for name, scores in runs.items():
            s = scores[cell]
            d = paired_diff_ci([s[i] for i in ids], [b[i] for i in ids])
            row.append(f"{100 * sum(s.values()) / len(s):.1f}% ({pct(d)})")
        lines.append(f"| {cell} | " + " | ".join(row) + " |")
    lines += ["", "Drop from L/2 to L/8 steps (accuracy at L/2 minus at L/8, paired over items):", "",
              "| task, L | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for cell in base:
        task, L, steps = heldout_cell(cell)
        if steps != L // 2:
            continue
        eighth = heldout_name(task, L, L // 8)
        ids = sorted(base[cell])
        row = [pct(paired_diff_ci([m[cell][i] for i in ids], [m[eighth][i] for i in ids])) for m in models.values()]
        lines.append(f"| {task} L{L} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="workflow/config/small.yaml", help="the profile the candidates edit")
    ap.add_argument("--candidate", action="append", default=[],
                    help="JSON object of dotted overrides, e.g. '{\"pretrain.steps\": 600}' (repeatable)")
    ap.add_argument("--items", type=int, default=128, help="RL prompts and test items per task")
    ap.add_argument("--device", default=None, help="override the profile's device")
    ap.add_argument("--methods", nargs="+", default=None, help="methods whose rollout samplers the headroom uses "
                    "(default: all; methods sharing a sampler give the same statistics)")
    ap.add_argument("--work", default="/tmp/headroom_sweep", help="where the candidates' work directories go")
    ap.add_argument("--plan", default=None, help="a JSON file with `candidates` (a list), and optionally `sweep` "
                    "and `methods`: the same as the flags (e.g. benchmarks/configs/small_headroom_plan.json)")
    ap.add_argument("--sweep", default=None, help="JSON object of dotted overrides for a learning-rate sweep "
                    "from the chosen candidate's base model (sweep.learning_rates, sweep.iterations, …)")
    from agrpo.headroom import HEADROOM_BAND

    ap.add_argument("--band", type=float, nargs=2, default=HEADROOM_BAND, help="the test-accuracy band of a good base")
    ap.add_argument("--order", choices=ORDERS, default="method",
                    help="sweep runs method by method, or rate by rate across every method (rate: the lowest rates "
                    "first; rate_desc: the highest first), so a cut-short lease leaves equal effort")
    ap.add_argument("--sweep-candidate", type=int, default=None, help="sweep from this candidate (0-based) "
                    "whatever the band says")
    ap.add_argument("--out", help="results JSON, rewritten after every candidate and sweep run")
    ap.add_argument("--summarise", nargs="+", default=None,
                    help="a results JSON, or several of one sweep: write the calibration (and sweep, if any) report "
                    "to --out-dir")
    ap.add_argument("--out-dir", default=None, help="with --summarise: the report's directory")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.summarise:
        summarise([Path(f) for f in a.summarise], a.config, Path(a.out_dir or "sweep_report"))
        return 0
    if a.plan:
        plan = json.loads(Path(a.plan).read_text())
        a.candidate += [json.dumps(c) for c in plan.get("candidates", [])]
        a.sweep = a.sweep or (json.dumps(plan["sweep"]) if "sweep" in plan else None)
        a.methods = a.methods or plan.get("methods")
        a.order = plan.get("order", a.order)
        if a.order not in ORDERS:
            ap.error(f"{a.plan}: order {a.order!r} is not one of {', '.join(ORDERS)}")
    if not a.candidate or not a.out:
        ap.error("give --candidate (one or more) and --out, or --summarise")
    from agrpo.io import atomic_write_json
    from agrpo.provenance import git_sha

    candidates = [json.loads(c) for c in a.candidate]
    extra = json.loads(a.sweep) if a.sweep else None
    if a.sweep_candidate is not None and not 0 <= a.sweep_candidate < len(candidates):
        ap.error(f"--sweep-candidate {a.sweep_candidate}: there are {len(candidates)} candidates (0-based)")
    for c in candidates + ([extra] if a.sweep else []):
        if not isinstance(c, dict):
            ap.error(f"--candidate and --sweep take a JSON object of dotted overrides, got {c!r}")
    out = {"what": "headroom_sweep", "config": a.config, "git_sha": git_sha(), "band": list(a.band), "candidates": []}

    def save():
        atomic_write_json(Path(a.out), out)

    for c in candidates:
        out["candidates"].append(run_candidate(a.config, c, Path(a.work), a.items, a.device, not a.quiet, a.methods))
        save()
    if extra is not None:
        best = a.sweep_candidate if a.sweep_candidate is not None else max(
            range(len(candidates)), key=lambda i: (band_score(out["candidates"][i], a.band), -i))
        out["chosen_candidate"] = best
        print(f"sweep from candidate {best}: {json.dumps(candidates[best])}", flush=True)
        run_sweep(a.config, out["candidates"][best], extra, Path(a.work), a.device, out, save, not a.quiet, a.order)
    return 0


if __name__ == "__main__":
    sys.exit(main())
