"""The training budget: each objective's stated network passes per rollout batch match the calls it makes, the
trainer logs them with the rollout's, and the report sums them per method."""

import copy
import json

import pandas as pd
import pytest
import torch

from agrpo.rl.agrpo import AGRPO
from baselines.diffu_grpo import DiffuGRPO
from baselines.wd1 import WD1
from helpers import make_batch


class CountingModel(torch.nn.Module):
    """Wraps a model; counts the rows of every forward call, with and without gradients."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.rows = {"forward": 0, "forward_backward": 0}

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, ids, *args, **kwargs):
        self.rows["forward_backward" if torch.is_grad_enabled() else "forward"] += ids.shape[0]
        return self.inner(ids, *args, **kwargs)


def counted_passes(objective, model, batch, mu: int) -> dict:
    policy, ref = CountingModel(model), CountingModel(copy.deepcopy(model))
    objective.prepare(policy, ref, batch, mu)
    for n in range(mu):
        for loss, _ in objective.losses(policy, ref, batch, n):
            loss.backward()
    return {k: policy.rows[k] + ref.rows[k] for k in policy.rows}


@pytest.mark.parametrize("objective,mu", [
    (AGRPO(AGRPO.Args(mc_samples=3), torch.Generator().manual_seed(0)), 1),
    (AGRPO(AGRPO.Args(mc_samples=3, draws_per_pass=2, beta=0.04), torch.Generator().manual_seed(0)), 2),
    (AGRPO(AGRPO.Args(mc_samples=2, released_launcher_steps=2), torch.Generator().manual_seed(0)), 1),
    (DiffuGRPO(DiffuGRPO.Args(beta=0.04), torch.Generator().manual_seed(0)), 3),
    (DiffuGRPO(DiffuGRPO.Args(beta=0.0), torch.Generator().manual_seed(0)), 2),
    (DiffuGRPO(DiffuGRPO.Args(beta=0.04), torch.Generator().manual_seed(0)), 1),
    (WD1(WD1.Args(), torch.Generator().manual_seed(0)), 2),
], ids=["agrpo", "agrpo-stacked-kl-mu2", "agrpo-launcher", "diffu-kl-mu3", "diffu-nokl-mu2", "diffu-kl-mu1", "wd1"])
def test_stated_passes_are_the_passes_made(objective, mu, tiny_model, tokenizer):
    batch = make_batch(tiny_model, tokenizer)
    rows = batch.sample.completion_ids.shape[0]
    assert objective.sequence_passes(rows, mu) == counted_passes(objective, tiny_model, batch, mu)


def test_trainer_logs_the_passes_and_the_report_sums_them(tmp_path):
    from agrpo.report.curves import budget_table, load_train_logs
    from agrpo.rl.trainer import train
    from helpers import minute_run

    cfg = minute_run(tmp_path, {"iterations": 2, "checkpoint_every": 2})
    for method in ("agrpo", "diffu_grpo"):
        train(cfg, method, 0, tmp_path / "base", tmp_path / "runs" / f"{method}-seed0", progress=False)
    curves = load_train_logs(tmp_path / "runs")
    rows = cfg.rl.prompts_per_batch * cfg.rl.group_size
    for method, d in curves.groupby("method"):
        mu = cfg.methods[method].inner_iterations
        assert (d["passes_rollout"] <= rows * cfg.rl.rollout.steps).all() and (d["passes_rollout"] > 0).all()
        if method == "agrpo":
            k = cfg.methods["agrpo"].objective_args["mc_samples"]
            assert (d["passes_forward_backward"] == mu * k * rows).all()
        else:
            assert (d["passes_forward_backward"] == mu * rows).all()
    logs = {m: [json.loads(x) for x in (tmp_path / "runs" / f"{m}-seed0/train_log.jsonl").read_text().splitlines()]
            for m in ("agrpo", "diffu_grpo")}
    for row in logs["diffu_grpo"]:  # μ = 2: the first inner iteration scores θ_old itself, the same way
        assert row["ratio_mean_first_iteration"] == pytest.approx(1.0, abs=1e-6)
        assert row["ratio_max"] >= row["ratio_mean"] > 0
    assert all(row["ratio_max"] >= 1.0 - 1e-6 for row in logs["agrpo"])
    table = "\n".join(budget_table(curves))
    agrpo = curves[curves["method"] == "agrpo"]
    fb = agrpo["passes_forward_backward"].sum()
    expect = agrpo["passes_rollout"].sum() + agrpo["passes_forward"].sum() + 3 * fb
    assert f"| agrpo | 1 | 2 | {2 * rows:,} | {agrpo['passes_rollout'].sum():,.0f} |" in table
    assert f"| {expect:,.0f} |" in table


def test_budget_table_of_old_logs_says_not_counted():
    from agrpo.report.curves import COLUMNS, budget_table

    curves = pd.DataFrame([{c: float("nan") for c in COLUMNS} | {"method": "agrpo", "run_seed": 0, "iteration": 1,
                                                                    "rollouts": 64, "seconds": 2.0}])
    line = budget_table(curves)[2]
    assert line == "| agrpo | 1 | 1 | 64 | — | — | — | — | 2.0 |"
