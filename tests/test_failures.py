"""Failure categories: each task's diagnose on hand-made completions, and the report's "Where answers go wrong"
(shares, paired CIs, failures.csv) on cells of real examples with known categories."""

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from agrpo.report import check_complete, load_cells, write_report
from agrpo.tasks import get_task
from agrpo.tasks.base import Task, reads_trace, reason_category
from agrpo.tasks.tiny_arith import TinyArith
from agrpo.tasks.tiny_countdown import TinyCountdown
from agrpo.tasks.tiny_sudoku import TinySudoku

from test_report import write_cell

ARITH = {"id": "5|gets3|eats2|buys4", "start": 5, "steps": [["gets", "+", 3], ["eats", "-", 2], ["buys", "+", 4]],
         "answer": 10}


@pytest.mark.parametrize("completion, category", [
    ("5+3=8 8-2=6 6+4=10<answer>10</answer>", ""),
    ("5+3=9 9-2=7 7+4=11<answer>11</answer>", "arithmetic slip"),
    ("5+3=8 9-2=7 7+4=11<answer>11</answer>", "wrong value carried"),
    ("5+3=8 8-3=5 5+4=9<answer>9</answer>", "trace misreads a step"),      # another number than the prompt's
    ("5+3=8 8+2=10 10+4=14<answer>14</answer>", "trace misreads a step"),  # another operation
    ("5+3=8 8-2=6 6+4=10 10+1=11<answer>11</answer>", "trace misreads a step"),  # a step too many
    ("5+3=8 8-2=6<answer>6</answer>", "trace skips a step"),
    ("5+3=8 8-2=6 6+4=10<answer>11</answer>", "answer ≠ trace"),
    ("<answer>7</answer>", "trace skips a step"),
    ("5+3=8 8-2=6 6+4=10", "no answer block"),
    ("5+3=8<answer>ten</answer>", "answer not an integer"),
    ("5+3=9 9-2=7 7+4=11<answer>10</answer>", ""),  # right answer, wrong trace: judged right, as the metric is
])
def test_tiny_arith_diagnose_names_the_first_error_along_the_trace(completion, category):
    assert TinyArith(min_steps=3, max_steps=3).diagnose(completion, ARITH) == category


SUDOKU = {"id": "0000042100000042", "puzzle": "0000042100000042", "solution": "2134342142131342"}


def _fills(grid: str) -> str:
    return " ".join(f"{'abcdefghijklmnop'[i]}{grid[i]}" for i, p in enumerate(SUDOKU["puzzle"]) if p == "0")


@pytest.mark.parametrize("completion, category", [
    (_fills(SUDOKU["solution"]) + "<answer>2134342142131342</answer>", ""),
    (_fills(SUDOKU["solution"]) + "<answer>2134342142131341</answer>", "a given cell changed"),
    (_fills(SUDOKU["solution"]) + "<answer>1234342142131342</answer>", "answer ≠ fills"),
    ("a1 " + _fills(SUDOKU["solution"])[3:] + "<answer>1134342142131342</answer>", "a fill breaks a rule"),  # b1
    ("f4 " + _fills(SUDOKU["solution"]) + "<answer>1234342142131342</answer>", "fills a filled cell"),  # a given
    ("a2 a2 <answer>1234342142131342</answer>", "fills a filled cell"),  # the same blank twice
    ("a2 b1<answer>2114342142131342</answer>", "fills skip a blank"),
    ("a2 b1", "no answer block"),
])
def test_tiny_sudoku_diagnose_names_the_first_error_along_the_fills(completion, category):
    assert TinySudoku(min_blanks=11, max_blanks=11).diagnose(completion, SUDOKU) == category


