"""CI regression: a reduced tiny pipeline through Snakemake, compared with committed expectations.

Tolerance (also in tests/regression/README.md): the run is seeded with fixed CPU thread counts, so on the same CPU every
number is reproduced exactly. Across CPU micro-architectures float reduction order may flip an argmax, so each
cell's accuracy may differ from the expectation by at most one item (1/n), and the pretraining loss by 1e-4
relative; the RL losses of every update (which exercise both objectives) by 1e-3 relative. Two CPUs can differ by
more (an AMD Zen 2 AVX2 machine and the machine behind ``expected.json`` differ by 2.5 items in one cell and in
AGRPO's loss from the first update): a CPU with its own ``expected_<cpu>.json`` (``cpu_fingerprint``), or whose
vendor and ISA have one (``expected_<vendor>-<ISA>.json``), is compared with that file, any other with
``expected.json``. Regenerate the file of the CPU at hand with
``AGRPO_UPDATE_REGRESSION=1 pytest tests/test_regression.py``.
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from helpers import reduced_pipeline


ROOT = Path(__file__).resolve().parent.parent


def cpu_fingerprint() -> str:
    """vendor-family-model-ISA of this CPU, e.g. ``AuthenticAMD-23-49-AVX2``: what decides the kernels' rounding."""
    import torch

    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    parts = [info.get("vendor_id", "unknown"), info.get("cpu family", "?"), info.get("model", "?"),
             torch.backends.cpu.get_cpu_capability()]
    return "-".join(p.replace(" ", "") for p in parts)


def expected_file() -> Path:
    """This CPU's own file (``expected_<vendor>-<family>-<model>-<ISA>.json``), else its vendor and ISA's
    (``expected_<vendor>-<ISA>.json``: the CPUs of one vendor and ISA seen so far agree exactly), else
    ``expected.json``; regenerating writes the existing one of these, or this CPU's own."""
    cpu = cpu_fingerprint()
    vendor, *_, isa = cpu.split("-")
    d = ROOT / "tests/regression"
    own, family = d / f"expected_{cpu}.json", d / f"expected_{vendor}-{isa}.json"
    for f in (own, family):
        if f.exists():
            return f
    return own if os.environ.get("AGRPO_UPDATE_REGRESSION") else d / "expected.json"


@pytest.mark.slow
def test_regression_reduced_tiny_pipeline(reduced_run):
    tmp_path, proc = reduced_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "results/summary.csv")
    for name in ("report.md", "plots/acc_vs_steps.png", "plots/acc_vs_flops.png", "plots/acc_vs_train_step.png"):
        assert (tmp_path / "results" / name).stat().st_size > 0
    # (base + d1's SFT model + 4 methods x 2 checkpoints) x 3 tasks x 2 steps values
    assert len(summary) == 10 * 3 * 2
    assert set(summary.method) == {"base", "agrpo", "diffu_grpo", "d1", "wd1"}
    assert not any(os.path.isabs(c) for c in summary.checkpoint)
    pretrain = json.loads((tmp_path / "work/models/base/summary.json").read_text())
    rl = {run.name: [round(json.loads(l)["loss"], 6) for l in (run / "train_log.jsonl").read_text().splitlines()]
          for run in sorted((tmp_path / "work/runs").iterdir())}
    got = {"pretrain_final_loss": pretrain["final_loss"], "rl_losses": rl,
           "accuracy": {f"{r.method}/{r.checkpoint}/{r.task}/S{r.steps}": round(float(r.accuracy), 6)
                        for r in summary.itertuples()}}
    if os.environ.get("AGRPO_UPDATE_REGRESSION"):
        expected_file().write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    expected = json.loads(expected_file().read_text())
    assert got["pretrain_final_loss"] == pytest.approx(expected["pretrain_final_loss"], rel=1e-4)
    assert set(got["accuracy"]) == set(expected["accuracy"])
    assert set(got["rl_losses"]) == set(expected["rl_losses"])
    for run, losses in got["rl_losses"].items():  # the objectives' losses at every update
        assert losses == pytest.approx(expected["rl_losses"][run], rel=1e-3, abs=1e-5), run
    n = int(summary.n.iloc[0])
    off = {k: (v, expected["accuracy"][k]) for k, v in got["accuracy"].items() if abs(v - expected["accuracy"][k]) > 1 / n + 1e-9}
    assert not off, f"cells off by more than one item: {off}"
    # a complete run leaves nothing to do
    dry = reduced_pipeline(tmp_path, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def planned_rules(proc) -> dict:
    """{rule: job count} from a dry run's job-stats table."""
    out, counts = proc.stdout + proc.stderr, {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] in ("data", "pretrain", "sft", "train", "eval", "report"):
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
def test_config_edits_rerun_exactly_what_they_invalidate(reduced_run):
    """After a complete run: an eval-only edit plans eval and report; a data edit plans everything downstream of the
    data; an unrelated key (logging) plans nothing. Dry runs write no resolved config."""
    tmp_path, proc = reduced_run
    assert proc.returncode == 0
    configs = sorted((tmp_path / "work/config").iterdir())
    assert len(configs) == 1  # the run's resolved config, named by its content hash
    eval_edit = planned_rules(reduced_pipeline(tmp_path, "-n", quiet=False, config=("set=eval.batch_size=16",)))
    assert eval_edit == {"eval": 10, "report": 1}, eval_edit
    data_edit = planned_rules(reduced_pipeline(tmp_path, "-n", quiet=False, config=("set=data.train_size=700",)))
    assert data_edit == {"data": 3, "pretrain": 1, "sft": 1, "train": 4, "eval": 10, "report": 1}, data_edit
    d1_edit = planned_rules(reduced_pipeline(tmp_path, "-n", quiet=False, config=("set=methods.d1.learning_rate=2e-4",)))
    assert d1_edit == {"train": 1, "eval": 2, "report": 1}, d1_edit
    nothing = reduced_pipeline(tmp_path, "-n", quiet=False, config=("set=logging.tensorboard=true",))
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    assert sorted((tmp_path / "work/config").iterdir()) == configs  # dry runs wrote nothing
