"""CLI and workflow entry points: bad input gets one clear error; the Snakemake DAG resolves."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agrpo.cli import main


ROOT = Path(__file__).resolve().parent.parent


def config_in(tmp_path) -> Path:
    d = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    d["work_dir"] = str(tmp_path / "work")
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_cli_missing_data_file_names_the_path(tmp_path, capsys):
    code = main(["pretrain", "--config", str(config_in(tmp_path)), "--out", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "data file not found" in err and "tiny_arith/train.jsonl" in err
    assert not (tmp_path / "m").exists()


def test_cli_malformed_data_line_is_named(tmp_path, capsys):
    cfg = config_in(tmp_path)
    assert main(["data", "--config", str(cfg), "--task", "tiny_arith", "--quiet"]) == 0
    f = tmp_path / "work/data/tiny_arith/test.jsonl"
    lines = f.read_text().splitlines()
    lines[2] = "{not json"
    f.write_text("\n".join(lines) + "\n")
    code = main(["eval", "--config", str(cfg), "--model", str(tmp_path / "none"), "--method", "base", "--run-seed", "0",
                 "--train-step", "0", "--task", "tiny_arith", "--out", str(tmp_path / "e"), "--quiet"])
    assert code == 1 and "test.jsonl:3: malformed JSON" in capsys.readouterr().err


def test_cli_missing_model_is_named(tmp_path, capsys):
    cfg = config_in(tmp_path)
    main(["data", "--config", str(cfg), "--task", "tiny_arith", "--quiet"])
    code = main(["eval", "--config", str(cfg), "--model", str(tmp_path / "none"), "--method", "base", "--run-seed", "0",
                 "--train-step", "0", "--task", "tiny_arith", "--out", str(tmp_path / "e"), "--quiet"])
    assert code == 1 and "no model at" in capsys.readouterr().err


def test_cli_unknown_method_exits_2(tmp_path, capsys):
    code = main(["train", "--config", str(config_in(tmp_path)), "--method", "ppo", "--seed", "0", "--base", "x", "--out", "y"])
    assert code == 2 and "'ppo'" in capsys.readouterr().err


def test_snakemake_dry_run_plans_the_whole_tiny_pipeline(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--config", f"work_dir={tmp_path}/w",
                           f"results_dir={tmp_path}/r"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # 3 data + pretrain + d1's SFT + 4 train + an eval job per checkpoint on all 3 tasks (base + d1's SFT model +
    # 4 methods x 3 checkpoints)
    for rule, count in (("data", 3), ("pretrain", 1), ("sft", 1), ("train", 4), ("eval", 14), ("report", 1)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])


@pytest.mark.parametrize("profile,tasks,checkpoints", [
    ("paper", ("gsm8k_platinum", "math500", "countdown", "sudoku_spg"), 156),
    ("paper_d1", ("gsm8k", "math500", "countdown", "sudoku"), 2)])  # 30 batches here: a smaller plan, faster
def test_snakemake_dry_run_plans_the_paper_pipeline_on_slurm(tmp_path, profile, tasks, checkpoints):
    """The paper profiles (LLaDA-8B, released hyper-parameters; AGRPO's and d1's protocols) plan end to end through
    the Slurm workflow profile without touching the network: 4 methods x 4 tasks training runs, each an 8-GPU
    `accelerate launch` ZeRO-2 job with --task, every checkpoint evaluated on its task (1 GPU) at 3 lengths."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--workflow-profile", "workflow/profiles/slurm",
                           "--configfile", f"workflow/config/{profile}.yaml",
                           "--config", f"work_dir={tmp_path}/w", f"results_dir={tmp_path}/r"]
                          + (["set=rl.iterations=30"] if checkpoints == 2 else []), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    launch = [line for line in out.splitlines() if line.startswith("Shell command: accelerate launch")]
    assert len(launch) == 16 and all(f"--config_file {ROOT}/workflow/accelerate/zero2.yaml --num_processes 8 "
                                     "--mixed_precision bf16 --main_process_port $(python -c" in line
                                     and ") -m agrpo.cli train" in line for line in launch), launch
    runs = sorted(line.split("--out ")[1].split()[0].rsplit("/", 1)[1] for line in launch)
    assert runs == sorted(f"{m}-{t}-seed0" for m in ("agrpo", "diffu_grpo", "d1", "wd1") for t in tasks), runs
    assert all(f" --task {run.rsplit('-seed', 1)[0].split('-', 1)[1]} " in line
               for line in launch for run in [line.split("--out ")[1].split()[0].rsplit("/", 1)[1]])
    assert (ROOT / "workflow/accelerate/zero2.yaml").is_file()
    resources = [line for line in out.splitlines() if line.strip().startswith("resources:")]
    # 156 checkpoints (2340 / 15) x 16 runs and d1's SFT model as step 0 of d1's 4 runs, each on its task; the base
    # model on all 4 tasks in one job; d1's SFT job
    evals = 16 * checkpoints + 4
    assert sum("gpu=8" in line for line in resources) == 16 and sum("gpu=1" in line for line in resources) == evals + 2
    assert all("slurm_partition=" in line for line in resources)
    for rule, count in (("data", 4), ("pretrain", 1), ("sft", 1), ("train", 16), ("eval", 1),
                        ("eval_per_task_run", evals), ("report", 1)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])
    lengths = {line.split("_B")[0].rsplit("/", 1)[-1] for line in out.splitlines() if "/metrics.json" in line
               and "_B32_" in line}
    assert lengths >= {"L128", "L256", "L512"}, lengths


