"""Aggregation: fake eval cells → summary.csv, report.md, plots; mean_ci and the paired CIs on known values."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import agrpo.io as agrpo_io

from agrpo import report
from agrpo.report import IncompleteCellError, check_complete, load_cells, write_report
from agrpo.stats import DiffCI, diff_in_diff_ci, item_means, mean_ci, paired_diff_ci, same_ids

REF = Path(__file__).resolve().parents[1] / "results" / "reference" / "paper_numbers.csv"
L, N = 16, 50
STEPS = [16, 8, 4]
TASKS = ["tiny_arith", "tiny_countdown"]
BASE_ACC = {"tiny_arith": 0.40, "tiny_countdown": 0.20}
GAIN_AT_40 = {"base": 0.0, "agrpo": 0.30, "diffu_grpo": 0.10}   # gain over base after 40 RL steps, at full steps
LOSS_PER_HALVING = {"base": 0.08, "agrpo": 0.02, "diffu_grpo": 0.06}


def true_acc(method, train_step, task, steps, run_seed=0):
    halvings = {16: 0, 8: 1, 4: 2}[steps]
    return (BASE_ACC[task] + GAIN_AT_40[method] * train_step / 40 - LOSS_PER_HALVING[method] * halvings
            + 0.04 * run_seed)


def write_cell(root: Path, method, run_seed, train_step, task, steps, seed=0, n=N, n_expected=N, k=None,
               generations=False, extra: dict | None = None) -> Path:
    """A fake cell with k of n items correct (default: true_acc); with generations, a generations.jsonl beside it
    where items q00 … q{k-1} are the correct ones, so any two cells' correct items are nested."""
    k = round(true_acc(method, train_step, task, steps, run_seed) * n) if k is None else k
    acc, lo, hi = mean_ci([1.0] * k + [0.0] * (n - k))
    cell = {
        "method": method, "run_seed": run_seed, "checkpoint": f"step{train_step}", "train_step": train_step,
        "task": task, "protocol": "synthetic", "gen_length": L, "block_length": 8, "steps": steps,
        "remasking": "low_confidence", "temperature": 0.0, "seed": seed, "n": n, "n_expected": n_expected,
        "accuracy": acc, "n_correct": k, "ci_low": lo, "ci_high": hi, "nfe": float(steps),
        "tokens_generated": n * L, "seconds": 0.1 * steps, "flops": 1.0e6 * steps * n, "params": 1000,
        "device": "cpu", "git_sha": "abc1234", "config_hash": "cfg0001", "profile": "tiny",
        "versions": {"python": "3.11.7", "torch": "2.13.0", "agrpo": "0.1.0"},
        "created_at": f"2026-01-01T00:00:{len(list(root.rglob('metrics.json'))) % 60:02d}+00:00",
    }
    cell.update(extra or {})
    tag = "".join(f"_{k}{v}" for k, v in sorted((extra or {}).items()))
    d = root / method / f"seed{run_seed}" / f"step{train_step}" / task / f"S{steps}{tag}_seed{seed}"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(cell))
    if generations:
        rows = [{"id": f"q{i:02d}", "correct": i < k, "score": float(i < k), "completion": "", "prompt": ""}
                for i in range(n)]
        (d / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "metrics.json"


def make_grid(root: Path, methods=("agrpo", "diffu_grpo"), run_seeds=(0,), tasks=TASKS, steps=STEPS,
              generations=False) -> Path:
    for task in tasks:
        for s in steps:
            write_cell(root, "base", 0, 0, task, s, generations=generations)
            for m in methods:
                for r in run_seeds:
                    for t in (20, 40):
                        write_cell(root, m, r, t, task, s, generations=generations)
    return root


@pytest.fixture
def cells(tmp_path):
    return make_grid(tmp_path / "cells")


def build(cells_dir: Path, out: Path, ref=REF) -> pd.DataFrame:
    df = load_cells([cells_dir])
    check_complete(df)
    write_report(df, out, ref, "tiny")
    return df


# ------------------------------------------------------------------------------------------------- stats

def test_mean_ci_wilson_known_values():
    mean, lo, hi = mean_ci([1] * 5 + [0] * 5)
    assert mean == 0.5
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    mean, lo, hi = mean_ci([1] * 10)  # Wilson does not collapse at p̂ = 1
    assert mean == 1.0 and hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)


def test_mean_ci_fractional_scores_normal_approximation():
    mean, lo, hi = mean_ci([0.25, 0.75])  # s = 0.3536, half = 1.96 · s / √2 = 0.49
    assert mean == 0.5 and lo == pytest.approx(0.01, abs=1e-3) and hi == pytest.approx(0.99, abs=1e-3)
    assert mean_ci([0.5]) == (0.5, 0.5, 0.5)
    assert mean_ci([0.1, 0.9, 0.95, 0.99])[2] <= 1.0


def test_mean_ci_rejects_empty():
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_diff_ci_excludes_zero():
    # d = 1 1 0 0 1 1: d̄ = 4/6, s_d² = (4·(1/3)² + 2·(2/3)²)/5 = 4/15, half = 1.96 · √(4/15)/√6 = 0.41320
    ci = paired_diff_ci([1, 1, 1, 0, 1, 1], [0, 0, 1, 0, 0, 0])
    assert ci.n == 6 and ci.diff == pytest.approx(2 / 3)
    assert ci.low == pytest.approx(0.253470, abs=1e-6) and ci.high == pytest.approx(1.079863, abs=1e-6)
    assert ci.sign == 1
    assert paired_diff_ci([0, 0, 1, 0, 0, 0], [1, 1, 1, 0, 1, 1]).sign == -1


def test_paired_diff_ci_includes_zero():
    # d = 1 −1 1 0: d̄ = 0.25, s_d² = 2.75/3, half = 1.96 · 0.957427/2 = 0.938262
    ci = paired_diff_ci([1, 0, 1, 0], [0, 1, 0, 0])
    assert ci.diff == 0.25 and ci.n == 4
    assert ci.low == pytest.approx(-0.688262, abs=1e-6) and ci.high == pytest.approx(1.188262, abs=1e-6)
    assert ci.sign == 0
    assert paired_diff_ci([0.5, 0.5], [0.5, 0.5]) == DiffCI(0.0, 0.0, 0.0, 2)  # s_d = 0: zero width, includes 0
    assert paired_diff_ci([1], [0]) == DiffCI(1.0, float("-inf"), float("inf"), 1)  # s_d undefined at n = 1


def test_diff_in_diff_ci_known_values():
    # drops a: 0 0 0 1, b: 1 1 0 0 → d = −1 −1 0 1: d̄ = −0.25, the same s_d as above
    ci = diff_in_diff_ci([1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0])
    assert ci.diff == -0.25 and ci.n == 4
    assert ci.low == pytest.approx(-1.188262, abs=1e-6) and ci.high == pytest.approx(0.688262, abs=1e-6)
    with pytest.raises(ValueError, match="lengths differ: a_full 2, a_fast 2, b_full 1, b_fast 2"):
        diff_in_diff_ci([1, 0], [1, 0], [1], [0, 0])


