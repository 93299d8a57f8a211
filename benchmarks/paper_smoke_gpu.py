"""The paper-profile smoke pipeline at LLaDA-8B's shape on one GPU (issue 20, item 5): the CPU smoke's tasks and
data (tests/paper_smoke.py) with a random 8B-shaped LLaDA (bf16, LLaDA-8B-Instruct's dimensions and vocabulary
size, a BPE tokenizer trained here), LoRA as released, `accelerate launch` with DeepSpeed ZeRO-2 on one process,
d1's 4-bit bases and SFT, a couple of rollout batches per method on one task, a reduced eval grid at the papers'
three lengths, and both reports — through `snakemake` for each protocol, one job at a time. Writes the seconds of
every job (from Snakemake's log) and of the trainers' phases to ``--out``.

    python benchmarks/paper_smoke_gpu.py prepare DIR            # here: the task files (needs ../shared/data)
    python benchmarks/paper_smoke_gpu.py run DIR --out F.json  # on the GPU machine (DIR carried)
    python benchmarks/paper_smoke_gpu.py run DIR --out F.json --protocols d1   # one protocol's pipeline
    python benchmarks/paper_smoke_gpu.py run DIR --out F.json --shape tiny --device cpu   # a CPU rehearsal

Random weights: every reward is 0, so updates carry zero advantages; this times and exercises the paths, it
measures no accuracy. Settings that differ from paper.yaml to fit a 30-minute device session are in SMOKE below."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SHAPES = {  # LLaDA-8B-Instruct's config.json; `tiny` rehearses the script on a CPU
    "8b": dict(d_model=4096, n_layers=32, n_heads=32, mlp_hidden_size=12288, model_vocab_size=126464),
    "tiny": dict(d_model=64, n_layers=2, n_heads=4, mlp_hidden_size=160, model_vocab_size=None),
}
PROTOCOL_TASK = {"agrpo": "gsm8k_platinum", "d1": "gsm8k"}
# What differs from paper.yaml: 2 rollout batches per run of one prompt group (AGRPO: two, one per micro-batch of
# its released launcher, `released_launcher_steps: 2`), 32 rollout steps instead of 128 (AGRPO's 384 tokens: one
# step per block of 12; d1's 256: 4 steps per block of 32), 8 training and 4 test problems, eval at
# L/8 steps only (the claims too), eval.compile off (compiling per eval job would take most of the session), d1's SFT for 2 steps
# at 256 completion tokens. k = 24, μ = 12, LoRA ranks and targets, 4-bit bases, ZeRO-2 and bf16 are as released.
SMOKE = {"iterations": 2, "prompts_per_batch": 1, "rollout_steps": {"agrpo": 32, "d1": 32}, "train_size": 8,
         "test_size": 4, "steps_divisors": [8], "sft_steps": 2, "sft_completion_length": 256}


def prepare(d: Path) -> None:
    from paper_smoke import write_s1k, write_sources

    sources = write_sources(d / "data")
    s1k = write_s1k(d / "data" / "s1k.jsonl")
    rel = {p: {k: os.path.relpath(v, d) for k, v in s.items()} for p, s in sources.items()}
    (d / "sources.json").write_text(json.dumps({"sources": rel, "s1k": os.path.relpath(s1k, d)}, indent=1))
    print(f"wrote {d}/data and {d}/sources.json")


def prepared(d: Path) -> tuple[dict[str, dict[str, str]], str]:
    """``prepare``'s files with absolute paths: ``data.sources`` per protocol, and the s1K-format SFT file."""
    meta = json.loads((d / "sources.json").read_text())
    return {p: {k: str(d / v) for k, v in s.items()} for p, s in meta["sources"].items()}, str(d / meta["s1k"])


def write_model(d: Path, shape: str, device: str) -> tuple[Path, float]:
    from agrpo.model.llada_tokenizer import write_random_llada
    from paper_smoke import tokenizer_texts

    import torch

    texts = tokenizer_texts(*prepared(d))
    t0 = time.perf_counter()
    out = write_random_llada(d / f"llada_{shape}", texts, vocab_size=800, dtype=torch.bfloat16,
                             init_device=device if device.startswith("cuda") else None,
                             **SHAPES[shape])
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out, time.perf_counter() - t0


