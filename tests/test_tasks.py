import time

import pytest

from agrpo.model.tokenizer import CharTokenizer
from agrpo.tasks import TASKS, get_task

TINY = sorted(n for n in TASKS if n.startswith("tiny_"))  # the synthetic generators (real tasks: test_real_tasks.py)
from agrpo.tasks.base import split_of
from agrpo.tasks.tiny_countdown import evaluate_expression
from agrpo.tasks.tiny_sudoku import all_grids, completions

TOK = CharTokenizer()
# (task name, knobs): the defaults the tiny profile uses, then the harder settings the knobs allow
CONFIGS = [("tiny_arith", {}), ("tiny_countdown", {}), ("tiny_sudoku", {}),
           ("tiny_arith", {"max_number": 9, "ops": "+-*"}), ("tiny_countdown", {"max_number": 12, "ops": "+-*/"}),
           ("tiny_sudoku", {"min_blanks": 3, "max_blanks": 7})]
NASTY = ["", "_____", "<answer>", "</answer>", "</answer><answer>", "<answer></answer>", "no answer here 42",
         "<answer>" + "9" * 500 + "</answer>", "<answer>-" + "9" * 500 + "</answer>", "<answer>²</answer>",
         "<answer>((((((((((((1))))))))))))</answer>", "<answer>(1+2</answer>", "<answer>1+2)</answer>",
         "<answer>1/0+2+3</answer>", "<answer>1/(2-2)</answer>", "<answer>1</answer><answer>2</answer>",
         "\x00\xff<answer>\n</answer>", "<answer>" + "(" * 300 + "</answer>", "<answer>" + "1+" * 200 + "1</answer>",
         "<answer>__import__('os').system('true')</answer>", "<answer><answer>_+_</answer>", "<answer>1e999</answer>"]


def make(config):
    name, knobs = config
    return get_task(name, **knobs)


def split_n(task, split, n):
    """n, capped at what the split holds (the default countdown test split holds fewer than 200 problems)."""
    return min(n, task.split_size(split)) if hasattr(task, "split_size") else n


@pytest.fixture(params=CONFIGS, ids=lambda c: c[0] + "".join(f"-{k}={v}" for k, v in c[1].items()))
def task(request):
    return make(request.param)


def test_registry():
    assert sorted(TASKS) == ["countdown", "gsm8k", "gsm8k_platinum", "math500", "sudoku", "sudoku_spg",
                             "tiny_arith", "tiny_countdown", "tiny_sudoku"]
    assert all(get_task(name).name == name for name in TASKS)
    with pytest.raises(KeyError, match=r"unknown task 'gsm9k'.*gsm8k.*tiny_arith, tiny_countdown, tiny_sudoku"):
        get_task("gsm9k")


def test_reference_completions_are_correct(task):
    for split, seed in (("train", 0), ("test", 1)):
        exs = task.examples(split, split_n(task, split, 200), seed)
        assert len(exs) >= 130
        for ex in exs:
            c = task.reference_completion(ex)
            v = task.judge(c, ex)
            assert v.correct and v.score == 1.0 and v.reason == "", (ex, c, v)
            assert task.reward(c, ex) == pytest.approx(1.1)


def test_splits_disjoint_deterministic_and_distinct(task):
    train = task.examples("train", 300, 5)
    test = task.examples("test", 40, 5)
    ids_train, ids_test = [e["id"] for e in train], [e["id"] for e in test]
    assert len(set(ids_train)) == 300 and len(set(ids_test)) == 40
    assert not set(ids_train) & set(ids_test)
    assert {split_of(i) for i in ids_train} == {"train"} and {split_of(i) for i in ids_test} == {"test"}
    assert train == task.examples("train", 300, 5)
    assert train != task.examples("train", 300, 6)


def test_lengths_and_tokenizer_roundtrip(task):
    exs = task.examples("train", 200, 0) + task.examples("test", split_n(task, "test", 100), 0)
    for ex in exs:
        p, c = task.prompt(ex), task.reference_completion(ex)
        assert len(p) <= 32 and len(TOK.encode(c)) <= 38, (p, c)
        assert TOK.decode(TOK.encode(p)) == p and TOK.decode(TOK.encode(p + c)) == p + c


def test_judges_never_raise_on_garbage(task):
    ex = task.examples("test", 1, 0)[0]
    for text in NASTY:
        v = task.judge(text, ex)
        assert not v.correct and v.reason, (text, v)
        assert task.reward(text, ex) <= 0.1 + 1e-9 or task.name == "tiny_sudoku"


