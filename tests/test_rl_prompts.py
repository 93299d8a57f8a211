"""RL prompts apart from the pretraining examples (data.rl_size), task options (data.task_args), pretraining
over several canvas lengths, and the trainer's per-task reward statistics."""

import pytest
import torch
import yaml

from agrpo.config import ConfigError, load_config
from agrpo.data import load_split, write_task_data
from tests.test_config import assert_refused, tiny_dict, write


def _cfg(tmp_path, **data):
    d = tiny_dict()
    d.update(work_dir=str(tmp_path / "w"))
    d["data"].update(data)
    return load_config(write(tmp_path, d))


def test_rl_prompts_are_disjoint_from_the_pretraining_examples(tmp_path):
    cfg = _cfg(tmp_path, train_size=300, rl_size=200, test_size=50,
               task_args={"tiny_arith": {"min_steps": 2, "max_steps": 3}})
    for task in cfg.data.tasks:
        write_task_data(cfg, task)
        train, rl, test = (load_split(cfg.work_dir, task, s) for s in ("train", "rl", "test"))
        ids = [{e["id"] for e in split} for split in (train, rl, test)]
        assert (len(train), len(rl), len(test)) == (300, 200, 50) == tuple(map(len, ids))
        assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2], task
    assert {len(e["steps"]) for e in load_split(cfg.work_dir, "tiny_arith", "rl")} == {2, 3}  # task_args used


@pytest.mark.parametrize("pretrain_blanks", [(6, 8), (10, 11)])  # apart from, and overlapping, the RL counts
def test_pretraining_examples_drawn_with_their_own_task_options(tmp_path, pretrain_blanks):
    """data.pretrain_task_args: the pretraining examples are easier puzzles than the RL prompts and test items,
    which keep data.task_args; the three splits stay disjoint and full."""
    lo, hi = pretrain_blanks
    cfg = _cfg(tmp_path, train_size=120, rl_size=80, test_size=40,
               task_args={"tiny_sudoku": {"min_blanks": 11, "max_blanks": 12}},
               pretrain_task_args={"tiny_sudoku": {"min_blanks": lo, "max_blanks": hi}})
    write_task_data(cfg, "tiny_sudoku")
    splits = [load_split(cfg.work_dir, "tiny_sudoku", s) for s in ("train", "rl", "test")]
    blanks = [{e["puzzle"].count("0") for e in split} for split in splits]
    assert blanks[0] <= set(range(lo, hi + 1)) and blanks[1] <= {11, 12} and blanks[2] <= {11, 12}
    assert len(blanks[0]) > 1 and blanks[1] == {11, 12}
    ids = [{e["id"] for e in split} for split in splits]
    assert tuple(map(len, ids)) == (120, 80, 40)
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]


def test_without_pretrain_task_args_the_data_files_are_unchanged(tmp_path):
    """A task absent from data.pretrain_task_args is drawn as before the key existed (the first train_size of one
    draw), even when another task sets pretraining options."""
    from agrpo.resolve import profile_task

    cfg = _cfg(tmp_path, train_size=60, rl_size=30, test_size=10,
               pretrain_task_args={"tiny_sudoku": {"min_blanks": 4, "max_blanks": 4}})
    write_task_data(cfg, "tiny_arith")
    drawn = profile_task(cfg, "tiny_arith").examples("train", 90, cfg.data.seed)
    assert load_split(cfg.work_dir, "tiny_arith", "train") == drawn[:60]
    assert load_split(cfg.work_dir, "tiny_arith", "rl") == drawn[60:]


def test_without_rl_size_the_rl_prompts_are_the_pretraining_examples(tmp_path):
    cfg = _cfg(tmp_path, train_size=40, test_size=8)
    write_task_data(cfg, "tiny_countdown")
    assert load_split(cfg.work_dir, "tiny_countdown", "rl") == load_split(cfg.work_dir, "tiny_countdown", "train")


def test_too_many_rl_prompts_names_both_keys(tmp_path):
    cfg = _cfg(tmp_path, train_size=1100, rl_size=500)  # tiny_countdown's train split holds 1,161 problems
    with pytest.raises(ValueError, match=r"data.train_size \+ data.rl_size = 1600: tiny_countdown"):
        write_task_data(cfg, "tiny_countdown")
    assert not (tmp_path / "w/data/tiny_countdown/train.jsonl").exists()  # nothing half-written


