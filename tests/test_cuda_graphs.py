"""CUDA-graph denoising steps give the eager sampler's outputs bit for bit (GPU only: skipped without CUDA;
run on the device machine, see docs/performance.md)."""

import contextlib
import copy
import dataclasses
import itertools

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
