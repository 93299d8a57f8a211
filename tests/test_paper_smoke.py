"""The paper profiles end to end on the CPU (issue 20, item 4): both protocols' smoke profiles (tests/paper_smoke.py)
through `snakemake --cores all`: the four real tasks from local files in their hub formats, a random LLaDA with a
BPE tokenizer trained here, d1's SFT, one RL iteration per run through `accelerate launch`, every checkpoint
evaluated on its task (prompts rendered by the chat template, answers extracted and judged), and the report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from paper_smoke import SHARED, smoke_profiles

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data beside the checkout (CI has it)")

RUNS = {"agrpo": {"agrpo": ["gsm8k_platinum", "countdown"], "diffu_grpo": ["math500", "sudoku_spg"]},
        "d1": {"d1": ["gsm8k", "sudoku"], "wd1": ["math500", "countdown"]}}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper_smoke")
    profiles = smoke_profiles(tmp)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = {}
    # no helpers.snakemake_lock: no other test runs these profiles (logs/paper_smoke, logs/paper_d1_smoke), so this
    # may overlap the tiny pipeline tests' runs; --nolock, because a Snakemake run that ends removes the checkout's
    # whole .snakemake/locks, another run's lock files with it
    for protocol, profile in profiles.items():  # one after the other: at once they contend for the CI cores
        done[protocol] = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "all", "-p", "--nolock",
                                         "--configfile", str(profile)], cwd=ROOT, env=env, capture_output=True,
                                        text=True, timeout=900)
    return tmp, done


@pytest.mark.parametrize("protocol", ["agrpo", "d1"])
def test_paper_smoke_pipeline_trains_evaluates_and_reports_every_task(smoke, protocol):
    tmp, done = smoke
    proc = done[protocol]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    launches = [line for line in out.splitlines() if line.startswith("Shell command: accelerate launch")]
    runs = {f"{m}-{t}-seed0" for m, tasks in RUNS[protocol].items() for t in tasks}
    assert len(launches) == len(runs) and all("--num_processes 1" in line and "ddp.yaml" in line for line in launches)
    work, results = tmp / protocol / "work", tmp / protocol / "results"
    for run in runs:
        log = [json.loads(x) for x in (work / f"runs/{run}/train_log.jsonl").read_text().splitlines()]
        assert len(log) == 1 and log[0]["rollouts"] == 4 and all(map(lambda v: v == v, log[0].values()))
    if protocol == "d1":
        assert (work / "models/sft-d1/config.json").is_file()
    summary = pd.read_csv(results / "summary.csv")
    tasks = {t for ts in RUNS[protocol].values() for t in ts}
    assert set(summary["task"]) == tasks
    for run in runs:  # every checkpoint on its own task, at 2 lengths x 2 step counts
        method, task = run.rsplit("-seed", 1)[0].split("-", 1)
        rows = summary[(summary["method"] == method) & (summary["task"] == task)]
        assert len(rows) >= 4 and set(rows["gen_length"]) == {32, 64}
    base = summary[summary["method"] == "base"]
    assert set(base["task"]) == tasks and base["accuracy"].between(0, 1).all()
    # model output went through each task's prompt, extraction and judge: every item has a verdict
    gens = list((work / "eval").glob("base/step0/*/*/generations.jsonl"))
    assert {g.parent.parent.name for g in gens} == tasks
    for g in gens:
        items = [json.loads(x) for x in g.read_text().splitlines()]
        assert len(items) == 4 and all(i["prompt"] and "parsed" in i and "reason" in i for i in items)
    report = (results / "report.md").read_text()
    assert "Table P1" in report and (results / "table1.csv").is_file() and (results / "steps_robustness.csv").is_file()
    table1 = pd.read_csv(results / "table1.csv")
    assert tasks <= set(table1["task"]) and set(RUNS[protocol]) <= set(table1["method"]), table1.head()
