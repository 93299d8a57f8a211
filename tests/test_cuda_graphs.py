"""CUDA-graph denoising steps give the eager sampler's outputs bit for bit (GPU only: skipped without CUDA;
run on the device machine, see docs/performance.md)."""

import contextlib
import copy
import dataclasses
import itertools
import json
import math

import pytest
import torch

from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer
from agrpo.sampling import SamplerConfig, generate, left_pad

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
FIELDS = ("completion_ids", "reveal_step", "token_logprobs", "token_entropy", "sampling_mask", "row_nfe", "filled",
          "row_tokens")


def _setup(dtype):
    tok = CharTokenizer()
    torch.manual_seed(0)
    model = init_tiny(tok, d_model=64, n_layers=2, n_heads=4, d_ff=128).cuda().eval().to(dtype)
    with torch.no_grad():
        model.lm_head.weight.mul_(30)  # spread the confidences, as in a trained model
    texts = ["12+7=", "3*4+1=", "9-2=", "100-37=", "5*5=", "81/9=", "7+8+9=", "2*3*4="]
    ids, mask = left_pad([tok.encode(t) for t in texts], tok.pad_id)
    return model, ids.cuda(), mask.cuda()


def _same(a, b, rounding: bool = False):
    """Bit-identical outputs; with ``rounding`` the log-probs and entropies may differ by float round-off (a
    GEMM over a different number of rows: padded rows under graphs, or the eager sampler's compaction)."""
    for f in FIELDS:
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None) == (vb is None), f
        if va is None:
            continue
        if rounding and f in ("token_logprobs", "token_entropy"):
            torch.testing.assert_close(va, vb, rtol=0, atol=1e-4)
        else:
            assert torch.equal(va, vb), f
    assert a.nfe == b.nfe


CASES = list(itertools.product([0.0, 0.7], ["low_confidence", "random"], [False, True], ["none", "prefix", "dual"]))


@pytest.mark.parametrize("precision", ["float32", "bf16_weights", "autocast"])
@pytest.mark.parametrize("temperature,remasking,early_exit,cache", CASES)
def test_graphs_replay_the_eager_steps_exactly(precision, temperature, remasking, early_exit, cache):
    """Identical tokens, reveal steps, log-probs, entropies, masks and pass counts, from the same generator."""
    model, ids, mask = _setup(torch.bfloat16 if precision == "bf16_weights" else torch.float32)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if precision == "autocast" else contextlib.nullcontext
    kw = dict(gen_length=24, block_length=8, steps=12, remasking=remasking, temperature=temperature, top_k=8,
              top_p=0.95, eos_early_exit=early_exit, cache=cache)
    with amp():
        eager = generate(model, ids, mask, SamplerConfig(**kw), torch.Generator("cuda").manual_seed(3))
        for _ in range(2):  # the first call captures, the second replays
            graphed = generate(model, ids, mask, SamplerConfig(**kw, cuda_graphs=True),
                               torch.Generator("cuda").manual_seed(3))
            _same(eager, graphed)


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_graphs_with_threshold_decoding_keep_per_row_pass_counts(cache):
    model, ids, mask = _setup(torch.float32)
    kw = dict(gen_length=24, block_length=8, steps=24, threshold=0.5, cache=cache)
    eager = generate(model, ids, mask, SamplerConfig(**kw))
    graphed = generate(model, ids, mask, SamplerConfig(**kw, cuda_graphs=True))
    for f in ("completion_ids", "reveal_step", "row_nfe"):
        assert torch.equal(getattr(eager, f), getattr(graphed, f)), f
    # eager passes drop the finished rows, graphs keep them in the batch: the same tokens, log-probs to round-off
    torch.testing.assert_close(eager.token_logprobs, graphed.token_logprobs, rtol=0, atol=1e-4)
    assert len(set(eager.row_nfe.tolist())) > 1  # rows took different numbers of passes


@pytest.mark.parametrize("autocast", [False, True])
def test_graphs_see_in_place_weight_updates(autocast):
    """Replays read the parameters in place: after an optimizer step they sample from the new weights (under
    bf16 autocast too: the captured graphs cast the fp32 weights at each replay)."""
    model, ids, mask = _setup(torch.float32)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    cfg = SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.5, cuda_graphs=True)
    with amp():
        generate(model, ids, mask, cfg, torch.Generator("cuda").manual_seed(0))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fresh = copy.deepcopy(model)
    with amp():
        eager = generate(fresh, ids, mask, dataclasses.replace(cfg, cuda_graphs=False), torch.Generator("cuda").manual_seed(0))
        graphed = generate(model, ids, mask, cfg, torch.Generator("cuda").manual_seed(0))
    _same(eager, graphed)


