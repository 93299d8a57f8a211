"""The real tasks under both protocols, on real rows from ../shared/data: right, wrong, malformed and adversarial
completions; exact prompts; the d1 Sudoku sample; `agrpo score`."""

import hashlib
import json
import time
from pathlib import Path

import pytest

from agrpo.cli import main
from agrpo.tasks import agrpo_protocol as A
from agrpo.tasks import d1_protocol as D
from agrpo.tasks import get_task, judging
from agrpo.tasks.real import load_rows

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SOURCES = {"gsm8k": DATA / "gsm8k/test.jsonl", "math500": DATA / "math500/test.jsonl",
           "countdown": DATA / "countdown/cd3_test.jsonl", "sudoku": DATA / "sudoku/4x4_test.csv"}
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data beside the checkout (CI has it)")


@pytest.fixture(scope="module")
def first():
    """The first evaluated example of each task (d1's Sudoku sample starts at row 361)."""
    return {name: get_task(name, protocol="d1", source=str(src)).examples("test")[0] for name, src in SOURCES.items()}


def think(answer: str) -> str:
    return f"<think>\nworking\n</think>\n<answer>\n{answer}\n</answer>"


def reason(answer: str) -> str:
    return f"<reasoning>\nworking\n</reasoning>\n<answer>\n{answer}\n</answer>"


CASES = {  # task: (d1 right, agrpo right, wrong under both)
    "gsm8k": (reason("\\boxed{18}"), think("\\boxed{18}"), reason("\\boxed{17}")),
    "math500": (reason("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"), think("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"),
                reason("\\boxed{(3, \\pi)}")),
    "countdown": (reason("\\boxed{30 - (100 - 93)}"), think("30 - (100 - 93) = 23"), think("30 + 100 - 93 = 23")),
    "sudoku": (reason("4321124334122134"), think("4321124334122134"), reason("1111111111111111")),
}


D1_TRAINING_FORMAT = {"gsm8k": reason("18"), "countdown": reason("30 - (100 - 93)")}


def test_real_tasks_load_the_papers_test_sets(first):
    sizes = {name: len(get_task(name, protocol="d1", source=str(src)).examples("test")) for name, src in SOURCES.items()}
    assert sizes == {"gsm8k": 1319, "math500": 500, "countdown": 256, "sudoku": 256}
    assert first["countdown"] == {"id": first["countdown"]["id"], "numbers": [30, 100, 93], "target": 23}
    assert first["sudoku"]["puzzle"] == "4320004330100004"  # row 361 of 500: d1's np.random.seed(42) sample
    rows = load_rows(str(SOURCES["sudoku"]))
    assert rows[1]["Puzzle"] == "0140432014020000"  # CSV columns stay strings (leading zeros kept)


@pytest.mark.parametrize("task", sorted(CASES))
@pytest.mark.parametrize("protocol", ["d1", "agrpo"])
def test_real_tasks_judge_right_and_wrong(first, task, protocol):
    d1_right, agrpo_right, wrong = CASES[task]
    t = get_task(task, protocol=protocol)
    ex = first[task]
    right = d1_right if protocol == "d1" else agrpo_right
    v = t.judge(right, ex)
    assert v.correct and v.score == 1.0, v
    w = t.judge(wrong, ex)
    assert not w.correct and w.score < 1.0 and w.reason
    if protocol == "d1" and task in D1_TRAINING_FORMAT:
        # d1's quirk 11: its training prompts ask for a bare answer in <answer>, its evaluation prompts for \boxed{};
        # the rewards follow the training format, so the evaluation-format right answer earns no correctness
        bare = D1_TRAINING_FORMAT[task]
        assert t.reward(bare, ex) > t.reward(right, ex) and t.reward(bare, ex) > t.reward(wrong, ex)
    else:
        assert t.reward(right, ex) > t.reward(wrong, ex)


@pytest.mark.parametrize("protocol", ["d1", "agrpo"])
def test_real_tasks_protocols_differ_where_the_papers_do(first, protocol):
    t = get_task("gsm8k", protocol=protocol)
    ex = first["gsm8k"]
    # d1 reads \boxed{} anywhere; AGRPO reads <answer> first, then its first \boxed{}, then the first integer
    v = t.judge("<answer>\\boxed{18 dollars}</answer>", ex)
    assert v.correct
    boxed_outside = t.judge("so \\boxed{18}", ex)
    assert boxed_outside.correct  # both find it: d1 scans every \boxed{}, AGRPO falls back to the whole text
    only_tags = t.judge("<reasoning>\n9*2\n</reasoning>\n<answer>\n18\n</answer>", ex)
    assert only_tags.correct
    # Sudoku: d1 scores cells over all puzzles (micro-average), AGRPO per puzzle; partial credit under both
    s = get_task("sudoku", protocol=protocol).judge(reason("4321124334120000"), first["sudoku"])
    assert 0 < s.score < 1 and not s.correct


