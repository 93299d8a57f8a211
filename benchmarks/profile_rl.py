"""Where a small-profile RL iteration's time goes: synchronised timers around each part of the trainer's loop, then
the torch profiler's top operators over a few iterations (after warm-up and graph capture).

    python benchmarks/profile_rl.py --device cuda --tag h200 --method agrpo \
        --setting '{"rl.autocast": "bfloat16", "rl.rollout.cuda_graphs": true}'

Random weights of the small profile's architecture (rewards mean nothing; the shapes and code paths are the
run's). Each timed part is bracketed by device synchronisations, which themselves cost a little: the parts are
for attribution, the trainer's own ``seconds_*`` columns for totals. Writes
benchmarks/results/profile_rl_<method>_<tag>.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agrpo.io import atomic_write_json  # noqa: E402
from agrpo.provenance import device_name, git_sha, versions  # noqa: E402


class PartTimer:
    """Wraps callables so each call's wall time (device-synchronised on entry and exit) is recorded by name."""

    def __init__(self, device):
        self.device, self.seconds, self.depth = torch.device(device), collections.defaultdict(list), 0

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def wrap(self, name, fn):
        def timed(*a, **kw):
            if self.depth:  # nested inside another timed part: attribute to the outer one only
                return fn(*a, **kw)
            self.depth += 1
            self.sync()
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.sync()
                self.seconds[name].append(time.perf_counter() - t0)
                self.depth -= 1
        return timed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--method", default="agrpo")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--profile-iterations", type=int, default=3)
    ap.add_argument("--setting", default="{}", help="JSON config edits, e.g. '{\"rl.compile\": true}'")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of the script)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import agrpo.rl.trainer as trainer
    from agrpo.config import load_config
    from agrpo.data import write_task_data
    from agrpo.model.base import MaskedDiffusionLM
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer
    from agrpo.rl import agrpo as agrpo_objective, train_log
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="profile_rl_"))
    edits = json.loads(args.setting)
    overrides = {"work_dir": str(work), "device": args.device}
    cfg = load_config(ROOT / "workflow/config/small.yaml", overrides)
    for t in cfg.data.tasks:
        write_task_data(cfg, t)
    torch.manual_seed(0)
    size = dict(d_model=64, n_layers=2, n_heads=4, d_ff=192) if args.quick else \
        dict(d_model=cfg.model.d_model, n_layers=cfg.model.n_layers, n_heads=cfg.model.n_heads, d_ff=cfg.model.d_ff)
    init_tiny(CharTokenizer(), **size).save_pretrained(work / "base")
    total = args.iterations + args.profile_iterations
    cfg = load_config(ROOT / "workflow/config/small.yaml",
                      {**overrides, "rl.iterations": total, "rl.checkpoint_every": total, "rl.seeds": [0], **edits})

    timer = PartTimer(args.device)
    trainer.generate_grouped = timer.wrap("generate", trainer.generate_grouped)
    trainer.left_pad = timer.wrap("left_pad", trainer.left_pad)
    trainer.update = timer.wrap("update", trainer.update)
    for name in ("encode_prompt", "decode_completion"):
        setattr(MaskedDiffusionLM, name, timer.wrap(name, getattr(MaskedDiffusionLM, name)))
    obj = agrpo_objective.AGRPO if args.method == "agrpo" else None
    if obj is not None:
        obj.prepare = timer.wrap("prepare", obj.prepare)
    prof = torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                            if args.device.startswith("cuda") else []),
        schedule=torch.profiler.schedule(wait=args.iterations - 1, warmup=1, active=args.profile_iterations))
    real_append = train_log.TrainLog.append

    def append(self, row):
        real_append(self, row)
        prof.step()
    train_log.TrainLog.append = append
    with prof:
        trainer.train(cfg, args.method, 0, work / "base", work / "run", progress=False)
    log = [json.loads(x) for x in (work / "run/train_log.jsonl").read_text().splitlines()]
    steady = slice(2, args.iterations)
    parts = {name: statistics.median(v[steady]) for name, v in timer.seconds.items() if len(v) >= len(log)}
    calls = {name: len(v) / len(log) for name, v in timer.seconds.items()}
    per_call = {name: statistics.median(v) for name, v in timer.seconds.items()}
    phases = {ph: statistics.median(r[f"seconds_{ph}"] for r in log[steady]) for ph in ("rollout", "reward", "update")}
    key = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=30)
    cpu_table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
    print(json.dumps({"phases_s": phases, "parts_s_per_iteration": parts, "calls_per_iteration": calls}, indent=1))
    print(table)
    print(cpu_table)
    res = {"device": device_name(args.device), "git_sha": git_sha(), "versions": versions(), "method": args.method,
           "setting": edits, "phases_s": phases, "parts_s_per_iteration_median": parts, "per_call_s_median": per_call,
           "calls_per_iteration": calls, "profile_by_device_time": table, "profile_by_cpu_time": cpu_table,
           "note": "parts are device-synchronised timers (for attribution); phases are the trainer's own columns"}
    out = Path(args.out or ROOT / f"benchmarks/results/profile_rl_{args.method}_{args.tag}.json")
    atomic_write_json(out, res)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