class EosFrom(torch.nn.Module):
    """Rows < ``rows`` put a huge logit on EOS from completion position ``start`` on (they exit early)."""
    supports_kv_cache = True

    def __init__(self, model, rows, start, gen_length):
        super().__init__()
        self.model, self.n, self.start, self.gen_length = model, rows, start, gen_length
        self.mask_id, self.eos_id, self.pad_id, self.tokenizer = model.mask_id, model.eos_id, model.pad_id, model.tokenizer
        self.logits_size = model.logits_size

    def forward(self, ids, attn=None, past=None, capture=None, bias="auto"):
        logits = self.model(ids, attn, bias=bias).clone()
        logits[:self.n, ids.shape[1] - self.gen_length + self.start:, self.eos_id] = 100.0
        return logits


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_graphs_with_early_exit_pad_the_remaining_rows_and_match_eager(temperature):
    """12 rows, 3 of which exit after their second block: the other 9 are padded to 10 (a multiple of ⌈12/8⌉)
    in the graphs' static buffers; tokens, reveal steps and per-row pass counts equal the eager sampler's, the
    log-probs to float round-off (a 10-row GEMM instead of a 9-row one)."""
    model, ids, mask = _setup(torch.float32)
    ids, mask = torch.cat([ids, ids[:4]]), torch.cat([mask, mask[:4]])
    wrapped = EosFrom(model, 3, 8, 32)
    kw = dict(gen_length=32, block_length=8, steps=16, remasking="random", temperature=temperature, eos_early_exit=True)
    eager = generate(wrapped, ids, mask, SamplerConfig(**kw), torch.Generator("cuda").manual_seed(5))
    graphed = generate(wrapped, ids, mask, SamplerConfig(**kw, cuda_graphs=True), torch.Generator("cuda").manual_seed(5))
    _same(eager, graphed, rounding=True)
    assert eager.row_nfe[:3].tolist() == [8] * 3 and (eager.row_nfe == 16).any()  # rows left at different blocks


def test_graphs_with_merged_temperatures_match_eager():
    model, ids, mask = _setup(torch.float32)
    temperature = torch.tensor([0.3] * 4 + [0.9] * 4, device="cuda")
    kw = dict(gen_length=24, block_length=8, steps=12, remasking="random", temperature=0.9, top_k=8, top_p=0.95)
    eager = generate(model, ids, mask, SamplerConfig(**kw), torch.Generator("cuda").manual_seed(1), row_temperature=temperature)
    graphed = generate(model, ids, mask, SamplerConfig(**kw, cuda_graphs=True), torch.Generator("cuda").manual_seed(1),
                       row_temperature=temperature)
    _same(eager, graphed)


def test_compiled_scoring_pass_matches_the_eager_pass():
    """``rl.compile``: the objectives' passes through torch.compile(dynamic=True) give the eager logits to float32
    round-off, at two prompt widths (one compiled graph for both)."""
    from agrpo.model.layers import bias_kwargs

    model, ids, mask = _setup(torch.float32)
    compiled = torch.compile(model, dynamic=True)
    for width in (ids.shape[1], ids.shape[1] - 2):
        x = torch.cat([ids[:, -width:], torch.full((ids.shape[0], 16), model.mask_id, device="cuda")], 1)
        attn = torch.cat([mask[:, -width:], torch.ones((ids.shape[0], 16), dtype=mask.dtype, device="cuda")], 1)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x, attn, **bias_kwargs(model, attn)), model(x, attn), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
