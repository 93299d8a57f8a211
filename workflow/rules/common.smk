# Config validation, the resolved config the CLI reads, and the grid of runs, checkpoints and eval cells.
import yaml
from pathlib import Path

from snakemake.utils import validate

from agrpo.config import ProfileConfig, from_dict, to_dict
from agrpo.resolve import validate as validate_profile
from agrpo.evaluate import cell_name, grid
from agrpo.rl.trainer import checkpoint_steps

validate(config, "../schemas/config.schema.json")
CFG = from_dict(ProfileConfig, config)
validate_profile(CFG)

WORK = CFG.work_dir
RESULTS = CFG.results_dir
LOGS = f"logs/{CFG.profile}"

# Every rule reads this file, so `--config key=value` overrides reach the CLI too.
RESOLVED = f"{WORK}/config.resolved.yaml"
_text = yaml.safe_dump(to_dict(CFG), sort_keys=True)
if not Path(RESOLVED).is_file() or Path(RESOLVED).read_text() != _text:
    Path(RESOLVED).parent.mkdir(parents=True, exist_ok=True)
    Path(RESOLVED).write_text(_text)

TASKS = CFG.data.tasks
RUNS = [f"{m}-seed{s}" for m in CFG.methods for s in CFG.rl.seeds]
STEPS = checkpoint_steps(CFG)
CELLS = [cell_name(s, seed) for s, seed in grid(CFG)]
BASE = f"{WORK}/models/base"

wildcard_constraints:
    run=r"base|[A-Za-z0-9_]+-seed\d+",
    step=r"\d+",
    task=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_]+",


def launcher(gpus):
    """The command that starts a job: the plain CLI, or `accelerate launch` with one process per GPU
    (workflow/accelerate/<launch.strategy>.yaml). Device pinning is accelerate's (one GPU per process)."""
    if gpus == 0:
        return "agrpo"
    config_file = Path(workflow.basedir) / "workflow" / "accelerate" / f"{CFG.launch.strategy}.yaml"
    return (f"accelerate launch --config_file {config_file} --num_processes {gpus} "
            f"--mixed_precision {CFG.launch.mixed_precision} -m agrpo.cli")


TRAIN_LAUNCH = launcher(CFG.launch.gpus)


def start_model(method):
    """The model RL starts from: the method's SFT model if it has an SFT stage (d1), else the base model."""
    return f"{WORK}/models/sft-{method}" if CFG.methods[method].sft.steps > 0 else BASE


def run_method(run):
    return "base" if run == "base" else run.rsplit("-seed", 1)[0]


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
    m for r in RUNS for s in STEPS for t in TASKS for m in eval_cells(r, s, t)
] + [m for r in RUNS if CFG.methods[run_method(r)].sft.steps > 0 for t in TASKS for m in eval_cells(r, 0, t)]
REPORT_FILES = [f"{RESULTS}/summary.csv", f"{RESULTS}/report.md", f"{RESULTS}/item_scores.csv.gz"] + [
    f"{RESULTS}/plots/{p}.png" for p in ("acc_vs_steps", "acc_vs_flops", "acc_vs_train_step")
]