@pytest.mark.parametrize("edits, message", [
    ({("data", "task_args"): {"tiny_sum": {}}}, r"data.task_args.tiny_sum: 'tiny_sum' is not a task of data.tasks"),
    ({("data", "task_args"): {"tiny_arith": {"steps": 3}}},
     r"data.task_args.tiny_arith.steps: unknown option of tiny_arith \(known: max_number, ops, min_steps, max_steps\)"),
    ({("data", "task_args"): {"tiny_sudoku": {"max_blanks": 13}}}, r"data.task_args.tiny_sudoku: tiny_sudoku: need"),
    ({("data", "task_args"): {"tiny_arith": 3}}, r"data.task_args.tiny_arith: expected a mapping"),
    ({("data", "rl_size"): -1}, r"data.rl_size: must be >= 0"),
    ({("data", "pretrain_task_args"): {"tiny_sudoku": {"max_blanks": 8}}},
     r"data.pretrain_task_args: needs data.rl_size > 0"),
    ({("data", "rl_size"): 10, ("data", "pretrain_task_args"): {"tiny_sudoku": {"blanks": 8}}},
     r"data.pretrain_task_args.tiny_sudoku.blanks: unknown option of tiny_sudoku"),
    ({("data", "rl_size"): 10, ("data", "task_args"): {"tiny_sudoku": {"min_blanks": 9, "max_blanks": 10}},
      ("data", "pretrain_task_args"): {"tiny_sudoku": {"max_blanks": 8}}},   # merged: 9..8
     r"data.pretrain_task_args.tiny_sudoku: tiny_sudoku: need 1 <= min_blanks <= max_blanks"),
    ({("data", "rl_size"): 10, ("data", "pretrain_task_args"): {"gsm9k": {}}},
     r"data.pretrain_task_args.gsm9k: 'gsm9k' is not a task of data.tasks"),
    ({("pretrain", "gen_lengths"): [40, 0]}, r"pretrain.gen_lengths: must be > 0, got 0"),
    ({("pretrain", "autocast"): "bfloat16"}, r"pretrain.autocast: bfloat16 autocast is for CUDA devices"),
])
def test_bad_task_options_are_refused_naming_the_key(tmp_path, edits, message):
    assert_refused(tmp_path, edits, message)


def test_rl_size_is_refused_for_real_tasks(tmp_path):
    d = tiny_dict()
    d["data"].update(tasks=["tiny_arith", "gsm8k"], rl_size=10)
    with pytest.raises(ConfigError, match="data.rl_size: gsm8k are not pretrained on"):
        load_config(write(tmp_path, d))


def test_pretraining_over_several_canvas_lengths(tmp_path):
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer
    from agrpo.pretrain import train_masked_diffusion

    model = init_tiny(CharTokenizer(), d_model=16, n_layers=1, n_heads=2, d_ff=32)
    pairs = [("has 1, gets 2. left?", "1+2=3<answer>3</answer>")] * 4
    seen = []
    real = torch.nn.Module.__call__

    def spy(self, ids, *args, **kwargs):  # the canvas is the sequence minus the prompt
        if self is model:
            seen.append(ids.shape[1])
        return real(self, ids, *args, **kwargs)

    kw = dict(gen_length=40, steps=12, batch_size=2, lr_fn=lambda s: 1e-3, weight_decay=0.0, betas=(0.9, 0.95),
              max_grad_norm=1.0, eps=1e-3, desc="t", progress=False)
    torch.nn.Module.__call__ = spy
    try:
        train_masked_diffusion(model, pairs, generator=torch.Generator().manual_seed(0), gen_lengths=[24, 48], **kw)
    finally:
        torch.nn.Module.__call__ = real
    prompt = len(model.encode_pair(*pairs[0])[0])
    assert set(seen) == {prompt + 24, prompt + 48}
    with pytest.raises(ValueError, match="does not fit the shortest canvas of pretrain.gen_lengths \\(6\\)"):
        train_masked_diffusion(model, pairs, generator=torch.Generator().manual_seed(0), gen_lengths=[6, 48], **kw)


def test_per_task_reward_statistics():
    from agrpo.rl.trainer import per_task_rewards

    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0])  # four groups of G = 2
    out = per_task_rewards(rewards, ["a", "b", "a", "b"], group=2)
    assert out == {"reward_mean/a": 0.75, "zero_std_groups/a": 1.0,  # groups (1, 1) and (0.5, 0.5)
                   "reward_mean/b": 0.25, "zero_std_groups/b": 0.5}  # groups (0, 1) and (0, 0)


def test_group_statistics():
    from agrpo.headroom import group_stats

    rewards = [1.1, 1.1, 0.1, 1.1, 0.0, 0.0]  # three groups of G = 2
    correct = [True, True, False, True, False, False]
    assert group_stats(rewards, correct, 2) == pytest.approx(
        {"group_size": 2, "prompts": 3, "reward_mean": 3.4 / 6, "pass_at_1": 0.5, "pass_at_group": 2 / 3,
         "zero_variance_groups": 2 / 3})