def test_paired_diff_ci_rejects_mismatch():
    with pytest.raises(ValueError, match="lengths differ: a 3, b 2"):
        paired_diff_ci([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="at least one item"):
        paired_diff_ci([], [])
    with pytest.raises(ValueError, match="confidence"):
        paired_diff_ci([1, 0], [0, 0], confidence=1.5)
    with pytest.raises(AttributeError):
        paired_diff_ci([1, 0], [0, 0]).diff = 0.0  # frozen


def test_item_means_and_same_ids():
    # two seeds of one method: per-item means, in the first cell's order
    means = item_means([{"q2": 1.0, "q1": 0.0, "q3": 1.0}, {"q1": 1.0, "q2": 1.0, "q3": 0.0}])
    assert means == {"q2": 1.0, "q1": 0.5, "q3": 0.5} and list(means) == ["q2", "q1", "q3"]
    with pytest.raises(ValueError, match=r"seed1 lacks 1 item\(s\) of seed0: 'q3'; seed0 lacks 1 item\(s\) of "
                                         r"seed1: 'q4'"):
        item_means([{"q1": 1, "q3": 0}, {"q1": 0, "q4": 1}], names=["seed0", "seed1"])
    with pytest.raises(ValueError, match="cell 1 lacks 7 item"):
        item_means([{f"q{i}": 1 for i in range(8)}, {"q0": 1}])
    assert same_ids({"b": 1, "a": 0}, {"a": 1, "b": 0}) == ["b", "a"]
    with pytest.raises(ValueError, match="not over the same items: agrpo lacks 1 item\\(s\\) of base: 7"):
        same_ids({7: 1.0, 8: 0.0}, {8: 1.0}, "base", "agrpo")


# ------------------------------------------------------------------------------------------------- loading

def test_load_cells_flattens_versions_and_accepts_files(cells):
    df = load_cells([cells])
    assert len(df) == 2 * 3 * (1 + 2 * 2)
    assert "versions" not in df.columns and set(df["version_torch"]) == {"2.13.0"}
    one = next((cells / "base").rglob("metrics.json"))
    assert len(load_cells([one, cells / "base"])) == 6  # the same file reached twice is read once


def test_load_cells_names_bad_files(tmp_path):
    bad = tmp_path / "a" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        load_cells([tmp_path / "a"])
    f = write_cell(tmp_path / "b", "base", 0, 0, "tiny_arith", 16)
    cell = json.loads(f.read_text())
    del cell["flops"]
    f.write_text(json.dumps(cell))
    with pytest.raises(ValueError, match="lack flops"):
        load_cells([f])
    with pytest.raises(FileNotFoundError):
        load_cells([tmp_path / "nowhere"])


def test_check_complete_names_incomplete_cell(tmp_path):
    root = make_grid(tmp_path / "c", tasks=["tiny_arith"], steps=[16])
    f = write_cell(root, "agrpo", 0, 60, "tiny_arith", 8, seed=3, n=49)
    with pytest.raises(IncompleteCellError) as e:
        check_complete(load_cells([root]))
    msg = str(e.value)
    for part in ("agrpo", "step60", "tiny_arith", "steps=8", "seed=3", "49 of 50", str(f)):
        assert part in msg


def test_check_complete_rejects_duplicates(cells, tmp_path):
    src = cells / "agrpo" / "seed0" / "step20" / "tiny_arith" / "S8_seed0" / "metrics.json"
    copy = tmp_path / "elsewhere" / "metrics.json"
    copy.parent.mkdir()
    shutil.copy(src, copy)
    with pytest.raises(IncompleteCellError, match="duplicate cell agrpo.*step20.*tiny_arith") as e:
        check_complete(load_cells([cells, copy.parent]))
    assert str(copy) in str(e.value) and str(src) in str(e.value)


# ------------------------------------------------------------------------------------------------- outputs

def test_summary_csv_rows_columns_values(cells, tmp_path):
    df = build(cells, tmp_path / "out")
    s = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert len(s) == len(df) == 30
    assert list(s.columns[:len(report.FIRST_COLUMNS)]) == report.FIRST_COLUMNS
    assert {"n_expected", "protocol", "version_python", "profile"} <= set(s.columns)
    assert "created_at" not in s.columns and "file" not in s.columns
    assert list(s["method"].unique()) == ["base", "agrpo", "diffu_grpo"]
    row = s[(s.method == "agrpo") & (s.train_step == 40) & (s.task == "tiny_countdown") & (s.steps == 4)].iloc[0]
    assert row["accuracy"] == pytest.approx(true_acc("agrpo", 40, "tiny_countdown", 4))
    assert row["n_correct"] == round(row["accuracy"] * N)
    # floats round-trip exactly
    orig = df.set_index(["method", "train_step", "task", "steps"]).sort_index()
    back = s.set_index(["method", "train_step", "task", "steps"]).sort_index()
    assert (orig["ci_low"] == back["ci_low"]).all() and (orig["ci_high"] == back["ci_high"]).all()


def test_outputs_are_deterministic(cells, tmp_path):
    build(cells, tmp_path / "a")
    build(cells, tmp_path / "a")  # rewrite in place
    df = load_cells(sorted(cells.rglob("metrics.json"), reverse=True))  # other input order
    write_report(df, tmp_path / "b", REF, "tiny")
    for name in ("summary.csv", "report.md", "item_scores.csv.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_plots_exist(cells, tmp_path):
    build(cells, tmp_path / "out")
    for name in ("acc_vs_steps", "acc_vs_flops", "acc_vs_train_step"):
        png = (tmp_path / "out" / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_report_md_tables_and_claims(cells, tmp_path):
    build(cells, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "no best-of selection" in md and "`abc1234`" in md and "`cfg0001`" in md and "torch 2.13.0" in md
    for heading in ("Table 1.", "Table 2.", "Table 3. Step robustness", "Table 4. The paper's claims beside ours"):
        assert heading in md
    assert "compare directions, not magnitudes" in md
    claims = md.split("Table 4.")[1].split("## Plots")[0]
    # reference numbers: AGRPO v2 abstract gains; d1 Table 1 diffu-GRPO − LLaDA (72.6−68.7, 79.8−76.7, 81.9−78.2)
    assert "+9.9" in claims and "+59.4" in claims and "+3.9 / +3.1 / +3.7" in claims and "86.3" in claims
    # ours: agrpo − base = +30.0 points, diffu-GRPO − base = +10.0, agrpo − diffu = +20.0 at full steps; drops at
    # 4x fewer steps: agrpo 4.0, base 16.0, diffu-GRPO 12.0. These cells have no generations.jsonl: no CI.
    arith = [line for line in claims.splitlines() if "| tiny_arith |" in line]
    assert len(arith) == 6
    na = ", CI n/a (no per-item scores) | seed0 {0} | no verdict (no per-item scores) |"
    for line, claim, diff in zip(arith, ["base → AGRPO gain", "base → diffu-GRPO gain", "AGRPO − diffu-GRPO",
                                         "accuracy drop at 4x fewer steps: AGRPO",
                                         "accuracy drop at 4x fewer steps: AGRPO − base",
                                         "accuracy drop at 4x fewer steps: AGRPO − diffu-GRPO"],
                                 ["+30.0", "+10.0", "+20.0", "+4.0", "-12.0", "-8.0"]):
        assert line.startswith(f"| {claim} | tiny_arith |") and line.endswith(f"| {diff}" + na.format(diff))
    assert "- tiny_arith: AGRPO vs diffu-GRPO at equal rollouts: +20.0 points: no verdict (no per-item scores)." in md
    # table 3: agrpo on tiny_countdown at 16 and 4 steps
    assert "| agrpo | tiny_countdown | 16 | 50.0 | 4 | 46.0 | -4.0 |" in md
    # table 1 at full steps: the last checkpoint (step40) of agrpo: 70.0 on tiny_arith
    t1 = md.split("### 16 sampling steps")[1].split("###")[0]
    assert "| agrpo | step40 | 1 | 70.0 [" in t1
    # table 2: base is the step-0 point of each RL method
    t2 = md.split("Table 2.")[1].split("Table 3.")[0]
    mid = 100 * round(true_acc("agrpo", 20, "tiny_arith", 16) * N) / N
    assert f"| agrpo | 40.0* | {mid:.1f} | 70.0 |" in t2 and "| base | 40.0 | – | – |" in t2
    for p in ("plots/acc_vs_steps.png", "plots/acc_vs_flops.png", "plots/acc_vs_train_step.png"):
        assert f"]({p})" in md


def _claim_rows(md: str, task: str) -> list[str]:
    return [line for line in md.split("Table 4.")[1].split("**Answers")[0].splitlines() if f"| {task} |" in line]


def test_claims_ci_from_generations(tmp_path):
    """Items q00 … q{k−1} correct in every fake cell (N = 50), so per-item differences are 0 or ±1 on known items."""
    root = make_grid(tmp_path / "c", generations=True)
    build(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    arith = _claim_rows(md, "tiny_arith")
    # AGRPO − diffu-GRPO at 16 steps: k 35 vs 25 → dᵢ = 1 on 10 items: d̄ = 0.2, s_d² = (10·0.8² + 40·0.2²)/49 = 8/49,
    # half = 1.96 · 0.40406/√50 = 0.1120 → [8.8, 31.2] points: excludes 0
    assert arith[2].endswith("| +20.0 [+8.8, +31.2] | seed0 +20.0 | AGRPO higher (CI excludes 0) |")
    # AGRPO − base: k 35 vs 20, d̄ = 0.3, s_d² = 50/49 · 0.21, half = 0.1283
    assert arith[0].endswith("| +30.0 [+17.2, +42.8] | seed0 +30.0 | AGRPO higher (CI excludes 0) |")
    # drops 16 → 4 steps: AGRPO k 35 → 33 (items 33, 34), diffu-GRPO 25 → 19 (items 19 … 24): dᵢ = +1 on 2 items,
    # −1 on 6: d̄ = −0.08, s_d² = (2·1.08² + 6·0.92² + 42·0.08²)/49 = 7.68/49, half = 0.1097 → [−19.0, +3.0]
    assert arith[5].endswith("| -8.0 [-19.0, +3.0] | seed0 -8.0 | no detectable difference (CI includes 0) |")
    # AGRPO's own drop: dᵢ = 1 on 2 items: d̄ = 0.04, s_d² = 50/49 · 0.04 · 0.96, half = 0.0549
    assert arith[3].endswith("| +4.0 [-1.5, +9.5] | seed0 +4.0 | no detectable drop (CI includes 0) |")
    answers = md.split("Per task and length (the summary at the top counts these):")[1].split("## Plots")[0]
    assert ("- tiny_arith: AGRPO vs diffu-GRPO at equal rollouts: +20.0 points [+8.8, +31.2]: AGRPO higher "
            "(CI excludes 0).\n") in answers
    assert ("- tiny_countdown: AGRPO's drop at 4x fewer steps minus diffu-GRPO's: -8.0 points [-19.0, +3.0]: "
            "no detectable difference (CI includes 0).\n") in answers
    assert ("- tiny_arith: AGRPO's accuracy drop at 4x fewer sampling steps (16 → 4): +4.0 points [-1.5, +9.5]: "
            "no detectable drop (CI includes 0).\n") in answers
    per_task = answers.split("## Table 5")[0]
    assert per_task.count("\n- ") == 12  # 2 tasks × (3 comparisons, AGRPO's drop, its drop vs base and diffu-GRPO)
    # the summary counts CI verdicts over the (task, length) settings; AGRPO − base drop on tiny_arith: dᵢ = +1 on
    # 2 items, −1 on 8: d̄ = −0.12, s_d² = 9.28/49, half = 0.1206 → [−24.1, +0.1] includes 0
    summary = md.split("## The claims, answered at this scale")[1].split("**Metrics.**")[0]
    assert md.index("## The claims, answered at this scale") < md.index("## Table 1")  # the answers come first
    assert ("- AGRPO vs diffu-GRPO at equal rollouts, full sampling steps: of 2 task × length settings, AGRPO higher "
            "(CI excludes 0) in 2 (tiny_arith +20.0, tiny_countdown +20.0), AGRPO lower in 0, no detectable "
            "difference in 0.\n") in summary
    assert ("- accuracy drop at 4x fewer sampling steps, AGRPO's minus base's: of 2 task × length settings, AGRPO "
            "drops more (CI excludes 0) in 0, AGRPO drops less in 0, no detectable difference in 2.\n") in summary
    # one line per RL method's gain over base (agrpo, diffu_grpo here), then AGRPO vs each baseline and the drops
    assert ("- AGRPO vs base, full sampling steps: of 2 task × length settings, AGRPO higher (CI excludes 0) in 2 "
            "(tiny_arith +30.0, tiny_countdown +30.0), AGRPO lower in 0, no detectable difference in 0.\n") in summary
    assert summary.count("\n- ") == 5
    assert "paired over the same test items" in md and "item-level variation only" in md


def test_claims_ci_seeds_averaged_and_disagreeing(tmp_path):
    root = tmp_path / "c"
    write_cell(root, "base", 0, 0, "tiny_arith", 16, k=10, generations=True)
    for m, ks in (("agrpo", (30, 20)), ("diffu_grpo", (20, 25))):
        for r, k in enumerate(ks):
            write_cell(root, m, r, 40, "tiny_arith", 16, k=k, generations=True)
    build(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    rows = _claim_rows(md, "tiny_arith")
    # per-item means: AGRPO 1 on q00–q19, 0.5 on q20–q29; diffu-GRPO 1 on q00–q19, 0.5 on q20–q24 → dᵢ = 0.5 on 5
    # items: d̄ = 0.05, s_d² = (5·0.45² + 45·0.05²)/49 = 1.125/49, half = 0.0420 → [0.8, 9.2]; seeds: +20, −10
    assert rows[2].endswith("| +5.0 [+0.8, +9.2] | seed0 +20.0, seed1 -10.0 | AGRPO higher (CI excludes 0), but run "
                            "seeds disagree in sign |")
    # base has one run seed: both AGRPO seeds are compared with it (0.6 − 0.2, 0.4 − 0.2)
    assert "| seed0 +40.0, seed1 +20.0 | AGRPO higher (CI excludes 0); both run seeds agree in sign |" in rows[0]
    assert rows[3].endswith("| not run | – | – |")  # no steps/4 cells
    assert "- tiny_arith: AGRPO's accuracy drop at 4x fewer sampling steps: not run." in md


def test_claims_ci_na_only_where_generations_are_missing(tmp_path):
    root = make_grid(tmp_path / "c", tasks=["tiny_arith"], generations=True)
    (root / "diffu_grpo" / "seed0" / "step40" / "tiny_arith" / "S16_seed0" / "generations.jsonl").unlink()
    build(root, tmp_path / "out")
    rows = _claim_rows((tmp_path / "out" / "report.md").read_text(), "tiny_arith")
    assert rows[0].endswith("| +30.0 [+17.2, +42.8] | seed0 +30.0 | AGRPO higher (CI excludes 0) |")
    assert rows[1].endswith("| +10.0, CI n/a (no per-item scores) | seed0 +10.0 | no verdict (no per-item scores) |")
    assert "| +20.0, CI n/a (no per-item scores) |" in rows[2] and "| -8.0, CI n/a (no per-item scores) |" in rows[5]
    assert "| -12.0 [-24.1, +0.1] |" in rows[4]


def test_claims_ci_rejects_mismatched_or_stale_generations(tmp_path):
    root = make_grid(tmp_path / "c", tasks=["tiny_arith"], steps=[16], generations=True)
    gen = root / "agrpo" / "seed0" / "step40" / "tiny_arith" / "S16_seed0" / "generations.jsonl"
    lines = gen.read_text().splitlines()
    gen.write_text("\n".join(lines[:-1] + [lines[-1].replace('"q49"', '"x49"')]) + "\n")
    with pytest.raises(ValueError, match=re.escape("not over the same items: base at 16 steps lacks 1 item(s) of agrpo "
                                                   "at 16 steps: 'x49'; agrpo at 16 steps lacks 1 item(s) of base at "
                                                   "16 steps: 'q49'")):
        build(root, tmp_path / "out")
    gen.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=f"{gen}: 49 items .* n = 50.*stale generations"):
        build(root, tmp_path / "out")


def test_summary_csv_unchanged_by_generations(tmp_path):
    """Per-item scores feed Table 4 only: summary.csv is byte-identical with and without generations.jsonl."""
    build(make_grid(tmp_path / "with", generations=True), tmp_path / "a")
    build(make_grid(tmp_path / "without"), tmp_path / "b")
    a, b = (tmp_path / "a" / "summary.csv").read_bytes(), (tmp_path / "b" / "summary.csv").read_bytes()
    assert a == b and b"generations" not in a and b"score" not in a.split(b"\n")[0]


def test_run_seeds_are_averaged(tmp_path):
    root = make_grid(tmp_path / "c", methods=("agrpo",), run_seeds=(0, 1), tasks=["tiny_arith"])
    build(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    t1 = md.split("### 16 sampling steps")[1].split("###")[0]
    assert "| agrpo | step40 | 2 | 72.0 ± 2.8 [" in t1  # seeds 70 and 74: mean 72, sd 2.83


def test_partial_grid_one_task_one_steps_no_reference(tmp_path):
    root = make_grid(tmp_path / "c", methods=("agrpo",), tasks=["tiny_countdown"], steps=[8])
    build(root, tmp_path / "out", ref=None)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "not run" in md and "not in grid" in md and "No reference CSV" in md
    assert all((tmp_path / "out" / "plots" / f"{n}.png").stat().st_size > 0
               for n in ("acc_vs_steps", "acc_vs_flops", "acc_vs_train_step"))


def test_writes_are_atomic(cells, tmp_path, monkeypatch):
    out = tmp_path / "out"
    build(cells, out)
    before = (out / "summary.csv").read_bytes()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    df = load_cells([cells]).assign(accuracy=0.0)

    def fail(*_):
        raise OSError("disk full")
    monkeypatch.setattr(agrpo_io.os, "replace", fail)
    with pytest.raises(OSError):
        write_report(df, out, REF, "tiny")
    assert (out / "summary.csv").read_bytes() == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def _accel_grid(root: Path) -> Path:
    """base and AGRPO on tiny_arith (L 16): plain cells at 16/8/4 steps (nfe = steps, 0.1 s per pass), prefix-cache
    cells at the same steps (same passes, half the seconds, one item fewer correct), and threshold-0.9 cells
    (3 passes, 0.3 s, one item fewer than plain at 8 steps)."""
    plain = {"cache": "none", "threshold": 0.0}
    for m, t in (("base", 0), ("agrpo", 40)):
        for s in STEPS:
            k = round(true_acc(m, t, "tiny_arith", s) * N)
            write_cell(root, m, 0, t, "tiny_arith", s, k=k, generations=True, extra=plain)
            write_cell(root, m, 0, t, "tiny_arith", s, k=k - 1, generations=True,
                       extra={"cache": "prefix", "threshold": 0.0, "seconds": 0.05 * s})
        k8 = round(true_acc(m, t, "tiny_arith", 8) * N)
        write_cell(root, m, 0, t, "tiny_arith", 16, k=k8 - 1, generations=True,
                   extra={"cache": "none", "threshold": 0.9, "nfe": 3.0, "seconds": 0.3})
    return root


def test_acceleration_table_pairs_cells_with_plain_sampling(tmp_path):
    df = load_cells([_accel_grid(tmp_path / "c")])
    acc = report.acceleration_rows(df).set_index(["setting", "against"])
    # prefix cache vs plain at the same steps: 6 pairs, same passes, half the seconds, one item fewer of 50
    cache = acc.loc[("prefix cache", "same steps")]
    assert cache["cells"] == 6 and cache["passes_ratio"] == pytest.approx(1.0)
    assert cache["seconds_ratio"] == pytest.approx(2.0)
    assert cache["accuracy_change"] == pytest.approx(-0.02)
    # threshold vs plain at L/2 = 8 steps: 8 / 3 passes, 0.8 / 0.3 s; per correct answer: (0.8 + 0.8) / (k8a + k8b)
    # over 0.6 / (k8a + k8b − 2) with k8 = 34 (AGRPO: 0.4 + 0.3 − 0.02) and 16 (base: 0.4 − 0.08)
    half = acc.loc[("threshold 0.9", "plain, steps L/2")]
    assert half["cells"] == 2 and half["passes_ratio"] == pytest.approx(16 / 6)
    assert half["seconds_per_correct_ratio"] == pytest.approx((1.6 / 50) / (0.6 / 48))
    # paired over 100 (cell, item) pairs, dᵢ = −1 on 2: d̄ = −0.02, s_d² = (2·0.98² + 98·0.02²)/99, half-width 0.0276
    ci = half["ci"]
    assert (ci.diff, round(ci.low, 4), round(ci.high, 4)) == (pytest.approx(-0.02), -0.0476, 0.0076)
    full = acc.loc[("threshold 0.9", "plain, steps L")]
    assert full["passes_ratio"] == pytest.approx(32 / 6)
    assert report.acceleration_rows(load_cells([make_grid(tmp_path / "plain", tasks=["tiny_arith"])])).empty


def test_claims_and_step_robustness_use_the_papers_sampler(tmp_path):
    root = _accel_grid(tmp_path / "c")
    build(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    # Table 4 from plain cells only: AGRPO − base at 16 steps = 35 − 20 items = +30.0 (the cache cells give the same
    # difference, so check the drop: plain 35 → 33 is +4.0; a mix with the cache cells would not be)
    rows = _claim_rows(md, "tiny_arith")
    assert rows[0].startswith("| base → AGRPO gain | tiny_arith |") and "| +30.0 [" in rows[0]
    drop = [r for r in rows if r.startswith("| accuracy drop at 4x fewer steps: AGRPO | tiny_arith |")]
    assert len(drop) == 1 and "| +4.0 [" in drop[0]
    t3 = md.split("Table 3.")[1].split("Table 4.")[0]
    assert "threshold" not in t3 and "nan" not in t3 and "cache=prefix" not in t3
    assert "| agrpo | tiny_arith | 16 | 70.0 | 4 | 66.0 | -4.0 |" in t3
    t5 = md.split("Table 5.")[1].split("## Plots")[0]
    assert "| threshold 0.9 | plain, steps L/2 | 16 | 2 | 2.67× |" in t5


def test_claims_at_the_papers_sampler_steps_with_claims_steps_divisor(tmp_path):
    """eval.claims_steps_divisor 2: Tables 3 and 4 at steps L/2 and the drop L/2 → L/8 (L 16: 8 → 2); at 1 (the
    default) they are at L = 16 steps, and without 4 steps in the grid the drop is not run."""
    root = tmp_path / "c"
    for m, ks in (("base", {16: 22, 8: 20, 2: 15}), ("agrpo", {16: 34, 8: 30, 2: 20})):
        for steps, k in ks.items():
            write_cell(root, m, 0, 0 if m == "base" else 40, "tiny_arith", steps, k=k, generations=True)
    df = load_cells([root])
    write_report(df, tmp_path / "half", REF, "tiny", claims_divisor=2)
    write_report(df, tmp_path / "full", REF, "tiny")
    half, full = ((tmp_path / d / "report.md").read_text() for d in ("half", "full"))
    rows = _claim_rows(half, "tiny_arith")
    assert rows[0].startswith("| base → AGRPO gain |") and "| +20.0 [" in rows[0]  # 30 − 20 of 50 at 8 steps
    assert "accuracy drop at 4x fewer steps: AGRPO |" in rows[1] and "| +20.0 [" in rows[1]  # 30 → 20
    assert "| agrpo | tiny_arith | 8 | 60.0 | 2 | 40.0 | -20.0 |" in half.split("Table 3.")[1]
    assert "AGRPO vs base, steps L/2 (the papers' sampler): of 1 task × length settings" in half
    assert "differences at steps L/2 (the papers' sampler), and drops = accuracy at L/2 − at L/8" in half
    t2 = half.split("## Table 2. Accuracy (%) vs RL training step, at steps L/2 (the papers' sampler)")[1]
    assert "**tiny_arith**, 8 sampling steps" in t2.split("## Table 3")[0]  # Table 2 at L/2 too
    rows = _claim_rows(full, "tiny_arith")
    assert "| +24.0 [" in rows[0] and rows[1].split(" | ")[5] == "not run"  # 34 − 22 at 16 steps; no 4 steps


def test_head_to_head_with_every_baseline_and_identical_scores(tmp_path):
    root = tmp_path / "c"
    for m, t, k in (("base", 0, 10), ("agrpo", 40, 20), ("diffu_grpo", 40, 20), ("d1", 40, 15)):
        write_cell(root, m, 0, t, "tiny_arith", 16, k=k, generations=True)
    build(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    rows = _claim_rows(md, "tiny_arith")
    assert [r.split(" | ")[0] for r in rows] == ["| base → AGRPO gain", "| base → diffu-GRPO gain",
                                                 "| base → d1 gain", "| AGRPO − diffu-GRPO", "| AGRPO − d1",
                                                 "| accuracy drop at 4x fewer steps: AGRPO"]
    assert "| +10.0 [+1.6, +18.4] | seed0 +10.0 | d1 higher (CI excludes 0) |" in rows[2]  # 15 vs 10 of 50 items
    assert rows[3].endswith("| +0.0 [+0.0, +0.0] | seed0 +0.0 | no difference: identical per-item scores |")
    # d1 paper number beside AGRPO − d1: 86.3 (AGRPO, GSM8K) − 81.1 (d1-LLaDA, L 256)
    assert "86.3 − 81.1 (d1, L = 256) = +5.2" in rows[4] and "| +10.0 [" in rows[4]
    assert ("AGRPO vs diffu-GRPO at equal rollouts, full sampling steps: of 1 task × length settings, AGRPO higher "
            "(CI excludes 0) in 0, AGRPO lower in 0, no detectable difference in 0, identical per-item scores in 1 "
            "(tiny_arith +0.0).") in md


def test_item_scores_file_holds_every_cells_items(tmp_path):
    """item_scores.csv.gz: one row per (cell, item) of the cells with generations, in summary.csv's cell order."""
    root = make_grid(tmp_path / "c", tasks=["tiny_arith"], generations=True)
    (root / "agrpo" / "seed0" / "step40" / "tiny_arith" / "S16_seed0" / "generations.jsonl").unlink()
    build(root, tmp_path / "out")
    items = pd.read_csv(tmp_path / "out" / "item_scores.csv.gz")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(items.columns[-2:]) == ["item_id", "score"] and "method" in items.columns
    assert len(items) == (len(summary) - 1) * N  # the cell without generations has no rows
    per_cell = items.groupby(["method", "checkpoint", "steps"], sort=False)["score"].agg(["mean", "size"])
    joined = summary.set_index(["method", "checkpoint", "steps"])[["accuracy"]].join(per_cell, how="inner")
    assert len(joined) == len(summary) - 1 and (joined["size"] == N).all()
    assert (joined["mean"] - joined["accuracy"]).abs().max() < 1e-12
    firsts = items.drop_duplicates(["method", "checkpoint", "steps"])[["method", "checkpoint", "steps"]]
    expected = summary[["method", "checkpoint", "steps"]].merge(firsts)  # summary order, minus the missing cell
    assert firsts.reset_index(drop=True).equals(expected)
    assert list(items["item_id"][:3]) == ["q00", "q01", "q02"]
    build(make_grid(tmp_path / "none", tasks=["tiny_arith"]), tmp_path / "empty")
    assert pd.read_csv(tmp_path / "empty" / "item_scores.csv.gz").empty


def test_reproduction_check_against_a_published_copy(cells, tmp_path):
    """The user-side regression check: a fresh report states whether its numbers equal a published copy's."""
    df = build(cells, tmp_path / "published")
    write_report(df, tmp_path / "same", REF, "tiny", published_dir=tmp_path / "published")
    md = (tmp_path / "same/report.md").read_text()
    assert f"**Reproduced:** all {len(df)} cells have the published accuracy and correct count." in md
    assert md.index("## Reproduction check") < md.index("## Table 1")
    pub = pd.read_csv(tmp_path / "published/summary.csv")
    first = (pub["method"] == "agrpo") & (pub["task"] == "tiny_arith") & (pub["steps"] == 16) & (pub["train_step"] == 40)
    pub.loc[first, ["accuracy", "n_correct"]] = [0.5, 25]
    pub = pub[~((pub["method"] == "base") & (pub["steps"] == 4))]  # 2 cells only in the fresh run
    pub.to_csv(tmp_path / "published/summary.csv", index=False)
    write_report(df, tmp_path / "differs", REF, "tiny", published_dir=tmp_path / "published")
    md = (tmp_path / "differs/report.md").read_text()
    assert f"**{len(df) - 3} of {len(df) - 2} matched cells** have the published accuracy" in md
    assert "1 differ, 2 are only in this run and 0 only in the published copy" in md
    assert "- agrpo step40 tiny_arith L16 16 steps: 70.0 vs 50.0" in md
    write_report(df, tmp_path / "none", REF, "tiny", published_dir=tmp_path / "nowhere")
    assert "Reproduction check" not in (tmp_path / "none/report.md").read_text()


def test_report_includes_the_learning_rate_sweep_it_is_given(cells, tmp_path):
    """sweep.report_dir / --sweep: the sweep's table (title dropped, headings one level down), its test-set table
    and plots/sweep.png in the report; a directory without the summary is one error naming the key."""
    from agrpo.report import load_sweep_summary

    sw = tmp_path / "sw"
    sw.mkdir()
    (sw / "sweep.md").write_text("# Learning-rate sweep\n\n| method | lr |\n|---|---|\n| agrpo | 1e-05 |\n")
    (sw / "sweep_test.md").write_text("# Sweep checkpoints on the test set\n\n## Drops\n\n| cell | base |\n")
    (sw / "sweep.png").write_bytes(b"\x89PNG fake")
    df = load_cells([cells])
    write_report(df, tmp_path / "out", REF, "tiny", sweep=load_sweep_summary(sw))
    md = (tmp_path / "out/report.md").read_text()
    section = md[md.index("## Learning-rate sweep"):md.index("## Plots")]
    assert "| agrpo | 1e-05 |" in section and "# Learning-rate sweep\n" not in section.replace("## Learning", "")
    assert "### The sweep's checkpoints on the test set" in section and "### Drops" in section
    assert "![reward per rollout batch in the sweep, by method and rate](plots/sweep.png)" in section
    assert (tmp_path / "out/plots/sweep.png").read_bytes() == b"\x89PNG fake"
    write_report(df, tmp_path / "plain", REF, "tiny")
    assert "Learning-rate sweep" not in (tmp_path / "plain/report.md").read_text()
    (sw / "sweep.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"^sweep.report_dir: .*sw has no sweep.png"):
        load_sweep_summary(sw)


def test_claims_csv_training_curves_and_metric_labels(cells, tmp_path):
    """claims.csv holds Table 4; the runs' train_log.jsonl become training_curves.csv, a plot and a table; Sudoku
    reports blank-cell accuracy with the share of puzzles solved beside it, labelled."""
    runs = tmp_path / "runs"
    for method, seeds in (("agrpo", (0, 1)), ("diffu_grpo", (0,))):
        for s in seeds:
            rows = [{"iteration": i, "reward_mean": 0.1 * i + s, "grad_norm": 1.0, "clip_ratio": 0.0, "loss": 0.0,
                     "rollouts": 8 * i, "optimizer_steps": i, "zero_std_groups": 0.5,
                     "reward_mean/tiny_arith": 0.2 * i, "zero_std_groups/tiny_arith": 0.25,
                     **({"eval_accuracy/tiny_arith": 0.05 * i} if i % 5 == 0 else {})}  # rl.monitor_every 5
                    for i in range(1, 11)]
            (runs / f"{method}-seed{s}").mkdir(parents=True)
            (runs / f"{method}-seed{s}/train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_cell(cells, "base", 0, 0, "tiny_sudoku", 16, k=10, extra={"accuracy": 0.7})
    df = load_cells([cells])
    df = df[(df["task"] != "tiny_sudoku") | (df["steps"] == 16)]
    write_report(df, tmp_path / "out", REF, "tiny", runs_dir=runs)
    claims = pd.read_csv(tmp_path / "out/claims.csv")
    assert len(claims) == 16 and "ours: difference [95% CI] (points)" in claims.columns  # the rows of Table 4
    curves = pd.read_csv(tmp_path / "out/training_curves.csv")
    assert len(curves) == 30 and set(curves["method"]) == {"agrpo", "diffu_grpo"}
    assert curves["reward_mean/tiny_arith"].tolist()[:2] == [0.2, 0.4]  # the per-task columns of the log
    assert set(curves["zero_std_groups/tiny_arith"]) == {0.25}
    monitored = curves.dropna(subset=["eval_accuracy/tiny_arith"])  # the monitor's batches only, as logged
    assert monitored["iteration"].tolist() == [5, 10] * 3 and monitored["eval_accuracy/tiny_arith"].iloc[1] == 0.5
    assert (tmp_path / "out/plots/training_curves.png").stat().st_size > 0
    md = (tmp_path / "out/report.md").read_text()
    assert "| agrpo | 1 | 10 | 1.150 | 1.950 | 10 |" in md  # seed 1: first 2 batches 1.1, 1.2; last 2 1.9, 2.0
    assert "### Has training plateaued?" in md  # the per-task reward rises 0.2 a batch in every run, exactly
    assert "| agrpo | reward, tiny_arith | +20.000 [+20.000, +20.000] | +20.000 [+20.000, +20.000] | still rising |" in md
    assert "tiny_sudoku: cells; puzzles" in md and "70.0 [" in md and "; 20.0 |" in md
    assert "share of blank cells filled correctly" in md


# ------------------------------------------------------------------------------------------------- the papers' layout

PAPER_TASKS = ["gsm8k_platinum", "countdown"]
PAPER_K = {("base", "gsm8k_platinum"): 30, ("base", "countdown"): 10, ("agrpo", "gsm8k_platinum"): 40,
           ("agrpo", "countdown"): 35, ("diffu_grpo", "gsm8k_platinum"): 36, ("diffu_grpo", "countdown"): 20}
LENGTH_BONUS = {128: 0, 256: 1, 512: 2}       # items gained at longer generations
EIGHTH_LOSS = {"base": 5, "agrpo": 1, "diffu_grpo": 5}  # items lost at L/8 steps against L/2


def paper_k(method, task, L, divisor, train_step, run_seed=0) -> int:
    """Items correct of N = 50; step 20 is 3 items better than the last checkpoint (step 40): a best-of would
    pick it, the report must not."""
    return (PAPER_K[(method, task)] + LENGTH_BONUS[L] - (EIGHTH_LOSS[method] if divisor == 8 else 0)
            + (3 if train_step == 20 else 0) + 2 * run_seed)


def make_paper_grid(root: Path, tasks=PAPER_TASKS, protocol="agrpo", divisors=(2, 8), run_seeds=(0,)) -> Path:
    """A per-task paper-like grid: base + AGRPO + diffu-GRPO (runs per task, cells recording train_task), tasks ×
    L 128/256/512 × steps L/2, L/8, generations with items q00 … q{k−1} correct."""
    for task in tasks:
        for L in (128, 256, 512):
            for d in divisors:
                extra = {"gen_length": L, "block_length": 32, "protocol": protocol, "profile": "paper"}
                write_cell(root, "base", 0, 0, task, L // d, k=paper_k("base", task, L, d, 0), generations=True,
                           extra=extra)
                for m in ("agrpo", "diffu_grpo"):
                    for r in run_seeds:
                        for t in (20, 40):
                            write_cell(root, m, r, t, task, L // d, k=paper_k(m, task, L, d, t, r), generations=True,
                                       extra=extra | {"train_task": task})
    return root


def _ci_text(ks: list[int]) -> str:
    """'acc [lo, hi]' (± sd across cells where several) as the report prints a mean over cells of k of N items."""
    cis = [mean_ci([1.0] * k + [0.0] * (N - k)) for k in ks]
    acc, lo, hi = (sum(c[i] for c in cis) / len(cis) for i in range(3))
    sd = f" ± {100 * pd.Series([c[0] for c in cis]).std():.1f}" if len(ks) > 1 else ""
    return f"{100 * acc:.1f}{sd} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _md_rows(md: str, section: str, end: str) -> list[list[str]]:
    """The table rows (cells split on '|') of a report section."""
    text = md.split(section)[1].split(end)[0]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]


def test_table_p1_in_the_papers_layout(tmp_path):
    root = make_paper_grid(tmp_path / "c")
    # a per-task run evaluated on another task than its own: not a cell of Table P1 (the papers' layout)
    write_cell(root, "agrpo", 0, 40, "gsm8k_platinum", 128, k=50, generations=True,
               extra={"gen_length": 256, "block_length": 32, "protocol": "agrpo", "train_task": "countdown",
                      "cross": 1})
    df = build(root, tmp_path / "out")
    md = (tmp_path / "out/report.md").read_text()
    head = md.split("## Table P1.")[1].splitlines()[4]
    assert head == ("| method | numbers | gsm8k_platinum L=128 | gsm8k_platinum L=256 | gsm8k_platinum L=512 | "
                    "countdown L=128 | countdown L=256 | countdown L=512 |")
    rows = _md_rows(md, "## Table P1.", "Published numbers in")
    assert [r[:2] for r in rows] == [["base", "ours"], ["base", "d1 Table 1[a]"], ["base", "d1 released eval[a]"],
                                     ["base", "SPG paper[a]"], ["agrpo", "ours"], ["agrpo", "AGRPO paper"],
                                     ["diffu_grpo", "ours"], ["diffu_grpo", "d1 Table 1[a]"]]
    spg = rows.pop(3)  # SPG's own evaluation of LLaDA; d1's GSM8K test (footnoted), the same Countdown test set
    assert spg[2:] == ["69.5[d]", "77.2[d]", "79.8[d]", "18.8", "16.8", "16.8"]
    cols = [(t, L) for t in PAPER_TASKS for L in (128, 256, 512)]
    for row, m in ((rows[0], "base"), (rows[3], "agrpo"), (rows[5], "diffu_grpo")):
        step = 0 if m == "base" else 40  # the last checkpoint, though step 20 is better
        assert row[2:] == [f"{_ci_text([paper_k(m, t, L, 2, step)])} (step {step})" for t, L in cols], m
    assert rows[3][3] == "82.0 [69.2, 90.2] (step 40)"  # agrpo, GSM8K-Platinum, L 256: 40 + 1 of 50 items
    # published beside ours: d1's GSM8K numbers footnoted (other test set), Countdown the same test set
    assert rows[1][2:] == ["68.7[b]", "76.7[b]", "78.2[b]", "20.7", "19.5", "16.0"]
    assert rows[2][2:] == ["69.29[c]", "76.37[c]", "78.14[c]", "20.7", "19.53", "16.02"]
    assert rows[6][2:] == ["72.6[b]", "79.8[b]", "81.9[b]", "33.2", "31.3", "37.1"]
    assert rows[4][2:] == ["—"] * 6  # AGRPO published no per-length accuracy
    notes = md.split("## Table P1.")[1].split("## Table P2.")[0]
    assert "[a] published under d1's prompts and judges, ours under agrpo's (data.protocol)\n" in notes
    assert "[b] d1 Table 1: published on GSM8K test (1,319 questions), ours on GSM8K-Platinum\n" in notes
    assert ("[c] d1 released eval: published on GSM8K test, 1,130 of its 1,319 questions, ours on "
            "GSM8K-Platinum") in notes
    assert "[d] SPG paper: published on GSM8K test (1,319 questions), ours on GSM8K-Platinum\n" in notes
    assert "- SPG paper: accuracies at L = 128/256/512 for LLaDA-8B-Instruct; the base model only." in notes
    assert "- AGRPO paper: accuracy without a stated length: AGRPO gsm8k 86.3" in notes
    assert "the best checkpoint per length (d1 §4.6)" in notes
    t1 = pd.read_csv(tmp_path / "out/table1.csv", keep_default_na=False)
    ours = t1[t1["numbers"] == "ours"]
    assert len(ours) == 3 * 6 and set(ours["steps"].astype(int)) == {64, 128, 256}
    r = ours[(ours["method"] == "agrpo") & (ours["task"] == "countdown") & (ours["gen_length"] == 256)].iloc[0]
    assert (r["accuracy_pct"], r["checkpoint"], r["train_task"], r["reference_task"]) == (72.0, "step 40",
                                                                                          "countdown", "countdown")
    assert set(ours.loc[ours["method"] == "base", "train_task"]) == {""}
    pub = t1[(t1["numbers"] == "d1 Table 1") & (t1["method"] == "base") & (t1["gen_length"] == 256)]
    assert list(pub["accuracy_pct"]) == [76.7, 19.5] and list(pub["flag"]) == ["paper-via-wd1", "verified"]
    assert "ours on GSM8K-Platinum" in pub["note"].iloc[0] and "GSM8K-Platinum" not in pub["note"].iloc[1]
    assert len(df) == 1 + 3 * 2 * 2 * (1 + 2 * 2)
    t4 = md.split("## Table 4.")[1].split("## Table 5.")[0]
    assert "synthetic tiny tasks" not in t4 and "**The papers' tasks:**" in t4  # not the tiny profiles' caveat
    claims = pd.read_csv(tmp_path / "out/claims.csv", keep_default_na=False)
    platinum = claims[claims["our task"].str.startswith("gsm8k_platinum")]
    assert len(platinum) and set(platinum["paper task"]) == {"gsm8k"}  # compared with the papers' GSM8K


def test_table_p2_steps_robustness_per_task(tmp_path):
    build(make_paper_grid(tmp_path / "c"), tmp_path / "out")
    md = (tmp_path / "out/report.md").read_text()
    p2 = md.split("## Table P2.")[1].split("## Table 1.")[0]
    assert p2.index("**gsm8k_platinum**") < p2.index("**countdown**")
    countdown = _md_rows(p2, "**countdown**", "## ")
    assert [r[:4] for r in countdown[:4]] == [["base", "none (base model)", "step 0", "128"],
                                             ["base", "none (base model)", "step 0", "256"],
                                             ["base", "none (base model)", "step 0", "512"],
                                             ["agrpo", "countdown", "step 40", "128"]]
    assert "| method | trained on | checkpoint | L | steps L/2 | steps L/8 | drop L/2 → L/8, points [95% CI] |" in p2
    # AGRPO at L 512: 37 → 36 items: dᵢ = 1 on 1 of 50 items, d̄ = 0.02, s_d² = (0.98² + 49·0.02²)/49 = 0.02,
    # half = 1.96·√0.02/√50 = 0.0392; diffu-GRPO 22 → 17: d̄ = 0.1, s_d² = (5·0.81 + 45·0.01)/49, half = 0.0840
    assert countdown[5] == ["agrpo", "countdown", "step 40", "512", "74.0 [60.4, 84.1]", "72.0 [58.3, 82.5]",
                            "+2.0 [-1.9, +5.9]"]
    assert countdown[8][-1] == "+10.0 [+1.6, +18.4]" and countdown[8][4] == _ci_text([22])
    steps = pd.read_csv(tmp_path / "out/steps_robustness.csv", keep_default_na=False)
    assert len(steps) == 3 * 2 * 3 * 2
    r = steps[(steps["method"] == "diffu_grpo") & (steps["task"] == "countdown") & (steps["gen_length"] == 512)]
    assert list(r["steps"]) == [256, 64] and list(r["accuracy_pct"]) == [44.0, 34.0]
    assert r["drop_pts"].iloc[0] == pytest.approx(10.0) and r["drop_ci_low_pts"].iloc[0] == pytest.approx(1.6, abs=0.05)
    assert set(r["train_task"]) == {"countdown"} and set(r["checkpoint"]) == {"step 40"}


def test_paper_layout_seeds_protocol_and_partial_grids(tmp_path):
    """Two run seeds: their mean ± sd; d1's protocol and test set: no footnote on d1's Table 1; no L/8 steps: the
    drop is not in the grid; no reference CSV: ours only."""
    root = make_paper_grid(tmp_path / "c", tasks=["countdown"], protocol="d1", divisors=(2,), run_seeds=(0, 1))
    build(root, tmp_path / "out")
    md = (tmp_path / "out/report.md").read_text()
    rows = _md_rows(md, "## Table P1.", "Published numbers in")
    assert [r[:2] for r in rows] == [["base", "ours"], ["base", "d1 Table 1"], ["base", "d1 released eval"],
                                     ["base", "SPG paper"], ["agrpo", "ours"], ["agrpo", "AGRPO paper"],
                                     ["diffu_grpo", "ours"], ["diffu_grpo", "d1 Table 1"]]
    ks = [paper_k("agrpo", "countdown", 256, 2, 40, r) for r in (0, 1)]  # 36 and 38 items: mean 74, sd 2.8
    assert rows[3][2:] == ["18.8", "16.8", "16.8"]  # SPG's LLaDA on the same Countdown test set: no footnote
    assert rows[4][3] == f"{_ci_text(ks)} (step 40, 2 run seeds)" and rows[4][3].startswith("74.0 ± 2.8 [")
    assert rows[1][2:] == ["20.7", "19.5", "16.0"] and "[a]" not in md.split("## Table P1.")[1].split("## Table P2.")[0]
    p2 = _md_rows(md, "**countdown**", "## ")
    assert p2[4][:4] == ["agrpo", "countdown", "step 40", "256"] and p2[4][4] == _ci_text(ks)
    assert p2[4][-1] == "not in grid" and len(p2[4]) == 6  # steps L/2 only
    build(root, tmp_path / "noref", ref=None)
    md = (tmp_path / "noref/report.md").read_text()
    rows = _md_rows(md, "## Table P1.", "Published numbers in")
    assert [r[1] for r in rows] == ["ours"] * 3 and "- No reference CSV was given: no published numbers." in md
    t1 = pd.read_csv(tmp_path / "noref/table1.csv")
    assert set(t1["numbers"]) == {"ours"} and len(t1) == 3 * 3


def test_paper_layout_only_where_the_cells_are_in_it(cells, tmp_path):
    """Mixed runs at one short length (the tiny and small profiles): no Tables P1 and P2, no table1.csv; a mixed
    grid at two of the papers' lengths gets them, its rows trained on every task."""
    build(cells, tmp_path / "tiny")
    md = (tmp_path / "tiny/report.md").read_text()
    assert "Table P1" not in md and "Table P2" not in md
    assert not (tmp_path / "tiny/table1.csv").exists() and not (tmp_path / "tiny/steps_robustness.csv").exists()
    root = tmp_path / "mixed"
    for L in (128, 256):
        for m, t in (("base", 0), ("agrpo", 40)):
            write_cell(root, m, 0, t, "tiny_arith", L // 2, k=20 + t // 4, generations=True, extra={"gen_length": L})
    build(root, tmp_path / "mixed_out")
    md = (tmp_path / "mixed_out/report.md").read_text()
    rows = _md_rows(md, "## Table P1.", "Published numbers in")
    assert rows[1][:2] == ["agrpo", "ours"] and rows[1][2:] == [f"{_ci_text([30])} (step 40)"] * 2
    assert len(rows) == 3 and rows[2][1] == "AGRPO paper" and rows[2][2:] == ["—", "—"]  # tiny_arith: no reference
    assert "| agrpo | every task (mixed run) | step 40 | 128 | " in md


def test_cells_are_keyed_by_training_task(tmp_path):
    """Two per-task runs share method, run seed and step: their cells on one task are two cells, not a duplicate;
    the same cell twice still is one, named with its training task."""
    root = make_paper_grid(tmp_path / "c", tasks=["countdown"], divisors=(2,))
    extra = {"gen_length": 128, "block_length": 32, "protocol": "agrpo", "train_task": "gsm8k_platinum"}
    write_cell(root, "agrpo", 0, 40, "countdown", 64, k=1, extra=extra)
    df = load_cells([root])
    check_complete(df)
    assert sorted(df.loc[(df["method"] == "agrpo") & (df["gen_length"] == 128) & (df["train_step"] == 40),
                         "train_task"]) == ["countdown", "gsm8k_platinum"]
    copy = write_cell(tmp_path / "copy", "agrpo", 0, 40, "countdown", 64, k=1, extra=extra)
    with pytest.raises(IncompleteCellError, match="duplicate cell agrpo run_seed=0 checkpoint=step40 "
                                                  "train_task=gsm8k_platinum task=countdown") as e:
        check_complete(load_cells([root, copy]))
    assert str(copy) in str(e.value)
