"""A LLaDA-layout BPE tokenizer trained here and a random LLaDA checkpoint carrying it: the paper profile's
real-task path (chat template, special tokens, sampling, decoding, answer extraction, judging) without the hub."""

from pathlib import Path

import pytest
import torch

from agrpo.model.llada import load_llada
from agrpo.model.llada_tokenizer import EOS, MASK, SPECIAL_TOKENS, write_random_llada
from agrpo.sampling import SamplerConfig, generate, left_pad
from agrpo.tasks import get_task

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SOURCES = {"gsm8k": DATA / "gsm8k/test.jsonl", "math500": DATA / "math500/test.jsonl",
           "countdown": DATA / "countdown/cd3_test.jsonl", "sudoku": DATA / "sudoku/4x4_test.csv"}
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data beside the checkout (CI has it)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Trained on the four tasks' prompts under both protocols (a few rows each)."""
    texts = []
    for name, src in SOURCES.items():
        for protocol in ("d1", "agrpo"):
            task = get_task(name, protocol=protocol, source=str(src))
            texts += [m["content"] for ex in task.examples("test")[:40] for m in task.messages(ex)]
    return write_random_llada(tmp_path_factory.mktemp("llada_bpe"), texts, vocab_size=800)


def test_tokenizer_is_byte_level_bpe_with_llada_special_tokens(checkpoint):
    model = load_llada(str(checkpoint))
    tok = model.tokenizer
    vocab = tok.get_vocab()
    assert all(t in vocab for t in SPECIAL_TOKENS) and vocab[MASK] == model.mask_id and vocab[EOS] == model.eos_id
    text = "Janet’s ducks lay 16 eggs: 3×4 = 12, é 中 <answer>\\boxed{18}</answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) < len(text.encode()) and tok.decode(ids) == text  # merges learnt, bytes round-trip
    assert tok(MASK + EOS, add_special_tokens=False)["input_ids"] == [model.mask_id, model.eos_id]
    rendered = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], add_generation_prompt=True, tokenize=False)
    assert rendered == "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>" \
                       "<|start_header_id|>assistant<|end_header_id|>\n\n"


@pytest.mark.parametrize("protocol", ["d1", "agrpo"])
def test_real_tasks_render_sample_decode_and_judge_on_a_random_llada(checkpoint, protocol):
    """Every real task's prompts through the chat template, random completions sampled, decoded with special
    tokens kept (as the evaluations parse them) and judged: verdicts for every item, none crash."""
    torch.manual_seed(0)
    model = load_llada(str(checkpoint)).eval()
    for name, src in SOURCES.items():
        task = get_task(name, protocol=protocol, source=str(src))
        examples = task.examples("test")[:3]
        prompts = [model.encode_prompt(task, ex) for ex in examples]
        assert all(p[0] == model.tokenizer.get_vocab()["<|startoftext|>"] for p in prompts)
        ids, mask = left_pad(prompts, model.pad_id)
        out = generate(model, ids, mask, SamplerConfig(16, 8, 4, "low_confidence", 0.0), record=False)
        for ex, completion in zip(examples, out.completion_ids):
            text = model.decode_completion(completion, skip_special_tokens=False)
            verdict = task.judge(text, ex)
            assert verdict.score in (0.0, 1.0) or 0.0 <= verdict.score <= 1.0
            assert task.reward(model.decode_completion(completion), ex) >= 0.0


def test_a_tokenizer_without_the_mask_token_is_refused_naming_the_directory(checkpoint, tmp_path):
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(checkpoint, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["mask_token_id"] = 5 if cfg["mask_token_id"] != 5 else 4  # the config names another token the mask
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=rf"{bad}: the tokenizer's mask token <\|mdm_mask\|> must have id .*id \d+"):
        load_llada(str(bad))
    missing = tmp_path / "missing"  # a tokenizer whose mask token is called something else
    shutil.copytree(checkpoint, missing)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        f = missing / name
        f.write_text(f.read_text().replace("<|mdm_mask|>", "<|mask|>"))
    with pytest.raises(ValueError, match=rf"{missing}: .*the tokenizer files have no such token"):
        load_llada(str(missing))


def test_load_tokenizer_is_what_autotokenizer_loads(checkpoint, tmp_path):
    """The direct load (tokenizer_config.json names PreTrainedTokenizerFast) gives AutoTokenizer's tokenizer: class,
    vocabulary, special tokens, chat template and encodings; a tokenizer_config.json with an auto_map goes through
    AutoTokenizer itself."""
    import json
    import shutil
    from unittest import mock

    import transformers

    from agrpo.model.llada import load_tokenizer

    ours = load_tokenizer(Path(checkpoint))
    auto = transformers.AutoTokenizer.from_pretrained(str(checkpoint), trust_remote_code=False)
    assert type(ours) is type(auto) and ours.get_vocab() == auto.get_vocab()
    assert ours.special_tokens_map == auto.special_tokens_map and ours.chat_template == auto.chat_template
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 12 + 30?"}]
    text = ours.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == auto.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = ours(text)["input_ids"]
    assert ids == auto(text)["input_ids"] and ours.decode(ids) == auto.decode(ids)
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    tc = json.loads((other / "tokenizer_config.json").read_text())
    (other / "tokenizer_config.json").write_text(json.dumps({**tc, "auto_map": {"AutoTokenizer": ["x.Tok", None]}}))
    with mock.patch.object(transformers.AutoTokenizer, "from_pretrained", return_value="auto") as via_auto:
        assert load_tokenizer(other) == "auto"
    via_auto.assert_called_once_with(str(other), trust_remote_code=False)
