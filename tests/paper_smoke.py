"""Inputs of the paper-profile smoke pipeline (tests/test_paper_smoke.py): the four real tasks as local files in
their hub formats, an s1K-format SFT file, a random few-million-parameter LLaDA checkpoint with a BPE tokenizer
trained here, and two smoke profiles that extend workflow/config/paper.yaml and paper_d1.yaml.

Test splits are the first rows of the real test sets in ../shared/data. Training splits are real rows where the
protocol's filters leave some (GSM8K train; MATH-500 problems beyond the test rows, in MATH's format), and rows
made here where they would not: d1 holds out the last 500 rows of its shuffled Countdown and Sudoku training
files, so those files need more than 500 rows (Countdown: 3-number problems with a reachable target; Sudoku: the
other 4×4 test puzzles and digit-relabelled copies of them)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
N_TEST, N_TRAIN = 4, 8


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _csv(path: Path, rows: list[dict]) -> str:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return str(path)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_sources(d: Path) -> dict[str, dict[str, str]]:
    """The task files; returns ``data.sources`` per protocol (``agrpo``, ``d1``)."""
    d.mkdir(parents=True, exist_ok=True)
    gsm_test = _jsonl(d / "gsm8k_test.jsonl", _read_jsonl(SHARED / "gsm8k/test.jsonl")[:N_TEST])
    gsm_train = _jsonl(d / "gsm8k_train.jsonl", _read_jsonl(SHARED / "gsm8k/train.jsonl")[:N_TRAIN])
    math = _read_jsonl(SHARED / "math500/test.jsonl")
    math_test = _jsonl(d / "math500_test.jsonl", math[:N_TEST])
    math_train = _jsonl(d / "math_train.jsonl", [  # MATH's format: problem, level, type, solution
        {"problem": r["problem"], "level": "Level 2", "type": r["subject"], "solution": r["solution"]}
        for r in math[N_TEST:N_TEST + N_TRAIN]])
    cd_test = _jsonl(d / "countdown_cd3_test.jsonl", _read_jsonl(SHARED / "countdown/cd3_test.jsonl")[:N_TEST])
    rng = random.Random(0)
    cd_rows = []
    for _ in range(520):  # Countdown-Tasks-3to4's format: target, nums
        nums = [rng.randint(1, 60) for _ in range(3)]
        cd_rows.append({"target": nums[0] + nums[1] - nums[2] if nums[0] + nums[1] > nums[2] else sum(nums),
                        "nums": nums})
    cd_train = _jsonl(d / "countdown_tasks_3to4.jsonl", cd_rows)
    with (SHARED / "sudoku/4x4_test.csv").open() as f:
        puzzles = list(csv.DictReader(f))
    relabel = str.maketrans("1234", "2341")
    extra = [{"Puzzle": r["Puzzle"].translate(relabel), "Solution": r["Solution"].translate(relabel)}
             for r in puzzles[N_TEST:N_TEST + 40]]
    sudoku_test = _csv(d / "4x4_test_sudoku.csv", puzzles[:N_TEST])
    sudoku_train = _csv(d / "4x4_sudoku_unique_puzzles.csv", puzzles[N_TEST:] + extra)
    spg_test = _csv(d / "test_sudoku_split_new.csv", puzzles[:N_TEST])
    spg_train = _csv(d / "train_sudoku_split_new.csv", puzzles[N_TEST:N_TEST + N_TRAIN])
    agrpo = {"gsm8k_platinum/test": gsm_test, "gsm8k_platinum/train": gsm_train, "math500/test": math_test,
             "math500/train": math_train, "countdown/test": cd_test, "countdown/train": cd_train,
             "sudoku_spg/test": spg_test, "sudoku_spg/train": spg_train}
    d1 = {"gsm8k/test": gsm_test, "gsm8k/train": gsm_train, "math500/test": math_test, "math500/train": math_train,
          "countdown/test": cd_test, "countdown/train": cd_train, "sudoku/test": sudoku_test,
          "sudoku/train": sudoku_train}
    return {"agrpo": agrpo, "d1": d1}


def write_s1k(path: Path) -> str:
    """s1K's format (question, thinking_trajectories, attempt), from GSM8K rows."""
    rows = [{"question": r["question"], "thinking_trajectories": [r["answer"].split("####")[0].strip()],
             "attempt": r["answer"].split("####")[-1].strip()} for r in _read_jsonl(SHARED / "gsm8k/train.jsonl")[:8]]
    return _jsonl(path, rows)