ADVERSARIAL = {
    "empty": "",
    "huge text": "<answer>" + "7 " * 50_000 + "</answer>",
    "deep latex": "\\boxed{" + "\\frac{" * 3000 + "1" + "}" * 3000,
    "huge integer": "<answer>\\boxed{" + "9" * 20_000 + "}</answer>",
    "power tower": think("\\boxed{9^{9^{9^{9}}}}") + "\n30**100**93 = 23",
    "control chars": "\x00\x01\x1b[31m<answer>\x07\\boxed{\x08oxed}</answer>\r\n\x7f",
    "unbalanced": "<reasoning><answer>\\boxed{{{{</answer></reasoning>",
}


@pytest.mark.parametrize("task", sorted(CASES))
@pytest.mark.parametrize("protocol", ["d1", "agrpo"])
def test_real_tasks_judges_survive_adversarial_completions(first, task, protocol, monkeypatch):
    monkeypatch.setattr(judging, "VERIFY_TIMEOUT_S", 1)
    t = get_task(task, protocol=protocol)
    for name, text in ADVERSARIAL.items():
        start = time.perf_counter()
        v = t.judge(text, first[task])
        r = t.reward(text, first[task])
        assert not v.correct and isinstance(r, float), (name, v)
        assert time.perf_counter() - start < 15, name


def test_real_tasks_prompts_are_the_released_strings():
    """sha256 of every system prompt, taken when they were checked equal to d1's eval/*.py and AGRPO's data.py."""
    d1 = {k: hashlib.sha256(getattr(D, k).encode()).hexdigest()[:16]
          for k in ("GSM_SYSTEM_PROMPT", "MATH_SYSTEM_PROMPT", "COUNTDOWN_SYSTEM_PROMPT", "SUDOKU_SYSTEM_PROMPT")}
    agrpo = {k: hashlib.sha256(getattr(A, k).encode()).hexdigest()[:16]
             for k in ("SYSTEM_PROMPT", "COUNTDOWN_SYSTEM_PROMPT", "SUDOKU_SYSTEM_PROMPT")}
    assert d1 == EXPECTED_D1 and agrpo == EXPECTED_AGRPO
    t = get_task("gsm8k", protocol="d1")
    assert t.messages({"question": "Q?"})[0]["content"].endswith("</answer>\n\nQ?") and t.assistant_prefix == "<reasoning>"
    m = get_task("countdown", protocol="agrpo").messages({"numbers": [1, 2, 3], "target": 6})
    assert [x["role"] for x in m] == ["system", "user"] and m[1]["content"] == "Target: 6\nNumbers: [1, 2, 3]"


TRAIN_EXAMPLES = {"gsm8k": {"question": "Q?"}, "countdown": {"numbers": [2, 7, 9], "target": 5},
                  "sudoku": {"puzzle": "1000000000000000"}, "math500": {"problem": "P?"}}
# sha256 of d1's own training prompts (diffu-grpo/data_utils.py, its f-strings evaluated on TRAIN_EXAMPLES)
EXPECTED_D1_TRAIN = {"gsm8k": "c50297784e94c471", "countdown": "68516fac6a8ce012", "sudoku": "e303d49bfff40f61",
                     "math500": "0fe5dc75460c01c9"}


