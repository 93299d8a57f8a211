"""``agrpo`` command line: one subcommand per pipeline stage (the Snakemake rules call these).

    agrpo data      --config C --task T            write the task's train/test JSONL files
    agrpo pretrain  --config C --out DIR           train the base dLLM from scratch
    agrpo sft       --config C --method M --base DIR --out DIR   masked SFT before RL (d1)
    agrpo train     --config C --method M --seed S --base DIR --out DIR
    agrpo eval      --config C --model DIR --method M --run-seed S --train-step N --task T --out DIR
    agrpo report    --config C --cells DIR [--out DIR]
    agrpo validate  --config C                     check a config file (exit 2 on errors)
    agrpo score     TASK FILE [--protocol d1|agrpo] [--out F] [--skip-bad]   re-score generations
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
    p = argparse.ArgumentParser(prog="agrpo", description="RL for masked diffusion LMs: AGRPO vs diffu-GRPO/d1")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--config", default="workflow/config/tiny.yaml", help="profile YAML")
        s.add_argument("--quiet", action="store_true", help="no progress bars")
        return s

    s = cmd("data", "write a task's data files")
    s.add_argument("--task", required=True)
    s = cmd("pretrain", "train the base model")
    s.add_argument("--out", required=True)
    s = cmd("base", "provide the base model: pretrain the tiny model, or link LLaDA's checkpoint (model.name_or_path)")
    s.add_argument("--out", required=True)
    s = cmd("sft", "masked SFT of the base model for one method (d1's first stage)")
    s.add_argument("--method", required=True)
    s.add_argument("--base", required=True)
    s.add_argument("--out", required=True)
    s = cmd("train", "RL-train one method from the base model")
    s.add_argument("--method", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--base", required=True)
    s.add_argument("--out", required=True)
    s = cmd("eval", "evaluate one checkpoint on one task over the steps grid")
    s.add_argument("--model", required=True)
    s.add_argument("--method", required=True)
    s.add_argument("--run-seed", type=int, required=True)
    s.add_argument("--train-step", type=int, required=True)
    s.add_argument("--task", required=True)
    s.add_argument("--out", required=True)
    s = cmd("report", "aggregate eval cells into summary.csv, report.md and plots")
    s.add_argument("--cells", required=True, nargs="+", help="cell directories or metrics.json files")
    s.add_argument("--out", help="output directory (default: the profile's results_dir)")
    cmd("validate", "validate a config file")
    s = sub.add_parser("score", help="re-score a generations file (JSONL) with the eval grid's judges and rewards")
    s.add_argument("task", help="gsm8k, gsm8k_platinum, math500, countdown, sudoku, sudoku_spg")
    s.add_argument("file", help="JSONL rows: the task's fields plus `completion`")
    s.add_argument("--protocol", default="d1", choices=["d1", "agrpo"])
    s.add_argument("--out", help="write the rows with correct, reward, score, parsed, reason here (JSONL)")
    s.add_argument("--skip-bad", action="store_true", help="skip malformed rows instead of stopping")
    sub.add_parser("config-schema", help="print the JSON schema of profile configs")
    sub.add_parser("config-docs", help="print the configuration key reference (markdown)")
    return p


def run(args) -> int:
    if args.command == "config-schema":
        print(json.dumps(json_schema(), indent=1))
        return 0
    if args.command == "config-docs":
        print(config_docs(), end="")
        return 0
    if args.command == "score":
        from agrpo.score import score_file

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

        if args.task not in cfg.data.tasks:
            raise ConfigError(f"--task {args.task!r} is not in data.tasks of {args.config}")
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
        print(json.dumps(train(cfg, args.method, args.seed, args.base, args.out, progress)))
    elif args.command == "eval":
        from agrpo.evaluate import evaluate_checkpoint

        cells = evaluate_checkpoint(cfg, args.model, args.method, args.run_seed, args.train_step, args.task, args.out, progress)
        print(f"{len(cells)} cells complete under {args.out}")
    elif args.command == "report":
        from agrpo.report import check_complete, load_cells, write_report

        df = load_cells([Path(c) for c in args.cells])
        check_complete(df)
        out = Path(args.out or cfg.results_dir)
        write_report(df, out, Path(cfg.reference_csv) if cfg.reference_csv else None, cfg.profile)
        print(f"report written to {out}")
    return 0


def main(argv=None) -> int:
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