def test_diagnose_is_empty_exactly_when_the_judge_says_right():
    """On every test example's reference completion and on random corruptions of it, for every tiny task."""
    rng = random.Random(0)
    for task in (TinyArith(min_steps=2, max_steps=4), TinyCountdown(), TinySudoku(min_blanks=6, max_blanks=10)):
        for ex in task.examples("test", 60, seed=1):
            ref = task.reference_completion(ex)
            assert task.diagnose(ref, ex) == ""
            for _ in range(5):
                chars = list(ref)
                for _ in range(rng.randint(1, 3)):
                    chars[rng.randrange(len(chars))] = rng.choice("0123456789+-=<> ab")
                text = "".join(chars)
                category = task.diagnose(text, ex)
                assert (category == "") == task.judge(text, ex).correct, (task.name, text, category)


def test_judge_reasons_as_categories():
    assert reason_category("3/5 blank cells right") == reason_category("1/5 blank cells right") \
        == "N/N blank cells right"
    assert reason_category("parse error: unexpected '+'") == "parse error"
    assert reason_category("") == "wrong"
    assert reads_trace(TinyArith) and reads_trace(TinySudoku()) and not reads_trace(TinyCountdown)
    assert not reads_trace(get_task("gsm8k", protocol="d1")) and Task.diagnose is TinyCountdown.diagnose
    assert TinyCountdown().diagnose("1+2=3 3+4=7<answer>1+2+5</answer>", {"numbers": [1, 2, 4], "target": 7}) \
        == "wrong numbers"


# ------------------------------------------------------------------------------------------------ the report

N = 20


def _slip(task: TinyArith, ex: dict) -> str:
    """The reference trace with its first step's result one too high, carried on: an arithmetic slip."""
    value, trace = ex["start"], []
    for i, (_, op, n) in enumerate(ex["steps"]):
        new = (value + n if op == "+" else value - n) + (1 if i == 0 else 0)
        trace.append(f"{value}{op}{n}={new}")
        value = new
    return " ".join(trace) + f"<answer>{value}</answer>"


