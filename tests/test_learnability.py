"""Every objective learns: at the tiny profile's settings each method raises the probe reward and lowers it when
its advantages are negated (agrpo/rl/probe.py; curves, seeds and timings in docs/learnability.md).

Setup, the same for every method: the tiny profile's architecture (d_model 64, 3 layers) randomly initialised
(seed 0), tiny_arith's training prompts, 4 prompts × G = 8 per rollout batch (the profile: 8 prompts), and every
method setting as ``workflow/config/tiny.yaml`` has it — learning rate 1e-4 constant, AGRPO k = 4 with μ = 1,
diffu-GRPO / d1 / wd1 with μ = 4, d1's β 0.04 and ε 0.5, each method's rollout sampler. d1's SFT stage runs 5
steps instead of 300. Reward R = 3·min(#"7", 4)/4 (0–3, advantages of order 1); the base policy earns the full
3 in none of its 32 first rollouts and 0.68 on average (d1's SFT model: 0.05, it stops writing early).

Pass criteria, with R_0 the first rollout batch (sampled before any update) and R̄ the mean of the last 4:
R̄ − R_0 ≥ ``rise`` on R, and on −R (negated advantages) R_0 − R̄ ≥ ``fall``. The margins are about half the
smallest change measured over three trainer seeds (docs/learnability.md), since another CPU rounds differently and
follows another trajectory; on one CPU the test is deterministic. d1's SFT model starts at the floor (R_0 ≈ 0.05),
so its control can only show that R does not rise (``fall`` −0.05).
"""

from pathlib import Path

import pytest
import torch

from agrpo.rl.probe import TINY_PROBES, tiny_probe

ROOT = Path(__file__).resolve().parent.parent
# variant: (rise on R, fall on −R); the batches per variant are in agrpo.rl.probe.TINY_PROBES
MARGINS = {"agrpo-entropy": (0.4, 0.15), "agrpo-uniform": (0.3, None), "agrpo-stratified": (0.3, None),
           "agrpo-entropy_iid": (0.3, None), "diffu_grpo": (0.55, 0.45), "d1": (0.55, -0.05), "wd1": (0.6, 0.45)}


def curve(tmp, variant, negated):
    torch.set_num_threads(2)  # CI has 2 cores and runs the tests one at a time
    r = tiny_probe(ROOT / "workflow/config/tiny.yaml", variant, tmp, negated=negated).rewards
    return r[0], sum(r[-4:]) / 4, [round(x, 2) for x in r]


@pytest.mark.parametrize("variant", list(TINY_PROBES))
def test_objective_learns_the_probe_reward_and_unlearns_it_when_advantages_are_negated(variant, tmp_path):
    rise, fall = MARGINS[variant]
    first, last, r = curve(tmp_path / "pos", variant, negated=False)
    assert last - first >= rise, f"{variant}: R {first:.3f} -> {last:.3f} ({len(r)} batches): {r}"
    if TINY_PROBES[variant][3]:
        first, last, r = curve(tmp_path / "neg", variant, negated=True)
        assert first - last >= fall, f"{variant} on -R: R {first:.3f} -> {last:.3f} ({len(r)} batches): {r}"