def tokenizer_texts(sources: dict[str, dict[str, str]], s1k: str) -> list[str]:
    """What the smoke tokenizers are trained on: every task's test prompts under both protocols, and the SFT
    file's rows."""
    from agrpo.tasks import get_task

    texts = []
    for protocol, srcs in sources.items():
        for key, src in srcs.items():
            name, split = key.split("/")
            if split != "test":
                continue
            task = get_task(name, protocol=protocol, source=src)
            texts += [m["content"] for ex in task.examples("test") for m in task.messages(ex)]
    return texts + [json.dumps(r) for r in _read_jsonl(Path(s1k))]


def write_checkpoint(d: Path, sources: dict[str, dict[str, str]], s1k: str) -> Path:
    """A random LLaDA (d 64, 2 layers) whose BPE tokenizer is trained on ``tokenizer_texts``."""
    from agrpo.model.llada_tokenizer import write_random_llada

    return write_random_llada(d, tokenizer_texts(sources, s1k), vocab_size=800)


def smoke_profiles(tmp: Path) -> dict[str, Path]:
    """Both smoke profiles in ``tmp``: paper.yaml (AGRPO's protocol: AGRPO and diffu-GRPO) and paper_d1.yaml
    (d1's protocol: d1 with its SFT, and wd1), each method trained on two of the four tasks so that every task is
    trained under each protocol, 1 RL iteration per run through ``accelerate launch`` (DDP config, one CPU
    process), every checkpoint evaluated on its task at two lengths and two step counts."""
    sources = write_sources(tmp / "data")
    s1k = write_s1k(tmp / "data" / "s1k.jsonl")
    model = write_checkpoint(tmp / "llada", sources, s1k)
    small_lora = {"r": 4, "alpha": 8}
    common = {
        "device": "cpu", "threads": 1,
        "model": {"name_or_path": str(model), "dtype": "float32", "activation_checkpointing": False},
        "data": {"train_size": N_TRAIN, "test_size": N_TEST},
        "rl": {"iterations": 1, "checkpoint_every": 1, "prompts_per_batch": 2, "group_size": 2,
               "rollout": {"gen_length": 16, "block_length": 8, "steps": 4}},
        "eval": {"gen_lengths": [32, 64], "block_length": 32, "steps_divisors": [2, 8], "batch_size": 4,
                 "compile": False},
        "launch": {"gpus": 1, "strategy": "ddp", "mixed_precision": "no", "eval_gpus": 0},
    }
    d1_method = {"inner_iterations": 2, "group_size": 2, "prompts_per_batch": 2, "load_in_4bit": False,
                 "lora": small_lora, "rollout": {"gen_length": 16, "block_length": 8, "steps": 4}}
    agrpo_profile = {
        **common, "profile": "paper_smoke", "extends": str(ROOT / "workflow/config/paper.yaml"),
        "work_dir": str(tmp / "agrpo/work"), "results_dir": str(tmp / "agrpo/results"),
        "data": {**common["data"], "sources": sources["agrpo"]},
        "methods": {
            "agrpo": {"objective_args": {"mc_samples": 2}, "lora": small_lora,
                      "train_tasks": ["gsm8k_platinum", "countdown"]},
            "diffu_grpo": {**d1_method, "train_tasks": ["math500", "sudoku_spg"],
                           "per_task": {"countdown": None, "sudoku_spg": {"inner_iterations": 1}}},
            "d1": None, "wd1": None},
    }
    d1_profile = {
        **common, "profile": "paper_d1_smoke", "extends": str(ROOT / "workflow/config/paper_d1.yaml"),
        "work_dir": str(tmp / "d1/work"), "results_dir": str(tmp / "d1/results"),
        "data": {**common["data"], "sources": {**{k: None for k in sources["agrpo"] if k.startswith("sudoku_spg")},
                                               **sources["d1"]}},
        "methods": {
            "agrpo": None, "diffu_grpo": None,
            "d1": {**d1_method, "train_tasks": ["gsm8k", "sudoku"],
                   "per_task": {"countdown": None, "sudoku": {"inner_iterations": 1}},
                   "sft": {"steps": 2, "dataset": f"s1k:{s1k}", "batch_size": 2, "completion_length": 48,
                           "lora": small_lora}},
            "wd1": {**d1_method, "train_tasks": ["math500", "countdown"],
                    "per_task": {"sudoku": None, "countdown": {"inner_iterations": 1}}}},
    }
    out = {}
    for name, profile in (("agrpo", agrpo_profile), ("d1", d1_profile)):
        out[name] = tmp / f"{profile['profile']}.yaml"
        out[name].write_text(yaml.safe_dump(profile, sort_keys=False))
    return out
