"""``agrpo`` command line: one subcommand per pipeline stage (the Snakemake rules call these).

    agrpo data      --config C --task T            write the task's train/test JSONL files
    agrpo pretrain  --config C --out DIR           train the base dLLM from scratch
    agrpo sft       --config C --method M --base DIR --out DIR   masked SFT before RL (d1)
    agrpo train     --config C --method M --seed S --base DIR --out DIR
    agrpo eval      --config C --model DIR --method M --run-seed S --train-step N --task T [--task T2 ...] --out DIR
    agrpo report    --config C --cells DIR [--out DIR]
    agrpo validate  --config C                     check a config file (exit 2 on errors)
    agrpo score     TASK FILE [--protocol d1|agrpo] [--out F] [--skip-bad]   re-score generations
    agrpo score     --cell DIR [--examples F] [--out F]            re-score an eval cell's own generations
    agrpo lm-eval   [lm-eval flags]                lm-eval's CLI with our model and tasks (lmeval extra)
    agrpo config-schema | config-docs              print the JSON schema / key reference

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agrpo.config import ConfigError, load_config
from agrpo.config_docs import config_docs, json_schema


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agrpo", description="RL for masked diffusion LMs: AGRPO vs diffu-GRPO, d1, wd1. "
                                "Each subcommand is one pipeline stage (the Snakemake rules call them); `snakemake "
                                "--cores all` runs them all. Exit codes: 0 ok, 1 runtime failure, 2 bad configuration.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name, help_, description, config=True):
        s = sub.add_parser(name, help=help_, description=description)
        if config:
            s.add_argument("--config", default="workflow/config/tiny.yaml",
                           help="profile YAML, read alone or over the file its `extends:` names "
                                "(default: workflow/config/tiny.yaml)")
            s.add_argument("--quiet", action="store_true", help="no progress bars")
        return s

    s = cmd("data", "write a task's data files", "Write work_dir/data/TASK/{train,rl,test}.jsonl (pretraining "
            "examples, RL prompts, test items): generated examples for the synthetic tasks, the papers' splits for "
            "the real ones.")
    s.add_argument("--task", required=True, help="a task of data.tasks")
    for name, what in (("pretrain", "Pretrain the tiny base model from scratch (masked-diffusion loss)."),
                       ("base", "Provide the base model: pretrain the tiny model, or link LLaDA's checkpoint "
                                "(model.name_or_path).")):
        s = cmd(name, what.split(":")[0].split(" (")[0].lower().rstrip("."), what)
        s.add_argument("--out", required=True, help="model directory to write")
    s = cmd("sft", "masked SFT before RL (d1's first stage)", "Masked SFT of the base model for one method "
            "(methods.<name>.sft); the RL run of that method starts from it.")
    s.add_argument("--method", required=True, help="a method of the profile with sft.steps > 0")
    s.add_argument("--base", required=True, help="the base model directory")
    s.add_argument("--out", required=True, help="model directory to write")
    s = cmd("train", "RL-train one method", "RL-train one method from a model: checkpoints every "
            "rl.checkpoint_every rollout batches, a live log (train_log.live.jsonl), train_log.jsonl when done; a "
            "rerun resumes from the last checkpoint.")
    s.add_argument("--method", required=True, help="a method of the profile (methods.<name>)")
    s.add_argument("--seed", type=int, required=True, help="RL seed: prompt order, rollouts, timestep draws")
    s.add_argument("--base", required=True, help="the model RL starts from (the base, or the method's SFT model)")
    s.add_argument("--out", required=True, help="run directory to write")
    s.add_argument("--task", default=None, help="rl.runs per_task: the task this run trains on (its per_task "
                   "overrides applied); omitted for mixed runs")
    s = cmd("eval", "evaluate one checkpoint on its tasks", "Evaluate one checkpoint on each --task over the whole "
            "eval grid (lengths × steps × caches × thresholds × seeds), the model loaded once; one cell directory "
            "per task and grid point, OUT/<task>/<cell>, complete cells skipped; prints each cell's accuracy.")
    s.add_argument("--model", required=True, help="the checkpoint directory")
    s.add_argument("--method", required=True, help="method name recorded in the cells (base for the base model)")
    s.add_argument("--run-seed", type=int, required=True, help="the RL seed of the checkpoint's run")
    s.add_argument("--train-step", type=int, required=True, help="rollout batches the checkpoint was trained for")
    s.add_argument("--task", required=True, action="append", help="a task of data.tasks; repeat the option for "
                   "more tasks (evaluated in the order given)")
    s.add_argument("--train-task", default=None, help="the task the checkpoint's run trained on (per-task runs; "
                   "recorded in the cells)")
    s.add_argument("--out", required=True, help="the checkpoint's eval directory: cells go to OUT/<task>/<cell>")
    s = cmd("report", "aggregate eval cells into the report", "Aggregate eval cells into summary.csv, report.md, "
            "item_scores.csv.gz, failures.csv and plots/*.png (and the reproduction check against published_dir).")
    s.add_argument("--cells", required=True, nargs="+", help="cell directories or metrics.json files (searched "
                   "recursively)")
    s.add_argument("--out", help="output directory (default: the profile's results_dir)")
    s.add_argument("--runs", help="the runs' directory for the training curves (default: <work_dir>/runs)")
    s.add_argument("--headroom", help="the base model's headroom JSON (agrpo headroom), reported first")
    s.add_argument("--sweep", help="a learning-rate sweep's summary directory to include (default: "
                   "sweep.report_dir; sweep.md and sweep.png from agrpo sweep-report)")
    s.add_argument("--data", help="the test examples, DATA/<task>/test.jsonl, for the failure categories of "
                   "tasks that read a trace (default: <work_dir>/data)")
    s.add_argument("--partial", action="store_true", help="report the cells there are when some of the profile's "
                   "runs (methods x rl.seeds) have none, saying which at the top of report.md (without it: an error); "
                   "a run cut short enters the training curves from its train_log.live.jsonl, named as unfinished")
    s = cmd("headroom", "what a model leaves RL to learn, per task", "Accuracy at the eval sampler on the RL "
            "prompts and the test items, and each method's rollout reward, pass@G and zero-variance groups "
            "(agrpo/headroom.py); writes --out as JSON and prints a table.")
    s.add_argument("--model", required=True, help="the model directory (the base model, before RL)")
    s.add_argument("--out", required=True, help="JSON file to write")
    s.add_argument("--items", type=int, default=128, help="RL prompts and test items per task (default 128)")
    s.add_argument("--methods", nargs="+", default=None, help="methods whose rollout samplers to use (default: all)")
    s = cmd("sweep-run", "one run of the learning-rate sweep", "Train one method at one learning rate of "
            "sweep.learning_rates for sweep.iterations rollout batches (agrpo/sweep.py); writes its log.")
    s.add_argument("--method", required=True, help="a method of sweep.learning_rates")
    s.add_argument("--lr", type=float, required=True, help="one of the method's sweep.learning_rates")
    s.add_argument("--seed", type=int, required=True, help="one of sweep.seeds")
    s.add_argument("--base", required=True, help="the model the run starts from (the method's usual start)")
    s.add_argument("--out", required=True, help="run directory to write")
    s = cmd("sweep-report", "summarise the learning-rate sweep", "Per method and rate: reward at the start and "
            "end of the sweep runs, the chosen rate, and whether the profile uses it: sweep.md, sweep.csv, "
            "sweep_curves.csv, sweep.png.")
    s.add_argument("--runs", required=True, help="the sweep runs' directory (<work_dir>/sweep)")
    s.add_argument("--out", required=True, help="output directory")
    s = cmd("validate", "check a config file", "Load and validate a profile; exit 2 naming the key on errors.")
    s = sub.add_parser("score", help="re-score generations with the grid's judges and rewards",
                       description="Re-score a generations file (JSONL rows: the task's fields plus `completion`), "
                       "or an eval cell's own generations.jsonl with --cell (its examples are found by id in the "
                       "task's test file), with the judges and rewards the eval grid uses. Prints accuracy and n.")
    s.add_argument("task", nargs="?", help="gsm8k, gsm8k_platinum, math500, countdown, sudoku, sudoku_spg")
    s.add_argument("file", nargs="?", help="JSONL rows: the task's fields plus `completion`")
    s.add_argument("--cell", help="an eval cell directory (metrics.json + generations.jsonl) instead of TASK FILE")
    s.add_argument("--examples", help="with --cell: the test examples (default: <work_dir>/data/<task>/test.jsonl "
                   "above the cell)")
    s.add_argument("--protocol", default="d1", choices=["d1", "agrpo"], help="protocol of TASK's judge and reward (default: d1)")
    s.add_argument("--out", help="write the rows with correct, reward, score, parsed, reason here (JSONL)")
    s.add_argument("--skip-bad", action="store_true", help="skip malformed rows instead of stopping")
    sub.add_parser("lm-eval", help="lm-eval's CLI with our model `agrpo` and task YAMLs (all flags pass through)",
                   description="`agrpo lm-eval --model agrpo --model_args pretrained=DIR,... --tasks agrpo_tiny_arith "
                   "...`: lm-eval's own command line (needs the lmeval extra), with model `agrpo` registered, our "
                   "task directory on --include_path and --device defaulting to cpu without a GPU.")
    sub.add_parser("config-schema", help="print the JSON schema of profile configs",
                   description="Print the JSON schema of profile configs (workflow/schemas/config.schema.json).")
    sub.add_parser("config-docs", help="print the configuration key reference (markdown)",
                   description="Print the key reference (docs/config.md), generated from agrpo/config.py.")
    return p


def _require_profile_tasks(cfg, config_path, tasks: list[str]) -> None:
    """Each ``--task`` given must be one of the profile's data.tasks (ConfigError naming the first that is not)."""
    unknown = [t for t in tasks if t not in cfg.data.tasks]
    if unknown:
        raise ConfigError(f"--task {unknown[0]!r} is not in data.tasks of {config_path} ({', '.join(cfg.data.tasks)})")


