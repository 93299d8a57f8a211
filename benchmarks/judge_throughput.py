"""Judging throughput: items per second of each real task's judge, per protocol, on one CPU core.

Target: ≥ 1,000 items/s for GSM8K, Countdown and Sudoku; MATH-500 (math-verify under the AGRPO protocol, in a
worker process with a hard timeout) is reported. Items are the real test rows (``--data``, default
../shared/data) with synthetic completions in the protocol's format (half of them right for GSM8K, MATH-500 and
Sudoku), so both branches of the judges run. The figure is items / wall seconds over all items after one warm-up pass.

    python benchmarks/judge_throughput.py [--data ../shared/data]

Writes benchmarks/results/judge_throughput.json and the table between the markers in docs/tasks.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from agrpo.io import atomic_write_json, atomic_write_text
from agrpo.provenance import device_name, git_sha, versions
from agrpo.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- throughput-table:start -->", "<!-- throughput-table:end -->"
FILES = {"gsm8k": "gsm8k/test.jsonl", "math500": "math500/test.jsonl", "countdown": "countdown/cd3_test.jsonl",
         "sudoku": "sudoku/4x4_test.csv"}


def completion(task: str, protocol: str, ex: dict, right: bool) -> str:
    if task == "gsm8k":
        ans = ex["answer"].split("####")[1].strip() if right else "-1"
        body = f"\\boxed{{{ans}}}"
    elif task == "math500":
        body = f"\\boxed{{{ex['answer'] if right else '0.123'}}}"
    elif task == "countdown":
        a, b, c = ex["numbers"]
        expr = f"{a} + {b} + {c}"
        body = f"\\boxed{{{expr}}}" if protocol == "d1" else f"{expr} = {ex['target']}"
    else:
        body = ex["solution"] if right else ex["puzzle"]
    tags = ("reasoning", "reasoning") if protocol == "d1" else ("think", "think")
    return f"<{tags[0]}>\nstep by step\n</{tags[1]}>\n<answer>\n{body}\n</answer>"


def measure(task_name: str, protocol: str, data: Path) -> dict:
    task = get_task(task_name, protocol=protocol, source=str(data / FILES[task_name]))
    examples = task.examples("test")
    items = [(completion(task_name, protocol, ex, i % 2 == 0), ex) for i, ex in enumerate(examples)]
    for text, ex in items[:20]:  # warm-up: imports, the math-verify worker, regex caches
        task.judge(text, ex)
    start = time.perf_counter()
    correct = sum(task.judge(text, ex).correct for text, ex in items)
    seconds = time.perf_counter() - start
    return {"task": task_name, "protocol": protocol, "items": len(items), "seconds": seconds,
            "items_per_s": len(items) / seconds, "correct": correct}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/judge_throughput.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs/tasks.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rows = [measure(t, p, Path(args.data)) for t in FILES for p in ("d1", "agrpo")]
    meta = {"device": device_name("cpu"), "git_sha": git_sha(), "versions": versions(), "cores": 1}
    atomic_write_json(args.out, {"meta": meta, "rows": rows})
    table = [f"Measured by `benchmarks/judge_throughput.py` ({meta['device']}, one core, commit {meta['git_sha']}); "
             "real test rows, completions in the protocol's format (half of them right for GSM8K, MATH-500 and Sudoku); target ≥ 1,000 items/s except MATH-500.", "",
             "| task | protocol | items | items/s | judged correct |", "|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['task']} | {r['protocol']} | {r['items']} | {r['items_per_s']:,.0f} | {r['correct']} |")
        print(table[-1])
    doc = Path(args.doc)
    text = doc.read_text()
    head, rest = text.split(START, 1)
    atomic_write_text(doc, f"{head}{START}\n" + "\n".join(table) + f"\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
