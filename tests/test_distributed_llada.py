"""Data parallelism on CPU: a 2-process (gloo) update equals the 1-process update of the same global batch.

Both runs go through ``accelerate launch`` with the DDP config the Snakemake rules use (workflow/accelerate/
ddp.yaml) or a plain process, and call the trainer's own ``update`` on a random LLaDA-architecture model
(tests/scripts/distributed_update.py): AGRPO (full and LoRA), diffu-GRPO with both loss normalisations (rows of
different lengths, so the `batch` normalisation needs the global token count), wd1. fp32, one thread."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "tests/scripts/distributed_update.py"


def run(out: Path, processes: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if processes == 1:
        cmd = [sys.executable, str(HELPER), str(out)]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "workflow/accelerate/ddp.yaml"), "--num_processes", str(processes), "--main_process_port",
               "29517", str(HELPER), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    return run(d / "one.json", 1), run(d / "two.json", 2)


def test_distributed_llada_two_processes_match_one(one_and_two):
    one, two = one_and_two
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["results"].keys() == two["results"].keys() and len(one["results"]) == 5
    for case, steps in one["results"].items():
        assert len(steps) == len(two["results"][case])
        for n, (a, b) in enumerate(zip(steps, two["results"][case])):
            where = f"{case}, inner iteration {n}"
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-8), where
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5), where
            assert b["param_sq_sum"] == pytest.approx(a["param_sq_sum"], rel=1e-6), where
            assert a["grad_norm"] > 1e-3, f"{where}: a vanishing gradient would make the check vacuous"


def test_distributed_llada_batch_normalisations_differ(one_and_two):
    """The `batch` case is informative only if group and batch token means differ on this data."""
    r = one_and_two[0]["results"]
    assert abs(r["diffu_grpo_group"][0]["grad_norm"] - r["diffu_grpo_batch"][0]["grad_norm"]) > 1e-3