def run(args) -> int:
    if args.command == "config-schema":
        print(json.dumps(json_schema(), indent=1))
        return 0
    if args.command == "config-docs":
        print(config_docs(), end="")
        return 0
    if args.command == "score":
        from agrpo.score import score_cell, score_file

        if args.cell:
            res = score_cell(args.cell, args.examples, args.out)
            print(f"accuracy={res['accuracy']:.6f} n={res['n']} (recorded in metrics.json: {res['recorded']:.6f})")
            return 0
        if not (args.task and args.file):
            raise ConfigError("score: give TASK FILE, or --cell DIR")
        res = score_file(args.task, args.file, args.protocol, args.out, args.skip_bad)
        if res["skipped_lines"]:
            print(f"skipped {len(res['skipped_lines'])} malformed rows: lines {res['skipped_lines'][:20]}")
        print(f"accuracy={res['accuracy']:.6f} n={res['n']}")
        return 0
    cfg = load_config(args.config)
    progress = not args.quiet
    if args.command == "validate":
        print(f"{args.config}: ok")
    elif args.command == "data":
        from agrpo.data import write_task_data

        _require_profile_tasks(cfg, args.config, [args.task])
        write_task_data(cfg, args.task)
    elif args.command == "pretrain":
        from agrpo.pretrain import pretrain

        print(json.dumps(pretrain(cfg, args.out, progress)))
    elif args.command == "base":
        if cfg.model.type == "llada":
            from agrpo.model.llada import link_checkpoint

            print(f"base model linked at {link_checkpoint(cfg.model.name_or_path, args.out)}")
        else:
            from agrpo.pretrain import pretrain

            print(json.dumps(pretrain(cfg, args.out, progress)))
    elif args.command == "sft":
        from agrpo.sft import sft

        if args.method not in cfg.methods:
            raise ConfigError(f"--method {args.method!r} is not in methods of {args.config} ({', '.join(cfg.methods)})")
        print(json.dumps(sft(cfg, args.method, args.base, args.out, progress)))
    elif args.command == "train":
        from agrpo.rl.trainer import train

        if args.method not in cfg.methods:
            raise ConfigError(f"--method {args.method!r} is not in methods of {args.config} ({', '.join(cfg.methods)})")
        if cfg.rl.runs == "per_task" and args.task is None:
            raise ConfigError(f"{args.config}: rl.runs is per_task: give the run's training task with --task")
        if cfg.rl.runs == "mixed" and args.task is not None:
            raise ConfigError(f"--task {args.task}: {args.config} has rl.runs mixed (one run on all data.tasks)")
        print(json.dumps(train(cfg, args.method, args.seed, args.base, args.out, progress, task=args.task)))
    elif args.command == "eval":
        from agrpo.evaluate import evaluate_tasks

        _require_profile_tasks(cfg, args.config, args.task)
        cells = evaluate_tasks(cfg, args.model, args.method, args.run_seed, args.train_step, args.task, args.out,
                               progress, train_task=args.train_task)
        for cell in cells:
            m = json.loads((cell / "metrics.json").read_text())
            print(f"{cell.parent.name}/{cell.name}: accuracy {m['accuracy']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}] "
                  f"({m['n_correct']}/{m['n']} correct) nfe {m['nfe']:g}")
        print(f"{len(cells)} cells complete under {args.out}")
    elif args.command == "headroom":
        from agrpo.headroom import write_headroom

        unknown = [m for m in args.methods or [] if m not in cfg.methods]
        if unknown:
            raise ConfigError(f"--methods: {', '.join(unknown)} not in methods of {args.config} ({', '.join(cfg.methods)})")
        if args.items < 1:
            raise ConfigError(f"--items: must be >= 1, got {args.items}")
        write_headroom(cfg, args.model, args.out, args.items, args.methods)
    elif args.command == "sweep-run":
        from agrpo.sweep import sweep_run

        rates = cfg.sweep.learning_rates.get(args.method)
        if rates is None:
            raise ConfigError(f"--method {args.method!r} is not in sweep.learning_rates of {args.config}")
        if args.lr not in rates:
            raise ConfigError(f"--lr {args.lr:g} is not in sweep.learning_rates.{args.method} ({rates})")
        print(json.dumps(sweep_run(cfg, args.method, args.lr, args.seed, args.base, args.out, progress)))
    elif args.command == "sweep-report":
        from agrpo.sweep import write_sweep_report

        print(write_sweep_report(cfg, Path(args.runs), Path(args.out)).to_string(index=False))
    elif args.command == "report":
        from agrpo.report import (IncompleteCellError, check_complete, load_cells, load_sweep_summary, missing_runs,
                                  write_report)
        from agrpo.resolve import run_methods

        where = args.sweep or cfg.sweep.report_dir
        sweep = load_sweep_summary(where, "--sweep" if args.sweep else "sweep.report_dir") if where else None
        df = load_cells([Path(c) for c in args.cells])
        check_complete(df)
        missing = missing_runs(df, run_methods(cfg), cfg.rl.seeds)
        if missing and not args.partial:
            raise IncompleteCellError(f"no cells for the runs {', '.join(missing)} (the run_methods x rl.seeds of "
                                      f"{args.config}): add the missing parts' cells, or pass --partial")
        out = Path(args.out or cfg.results_dir)
        runs = Path(args.runs) if args.runs else Path(cfg.work_dir) / "runs"
        write_report(df, out, Path(cfg.reference_csv) if cfg.reference_csv else None, cfg.profile,
                     published_dir=Path(cfg.published_dir) if cfg.published_dir else None,
                     runs_dir=runs if runs.is_dir() else None,
                     headroom=json.loads(Path(args.headroom).read_text()) if args.headroom else None,
                     sweep=sweep, claims_divisor=cfg.eval.claims_steps_divisor, missing_runs=missing,
                     data_dir=Path(args.data) if args.data else Path(cfg.work_dir) / "data", live_logs=args.partial)
        print(f"report written to {out}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lm-eval"]:  # every lm-eval flag passes through untouched
        try:
            from agrpo.lmeval import lm_eval_cli
        except ImportError as e:
            print(f"agrpo: error: lm-eval is not installed (pip install -e '.[lmeval]'): {e}", file=sys.stderr)
            return 1
        return lm_eval_cli(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except ConfigError as e:
        print(f"agrpo: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"agrpo: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