def profiles(d: Path, model: Path, device: str) -> dict[str, Path]:
    src, s1k = prepared(d)
    on_gpu = device.startswith("cuda")
    out = {}
    for protocol, base in (("agrpo", "paper.yaml"), ("d1", "paper_d1.yaml")):
        task = PROTOCOL_TASK[protocol]
        rollout = {"steps": SMOKE["rollout_steps"][protocol]}
        one_group = {"prompts_per_batch": SMOKE["prompts_per_batch"], "rollout": rollout}
        if protocol == "agrpo":
            methods = {"agrpo": {"prompts_per_batch": 2}, "diffu_grpo": {**one_group, "per_task": None},
                       "d1": None, "wd1": None}
        else:
            methods = {"agrpo": None, "diffu_grpo": None,
                       "d1": {**one_group, "per_task": None,
                              "sft": {"steps": SMOKE["sft_steps"], "dataset": f"s1k:{s1k}",
                                      "completion_length": SMOKE["sft_completion_length"], "batch_size": 2}},
                       "wd1": {**one_group, "per_task": None}}
        if not on_gpu:  # the CPU rehearsal: no 4-bit bases (bitsandbytes needs CUDA), no DeepSpeed
            for m in methods.values():
                if m is not None:
                    m["load_in_4bit"] = False
        everything = {k for srcs in src.values() for k in srcs}  # paper.yaml's own keys among them
        sources = {**{k: None for k in everything}, **{k: v for k, v in src[protocol].items() if k.startswith(task + "/")}}
        profile = {
            "profile": f"paper_smoke_gpu_{protocol}", "extends": str(ROOT / "workflow/config" / base),
            "work_dir": str(d / protocol / "work"), "results_dir": str(d / protocol / "results"),
            "device": device, "threads": 8 if on_gpu else 1,
            "model": {"name_or_path": str(model), "dtype": "bfloat16" if on_gpu else "float32"},
            "data": {"tasks": [task], "train_size": SMOKE["train_size"], "test_size": SMOKE["test_size"],
                     "sources": sources},
            "rl": {"iterations": SMOKE["iterations"], "checkpoint_every": SMOKE["iterations"],
                   "prompts_per_batch": SMOKE["prompts_per_batch"], "rollout": rollout},
            "eval": {"steps_divisors": SMOKE["steps_divisors"], "claims_steps_divisor": SMOKE["steps_divisors"][0],
                     "compile": False, "batch_size": SMOKE["test_size"]},
            "methods": methods,
            "launch": {"gpus": 1, "eval_gpus": 1 if on_gpu else 0,
                       **({} if on_gpu else {"strategy": "ddp", "mixed_precision": "no"})},
        }
        out[protocol] = d / f"{profile['profile']}.yaml"
        import yaml

        out[protocol].write_text(yaml.safe_dump(profile, sort_keys=False))
    return out


STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def job_seconds(log: str) -> list[dict]:
    """Each job's rule, wildcards and wall seconds from Snakemake's log: a ``[date]`` line, then ``rule X:`` …
    ``jobid: N`` … ``wildcards: …`` when it starts; a ``[date]`` line, then ``Finished job N.`` (or ``Finished
    jobid: N``) when it ends."""
    jobs, stamp, current = {}, None, None
    for line in log.splitlines():
        s = line.strip()
        if m := STAMP.match(s):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):$", s):
            current = {"rule": m.group(1), "start": stamp, "wildcards": ""}
        elif current is not None and (m := re.match(r"jobid: (\d+)$", s)):
            jobs[int(m.group(1))] = current
        elif current is not None and s.startswith("wildcards:"):
            current["wildcards"] = s.split(":", 1)[1].strip()
        elif m := re.match(r"Finished job(?:id:)? (\d+)", s):
            job = jobs.get(int(m.group(1)))
            if job is not None and stamp is not None:
                job["seconds"] = (stamp - job["start"]).total_seconds()
    return [{"rule": j["rule"], "wildcards": j["wildcards"], "seconds": j.get("seconds")}
            for _, j in sorted(jobs.items()) if j["start"] is not None]


