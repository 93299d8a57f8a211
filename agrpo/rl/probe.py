"""Learnability probes: does a method's objective raise a reward that it should raise, at a profile's settings?

A probe runs the real trainer (``agrpo.rl.trainer.train``) for one method of a profile config on a model made for
the probe, with the tasks' rewards replaced by a synthetic one the base policy rarely earns in full:

    R(o) = 3 · min(#7(o), 4) / 4         (#7 = the number of "7" characters in the completion text o)

It lies on the papers' scale (0–3, correctness-like rewards of 2–3 points, advantages of order 1) and depends on
nothing but what the policy writes, so any working policy-gradient objective must raise it. The negative
control runs the same probe on −R: the advantages Â = R − mean(R) are negated exactly, so a working objective
must lower R. Tests (tests/test_learnability.py) and the documented curves (benchmarks/learnability.py,
docs/learnability.md) both run through ``run_probe``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class CountReward:
    """R(o) = scale · min(#char(o), cap) / cap: ``scale / cap`` per occurrence of ``char`` in the completion text."""
    char: str = "7"
    cap: int = 4
    scale: float = 3.0

    def __call__(self, text: str, example: dict | None = None) -> float:
        return self.scale * min(text.count(self.char), self.cap) / self.cap


sevens_reward = CountReward("7")


@dataclass
class ProbeResult:
    method: str
    negated: bool
    rewards: list[float]  # mean R (the un-negated reward) per rollout batch
    seconds: float


def probe_config(cfg, iterations: int, tasks: list[str] | None = None, prompts_per_batch: int | None = None,
                 sft_steps: int | None = None):
    """A copy of ``cfg`` for probing: ``iterations`` rollout batches, one checkpoint at the end, optionally fewer
    tasks, prompts per batch or SFT steps. Every method setting (lr, schedule, μ, objective args, rollout
    sampler) stays as the profile has it."""
    c = copy.deepcopy(cfg)
    c.rl.iterations = c.rl.checkpoint_every = iterations
    c.rl.seeds = [0]
    if tasks is not None:
        c.data.tasks = list(tasks)
    if prompts_per_batch is not None:
        c.rl.prompts_per_batch = prompts_per_batch
    if sft_steps is not None:
        for m in c.methods.values():
            if m.sft.steps > 0:
                m.sft.steps = sft_steps
    return c


def run_probe(cfg, method: str, base_dir: str | Path, out_dir: str | Path, negated: bool = False, seed: int = 0,
              reward=sevens_reward, progress: bool = False) -> ProbeResult:
    """Train ``method`` on ``reward`` (or its negation) from ``base_dir`` (through the method's SFT stage first
    when it has one) and return the mean reward of every rollout batch."""
    from agrpo.rl.trainer import train
    from agrpo.sft import sft

    out_dir = Path(out_dir)
    start_from = Path(base_dir)
    if cfg.methods[method].sft.steps > 0:
        start_from = out_dir / "sft"
        sft(cfg, method, base_dir, start_from, progress=progress)
    sign = -1.0 if negated else 1.0
    summary = train(cfg, method, seed, start_from, out_dir / "rl", progress=progress,
                    reward_fn=lambda text, ex: sign * reward(text, ex))
    log = [json.loads(line) for line in (out_dir / "rl" / "train_log.jsonl").read_text().splitlines()]
    return ProbeResult(method, negated, [sign * row["reward_mean"] for row in log], summary["seconds"])


def random_base(cfg, out_dir: str | Path, seed: int = 0) -> Path:
    """A randomly initialised model of the profile's tiny architecture, saved at ``out_dir``."""
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer

    torch.manual_seed(seed)
    m = cfg.model
    init_tiny(CharTokenizer(), d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads, d_ff=m.d_ff).save_pretrained(out_dir)
    return Path(out_dir)


# The learnability probes of the tiny profile (tests/test_learnability.py, benchmarks/learnability.py):
# variant -> (method, AGRPO timestep sampler preset or None, rollout batches on R, rollout batches on −R)
TINY_PROBES = {
    "agrpo-entropy": ("agrpo", "entropy", 16, 10),  # the tiny profile's (and the released) timestep sampler
    "agrpo-uniform": ("agrpo", "uniform", 12, 0),
    "agrpo-stratified": ("agrpo", "stratified", 12, 0),
    "agrpo-entropy_iid": ("agrpo", "entropy_iid", 12, 0),
    "diffu_grpo": ("diffu_grpo", None, 6, 6),
    "d1": ("d1", None, 8, 6),
    "wd1": ("wd1", None, 6, 6),
}
PROBE_PROMPTS, PROBE_SFT_STEPS = 4, 5


def tiny_probe(profile_yaml: str | Path, variant: str, out_dir: str | Path, negated: bool = False, seed: int = 0,
               init_seed: int = 0, batches: int | None = None, reward=sevens_reward,
               objective_args: dict | None = None) -> ProbeResult:
    """One probe of ``TINY_PROBES``: the profile's method settings, its architecture randomly initialised
    (``init_seed``), tiny_arith's training prompts, ``PROBE_PROMPTS`` prompts per batch, d1's SFT cut to
    ``PROBE_SFT_STEPS`` steps; RL ``seed`` for prompt order, rollouts and timestep draws. ``objective_args``
    override the method's (e.g. β = 0)."""
    from agrpo.config import load_config
    from agrpo.data import write_task_data
    from agrpo.rl.agrpo import TIMESTEP_SAMPLERS

    method, sampler, up, down = TINY_PROBES[variant]
    out_dir = Path(out_dir)
    cfg = load_config(profile_yaml)
    cfg.work_dir = str(out_dir / "work")
    cfg.data.train_size, cfg.data.test_size = 200, 10
    cfg = probe_config(cfg, batches or (down if negated else up), tasks=["tiny_arith"],
                       prompts_per_batch=PROBE_PROMPTS, sft_steps=PROBE_SFT_STEPS)
    if sampler is not None:
        importance, low_discrepancy = TIMESTEP_SAMPLERS[sampler]
        cfg.methods[method].objective_args.update(importance_sampling=importance, low_discrepancy=low_discrepancy)
    cfg.methods[method].objective_args.update(objective_args or {})
    write_task_data(cfg, "tiny_arith")
    base = random_base(cfg, out_dir / "base", seed=init_seed)
    return run_probe(cfg, method, base, out_dir / "run", negated=negated, seed=seed, reward=reward)
