"""benchmarks/paper_smoke_gpu.py (the 8B-shaped paper smoke on a GPU): its profiles are valid paper-profile
variants with the released settings kept, and its job timings read Snakemake's log. The GPU run itself is in
docs/performance.md; `run --shape tiny --device cpu` rehearses it on a CPU (≈ 3 min, not in the suite)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from paper_smoke_gpu import job_seconds, prepare, profiles  # noqa: E402
from paper_smoke import SHARED  # noqa: E402

LOG = """Building DAG of jobs...
[Tue Dec  1 20:04:44 2026]
localrule data:
    output: /w/data/gsm8k/train.jsonl
    jobid: 4
    wildcards: task=gsm8k
    resources: tmpdir=/tmp
[Tue Dec  1 20:04:47 2026]
Finished jobid: 4 (Rule: data)
[Tue Dec  1 20:04:47 2026]
rule train:
    jobid: 9
    wildcards: run=wd1-gsm8k-seed0
[Tue Dec  1 20:07:18 2026]
Finished job 9.
[Tue Dec  1 20:07:20 2026]
rule eval:
    jobid: 11
    wildcards: run=wd1-gsm8k-seed0, step=2, task=gsm8k
"""


def test_job_seconds_reads_each_jobs_start_and_end_from_the_snakemake_log():
    assert job_seconds(LOG) == [
        {"rule": "data", "wildcards": "task=gsm8k", "seconds": 3.0},
        {"rule": "train", "wildcards": "run=wd1-gsm8k-seed0", "seconds": 151.0},
        {"rule": "eval", "wildcards": "run=wd1-gsm8k-seed0, step=2, task=gsm8k", "seconds": None}]  # still running


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data beside the checkout (CI has it)")
@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_smoke_profiles_keep_the_released_settings_they_do_not_reduce(tmp_path, device):
    from agrpo.config import load_config
    from agrpo.resolve import run_config

    prepare(tmp_path)
    (tmp_path / "llada").mkdir()
    paths = profiles(tmp_path, tmp_path / "llada", device)
    agrpo, d1 = load_config(paths["agrpo"]), load_config(paths["d1"])
    assert agrpo.data.tasks == ["gsm8k_platinum"] and d1.data.tasks == ["gsm8k"]
    assert set(agrpo.data.sources) == {"gsm8k_platinum/train", "gsm8k_platinum/test"}
    assert agrpo.rl.checkpoint_format == "adapter" and agrpo.launch.gpus == 1
    a = run_config(agrpo, "agrpo", "gsm8k_platinum").methods["agrpo"]
    assert a.objective_args["mc_samples"] == 24 and a.lora.r == 64 and a.prompts_per_batch == 2
    d = run_config(d1, "d1", "gsm8k").methods["d1"]
    assert d.inner_iterations == 12 and d.lora.r == 128 and d.sft.steps == 2
    assert d.rollout["steps"] == 32 and d.rollout["gen_length"] == 256  # 32 steps: 4 per block at the released length
    if device == "cuda":
        assert agrpo.launch.strategy == "zero2" and agrpo.model.dtype == "bfloat16" and d.load_in_4bit
    else:
        assert agrpo.launch.strategy == "ddp" and not d.load_in_4bit