def test_small_splits_are_exact_and_fill_up_to_capacity():
    for name in ("tiny_arith", "tiny_countdown"):
        t = get_task(name)
        size = t.split_size("test")
        assert 100 <= size <= 600  # defaults: 518 arithmetic and 139 countdown test problems
        everything = t.examples("test", size, 3)  # the whole split, even though sampling alone rarely gets there
        assert len({e["id"] for e in everything}) == size
        assert all(t.judge(t.reference_completion(e), e).correct for e in everything)
        start = time.perf_counter()
        with pytest.raises(ValueError, match=f"asked for {size + 1} test problems but the split holds only {size}"):
            t.examples("test", size + 1, 0)
        assert time.perf_counter() - start < 0.5  # refused up front, not after a long search
    for name in TINY:
        with pytest.raises(ValueError, match="unknown split 'dev'"):
            get_task(name).examples("dev", 1, 0)


def test_default_data_unchanged():
    # the tiny profile's data (and results) depend on these generators: changing them must be deliberate
    first = {name: [e["id"] for e in get_task(name).examples("train", 2, 0)] for name in TINY}
    assert first == {"tiny_arith": ["4|eats1|finds5", "5|buys5|buys3"],
                     "tiny_countdown": ["[5, 7, 8]->10", "[2, 3, 5]->4"],
                     "tiny_sudoku": ["3012020003212104", "4003030201242031"]}


def test_knobs_are_validated_and_used():
    for name, knobs in [("tiny_arith", {"max_number": 10}), ("tiny_arith", {"ops": "+/"}),
                        ("tiny_countdown", {"ops": "+^"}), ("tiny_countdown", {"max_target": 100}),
                        ("tiny_sudoku", {"min_blanks": 5, "max_blanks": 4}), ("tiny_sudoku", {"max_blanks": 13}),
                        ("tiny_arith", {"min_steps": 3, "max_steps": 2}), ("tiny_arith", {"max_steps": 7})]:
        with pytest.raises(ValueError):
            get_task(name, **knobs)
    arith = get_task("tiny_arith", max_number=9, ops="+-*").examples("train", 300, 0)
    assert any("times" in [s[0] for s in e["steps"]] for e in arith)
    cd = get_task("tiny_countdown", ops="+-*/").examples("train", 300, 0)
    assert any("*" in e["solution"] for e in cd) and any("/" in e["solution"] for e in cd)
    assert any(e["solution"].startswith("(") for e in cd)
    varied = get_task("tiny_sudoku", min_blanks=3, max_blanks=7).examples("train", 300, 0)
    blanks = {e["puzzle"].count("0") for e in varied}
    assert blanks == {3, 4, 5, 6, 7}
    assert {e["puzzle"].count("0") for e in get_task("tiny_sudoku").examples("train", 50, 0)} == {6}


def test_longer_arith_chains_and_more_sudoku_blanks():
    arith = get_task("tiny_arith", min_steps=3, max_steps=5)
    train, test = arith.examples("train", 200, 0), arith.examples("test", 50, 1)
    assert {len(e["steps"]) for e in train} == {3, 4, 5}
    assert not {e["id"] for e in train} & {e["id"] for e in test}  # split by the problem's hash
    for e in train[:50]:  # the reference trace reaches the answer, and the judge agrees
        ref = arith.reference_completion(e)
        assert ref.count("=") == len(e["steps"]) and arith.judge(ref, e).correct
        assert 0 <= e["answer"] <= 99
    assert arith.examples("train", 20, 0) == train[:20]  # deterministic in the seed
    with pytest.raises(ValueError, match="drawn, not enumerated"):
        arith.split_size("train")
    for n in (10, 12):  # 12 blanks = 4 givens, the fewest with a unique completion; 53 completion tokens
        sudoku = get_task("tiny_sudoku", min_blanks=n, max_blanks=n)
        for e in sudoku.examples("train", 5, 0):
            ref = sudoku.reference_completion(e)
            assert e["puzzle"].count("0") == n and sudoku.judge(ref, e).correct and len(completions(e["puzzle"])) == 1
        assert len(TOK.encode(ref)) == 3 * n + 17


def test_arith_judge():
    arith = get_task("tiny_arith")
    ex = {"start": 7, "steps": [["buys", "+", 5], ["eats", "-", 3]], "answer": 9}
    assert arith.prompt(ex) == "has 7, buys 5, eats 3. left?"
    assert arith.reference_completion(ex) == "7+5=12 12-3=9<answer>9</answer>"
    assert arith.judge("<answer> 9 </answer>", ex).correct
    assert arith.judge("<answer>8</answer> oops <answer>9</answer>", ex).correct  # the last block counts
    assert arith.judge("<answer>9</answer><answer>8</answer>", ex).reason == "wrong answer"
    assert arith.judge("<answer>10</answer>", ex).reason == "wrong answer"
    assert arith.judge("<answer>9.0</answer>", ex).reason.startswith("answer is not")
    assert arith.judge("the answer is 9", ex).reason == "no answer block"
    # reward: score + 0.1 for exactly one <answer> then one </answer>
    assert arith.reward("7+5=12<answer>9</answer>", ex) == pytest.approx(1.1)
    assert arith.reward("<answer>8</answer><answer>9</answer>", ex) == pytest.approx(1.0)
    assert arith.reward("<answer>8</answer>", ex) == pytest.approx(0.1)
    assert arith.reward("</answer>9<answer>", ex) == 0.0
    assert arith.reward("x", ex) == 0.0