def test_headroom_cli(tmp_path):
    import json

    from agrpo.cli import main
    from tests.helpers import minute_run

    cfg = minute_run(tmp_path, {}, data={"rl_size": 20})
    out = tmp_path / "headroom.json"
    assert main(["headroom", "--config", str(tmp_path / "c.yaml"), "--model", str(tmp_path / "base"), "--out",
                 str(out), "--items", "6", "--methods", "agrpo", "diffu_grpo", "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert set(result["tasks"]) == set(cfg.data.tasks)
    for row in result["tasks"].values():
        assert row["rl_accuracy"]["n"] == row["test_accuracy"]["n"] == 6
        assert [r["method"] for r in row["rollouts"]] == ["agrpo", "diffu_grpo"]
        for r in row["rollouts"]:
            assert r["prompts"] == 6 and r["group_size"] == cfg.rl.group_size
            assert 0 <= r["pass_at_1"] <= r["pass_at_group"] <= 1 and 0 <= r["zero_variance_groups"] <= 1
    assert main(["headroom", "--config", str(tmp_path / "c.yaml"), "--model", str(tmp_path / "base"), "--out",
                 str(out), "--methods", "grpo"]) == 2


def test_headroom_table_in_the_report():
    from agrpo.report.markdown import _headroom_section

    acc = {"mean": 0.25, "ci_low": 0.1, "ci_high": 0.4, "n": 8}
    result = {"eval_sampler": {"gen_length": 40, "steps": 20}, "tasks": {"tiny_arith": {
        "rl_accuracy": acc, "test_accuracy": dict(acc, mean=0.125),
        "rollouts": [{"method": "agrpo", "reward_mean": 0.4, "pass_at_1": 0.3, "pass_at_group": 0.75,
                      "group_size": 8, "zero_variance_groups": 0.5}]}}}
    text = "\n".join(_headroom_section(result))
    assert "## What the base model leaves RL to learn" in text
    assert "| tiny_arith | 25.0% [10.0, 40.0] | 12.5% [10.0, 40.0] | agrpo | 0.400 | 30.0% | 75.0% (G 8) | 50.0% |" in text
    assert _headroom_section(None) == []
    # 12.5% is below the 15-60% band: the section says so; inside the band, nothing is said
    assert ("Outside the 15–60% band of base test accuracy: tiny_arith 12.5% (little to reinforce); gains there are "
            "bounded by the task, not only by the method.") in text
    result["tasks"]["tiny_arith"]["test_accuracy"]["mean"] = 0.3
    assert "Outside the" not in "\n".join(_headroom_section(result))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_pretraining_under_bf16_autocast_follows_float32_on_cuda():
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer
    from agrpo.pretrain import train_masked_diffusion

    pairs = [(f"has {a}, gets {b}. left?", f"{a}+{b}={a + b}<answer>{a + b}</answer>") for a in range(1, 7)
             for b in range(1, 7)]
    losses = {}
    for autocast in (False, True):
        torch.manual_seed(0)
        model = init_tiny(CharTokenizer(), d_model=64, n_layers=2, n_heads=4, d_ff=128).cuda()
        log, _ = train_masked_diffusion(model, pairs, gen_length=24, steps=60, batch_size=32, lr_fn=lambda s: 3e-3,
                                        weight_decay=0.0, betas=(0.9, 0.95), max_grad_norm=1.0, eps=1e-3,
                                        generator=torch.Generator().manual_seed(0), desc="t", progress=False,
                                        autocast=autocast)
        assert next(model.parameters()).dtype == torch.float32  # fp32 master weights
        losses[autocast] = [r["loss"] for r in log]
    assert losses[True][-1] < 0.5 * losses[True][0]  # it trains
    assert abs(losses[True][-1] - losses[False][-1]) < 0.25 * losses[False][0]  # and stays near float32


def test_deterministic_pretraining_restores_the_process_setting():
    from agrpo.pretrain import deterministic_algorithms

    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms(False):
        assert not torch.are_deterministic_algorithms_enabled()


def test_weights_digest_tells_models_apart():
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer
    from agrpo.pretrain import weights_digest

    torch.manual_seed(0)
    a = init_tiny(CharTokenizer(), d_model=32, n_layers=1, n_heads=2, d_ff=64)
    torch.manual_seed(0)
    b = init_tiny(CharTokenizer(), d_model=32, n_layers=1, n_heads=2, d_ff=64)
    assert weights_digest(a) == weights_digest(b) and len(weights_digest(a)) == 16
    with torch.no_grad():
        b.lm_head.weight[0, 0] += 1e-6
    assert weights_digest(a) != weights_digest(b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_deterministic_pretraining_repeats_bit_for_bit_on_cuda(tmp_path):
    """`pretrain.deterministic`: two pretraining runs of one config on one GPU give the same weights (bf16 autocast,
    two canvas lengths, padded batches: the small profile's path), so a later session can rebuild a base model."""
    from pathlib import Path

    from agrpo.model import load_model
    from agrpo.pretrain import pretrain

    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "workflow/config/small.yaml", {
        "work_dir": str(tmp_path / "w"), "data.train_size": 64, "data.rl_size": 16, "data.test_size": 8,
        "model.d_model": 128, "model.n_layers": 2, "model.n_heads": 4, "model.d_ff": 256, "pretrain.steps": 30,
        "pretrain.batch_size": 32, "pretrain.warmup_steps": 5, "pretrain.gen_lengths": [64, 128],
        "pretrain.autocast": "bfloat16", "pretrain.deterministic": True})
    for task in cfg.data.tasks:
        write_task_data(cfg, task)
    weights, digests = [], []
    for run in range(2):
        digests.append(pretrain(cfg, tmp_path / f"m{run}", progress=False)["weights_sha256"])
        weights.append(load_model(tmp_path / f"m{run}", device="cpu").state_dict())
    assert digests[0] == digests[1]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_sft_takes_the_pretraining_canvases_and_its_own_determinism(tmp_path, monkeypatch):
    """d1's SFT stage (completion_length 0) pads to the canvases the base was pretrained at, one drawn per batch,
    not to `pretrain.gen_length` alone; `sft.deterministic` turns torch's deterministic algorithms on for it."""
    import agrpo.sft as sft_module
    from agrpo.model.tiny import init_tiny
    from agrpo.model.tokenizer import CharTokenizer

    d = tiny_dict()
    d["work_dir"] = str(tmp_path / "w")
    d["pretrain"].update(gen_length=40, gen_lengths=[40, 64])
    d["methods"]["d1"]["sft"].update(steps=2, deterministic=True)
    cfg = load_config(write(tmp_path, d))
    for task in cfg.data.tasks:
        write_task_data(cfg, task)
    init_tiny(CharTokenizer(), d_model=32, n_layers=1, n_heads=2, d_ff=64).save_pretrained(tmp_path / "base")
    seen = {}

    def spy(model, pairs, **kw):
        seen.update(kw, deterministic=torch.are_deterministic_algorithms_enabled())
        return [{"step": 0, "loss": 1.0}], 0

    monkeypatch.setattr(sft_module, "train_masked_diffusion", spy)
    sft_module.sft(cfg, "d1", tmp_path / "base", tmp_path / "sft", progress=False)
    assert seen["gen_lengths"] == [40, 64] and seen["deterministic"]
    assert not torch.are_deterministic_algorithms_enabled()
    d["methods"]["d1"]["sft"].update(completion_length=48, deterministic=False)
    sft_module.sft(load_config(write(tmp_path, d)), "d1", tmp_path / "base", tmp_path / "sft2", progress=False)
    assert seen["gen_lengths"] == [] and seen["gen_length"] == 48 and not seen["deterministic"]


@pytest.mark.parametrize("profile", ["tiny", "small", "paper_d1"])
def test_keys_added_later_stay_out_of_every_rule_key_at_their_defaults(profile):
    """A key added after work directories existed (resolve.ADDED_KEYS), at its default, must not appear in any
    rule's key config, wherever its section sits (`pretrain`; a method's `sft`, inside the train and headroom keys
    too; the data rule's own keys): else every earlier work directory reruns those rules."""
    from pathlib import Path

    from agrpo.resolve import ADDED_KEYS, rule_config

    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / f"workflow/config/{profile}.yaml")
    found = []

    def walk(x, path):
        if isinstance(x, dict):
            if path[-1:] in (("pretrain",), ("sft",)) or path == ("data rule",):
                found.extend((path, k) for k, v in x.items() if k in ADDED_KEYS and v == ADDED_KEYS[k])
            for k, v in x.items():
                walk(v, path + (k,))

    for rule in ("data", "base", "sft", "train", "eval", "headroom", "report", "sweep"):
        for m in cfg.methods:
            walk(rule_config(cfg, rule, m, cfg.data.tasks[0]), ("data rule",) if rule == "data" else (rule,))
    assert not found


def test_the_claims_steps_are_the_reports_business_alone():
    """eval.claims_steps_divisor changes the report rule's key and no eval cell's or headroom check's: setting it
    reruns the report only (and at its default 1 it stays out of the report key too: ADDED_KEYS)."""
    from pathlib import Path

    from agrpo.config import build_config, to_dict
    from agrpo.resolve import rule_config, rule_key

    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "workflow/config/small.yaml")
    d = to_dict(cfg)
    d["eval"]["claims_steps_divisor"] = 1
    at_one = build_config(d, "test")
    for rule in ("eval", "headroom", "train"):
        assert rule_key(cfg, rule, "agrpo", "tiny_arith") == rule_key(at_one, rule, "agrpo", "tiny_arith")
    assert rule_key(cfg, "report") != rule_key(at_one, "report")
    assert "claims_steps_divisor" not in rule_config(at_one, "report")
