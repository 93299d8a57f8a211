# The profile, the resolved config the CLI reads, and the grid of runs, checkpoints and eval cells.
#
# The profile is the file given with --configfile (default: workflow/config/tiny.yaml), read alone over the
# dataclass defaults or over its own `extends:` chain, then the --config overrides (`key=value`,
# `section="{key: value}"`, `set="a.b=1 c.d=2"`). Our loader reads it, so duplicate keys, bad values and YAML
# errors name the file, key and line. Each job reads the resolved config from a file named by its content hash,
# written when a run starts (not by dry runs, nor by a call that cannot take the lock), never rewritten.
import yaml
from pathlib import Path

from snakemake.exceptions import WorkflowError

from agrpo.config import ConfigError, load_config, to_dict
from agrpo.evaluate import cell_name, grid
from agrpo.io import atomic_write_text
from agrpo.provenance import config_hash
from agrpo.resolve import cli_overrides, rule_key, run_methods, trained_tasks
from agrpo.rl.trainer import checkpoint_steps
from agrpo.sweep import parse_run, sweep_iterations, sweep_runs

PROFILE_FILES = [str(p) for p in workflow.overwrite_configfiles] or [
    str(Path(workflow.basedir) / "workflow" / "config" / "tiny.yaml")]
try:
    CFG = load_config(PROFILE_FILES, overrides=cli_overrides(dict(workflow.config_settings.config)))
except ConfigError as e:
    raise WorkflowError(f"config error: {e}") from None

WORK = CFG.work_dir
RESULTS = CFG.results_dir
LOGS = f"logs/{CFG.profile}"
_RESOLVED_TEXT = yaml.safe_dump(to_dict(CFG), sort_keys=True)
RESOLVED = f"{WORK}/config/{config_hash(to_dict(CFG))}.yaml"


onstart:
    if not Path(RESOLVED).is_file():
        atomic_write_text(RESOLVED, _RESOLVED_TEXT)


TASKS = CFG.data.tasks
PER_TASK = CFG.rl.runs == "per_task"  # a run per (method, task, seed), evaluated on its task; else on all tasks
RUN_METHODS = run_methods(CFG)  # `run_methods` (a part of the profile), else every method
RUNS = ([f"{m}-{t}-seed{s}" for m in RUN_METHODS for t in trained_tasks(CFG, m) for s in CFG.rl.seeds] if PER_TASK else
        [f"{m}-seed{s}" for m in RUN_METHODS for s in CFG.rl.seeds])
STEPS = checkpoint_steps(CFG)
CELLS = [cell_name(s, seed) for s, seed in grid(CFG)]
BASE = f"{WORK}/models/base"

wildcard_constraints:
    run=r"base|[A-Za-z0-9_]+(-[A-Za-z0-9_]+)?-seed\d+",
    step=r"\d+",
    task=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_]+",


# a free TCP port for each launch's rendezvous, found when the job starts: jobs sharing a machine never collide
FREE_PORT = ("$(python -c \"import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
             "print(s.getsockname()[1])\")")


def launcher(gpus):
    """The command that starts a job: the plain CLI, or `accelerate launch` with one process per GPU
    (workflow/accelerate/<launch.strategy>.yaml). Device pinning is accelerate's (one GPU per process)."""
    if gpus == 0:
        return "agrpo"
    config_file = Path(workflow.basedir) / "workflow" / "accelerate" / f"{CFG.launch.strategy}.yaml"
    return (f"accelerate launch --config_file {config_file} --num_processes {gpus} "
            f"--mixed_precision {CFG.launch.mixed_precision} --main_process_port {FREE_PORT} -m agrpo.cli")



TRAIN_LAUNCH = launcher(CFG.launch.gpus)


def start_model(method):
    """The model RL starts from: the method's SFT model if it has an SFT stage (d1), else the base model."""
    return f"{WORK}/models/sft-{method}" if CFG.methods[method].sft.steps > 0 else BASE


def run_method(run):
    return "base" if run == "base" else run.rsplit("-seed", 1)[0].split("-")[0]


def run_task(run):
    """The task a per-task run trains on (None: the base model or a mixed run)."""
    head = run.rsplit("-seed", 1)[0]
    return head.split("-", 1)[1] if run != "base" and "-" in head else None


def eval_tasks(run):
    return [run_task(run)] if run_task(run) else TASKS


def run_seed(run):
    return CFG.pretrain.seed if run == "base" else int(run.rsplit("-seed", 1)[1])


def model_dir(wc):
    """Step 0 of a run is the model RL started from (the SFT model for d1); other steps are RL checkpoints."""
    if wc.run == "base":
        return BASE
    return start_model(run_method(wc.run)) if int(wc.step) == 0 else f"{WORK}/runs/{wc.run}/step{wc.step}"


def model_ready(wc):
    """The file whose existence says a checkpoint is complete: the training log for RL checkpoints (written after
    all of them), the model's config.json for the base and SFT models."""
    if wc.run != "base" and int(wc.step) > 0:
        return f"{WORK}/runs/{wc.run}/train_log.jsonl"
    return f"{model_dir(wc)}/config.json"


def eval_cells(run, step, task):
    return [f"{WORK}/eval/{run}/step{step}/{task}/{c}/metrics.json" for c in CELLS]


# every run's starting point is evaluated: the base model once, and each SFT model as step 0 of its method's runs
ALL_CELLS = [m for t in TASKS for m in eval_cells("base", 0, t)] + [
    m for r in RUNS for s in STEPS for t in eval_tasks(r) for m in eval_cells(r, s, t)
] + [m for r in RUNS if CFG.methods[run_method(r)].sft.steps > 0 for t in eval_tasks(r) for m in eval_cells(r, 0, t)]
TRAIN_LOGS = [f"{WORK}/runs/{r}/train_log.jsonl" for r in RUNS]
HEADROOM = [f"{WORK}/headroom/base.json"] if CFG.eval.headroom_items else []  # the base model's, in the report
# the sweep the profile's rates came from (sweep.report_dir: a committed summary), in the report
SWEEP_SUMMARY = [f"{CFG.sweep.report_dir}/{f}" for f in ("sweep.md", "sweep.png")] if CFG.sweep.report_dir else []
REPORT_FILES = [f"{RESULTS}/{f}" for f in ("summary.csv", "report.md", "item_scores.csv.gz", "claims.csv",
                                           "failures.csv")] + [
    f"{RESULTS}/plots/{p}.png" for p in ("acc_vs_steps", "acc_vs_flops", "acc_vs_train_step")
] + ([f"{RESULTS}/training_curves.csv", f"{RESULTS}/plots/training_curves.png"] if RUNS else []) + (
    [f"{RESULTS}/plots/sweep.png"] if SWEEP_SUMMARY else []) + (
    # Tables P1 and P2 in the papers' layout: per-task runs (their cells record train_task) or two or more of the
    # papers' lengths, as agrpo.report.paper_tables.uses_paper_layout decides from the cells
    [f"{RESULTS}/table1.csv", f"{RESULTS}/steps_robustness.csv"]
    if (PER_TASK and RUNS) or len(set(CFG.eval.gen_lengths) & {128, 256, 512}) >= 2 else [])
