import pytest

from agrpo.model.tokenizer import CharTokenizer
from agrpo.tasks import TASKS, get_task
from agrpo.tasks.tiny_countdown import evaluate_expression

TOK = CharTokenizer()
NASTY = ["", "_____", "<answer>", "</answer><answer>", "<answer>" + "9" * 500 + "</answer>",
         "<answer>((((((((((((1))))))))))))</answer>", "<answer>(1+2</answer>", "<answer>1/0+2+3</answer>",
         "<answer>1</answer><answer>2</answer>", "\x00\xff<answer>\n</answer>", "<answer>" + "(" * 300 + "</answer>"]


@pytest.fixture(params=sorted(TASKS))
def task(request):
    return get_task(request.param)


def test_tasks_reference_completions_are_correct(task):
    for split, seed in (("train", 0), ("test", 1)):
        for ex in task.examples(split, 100, seed):
            v = task.judge(task.reference_completion(ex), ex)
            assert v.correct and v.score == 1.0, (ex, v)
            assert task.reward(task.reference_completion(ex), ex) == pytest.approx(1.1)


def test_tasks_splits_disjoint_and_deterministic(task):
    train = task.examples("train", 300, 5)
    test = task.examples("test", 40, 5)
    assert not {e["id"] for e in train} & {e["id"] for e in test}
    assert len({e["id"] for e in train}) == 300
    assert train == task.examples("train", 300, 5)
    assert train != task.examples("train", 300, 6)


def test_tasks_lengths_and_tokenizer_roundtrip(task):
    for ex in task.examples("train", 200, 0):
        p, c = task.prompt(ex), task.reference_completion(ex)
        assert len(p) <= 32 and len(TOK.encode(c)) <= 38
        assert TOK.decode(TOK.encode(p + c)) == p + c


def test_tasks_judges_survive_garbage(task):
    ex = task.examples("test", 1, 0)[0]
    for text in NASTY:
        v = task.judge(text, ex)
        assert not v.correct and v.reason


def test_tasks_wrong_answers_are_wrong():
    arith = get_task("tiny_arith")
    ex = arith.examples("test", 1, 0)[0]
    v = arith.judge(f"<answer>{ex['answer'] + 1}</answer>", ex)
    assert not v.correct and v.reason == "wrong answer"
    assert arith.reward("x", ex) == 0.0


def test_tasks_countdown_rules():
    cd = get_task("tiny_countdown")
    ex = {"numbers": [3, 5, 7], "target": 22}
    assert cd.judge("<answer>3*5+7</answer>", ex).correct
    assert cd.judge("<answer>7+3*5</answer>", ex).correct
    assert cd.judge("<answer>3*5+7+0</answer>", ex).reason == "wrong numbers"
    assert cd.judge("<answer>5*5-3</answer>", ex).reason == "wrong numbers"  # reuse of a number
    assert cd.judge("<answer>3*5+7=22</answer>", ex).reason.startswith("parse error")
    assert cd.judge("<answer>3*7+5</answer>", ex).reason == "wrong value"
    assert evaluate_expression("2+3*4") == (14, [2, 3, 4])
    assert evaluate_expression("(2+3)*4")[0] == 20


def test_tasks_sudoku_partial_credit():
    sd = get_task("tiny_sudoku")
    ex = {"puzzle": "0034341221434300", "solution": "1234341221434321"}
    assert sd.judge("<answer>1234341221434321</answer>", ex).score == 1.0
    v = sd.judge("<answer>1134341221434311</answer>", ex)  # blanks a, b, o, p: a right, b wrong, o wrong, p right
    assert v.score == 0.5 and not v.correct
    assert sd.judge("<answer>1</answer>", ex).score == 0.25  # padded with 0: only cell a is right


def test_tasks_unknown_name_and_split():
    with pytest.raises(KeyError, match="unknown task 'gsm9k'"):
        get_task("gsm9k")
    with pytest.raises(ValueError, match="unknown split"):
        get_task("tiny_arith").examples("dev", 1, 0)
    with pytest.raises(ValueError, match="could not draw"):
        get_task("tiny_countdown").examples("test", 10_000, 0)