@pytest.mark.parametrize("method", ["agrpo", "diffu_grpo"])
def test_trainer_with_every_speed_option_matches_its_uncompiled_run(tmp_path, method, mode):
    """Two rollout batches with bf16 autocast, fused AdamW, graphed rollouts and stacked AGRPO draws, with and
    without ``rl.compile`` (which also compiles prepare's old log-probs and diffu-GRPO's frozen reference; in
    ``rl.compile_mode`` ``mode``): the same rollouts, and the first batch's loss and KL equal to bf16 round-off."""
    from agrpo.rl import trainer
    from helpers import minute_run

    logs = {}
    for compiled in (False, True):
        run = tmp_path / str(compiled)
        run.mkdir()
        extra = {"compile_mode": mode} if compiled else {}
        cfg = minute_run(run, {"iterations": 2, "checkpoint_every": 2, "autocast": "bfloat16", "fused_adamw": True,
                               "compile": compiled, "rollout": {"cuda_graphs": True}, **extra}, device="cuda")
        cfg.methods["agrpo"].objective_args.update(draws_per_pass=2, old_logprobs="current")
        assert cfg.methods["diffu_grpo"].objective_args["beta"] > 0  # a frozen reference copy to compile
        trainer.train(cfg, method, 0, run / "base", run / "out", progress=False)
        logs[compiled] = [json.loads(x) for x in (run / "out/train_log.jsonl").read_text().splitlines()]
    eager, fused = logs[False][0], logs[True][0]
    assert eager["reward_mean"] == fused["reward_mean"] and eager["nfe_rollout"] == fused["nfe_rollout"]
    assert abs(eager["loss"] - fused["loss"]) < 2e-2 and all(math.isfinite(r["loss"]) for r in logs[True])
    if method == "diffu_grpo":
        assert abs(eager["kl"] - fused["kl"]) < 2e-2
    else:
        assert fused["ratio_mean"] == 1.0


@pytest.mark.parametrize("graphs", [False, True])
def test_compiled_step_samples_what_the_eager_step_samples(graphs):
    """``compile_step`` in float32: the step through torch.compile (alone, or captured by the graphs) agrees with
    eager steps on the tokens (fused reductions may flip a near-tie: ≥ 95% equal), on the pass counts when every
    token agrees, and on the log-probs where the tokens agree."""
    model, ids, mask = _setup(torch.float32)
    kw = dict(gen_length=24, block_length=8, steps=12, remasking="low_confidence", temperature=0.0, eos_early_exit=True)
    eager = generate(model, ids, mask, SamplerConfig(**kw, cuda_graphs=graphs), torch.Generator("cuda").manual_seed(1))
    fused = generate(model, ids, mask, SamplerConfig(**kw, cuda_graphs=graphs, compile_step=True),
                     torch.Generator("cuda").manual_seed(1))
    same = eager.completion_ids == fused.completion_ids
    assert same.float().mean() >= 0.95 and fused.nfe > 0
    if same.all():  # the same tokens: the same early exits, so the same pass counts
        assert torch.equal(eager.row_nfe, fused.row_nfe)
    torch.testing.assert_close(eager.token_logprobs[same], fused.token_logprobs[same], rtol=1e-3, atol=1e-3)


def test_compiled_step_under_graphs_and_autocast_takes_rl_rollouts():
    """The RL rollout path (bf16 autocast, graphs, T > 0 with per-row temperatures, top-k/top-p, random
    remasking, early exit) with the compiled step: the graphs capture it, and it strays from float32 eager
    sampling no further than eager bf16 steps do (inductor keeps fused intermediates in float32)."""
    model, ids, mask = _setup(torch.float32)
    temperature = torch.tensor([0.3] * 4 + [0.9] * 4, device="cuda")
    kw = dict(gen_length=24, block_length=8, steps=12, remasking="random", temperature=0.9, top_k=8, top_p=0.95,
              eos_early_exit=True)

    def sample(**extra):
        return generate(model, ids, mask, SamplerConfig(**kw, **extra), torch.Generator("cuda").manual_seed(1),
                        row_temperature=temperature)
    exact = sample()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = sample(cuda_graphs=True)
        fused = sample(cuda_graphs=True, compile_step=True)
        again = sample(cuda_graphs=True, compile_step=True)  # replays the captured graphs
    agree = lambda o: (o.completion_ids == exact.completion_ids).float().mean().item()  # noqa: E731
    assert agree(fused) >= agree(bf16) - 0.1 and agree(fused) > 0.5
    assert fused.token_logprobs.isfinite().all() and (fused.reveal_step >= 0).all()
    assert torch.equal(again.completion_ids, fused.completion_ids)  # the same noise stream, the same graphs
