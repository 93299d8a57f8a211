"""The lm-eval adapter: model `agrpo` and our task YAMLs, run through lm_eval.simple_evaluate on the tiny model."""

import lm_eval
import pytest
import torch

from agrpo.evaluate import run_cell
from agrpo.io import write_jsonl
from agrpo.model.tiny import init_tiny, load_model
from agrpo.sampling import SamplerConfig
from agrpo.tasks import get_task


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lmeval")
    torch.manual_seed(0)
    from agrpo.model.tokenizer import CharTokenizer

    init_tiny(CharTokenizer(), d_model=32, n_layers=1, n_heads=2, d_ff=64).save_pretrained(tmp / "model")
    examples = get_task("tiny_arith").examples("test", 4, 0)
    write_jsonl(tmp / "data/tiny_arith/test.jsonl", examples)
    return tmp, examples


def test_lmeval_simple_evaluate_runs_our_sampler_and_judge(setup):
    from lm_eval.tasks import TaskManager

    import agrpo.lmeval  # noqa: F401  (registers the model)

    tmp, examples = setup
    args = {"pretrained": str(tmp / "model"), "gen_length": 16, "block_length": 8, "steps": 8, "batch_size": 4}
    out = lm_eval.simple_evaluate(model="agrpo", model_args=args, tasks=["agrpo_tiny_arith"],
                                  task_manager=TaskManager(include_path=agrpo.lmeval.TASK_DIR,
                                                           metadata={"data_dir": str(tmp / "data")}))
    res = out["results"]["agrpo_tiny_arith"]
    # the same items through the harness's own eval cell give the same score
    rows, _ = run_cell(load_model(tmp / "model"), get_task("tiny_arith"), examples, SamplerConfig(16, 8, 8), 0, 4)
    assert res["score,none"] == pytest.approx(sum(r["score"] for r in rows) / len(rows))


def test_lmeval_loglikelihood_is_the_mc_elbo(setup):
    from agrpo.lmeval import AgrpoLM

    tmp, _ = setup
    lm = AgrpoLM(pretrained=str(tmp / "model"), gen_length=16, block_length=8, steps=8, mc_num=8, batch_size=4)
    a = lm._mc_loglikelihood("has 3, gets 4", "7")
    assert a == lm._mc_loglikelihood("has 3, gets 4", "7") and a < 0  # deterministic, a log-probability bound
    # one token: every sample masks it (l = L = 1), so the estimate is exactly log p_θ(token | context, [MASK])
    tok = lm.tok
    ids = torch.tensor([tok.encode("has 3, gets 4") + [tok.mask_id]])
    exact = lm.model(ids, torch.ones_like(ids))[0, -1].log_softmax(-1)[tok.encode("7")[0]].item()
    assert a == pytest.approx(exact, abs=1e-5)
    with pytest.raises(NotImplementedError):
        lm.loglikelihood_rolling([])


def test_lmeval_command_line_through_agrpo_lm_eval(setup, tmp_path):
    """`agrpo lm-eval …` is lm-eval's own CLI with our model registered and our tasks on the path: run in a
    subprocess (plain `lm_eval --model agrpo` cannot find the model), with --batch_size given both on the command
    line and in --model_args (lm-eval's own merge would fail) and the device left to the wrapper (no GPU here)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    model_dir, _ = setup
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "agrpo.cli", "lm-eval", "--model", "agrpo",
           "--model_args", f"pretrained={model_dir / 'model'},gen_length=16,block_length=8,steps=8,batch_size=2",
           "--tasks", "agrpo_tiny_arith", "--metadata", json.dumps({"data_dir": str(model_dir / "data")}),
           "--batch_size", "4", "--output_path", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    assert "score,none" in results["results"]["agrpo_tiny_arith"]
    bad = subprocess.run([sys.executable, "-m", "lm_eval", "run", "--model", "agrpo", "--tasks", "x"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0  # the reason `agrpo lm-eval` exists