def test_snakemake_dry_run_plans_per_task_runs_each_evaluated_on_its_task(tmp_path):
    """rl.runs per_task on the tiny profile: 4 methods x 3 tasks training runs, each trained with --task and its
    checkpoints evaluated on that task alone (the base model on every task)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--config",
                           "set=rl.runs=per_task", f"work_dir={tmp_path}/w", f"results_dir={tmp_path}/r"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    out_dir = lambda line: Path(line.split("--out ")[1].split()[0])  # noqa: E731
    trained_on = lambda run: run.rsplit("-seed", 1)[0].split("-", 1)[1]  # noqa: E731  (method-task-seedN)
    train = [line for line in out.splitlines() if line.startswith("Shell command: agrpo train")]
    runs = sorted(out_dir(line).name for line in train)
    assert runs == sorted(f"{m}-{t}-seed0" for m in ("agrpo", "diffu_grpo", "d1", "wd1")
                          for t in ("tiny_arith", "tiny_countdown", "tiny_sudoku")), runs
    assert all(f" --task {trained_on(out_dir(line).name)} " in line for line in train)
    evals = [line for line in out.splitlines() if line.startswith("Shell command: agrpo eval")]
    for line in evals:
        tasks, run = re.findall(r" --task (\S+)", line), out_dir(line).parent.name  # eval/<run>/step<s>
        assert (run == "base" and tasks == ["tiny_arith", "tiny_countdown", "tiny_sudoku"]) or (
            tasks == [trained_on(run)] and f"--train-task {trained_on(run)}" in line), line
    # the base model on all 3 tasks in one job; 12 runs x 3 checkpoints + d1's SFT model as step 0 of its 3 runs,
    # each on its task
    assert len(evals) == 1 + 12 * 3 + 3
    for rule, count in (("train", 12), ("eval", 1), ("eval_per_task_run", 12 * 3 + 3)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])


def test_snakemake_rejects_unknown_config_key(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", "bogus_key=1",
                           f"work_dir={tmp_path}/w"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "bogus_key" in proc.stdout + proc.stderr


def test_snakemake_dry_run_plans_the_small_pipeline(tmp_path):
    """The small profile (one GPU) plans: 4 methods x 3 seeds, every checkpoint evaluated with the cache and
    threshold axes in each eval job's cells, the base model's headroom check first; one seed's part plans a third."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "16", "--configfile", "workflow/config/small.yaml",
                           "--config", f"work_dir={tmp_path}/w", f"results_dir={tmp_path}/r"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # an eval job per checkpoint on the 3 tasks: base + d1's SFT model x 3 seeds + 4 methods x 3 seeds x 2 checkpoints
    for rule, count in (("data", 3), ("pretrain", 1), ("headroom", 1), ("sft", 1), ("train", 12),
                        ("eval", 1 + 3 + 24)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])
    assert "_pcache_th0.9_seed0/metrics.json" in out and "L128_B8_S16_low_confidence_T0_eosx_seed0" in out
    part = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "16", "--configfile",
                           "workflow/config/small.yaml", "--config", f"work_dir={tmp_path}/w",
                           f"results_dir={tmp_path}/r", "set=rl.seeds=[1]"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = (part.stdout + part.stderr).splitlines()
    assert part.returncode == 0, lines[-30:]
    for rule, count in (("train", 4), ("eval", 1 + 1 + 8)):
        assert any(line.split()[:2] == [rule, str(count)] for line in lines), (rule, lines[-30:])
    # one method's part (run_methods) at another budget: its run and checkpoints only, no SFT stage
    part = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "16", "--configfile",
                           "workflow/config/small.yaml", "--config", f"work_dir={tmp_path}/w",
                           f"results_dir={tmp_path}/r",
                           "set=rl.seeds=[0],rl.iterations=1600,rl.checkpoint_every=400,run_methods=[agrpo]"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = (part.stdout + part.stderr).splitlines()
    assert part.returncode == 0, lines[-30:]
    for rule, count in (("train", 1), ("eval", 1 + 4)):
        assert any(line.split()[:2] == [rule, str(count)] for line in lines), (rule, lines[-30:])
    assert not any(line.split()[:1] == ["sft"] for line in lines) and "agrpo-seed0/step1600/" in part.stdout


