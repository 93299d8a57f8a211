"""Shared test helpers: a small rollout batch from the real sampler, and flattened gradients."""

from contextlib import contextmanager
from pathlib import Path

import torch

from agrpo.rl.objectives import RolloutBatch, completion_mask
from agrpo.rl.trainer import group_advantages
from agrpo.sampling import SamplerConfig, generate, left_pad

ROOT = Path(__file__).resolve().parent.parent
G = 4
DEFAULT_SAMPLER = SamplerConfig(gen_length=8, block_length=4, steps=4, remasking="random", temperature=0.8)


_LOCKS: dict = {}  # profile -> {"depth", "file"}


@contextmanager
def snakemake_lock(profile: str):
    """One real (not dry) Snakemake run of ``profile`` at a time across the pytest-xdist workers (pyproject.toml:
    ``-n 2``): runs of one profile write the same logs/<profile>/ files, so Snakemake would refuse the second one's
    locks in the checkout. Runs of different profiles, and dry runs (which take no locks), go at once. An
    exclusive ``flock`` on a file beside the checkout's .snakemake/, re-entrant within a process."""
    import fcntl

    lock = _LOCKS.setdefault(profile, {"depth": 0, "file": None})
    if lock["depth"] == 0:
        ROOT.joinpath(".snakemake").mkdir(exist_ok=True)
        lock["file"] = open(ROOT / ".snakemake" / f"tests_{profile}.lock", "w")
        fcntl.flock(lock["file"], fcntl.LOCK_EX)
    lock["depth"] += 1
    try:
        yield
    finally:
        lock["depth"] -= 1
        if lock["depth"] == 0:
            fcntl.flock(lock["file"], fcntl.LOCK_UN)
            lock["file"].close()


def make_batch(model, tokenizer, sampler=DEFAULT_SAMPLER, seed=0):
    """Two prompts × G completions; rewards 0, 1, 2, 0, … so every group has a spread."""
    prompts = [tokenizer.encode(p) for p in ("has 3, gets 4", "1 2 3>6") for _ in range(G)]
    ids, mask = left_pad(prompts, tokenizer.pad_id)
    sample = generate(model, ids, mask, sampler, torch.Generator().manual_seed(seed))
    rewards = torch.arange(len(prompts), dtype=torch.float32) % 3
    return RolloutBatch(sample, sampler, rewards, group_advantages(rewards, G), G,
                        completion_mask(sample.completion_ids, tokenizer.eos_id))


def flat_grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def minute_run(tmp, rl: dict, data: dict | None = None, **overrides):
    """A minute-sized tiny-profile run in ``tmp``: the config (tiny.yaml with ``rl``/``data`` overrides, AGRPO k 2,
    diffu-GRPO μ 2), its task data, and an untrained 1-layer base model at ``tmp/base``. Returns the config."""
    from pathlib import Path

    import yaml

    from agrpo.config import load_config
    from agrpo.data import write_task_data
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer

    root = Path(__file__).resolve().parent.parent
    d = yaml.safe_load((root / "workflow/config/tiny.yaml").read_text())
    d.update(work_dir=str(tmp / "work"), results_dir=str(tmp / "results"))
    d["data"].update(train_size=50, test_size=8, **(data or {}))
    d["model"].update(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    for key, value in rl.items():  # rl.rollout's keys merge into tiny.yaml's
        d["rl"][key] = {**d["rl"][key], **value} if key == "rollout" else value
    d["methods"]["agrpo"]["objective_args"]["mc_samples"] = 2
    d["methods"]["diffu_grpo"]["inner_iterations"] = 2
    for key, value in overrides.items():  # a section's keys merged, or a top-level value (device=...)
        d[key] = {**d.get(key, {}), **value} if isinstance(value, dict) else value
    (tmp / "c.yaml").write_text(yaml.safe_dump(d))
    cfg = load_config(tmp / "c.yaml")
    for t in cfg.data.tasks:
        write_task_data(cfg, t)
    torch.manual_seed(0)
    init_tiny(CharTokenizer(), d_model=32, n_layers=1, n_heads=2, d_ff=64).save_pretrained(tmp / "base")
    return cfg


def reduced_pipeline(tmp, *extra: str, popen: bool = False, config: tuple = (), quiet: bool = True,
                     configfile: str = "tests/regression/config.yaml"):
    """The reduced tiny pipeline (tests/regression/config.yaml, or ``configfile``) through Snakemake into ``tmp``:
    a CompletedProcess, or with ``popen`` a Popen in its own session (so the test can kill it with all its jobs).
    ``config``: more ``--config`` entries; ``quiet=False`` keeps a dry run's job table."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", configfile,
           "--config", f"work_dir={tmp}/work", f"results_dir={tmp}/results", *config, *(["--quiet"] if quiet else []), *extra]
    if popen:
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
