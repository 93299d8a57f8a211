"""The learning-rate sweep: config checks, one sweep run through the CLI, and the choice of rate."""

import json

import pandas as pd
import pytest

from agrpo.cli import main
from tests.test_config import assert_refused


@pytest.mark.parametrize("edits, message", [
    ({("sweep", "learning_rates"): {"grpo": [1e-4]}}, r"sweep.learning_rates.grpo: 'grpo' is not a method"),
    ({("sweep", "learning_rates"): {"agrpo": [1e-4, -1e-5]}}, r"sweep.learning_rates.agrpo\[1\]: a learning rate must be > 0, got -1e-05"),
    ({("sweep", "learning_rates"): {"agrpo": []}}, r"sweep.learning_rates.agrpo: give at least one"),
    ({("sweep", "learning_rates"): {"agrpo": [1e-4, 1e-4]}}, r"listed twice"),
    ({("sweep", "iterations"): -2}, r"sweep.iterations: must be >= 0"),
    ({("sweep", "select_window"): 1.5}, r"sweep.select_window: must be <= 1"),
    ({("rl", "warmup_ratio"): 1.2}, r"rl.warmup_ratio: must be <= 1"),  # warmup longer than the run
    ({("methods", "agrpo", "learning_rate"): -1e-4}, r"methods.agrpo.learning_rate: must be > 0"),
])
def test_bad_sweep_and_schedule_keys_are_refused(tmp_path, edits, message):
    assert_refused(tmp_path, edits, message)