def test_countdown_rules():
    cd = get_task("tiny_countdown")
    ex = {"numbers": [3, 5, 7], "target": 22}
    assert cd.prompt(ex) == "3 5 7 to 22"
    assert cd.judge("<answer>3*5+7</answer>", ex).correct
    assert cd.judge("<answer> 7 + 3 * 5 </answer>", ex).correct
    assert cd.judge("<answer>(3*5)+((7))</answer>", ex).correct
    assert cd.judge("<answer>3*5+7+0</answer>", ex).reason == "wrong numbers"
    assert cd.judge("<answer>5*5-3</answer>", ex).reason == "wrong numbers"  # reuses 5, drops 7
    assert cd.judge("<answer>3*5</answer>", ex).reason == "wrong numbers"  # 7 unused
    assert cd.judge("<answer>3*7+5</answer>", ex).reason == "wrong value"
    for bad in ("3*5+7=22", "3**5+7", "3.0*5+7", "3*5+7 x", "abs(3)*5+7", "03*5+7", "-3*5+7", "3" + " " * 40 + "*5+7"):
        assert cd.judge(f"<answer>{bad}</answer>", ex).reason.startswith("parse error"), bad
    assert cd.judge("<answer>6/3*4</answer>", {"numbers": [3, 4, 6], "target": 8}).correct
    assert cd.judge("<answer>(7+5)/3</answer>", {"numbers": [3, 5, 7], "target": 4}).correct
    assert cd.judge("<answer>7/3+5</answer>", {"numbers": [3, 5, 7], "target": 7}).reason == "wrong value"
    assert not cd.judge("<answer>7/(5-5)</answer>", {"numbers": [5, 5, 7], "target": 1}).correct


def test_countdown_parser():
    assert evaluate_expression("2+3*4") == (14, [2, 3, 4])
    assert evaluate_expression("2*3+4")[0] == 10
    assert evaluate_expression("(2+3)*4")[0] == 20
    assert evaluate_expression("2*(3+4)")[0] == 14
    assert evaluate_expression("8-4-2")[0] == 2  # left-associative
    assert evaluate_expression("8/4/2")[0] == 1
    assert evaluate_expression("9-3*2+1")[0] == 4
    assert evaluate_expression("7/2")[0] == 3.5
    for bad in ("", "2+", "(2", "2)", "()", "2 3", "((((((((((((1))))))))))))", "1" * 41, "99999+1", "2^3"):
        with pytest.raises(ValueError):
            evaluate_expression(bad)


def test_sudoku_grids_and_puzzles():
    grids = all_grids()
    assert len(grids) == 288 == len(set(grids))
    for ex in get_task("tiny_sudoku", min_blanks=3, max_blanks=7).examples("test", 50, 0):
        assert completions(ex["puzzle"]) == [ex["solution"]]
        assert all(p in ("0", s) for p, s in zip(ex["puzzle"], ex["solution"]))


def test_sudoku_judge_partial_credit():
    sd = get_task("tiny_sudoku")
    ex = {"puzzle": "0034341221434300", "solution": "1234341221434321"}
    assert sd.prompt(ex) == "sudoku 0034341221434300"
    assert sd.reference_completion(ex) == "a1 b2 o2 p1<answer>1234341221434321</answer>"
    v = sd.judge("<answer>1234341221434321</answer>", ex)
    assert v.correct and v.score == 1.0
    v = sd.judge("<answer>1134341221434311</answer>", ex)  # blanks a, b, o, p: a right, b wrong, o wrong, p right
    assert v.score == 0.5 and not v.correct and v.reason == "2 of 4 blanks wrong"
    v = sd.judge("<answer>1</answer>", ex)  # padded with 0: only cell a is right
    assert v.score == 0.25 and not v.correct and v.parsed == "1000000000000000"
    assert sd.judge("<answer>1234 3412 2143 4321</answer>", ex).correct  # non-digits are dropped
    v = sd.judge("<answer>1211341221434321</answer>", ex)  # blanks right, a given cell changed
    assert v.score == 1.0 and not v.correct and v.reason
    assert sd.judge("<answer>12343412214343219</answer>", ex).correct  # cut to 16 digits
    assert sd.reward("<answer>1</answer>", ex) == pytest.approx(0.35)
    assert sd.reward("1234341221434321", ex) == 0.0
