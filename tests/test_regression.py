"""CI regression: a reduced tiny pipeline through Snakemake, compared with committed expectations.

Tolerance (also in tests/regression/README.md): the run is seeded with fixed CPU thread counts, so on the same CPU every
number is reproduced exactly. Across CPU micro-architectures float reduction order may flip an argmax, so each
cell's accuracy may differ from the expectation by at most one item (1/n), and the pretraining loss by 1e-4
relative; the RL losses of every update (which exercise both objectives) by 1e-3 relative. Regenerate expectations with ``AGRPO_UPDATE_REGRESSION=1 pytest tests/test_regression.py``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "tests/regression/expected.json"


def run_pipeline(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tests/regression/config.yaml",
           "--config", f"work_dir={tmp}/work", f"results_dir={tmp}/results", "--quiet", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_regression_reduced_tiny_pipeline(tmp_path):
    proc = run_pipeline(tmp_path)
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
        EXPECTED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    expected = json.loads(EXPECTED.read_text())
    assert got["pretrain_final_loss"] == pytest.approx(expected["pretrain_final_loss"], rel=1e-4)
    assert set(got["accuracy"]) == set(expected["accuracy"])
    assert set(got["rl_losses"]) == set(expected["rl_losses"])
    for run, losses in got["rl_losses"].items():  # the objectives' losses at every update
        assert losses == pytest.approx(expected["rl_losses"][run], rel=1e-3, abs=1e-5), run
    n = int(summary.n.iloc[0])
    off = {k: (v, expected["accuracy"][k]) for k, v in got["accuracy"].items() if abs(v - expected["accuracy"][k]) > 1 / n + 1e-9}
    assert not off, f"cells off by more than one item: {off}"
    # a complete run leaves nothing to do
    dry = run_pipeline(tmp_path, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