def test_d1_protocol_trains_on_d1s_training_prompts_and_evaluates_on_its_evaluation_prompts():
    """Regression: RL under ``protocol: d1`` used d1's evaluation prompts (\\boxed{} asked for, <reasoning>
    prefilled), which its training rewards score as wrong; d1 trains on its own prompts, with no prefill."""
    for name, ex in TRAIN_EXAMPLES.items():
        train, test = get_task(name, protocol="d1", stage="train"), get_task(name, protocol="d1")
        (msg,) = train.messages(ex)
        assert msg["role"] == "user" and hashlib.sha256(msg["content"].encode()).hexdigest()[:16] == EXPECTED_D1_TRAIN[name]
        assert train.assistant_prefix == "" and test.assistant_prefix == "<reasoning>"
        assert (test.messages(ex) == train.messages(ex)) == (name == "sudoku")  # d1's Sudoku: same text, no prefill
        agrpo = get_task(name, protocol="agrpo", stage="train")  # AGRPO trains on its evaluation prompts
        assert agrpo.messages(ex) == get_task(name, protocol="agrpo").messages(ex) and agrpo.assistant_prefix == ""
    # what d1's training prompt asks for earns d1's training reward in full (GSM8K: 3.5 — its soft-format regex
    # never matches a multi-line reasoning block — against 0.375 for a correct \\boxed{72} after the prefill)
    gsm, cd = get_task("gsm8k", protocol="d1", stage="train"), get_task("countdown", protocol="d1", stage="train")
    assert gsm.reward("<reasoning>\n6*12=72\n</reasoning>\n<answer>\n72\n</answer>\n", {"answer": "x #### 72"}) == 3.5
    assert gsm.reward("\n6*12=72\n</reasoning>\n<answer>\n\\boxed{72}\n</answer>\n", {"answer": "x #### 72"}) == 0.375
    assert cd.reward("<reasoning>\nok\n</reasoning>\n<answer>\n7-2*1\n</answer>", {"numbers": [1, 2, 7], "target": 5}) == 1.0
    with pytest.raises(ValueError, match="stage"):
        get_task("gsm8k", stage="rl")