def test_cli_every_subcommand_and_argument_has_help():
    from agrpo.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {c.dest for c in sub._choices_actions} == set(sub.choices)  # each subcommand listed with a help line
    for name, p in sub.choices.items():
        assert p.description, name
        for action in p._actions:
            if action.dest != "help":
                assert action.help, (name, action.dest)


def test_cli_eval_prints_cell_accuracies_and_score_rescores_a_cell(tmp_path, capsys):
    from agrpo.config import to_dict
    from helpers import minute_run

    cfg = minute_run(tmp_path, rl=dict(iterations=1, checkpoint_every=1), eval=dict(steps_divisors=[1, 8], batch_size=4))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    out = cfg.work_dir + "/eval/base/step0"
    assert main(["eval", "--config", str(tmp_path / "p.yaml"), "--model", str(tmp_path / "base"), "--method", "base",
                 "--run-seed", "0", "--train-step", "0", "--task", "tiny_arith", "--out", out, "--quiet"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if ": accuracy " in line]
    assert len(lines) == 2 and all(line.startswith("tiny_arith/L") and "correct) nfe" in line for line in lines)
    cell = next((Path(out) / "tiny_arith").iterdir())
    assert main(["score", "--cell", str(cell)]) == 0
    printed = capsys.readouterr().out
    rescored, recorded = printed.split("accuracy=")[1].split()[0], printed.split("metrics.json: ")[1].rstrip(")\n")
    assert float(rescored) == float(recorded) and "n=8" in printed
    assert main(["score"]) == 2 and "give TASK FILE, or --cell DIR" in capsys.readouterr().err


def test_committed_results_sit_outside_the_pipelines_outputs():
    """A fresh clone's `snakemake --cores all` must run the pipeline, not find committed outputs in its way: every
    profile's results_dir is untracked, and the committed runs are published copies the report checks against."""
    from agrpo.config import load_config

    tracked = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for profile in ("tiny", "small", "paper"):
        cfg = load_config(ROOT / f"workflow/config/{profile}.yaml")
        assert not [f for f in tracked if f.startswith(cfg.results_dir.rstrip("/") + "/")], profile
        if profile != "paper":
            assert cfg.published_dir == f"results/published/{profile}"
            assert {"summary.csv", "report.md"} <= {p.name for p in (ROOT / cfg.published_dir).iterdir()}


def test_snakemake_configfile_means_that_file_alone_and_errors_name_file_and_line(tmp_path):
    """`--configfile X` is X over the dataclass defaults (a one-method profile plans one training run, not tiny's
    four), and Snakemake-side config errors carry our loader's file, line and key."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    mine = {"profile": "mine", "work_dir": str(tmp_path / "w"), "results_dir": str(tmp_path / "r"),
            "data": {"tasks": ["tiny_arith"], "train_size": 20, "test_size": 4},
            "rl": {"iterations": 2, "checkpoint_every": 2, "prompts_per_batch": 2, "group_size": 2,
                   "rollout": {"gen_length": 40, "block_length": 8, "steps": 20}},
            "methods": {"agrpo": {"objective": "agrpo", "learning_rate": 1e-4}},
            "eval": {"gen_lengths": [40], "steps_divisors": [1]}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))

    def dry(path):
        return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    proc = dry(tmp_path / "mine.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    for rule, count in (("data", 1), ("pretrain", 1), ("train", 1), ("eval", 2), ("report", 1)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])
    assert not any(line.split()[:1] == ["sft"] for line in out.splitlines())  # tiny's d1 did not leak in
    (tmp_path / "dup.yaml").write_text((tmp_path / "mine.yaml").read_text() + "profile: again\n")
    bad = dry(tmp_path / "dup.yaml")
    assert bad.returncode != 0 and "dup.yaml:" in bad.stdout + bad.stderr and "duplicate key 'profile'" in bad.stdout + bad.stderr


def test_report_refuses_a_grid_with_runs_missing_unless_partial_and_then_says_which(tmp_path, capsys):
    """Cells merged from parts (one lease per RL seed) with a part left out: an error naming the runs, nothing
    written; with --partial, the report and a line at its top naming them."""
    from test_report import make_grid

    cfg = tmp_path / "two_seeds.yaml"
    cfg.write_text(f"extends: {ROOT}/workflow/config/tiny.yaml\nrl: {{seeds: [0, 1]}}\n"
                   f"methods: {{d1: null, wd1: null}}\npublished_dir: ''\nwork_dir: {tmp_path}/w\n"
                   f"reference_csv: {ROOT}/results/reference/paper_numbers.csv\n")
    cells = make_grid(tmp_path / "cells", run_seeds=(0,))
    out = tmp_path / "out"
    assert main(["report", "--config", str(cfg), "--cells", str(cells), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no cells for the runs agrpo seed 1, diffu_grpo seed 1" in err and "rl.seeds" in err and str(cfg) in err
    assert not out.exists()
    assert main(["report", "--config", str(cfg), "--cells", str(cells), "--out", str(out), "--quiet",
                 "--partial"]) == 0
    md = (out / "report.md").read_text()
    assert "**Partial grid:** the profile's runs agrpo seed 1, diffu_grpo seed 1 have no cells" in md
    make_grid(tmp_path / "whole", run_seeds=(0, 1))
    assert main(["report", "--config", str(cfg), "--cells", str(tmp_path / "whole"), "--out", str(tmp_path / "o2"),
                 "--quiet"]) == 0
    assert "Partial grid" not in (tmp_path / "o2" / "report.md").read_text()
    # a run cut short (only its live log) enters the curves with --partial, named; without, the curves skip it
    runs = tmp_path / "w" / "runs"
    row = {"iteration": 1, "rollouts": 8, "optimizer_steps": 1, "reward_mean": 0.5, "kl": 0.0, "clip_ratio": 0.0,
           "grad_norm": 1.0, "zero_std_groups": 0.0, "seconds": 1.0}
    (runs / "agrpo-seed0").mkdir(parents=True)
    (runs / "agrpo-seed0" / "train_log.jsonl").write_text(json.dumps(row) + "\n")
    (runs / "agrpo-seed1").mkdir()
    (runs / "agrpo-seed1" / "train_log.live.jsonl").write_text("".join(
        json.dumps({**row, "iteration": i, "reward_mean": 0.1 * i}) + "\n" for i in (1, 2, 3)))
    assert main(["report", "--config", str(cfg), "--cells", str(cells), "--out", str(tmp_path / "o4"), "--quiet",
                 "--partial"]) == 0
    md = (tmp_path / "o4" / "report.md").read_text()
    assert "**Unfinished runs**, read from their `train_log.live.jsonl` (`--partial`): agrpo seed 1: 3 rollout " \
           "batches logged." in md and "| agrpo | 1 | 3 | 0.100 | 0.300 |" in md
    full = [line for line in md.splitlines() if line.startswith("| agrpo | 0 | 1 |")]
    assert full, md[md.index("## Training curves"):][:1500]
    curves = (tmp_path / "o4" / "training_curves.csv").read_text().splitlines()
    assert sum(line.startswith("agrpo,1,") for line in curves) == 3
    from agrpo.report.curves import load_train_logs

    assert set(load_train_logs(runs)["run_seed"]) == {0}
    # a part's config (run_methods) expects only its methods' runs
    part = tmp_path / "part.yaml"
    part.write_text(cfg.read_text() + "run_methods: [agrpo]\n")
    assert main(["report", "--config", str(part), "--cells", str(cells), "--out", str(tmp_path / "o3"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no cells for the runs agrpo seed 1 (the run_methods x rl.seeds" in err and "diffu_grpo" not in err
