"""Calibrate a profile's tasks and pretraining for RL headroom (issue 19): for each candidate (a set of dotted config
overrides of one profile), write the data, pretrain the base model, and measure its headroom (agrpo/headroom.py:
eval accuracy on the RL prompts and the test items, each method's rollout reward, pass@G, zero-variance groups).

    python benchmarks/small_headroom.py --config workflow/config/small.yaml --out headroom_sweep.json \\
        --candidate '{"pretrain.steps": 600}' --candidate '{"pretrain.steps": 1200}'

The results file is rewritten after every candidate, so a run cut short (a lease's end) keeps the candidates it
finished. Each candidate works in its own directory under ``--work`` (data shared when the data keys agree).
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


def run_candidate(config: str, overrides: dict, work: Path, items: int, device: str | None, progress: bool) -> dict:
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
    summary = pretrain(cfg, model_dir, progress)
    result = headroom(cfg, model_dir, items)
    print(json.dumps(overrides), f"pretrain {summary['seconds']} s, loss {summary['final_loss']}", flush=True)
    print(headroom_table(result), flush=True)
    return {"overrides": overrides, "pretrain": summary, "headroom": result, "seconds": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="workflow/config/small.yaml", help="the profile the candidates edit")
    ap.add_argument("--candidate", action="append", required=True,
                    help="JSON object of dotted overrides, e.g. '{\"pretrain.steps\": 600}' (repeatable)")
    ap.add_argument("--items", type=int, default=128, help="RL prompts and test items per task")
    ap.add_argument("--device", default=None, help="override the profile's device")
    ap.add_argument("--work", default="/tmp/headroom_sweep", help="where the candidates' work directories go")
    ap.add_argument("--out", required=True, help="results JSON, rewritten after every candidate")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    from agrpo.io import atomic_write_json
    from agrpo.provenance import git_sha

    candidates = [json.loads(c) for c in a.candidate]
    for c in candidates:
        if not isinstance(c, dict):
            ap.error(f"--candidate must be a JSON object of dotted overrides, got {c!r}")
    out = {"what": "headroom_sweep", "config": a.config, "git_sha": git_sha(), "candidates": []}
    for c in candidates:
        out["candidates"].append(run_candidate(a.config, c, Path(a.work), a.items, a.device, not a.quiet))
        atomic_write_json(Path(a.out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