def _arith_cell(root, examples, method, run_seed, right: int, train_step: int):
    """A tiny_arith cell whose first `right` items are reference completions and the rest arithmetic slips."""
    task = TinyArith()
    f = write_cell(root, method, run_seed, train_step, "tiny_arith", 16, n=N, n_expected=N, k=right)
    rows = [{"id": ex["id"], "prompt": task.prompt(ex), "completion": task.reference_completion(ex) if i < right
             else _slip(task, ex), "correct": i < right, "score": float(i < right), "reason": ""}
            for i, ex in enumerate(examples)]
    f.with_name("generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def _countdown_cell(root, method, run_seed, wrong_numbers: int, train_step: int):
    """A tiny_countdown cell (recorded reasons only): `wrong_numbers` items 'wrong numbers', the rest right."""
    f = write_cell(root, method, run_seed, train_step, "tiny_countdown", 16, n=N, n_expected=N,
                   k=N - wrong_numbers)
    rows = [{"id": f"c{i:02d}", "completion": "", "correct": i >= wrong_numbers, "score": float(i >= wrong_numbers),
             "reason": "wrong numbers" if i < wrong_numbers else ""} for i in range(N)]
    f.with_name("generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def grid(tmp_path):
    """base: 10 of 20 arithmetic items right (the rest slips); agrpo, two run seeds: 15 right at its last step
    (and 12 at an earlier one, which the section must not use); countdown by recorded reasons."""
    examples = TinyArith().examples("test", N, seed=0)
    data = tmp_path / "data"
    (data / "tiny_arith").mkdir(parents=True)
    (data / "tiny_arith" / "test.jsonl").write_text("".join(json.dumps(ex) + "\n" for ex in examples))
    cells = tmp_path / "cells"
    _arith_cell(cells, examples, "base", 0, 10, 0)
    _countdown_cell(cells, "base", 0, 8, 0)
    for seed in (0, 1):
        _arith_cell(cells, examples, "agrpo", seed, 12, 20)
        _arith_cell(cells, examples, "agrpo", seed, 15, 40)
        _countdown_cell(cells, "agrpo", seed, 8, 20)
        _countdown_cell(cells, "agrpo", seed, 8, 40)
    return tmp_path, cells, data


def _report(cells: Path, out: Path, data: Path | None) -> str:
    df = load_cells([cells])
    check_complete(df)
    write_report(df, out, None, "tiny", data_dir=data)
    return (out / "report.md").read_text()


def test_report_counts_failure_categories_with_paired_cis(grid):
    tmp, cells, data = grid
    md = _report(cells, tmp / "out", data)
    section = md.split("## Where answers go wrong")[1].split("## Table 5")[0]
    assert "| 16 steps | base | 1 | 50.0 | 50.0 |" in section
    assert "| 16 steps | agrpo | 2 | 75.0 | 25.0 |" in section
    # agrpo − base: dᵢ = +1 on items 10–14 of 20, 0 elsewhere: d̄ = 0.25,
    # s_d² = (5·0.75² + 15·0.25²)/19 = 3.75/19, half = 1.96 · √(3.75/19)/√20 = 0.1947 → [+5.5, +44.5]; slips mirror it
    assert "- agrpo, 16 steps: right +25.0 [+5.5, +44.5]; arithmetic slip -25.0 [-44.5, -5.5]" in section
    assert "| 16 steps | agrpo | 2 | 60.0 | 40.0 |" in section  # countdown, from the recorded reasons
    assert "- no detectable change: agrpo, 16 steps" in section.split("**tiny_countdown**")[1]
    csv = pd.read_csv(tmp / "out" / "failures.csv")
    last = csv[(csv["task"] == "tiny_arith") & (csv["method"] == "agrpo")]
    assert set(last["train_step"]) == {40}  # the last checkpoint only
    assert last.set_index(["run_seed", "category"])["items"].to_dict() == {
        (0, "arithmetic slip"): 5, (0, "right"): 15, (1, "arithmetic slip"): 5, (1, "right"): 15}
    assert csv.groupby(["method", "run_seed", "task"])["share"].sum().round(12).eq(1.0).all()


def test_report_names_missing_examples_and_still_counts_recorded_reasons(grid):
    tmp, cells, _ = grid
    md = _report(cells, tmp / "out", tmp / "nowhere")
    section = md.split("## Where answers go wrong")[1].split("## Table 5")[0]
    assert f"missing: {tmp / 'nowhere' / 'tiny_arith' / 'test.jsonl'} (`agrpo data` writes them)" in section
    assert "**tiny_countdown**" in section and "**tiny_arith**" not in section
    assert "## Where answers go wrong" not in _report(cells, tmp / "out2", None)  # no data_dir: no section
    next(cells.rglob("agrpo/seed1/step40/tiny_countdown/*/generations.jsonl")).unlink()
    section = _report(cells, tmp / "out3", tmp / "nowhere").split("## Where answers go wrong")[1]
    assert "Left out: 1 of these cells have no `generations.jsonl`." in section
    assert "| 16 steps | agrpo | 1 | 60.0 | 40.0 |" in section  # countdown from run seed 0 alone


def test_report_refuses_a_verdict_that_disagrees_with_the_recorded_one(grid):
    tmp, cells, data = grid
    gens = next(cells.rglob("agrpo/seed1/step40/tiny_arith/*/generations.jsonl"))
    rows = [json.loads(line) for line in gens.read_text().splitlines()]
    rows[2]["completion"] = _slip(TinyArith(), TinyArith().examples("test", N, seed=0)[2])  # recorded right
    gens.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=rf"{gens}:3: judged wrong now but right when the cell was written"):
        _report(cells, tmp / "out", data)
    ex = (data / "tiny_arith" / "test.jsonl").read_text().splitlines()
    (data / "tiny_arith" / "test.jsonl").write_text("\n".join(ex[1:]) + "\n")  # the first item's example gone
    with pytest.raises(ValueError, match=r"generations.jsonl:1: item id .* is not among the test examples"):
        _report(cells, tmp / "out", data)