def test_a_sweep_run_trains_at_its_rate_for_the_sweep_budget(tmp_path):
    from tests.helpers import minute_run

    minute_run(tmp_path, {"iterations": 4, "checkpoint_every": 2, "lr_schedule": "constant_with_warmup",
                          "warmup_ratio": 0.5}, data={"rl_size": 30},
               sweep={"learning_rates": {"agrpo": [3e-4, 1e-3]}, "iterations": 2})
    args = ["sweep-run", "--config", str(tmp_path / "c.yaml"), "--method", "agrpo", "--seed", "0",
            "--base", str(tmp_path / "base"), "--quiet"]
    assert main(args + ["--lr", "1e-3", "--out", str(tmp_path / "sw/agrpo-lr1e-03-seed0")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "sw/agrpo-lr1e-03-seed0/train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2] and rows[1]["lr"] == pytest.approx(1e-3)  # after 1 warmup step
    from agrpo.sweep import load_sweep  # the run's rate, not the batch's scheduled one, names the row
    logs = load_sweep(tmp_path / "sw")
    assert set(logs["lr"]) == {1e-3} and logs["lr_scheduled"].tolist() == [r["lr"] for r in rows]
    assert main(args + ["--lr", "2e-3", "--out", str(tmp_path / "x")]) == 2  # not one of the rates
    assert main(args[:4] + ["diffu_grpo"] + args[5:] + ["--lr", "1e-3", "--out", str(tmp_path / "x")]) == 2


def test_the_choice_is_the_best_reward_over_the_last_batches(tmp_path):
    from agrpo.config import load_config
    from agrpo.sweep import lr_tag, parse_run, summarise, sweep_markdown
    from tests.test_config import tiny_dict, write

    d = tiny_dict()
    d["sweep"] = {"learning_rates": {"agrpo": [1e-5, 1e-4]}, "select_window": 0.5}
    cfg = load_config(write(tmp_path, d))
    rows = []
    for lr, rewards in ((1e-5, [0.1, 0.2, 0.3, 0.4]), (1e-4, [0.5, 0.6, 0.2, 0.1])):  # 1e-4: higher mean, worse end
        for seed in (0, 1):
            rows += [{"method": "agrpo", "lr": lr, "run_seed": seed, "iteration": i + 1, "reward_mean": r + 0.1 * seed,
                      "rollouts": 64 * (i + 1)} for i, r in enumerate(rewards)]
    table = summarise(cfg, pd.DataFrame(rows))
    best = table[table["chosen"]].iloc[0]
    assert best["lr"] == 1e-5 and best["reward_last"] == pytest.approx(0.40)  # seeds' means 0.35 and 0.45
    assert (best["reward_last_min"], best["reward_last_max"]) == pytest.approx((0.35, 0.45))
    assert table.set_index("lr")["profile_uses"].to_dict() == {1e-5: False, 1e-4: True}  # tiny.yaml: 1e-4
    assert "agrpo: the profile's rate 0.0001 is not the sweep's choice 1e-05." in sweep_markdown(table, 100)
    assert parse_run(f"diffu_grpo-lr{lr_tag(3e-5)}-seed2") == ("diffu_grpo", 3e-5, 2)


def test_headroom_calibration_then_sweep_script(tmp_path):
    """benchmarks/small_headroom.py: candidates (data, pretraining, headroom), a sweep from the chosen one, and
    its summary as the sweep report."""
    import sys
    from pathlib import Path

    from agrpo.config import load_config

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    import small_headroom

    small = {"data.tasks": ["tiny_arith"], "data.train_size": 40, "data.rl_size": 40, "data.test_size": 8,
             "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.d_ff": 64,
             "methods.d1": None, "methods.wd1": None, "methods.agrpo.objective_args.mc_samples": 2}
    out = tmp_path / "hr.json"
    args = ["--config", str(root / "workflow/config/tiny.yaml"), "--work", str(tmp_path / "w"), "--items", "4",
            "--out", str(out), "--quiet", "--band", "0.0", "1.0", "--methods", "agrpo",
            "--sweep", json.dumps({"sweep.learning_rates": {"agrpo": [1e-4]}, "sweep.iterations": 2,
                                   "rl.iterations": 2, "rl.checkpoint_every": 2})]
    for steps in (2, 3):
        args += ["--candidate", json.dumps({**small, "pretrain.steps": steps})]
    assert small_headroom.main(args) == 0
    result = json.loads(out.read_text())
    assert [c["pretrain"]["steps"] for c in result["candidates"]] == [2, 3]
    assert [r["method"] for r in result["candidates"][0]["headroom"]["tasks"]["tiny_arith"]["rollouts"]] == ["agrpo"]
    assert result["chosen_candidate"] == 0  # both in the band: the first
    assert list(result["sweep"]["runs"]) == ["agrpo-lr1e-04-seed0"]
    run = result["sweep"]["runs"]["agrpo-lr1e-04-seed0"]
    assert len(run["log"]) == 2
    base = result["sweep"]["base_test_scores"]  # every test item, each eval length at L/2 and L/8 steps
    L = load_config(root / "workflow/config/tiny.yaml").eval.gen_lengths
    assert list(base) == [f"tiny_arith L{n} S{n // d}" for n in L for d in (2, 8)]
    assert list(run["test_scores"]) == list(base) and all(len(v) == 8 for v in base.values())
    assert small_headroom.main(["--summarise", str(out), "--out-dir", str(tmp_path / "rep")]) == 0
    assert "| agrpo | 0.0001 | 1 | 2 |" in (tmp_path / "rep/sweep.md").read_text()
    assert "## Candidate 1" in (tmp_path / "rep/calibration.md").read_text()
    test_md = (tmp_path / "rep/sweep_test.md").read_text()
    assert f"| tiny_arith L{L[0]} S{L[0] // 2} | " in test_md and f"| tiny_arith L{L[0]} | " in test_md


def test_sweep_test_table_pairs_each_run_with_the_base():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from small_headroom import heldout_markdown

    base = {"t L8 S4": {"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0}, "t L8 S1": {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}}
    run = {"t L8 S4": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0}, "t L8 S1": {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}}
    md = heldout_markdown(base, {"r": run})
    assert "| t L8 S4 | 25.0% | 75.0% (+50.0 [" in md  # (1-0) + 0 + (1-0) + 0 over 4 items
    assert "| t L8 S1 | 0.0% | 50.0% (+50.0 [" in md
    assert "| t L8 | +25.0 [" in md and "| +25.0 [" in md.split("| t L8 | ")[1]  # drops: base 1/4, run 1/4


def test_headroom_plan_file_and_the_committed_plan_loads(tmp_path):
    import sys
    from pathlib import Path

    from agrpo.config import load_config
    from agrpo.sweep import sweep_runs

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    import small_headroom

    plan = json.loads((root / "benchmarks/configs/small_headroom_plan.json").read_text())
    for c in plan["candidates"]:  # every candidate of the next lease's plan is a valid small profile
        cfg = load_config(root / "workflow/config/small.yaml", {**c, **plan["sweep"]})
        assert len(sweep_runs(cfg)) == 12 and cfg.data.rl_size == 2000 and cfg.pretrain.deterministic
    plan_d = json.loads((root / "benchmarks/configs/small_headroom_plan_d.json").read_text())
    cfgs = [load_config(root / "workflow/config/small.yaml", {**c, **plan_d["sweep"]}) for c in plan_d["candidates"]]
    assert [len(sweep_runs(c)) for c in cfgs] == [6, 6] and cfgs[0].rl.iterations == 400
    assert cfgs[0].data.pretrain_task_args == {"tiny_sudoku": {"min_blanks": 9, "max_blanks": 10}}
    plan_e = json.loads((root / "benchmarks/configs/small_headroom_plan_e.json").read_text())
    assert plan_e["candidates"] == plan_d["candidates"][:1] and plan_e["order"] in small_headroom.ORDERS
    plan_f = json.loads((root / "benchmarks/configs/small_headroom_plan_f.json").read_text())
    cfg_f = load_config(root / "workflow/config/small.yaml", {**plan_f["candidates"][0], **plan_f["sweep"]})
    assert plan_f["candidates"] == plan_e["candidates"] and sweep_runs(cfg_f) == [
        "diffu_grpo-lr3e-06-seed0", "wd1-lr3e-06-seed0"] and cfg_f.rl.iterations == 400
    mine = {"candidates": [{"data.tasks": ["tiny_arith"], "data.train_size": 20, "data.test_size": 4,
                            "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.d_ff": 64,
                            "pretrain.steps": 1}], "methods": ["agrpo"]}
    (tmp_path / "plan.json").write_text(json.dumps(mine))
    out = tmp_path / "r.json"
    assert small_headroom.main(["--config", str(root / "workflow/config/tiny.yaml"), "--plan", str(tmp_path / "plan.json"),
                                "--work", str(tmp_path / "w"), "--items", "2", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert len(result["candidates"]) == 1 and "sweep" not in result


def test_calibration_and_sweep_runs_need_no_pandas(tmp_path):
    """The GPU machines lack pandas: calibration candidates and sweep runs must not import it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    small = {"data.tasks": ["tiny_arith"], "data.train_size": 20, "data.rl_size": 20, "data.test_size": 4,
             "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.d_ff": 64, "pretrain.steps": 1,
             "methods.d1": None, "methods.wd1": None, "methods.agrpo.objective_args.mc_samples": 2}
    sweep = {"sweep.learning_rates": {"agrpo": [1e-4]}, "sweep.iterations": 1, "rl.iterations": 2,
             "rl.checkpoint_every": 1}
    code = f"""
import sys
sys.modules["pandas"] = None  # `import pandas` raises ImportError, as where it is not installed
sys.path.insert(0, {str(root / 'benchmarks')!r})
import small_headroom
sys.exit(small_headroom.main({["--config", str(root / "workflow/config/tiny.yaml"), "--work", str(tmp_path / "w"),
                               "--items", "2", "--out", str(tmp_path / "r.json"), "--quiet", "--methods", "agrpo",
                               "--band", "0", "1", "--candidate", json.dumps(small), "--sweep", json.dumps(sweep)]!r}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(json.loads((tmp_path / "r.json").read_text())["sweep"]["runs"]) == ["agrpo-lr1e-04-seed0"]


def test_band_score_breaks_ties_by_distance_and_rate_order_spreads_methods():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from small_headroom import band_score, ordered_runs

    def cand(*accs):
        return {"headroom": {"tasks": {f"t{i}": {"test_accuracy": {"mean": a}} for i, a in enumerate(accs)}}}

    # the H200 lease of issue 19: one task in the band each; the second's others lie nearer the band
    first, second = cand(0.055, 0.0, 0.318), cand(0.211, 0.141, 0.707)
    assert band_score(first, (0.15, 0.6))[0] == band_score(second, (0.15, 0.6))[0] == 1
    assert band_score(second, (0.15, 0.6)) > band_score(first, (0.15, 0.6))
    assert band_score(cand(0.2, 0.3), (0.15, 0.6)) == (2, 0.0)
    runs = ["agrpo-lr1e-05-seed0", "agrpo-lr3e-05-seed0", "diffu_grpo-lr1e-05-seed0", "diffu_grpo-lr3e-05-seed0"]
    assert ordered_runs(runs, "method") == runs
    assert ordered_runs(runs, "rate") == [runs[0], runs[2], runs[1], runs[3]]
    assert ordered_runs(runs, "rate_desc") == [runs[1], runs[3], runs[0], runs[2]]


def test_the_choice_is_task_balanced_not_swayed_by_the_batches_task_mix(tmp_path):
    """Two rates, the same per-task rewards; the second's last batches drew more of the easy task (plain batch mean
    higher). Task-balanced, the first wins: it is better on the hard task."""
    from agrpo.config import load_config
    from agrpo.sweep import summarise
    from tests.test_config import tiny_dict, write

    d = tiny_dict()
    d["sweep"] = {"learning_rates": {"agrpo": [1e-5, 1e-4]}, "select_window": 0.5}
    cfg = load_config(write(tmp_path, d))
    rows = []
    for lr, hard, easy_share in ((1e-5, 0.3, 0.25), (1e-4, 0.2, 0.75)):
        for i in range(4):
            share = 0.5 if i < 2 else easy_share  # the first half: an even mix
            rows.append({"method": "agrpo", "lr": lr, "run_seed": 0, "iteration": i + 1, "rollouts": 64 * (i + 1),
                         "reward_mean": share * 0.9 + (1 - share) * hard,
                         "reward_mean/easy": 0.9, "reward_mean/hard": hard})
    rows.append({**rows[-1], "iteration": 4, "reward_mean/hard": float("nan")})  # a batch without the hard task
    rows.pop(-2)
    table = summarise(cfg, pd.DataFrame(rows)).set_index("lr")
    assert table.loc[1e-4, "reward_last"] == pytest.approx((0.9 + 0.2) / 2)  # the NaN batch skipped, not zero
    assert table.loc[1e-5, "reward_last"] == pytest.approx((0.9 + 0.3) / 2)
    assert table["chosen"].to_dict() == {1e-5: True, 1e-4: False}
    plain_last = pd.DataFrame(rows).query("lr == 1e-4 and iteration > 2")["reward_mean"].mean()
    assert plain_last > 0.6  # the plain mean would have chosen 1e-4


def test_a_candidate_whose_deterministic_pretraining_fails_is_pretrained_without(tmp_path, monkeypatch):
    """On a device where an op has no deterministic kernel, the calibration goes on without it and says so."""
    import sys
    from pathlib import Path

    import agrpo.pretrain

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    import small_headroom

    real = agrpo.pretrain.pretrain

    def strict_fails(cfg, out_dir, progress=True):
        if cfg.pretrain.deterministic:
            raise RuntimeError("some_op does not have a deterministic implementation")
        return real(cfg, out_dir, progress)

    monkeypatch.setattr(agrpo.pretrain, "pretrain", strict_fails)
    small = {"data.tasks": ["tiny_arith"], "data.train_size": 20, "data.rl_size": 8, "data.test_size": 4,
             "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.d_ff": 64, "pretrain.steps": 2,
             "pretrain.deterministic": True}
    c = small_headroom.run_candidate(str(root / "workflow/config/tiny.yaml"), small, tmp_path, 2, "cpu", False,
                                     ["agrpo"])
    assert "deterministic implementation" in c["pretrain"]["deterministic_error"]
    assert c["pretrain"]["deterministic"] is False and c["overrides"] == small


def test_sweep_trends_per_method_and_rate():
    """sweep.md's trend table: one line per method and rate, over its seeds."""
    import pandas as pd

    from agrpo.sweep import trend_markdown

    rows = [{"method": "agrpo", "lr": lr, "run_seed": s, "iteration": i, "reward_mean": 0.1 + k * i}
            for lr, k in ((1e-5, 0.01), (3e-6, 0.0)) for s in (0, 1) for i in range(1, 21)]
    md = trend_markdown(pd.DataFrame(rows))
    assert "## Trends" in md
    assert "| agrpo 1e-05 | reward | +1.000 [+1.000, +1.000] | +1.000 [+1.000, +1.000] | still rising |" in md
    assert "| agrpo 3e-06 | reward | +0.000 [+0.000, +0.000] |" in md


def test_the_printed_window_rewards_are_the_choices_criterion(tmp_path):
    """small_headroom.window_rewards (no pandas, printed on the GPU machine) equals agrpo.sweep.summarise's first
    and last rewards on the committed plan_e logs, whose batches leave some tasks undrawn (NaN)."""
    import json
    import sys
    from pathlib import Path

    from agrpo.config import load_config
    from agrpo.sweep import load_sweep, summarise

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    from small_headroom import window_rewards

    runs = json.loads((root / "benchmarks/results/small_headroom_e_h200.json").read_text())["sweep"]["runs"]
    for name, run in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in run["log"]))
    cfg = load_config(root / "workflow/config/small.yaml")
    table = summarise(cfg, load_sweep(tmp_path)).set_index(["method", "lr"])
    for name, run in runs.items():
        method, lr = name.split("-lr")[0], float(name.split("-lr")[1].split("-seed")[0])
        first, last = window_rewards(run["log"], cfg.sweep.select_window)
        assert abs(first - table.loc[(method, lr), "reward_first"]) < 1e-12
        assert abs(last - table.loc[(method, lr), "reward_last"]) < 1e-12
    assert len(runs) == 4


def test_sweep_parts_from_several_leases_summarise_as_one(tmp_path):
    """plan_e's results split into two files (as two leases write them) summarise to the same sweep as the whole;
    a part from another base, or a run held twice, is refused naming the file."""
    import copy
    import json
    import sys
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    from small_headroom import merge_results, summarise

    whole = json.loads((root / "benchmarks/results/small_headroom_e_h200.json").read_text())
    names = list(whole["sweep"]["runs"])
    parts = [copy.deepcopy(whole), copy.deepcopy(whole)]
    for part, keep in zip(parts, (names[:1], names[1:])):
        part["sweep"]["runs"] = {n: whole["sweep"]["runs"][n] for n in keep}
    parts[1]["candidates"] = []  # the second lease's calibration is not used
    files = [tmp_path / "a.json", tmp_path / "b.json"]
    for f, part in zip(files, parts):
        f.write_text(json.dumps(part))
    (tmp_path / "whole.json").write_text(json.dumps(whole))
    summarise([tmp_path / "whole.json"], str(root / "workflow/config/small.yaml"), tmp_path / "one")
    summarise(files, str(root / "workflow/config/small.yaml"), tmp_path / "two")
    for name in ("sweep.csv", "sweep_test.md", "calibration.md"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text(), name
    other = copy.deepcopy(parts[1])
    first = next(iter(other["sweep"]["base_test_scores"].values()))
    first[next(iter(first))] = 1.0 - first[next(iter(first))]
    (tmp_path / "c.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="c.json: its base model's test scores differ"):
        merge_results([files[0], tmp_path / "c.json"])
    with pytest.raises(SystemExit, match="already in an earlier file"):
        merge_results([files[0], tmp_path / "whole.json"])