def test_trainer_builds_its_prompts_from_the_training_stage(tmp_path, monkeypatch):
    """The trainer renders d1's training prompts (not its evaluation prompts) for a real task under protocol d1."""
    import yaml

    from agrpo.config import load_config
    from agrpo.data import write_task_data
    from agrpo.model.tiny import TinyDLLM, init_tiny
    from agrpo.model.tokenizer import CharTokenizer
    from agrpo.rl.trainer import train

    d = yaml.safe_load((Path(__file__).resolve().parent.parent / "workflow/config/tiny.yaml").read_text())
    d.update(work_dir=str(tmp_path / "w"), model={"type": "tiny", "d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32})
    d["data"] = {"tasks": ["countdown"], "train_size": 8, "protocol": "d1",
                 "sources": {"countdown/test": str(SOURCES["countdown"]), "countdown/train": str(tmp_path / "cd.jsonl")}}
    d["rl"].update(iterations=1, checkpoint_every=1, prompts_per_batch=2, group_size=2)
    d["methods"] = {"diffu_grpo": d["methods"]["diffu_grpo"] | {"inner_iterations": 1}}
    write_generations(tmp_path / "cd.jsonl", [{"nums": [i, i + 1, 90], "target": 7} for i in range(1, 509)])  # d1 keeps 8
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    cfg = load_config(tmp_path / "c.yaml")
    write_task_data(cfg, "countdown")
    init_tiny(CharTokenizer(), d_model=16, n_layers=1, n_heads=2, d_ff=32).save_pretrained(tmp_path / "base")
    seen = []

    def encode_prompt(self, task, ex):  # the char tokenizer cannot spell d1's prompts: record them, feed a stub
        seen.append((task.stage, task.messages(ex)[0]["content"], task.assistant_prefix))
        return self.tokenizer.encode("1 2 3>6")

    monkeypatch.setattr(TinyDLLM, "encode_prompt", encode_prompt)
    train(cfg, "diffu_grpo", 0, tmp_path / "base", tmp_path / "run", progress=False)
    assert len(seen) == 4 and {s[0] for s in seen} == {"train"} and {s[2] for s in seen} == {""}
    assert all("Using only the numbers [" in s[1] and "\\boxed" not in s[1] for s in seen)


EXPECTED_D1 = {"GSM_SYSTEM_PROMPT": "f11d75a706090b95", "MATH_SYSTEM_PROMPT": "3e82f3bac66b3bc1",
               "COUNTDOWN_SYSTEM_PROMPT": "a303f737bca286cb", "SUDOKU_SYSTEM_PROMPT": "758dc4e1b10cba4d"}
EXPECTED_AGRPO = {"SYSTEM_PROMPT": "b5bfce86f90b1220", "COUNTDOWN_SYSTEM_PROMPT": "dbb490008b112323",
                  "SUDOKU_SYSTEM_PROMPT": "45b564f29a7ae650"}


def write_generations(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_score_cli_rescores_a_generations_file(first, tmp_path, capsys):
    ex = first["countdown"]
    rows = [{"numbers": ex["numbers"], "target": ex["target"], "completion": c} for c in CASES["countdown"]]
    write_generations(tmp_path / "g.jsonl", rows)
    assert main(["score", "countdown", str(tmp_path / "g.jsonl"), "--protocol", "d1", "--out", str(tmp_path / "v.jsonl")]) == 0
    # d1 is lenient: with no \boxed{}, the first "expression = number" anywhere counts (the AGRPO-format answer)
    assert capsys.readouterr().out.strip().splitlines()[-1] == "accuracy=0.666667 n=3"
    out = [json.loads(l) for l in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in out] == [True, True, False] and all("reward" in r and "reason" in r for r in out)


def test_score_cli_sudoku_d1_is_the_cell_micro_average(first, tmp_path, capsys):
    ex = first["sudoku"]  # 4320004330100004: 8 blanks
    rows = [{"puzzle": ex["puzzle"], "solution": ex["solution"], "completion": reason(ex["solution"])},
            {"puzzle": ex["puzzle"], "solution": ex["solution"], "completion": reason("0" * 16)}]
    write_generations(tmp_path / "g.jsonl", rows)
    assert main(["score", "sudoku", str(tmp_path / "g.jsonl"), "--out", str(tmp_path / "v.jsonl")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "accuracy=0.500000 n=2"
    assert [json.loads(l)["cell_accuracy"] for l in (tmp_path / "v.jsonl").read_text().splitlines()] == [1.0, 0.0]


def test_score_cli_names_the_bad_line_or_skips_it(first, tmp_path, capsys):
    good = {"question": "q", "answer": "x\n#### 18", "completion": "\\boxed{18}"}
    (tmp_path / "g.jsonl").write_bytes(b"\n".join([json.dumps(good).encode(), b"{not json", json.dumps({"question": "q"}).encode(),
                                                     json.dumps({**good, "completion": "\\boxed{18} \udcff"}).encode(),
                                                     json.dumps(good).encode()[:-2] + b"\xff\xfe\"}"]) + b"\n")
    assert main(["score", "gsm8k", str(tmp_path / "g.jsonl")]) == 1
    assert "g.jsonl:2:" in capsys.readouterr().err
    assert main(["score", "gsm8k", str(tmp_path / "g.jsonl"), "--skip-bad", "--out", str(tmp_path / "v.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "lines [2, 3]" in out and out.strip().splitlines()[-1] == "accuracy=0.333333 n=3"
    reasons = [json.loads(l)["reason"] for l in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert reasons[0] == "" and "invalid UTF-8" in reasons[1] and "invalid UTF-8" in reasons[2]


def test_real_tasks_agrpo_fast_paths_agree_with_math_verify():
    """Integer equality and exact Countdown arithmetic give math-verify's verdicts (random cases, both outcomes)."""
    import random

    rng = random.Random(0)
    for _ in range(60):
        a = str(rng.randint(0, 500))
        b = a if rng.random() < 0.5 else str(rng.randint(0, 500))
        assert A.equal(a, b)[0] == judging.math_verify_equal(a, b)[0], (a, b)
    agree = {True: 0, False: 0}
    for _ in range(150):
        nums = [rng.randint(1, 100) for _ in range(3)]
        x, y, z = rng.sample(nums, 3)
        o1, o2 = rng.choice("+-*/"), rng.choice("+-*/")
        expr = rng.choice([f"{x} {o1} {y} {o2} {z}", f"({x} {o1} {y}) {o2} {z}", f"{x} {o1} ({y} {o2} {z})"])
        value = A.exact_value(expr)
        target = int(value) if value is not None and value.denominator == 1 and rng.random() < 0.7 else rng.randint(0, 300)
        fast = value == target
        assert fast == judging.math_verify_equal(str(target), expr)[0], (expr, target)
        agree[fast] += 1
    assert min(agree.values()) > 10
    assert A.exact_value("2(3)") is None and A.exact_value("3 ** 2") is None  # anything else goes to math-verify


def test_real_tasks_train_splits_follow_the_papers(tmp_path):
    """AGRPO's filters under ``protocol: agrpo``; d1's own splits (diffu_grpo_train.py) under ``protocol: d1``."""
    import datasets

    math500 = [json.loads(l) for l in SOURCES["math500"].read_text().splitlines()[:1]]
    rows = [{"problem": math500[0]["problem"], "solution": "\\boxed{x}", "level": "Level 3"},  # a MATH-500 problem
            {"problem": "p5", "solution": "so \\boxed{5}", "level": "Level 5"},  # too hard
            {"problem": "p2", "solution": "so \\boxed{\\frac{7}{2}} and \\boxed{9}", "level": "Level 2"},
            {"problem": "p1", "solution": "no box", "level": "Level 1"}]  # no answer
    write_generations(tmp_path / "math_train.jsonl", rows)
    source = dict(source=str(SOURCES["math500"]), train_source=str(tmp_path / "math_train.jsonl"))
    train = get_task("math500", protocol="agrpo", **source).examples("train")
    assert [(e["problem"], e["answer"]) for e in train] == [("p2", "\\frac{7}{2}")]
    train = get_task("math500", protocol="d1", **source).examples("train")  # d1: every row of its train split
    assert [e["problem"] for e in train] == [r["problem"] for r in rows]
    assert get_task("math500", protocol="d1").data_train_source == "ankner/math-500"
    assert get_task("math500", protocol="agrpo").data_train_source == "qwedsacf/competition_math"
    rows = [{"nums": [30, 100, 93], "target": 23}, {"nums": [1, 2, 3, 4], "target": 10}, {"nums": [5, 6, 7], "target": 18}]
    write_generations(tmp_path / "cd_train.jsonl", rows)
    source = dict(source=str(SOURCES["countdown"]), train_source=str(tmp_path / "cd_train.jsonl"))
    train = get_task("countdown", protocol="agrpo", **source).examples("train")
    assert [(e["numbers"], e["target"]) for e in train] == [([5, 6, 7], 18)]
    # d1: every 3-number row (no test filter), shuffled as datasets' shuffle(seed=42), minus the last 500
    rows = [{"nums": [i % 97 + 1, i % 89 + 2] + ([i % 7 + 3] if i % 5 else []), "target": i} for i in range(1300)]
    write_generations(tmp_path / "cd_train.jsonl", rows)
    train = get_task("countdown", protocol="d1", **source).examples("train")
    three = datasets.Dataset.from_list(rows).filter(lambda r: len(r["nums"]) == 3).shuffle(seed=42)
    assert [e["target"] for e in train] == three["target"][: len(three) - 500] and len(train) == 1040 - 500
    grid = [f"{i:016d}" for i in range(620)]  # 4x4_sudoku_unique_puzzles.csv's columns, 620 rows
    (tmp_path / "unique.csv").write_text("Puzzle,Solution\n" + "".join(f"{g},{g}\n" for g in grid))
    sudoku = get_task("sudoku", protocol="d1", source=str(SOURCES["sudoku"]), train_source=str(tmp_path / "unique.csv"))
    shuffled = datasets.Dataset.from_dict({"Puzzle": grid}).shuffle(seed=42)["Puzzle"]
    assert [e["puzzle"] for e in sudoku.examples("train")] == shuffled[:120]
    assert len(get_task("gsm8k", train_source=str(DATA / "gsm8k/train.jsonl")).examples("train")) == 7473
    with pytest.raises(ValueError, match="no test source"):
        get_task("countdown").examples("test")


def test_real_tasks_in_a_profile_write_their_data_files(tmp_path):
    import yaml

    d = yaml.safe_load((Path(__file__).resolve().parent.parent / "workflow/config/tiny.yaml").read_text())
    d["data"] = {"tasks": ["countdown", "sudoku"], "train_size": 2, "protocol": "agrpo",
                 "sources": {"countdown/test": str(SOURCES["countdown"]), "countdown/train": str(SOURCES["countdown"]),
                             "sudoku/test": str(SOURCES["sudoku"]), "sudoku/train": str(SOURCES["sudoku"])}}
    d["work_dir"] = str(tmp_path / "w")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    for task in ("countdown", "sudoku"):
        assert main(["data", "--config", str(tmp_path / "c.yaml"), "--task", task]) == 0
    test = [json.loads(l) for l in (tmp_path / "w/data/sudoku/test.jsonl").read_text().splitlines()]
    assert len(test) == 256 and test[0]["puzzle"] == "4320004330100004"  # the whole d1 sample, not test_size
    assert len((tmp_path / "w/data/countdown/train.jsonl").read_text().splitlines()) == 0  # every row is a test row
    from agrpo.config import load_config
    from agrpo.resolve import profile_task

    assert profile_task(load_config(tmp_path / "c.yaml"), "sudoku").protocol == "agrpo"