def trainer_phases(work: Path) -> dict:
    out = {}
    for log in sorted(work.glob("runs/*/train_log.jsonl")):
        rows = [json.loads(x) for x in log.read_text().splitlines()]
        out[log.parent.name] = [{k: r[k] for k in ("iteration", "seconds_rollout", "seconds_reward", "seconds_update",
                                                   "nfe_rollout", "optimizer_steps") if k in r} for r in rows]
    return out


def eval_cells(work: Path) -> list[dict]:
    cells = []
    for f in sorted(work.glob("eval/*/step*/*/*/metrics.json")):
        m = json.loads(f.read_text())
        cells.append({"cell": str(f.parent.relative_to(work / "eval")),
                      **{k: m.get(k) for k in ("seconds", "n", "accuracy", "nfe", "gen_length", "steps")}})
    return cells


def disk_used(d: Path) -> float:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file() and not f.is_symlink()) / 2**30


def run(d: Path, out: Path, shape: str, device: str, protocols=("agrpo", "d1")) -> dict:
    from agrpo.provenance import device_name, git_sha, versions

    res = {"what": "paper_smoke_gpu", "shape": shape, "device": device_name(device), "git_sha": git_sha(),
           "versions": versions(), "smoke_settings": SMOKE, "protocols": {}}
    model, res["write_checkpoint_seconds"] = write_model(d, shape, device)
    res["checkpoint_gib"] = round(disk_used(model), 2)
    print(f"checkpoint {model}: {res['checkpoint_gib']} GiB in {res['write_checkpoint_seconds']:.1f} s", flush=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for protocol, profile in profiles(d, model, device).items():
        if protocol not in protocols:
            continue
        shutil.rmtree(ROOT / "logs" / f"paper_smoke_gpu_{protocol}", ignore_errors=True)
        shutil.rmtree(d / protocol, ignore_errors=True)  # a fresh pipeline: no job skipped as up to date
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "-p", "--keep-going", "--scheduler", "greedy",
               "--configfile", str(profile)] + (["--resources", "gpu=1"] if device.startswith("cuda") else [])
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        log = proc.stdout + proc.stderr
        (out.parent / f"snakemake_{protocol}.log").write_text(log)
        work = d / protocol / "work"
        with (out.parent / f"job_logs_{protocol}.log").open("w") as f:  # each job's log, its last lines
            for job_log in sorted((ROOT / "logs" / f"paper_smoke_gpu_{protocol}").rglob("*.log")):
                lines = job_log.read_text(errors="replace").replace("\r", "\n").splitlines()
                f.write(f"== {job_log.relative_to(ROOT)}\n" + "\n".join(lines[-25:]) + "\n")
        res["protocols"][protocol] = {
            "returncode": proc.returncode, "seconds": round(time.perf_counter() - t0, 1), "jobs": job_seconds(log),
            "trainer_phases": trainer_phases(work), "eval_cells": eval_cells(work),
            "work_gib": round(disk_used(work), 2),
            "report": (d / protocol / "results/report.md").is_file()}
        print(protocol, "rc", proc.returncode, f"{res['protocols'][protocol]['seconds']} s", flush=True)
        if proc.returncode != 0:
            print(log[-4000:], flush=True)
        for name in ("report.md", "summary.csv"):
            if (d / protocol / "results" / name).is_file():
                shutil.copy(d / protocol / "results" / name, out.parent / f"{protocol}_{name}")
        out.write_text(json.dumps(res, indent=1, default=str))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["prepare", "run"])
    ap.add_argument("dir")
    ap.add_argument("--out", default="benchmarks/results/paper_smoke_gpu.json")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--protocols", default="agrpo,d1", help="run: which protocols' pipelines, comma-separated")
    a = ap.parse_args(argv)
    d = Path(a.dir).resolve()
    if a.what == "prepare":
        return prepare(d)
    out = Path(a.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    protocols = a.protocols.split(",")
    if not set(protocols) <= set(PROTOCOL_TASK):
        ap.error(f"--protocols: expected some of {', '.join(PROTOCOL_TASK)}, got {a.protocols!r}")
    res = run(d, out, a.shape, a.device, protocols)
    sys.exit(max(p["returncode"] for p in res["protocols"].values()))


if __name__ == "__main__":
    main()
