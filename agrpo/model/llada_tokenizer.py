"""A LLaDA-layout tokenizer trained here: byte-level BPE on local text, LLaDA-8B-Instruct's special tokens and
chat template, saved as ``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json`` — what
``load_llada`` reads as ``transformers.AutoTokenizer`` does (``load_tokenizer``).

No hub is reachable here, so the paper profile's code paths (chat-template prompts, special tokens, answer
extraction on decoded text) run on random LLaDA-architecture checkpoints that carry such a tokenizer
(``write_random_llada``). Special tokens take the first ids (0–5); the checkpoint's config names them
(``mask_token_id``, ``eos_token_id``, ``pad_token_id``), as LLaDA's names 126336 and 126081.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

BOS, EOS, MASK = "<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>"
SPECIAL_TOKENS = [BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", MASK]
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                 "{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")  # LLaDA-8B-Instruct's form


def train_bpe_tokenizer(texts, directory: str | Path, vocab_size: int = 1024) -> dict[str, int]:
    """Train a byte-level BPE tokenizer on ``texts`` and save it in LLaDA's layout; returns the special ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS, "pad_token": EOS,
        "mask_token": MASK, "chat_template": CHAT_TEMPLATE, "model_max_length": 4096}, indent=1))
    (d / "special_tokens_map.json").write_text(json.dumps({"bos_token": BOS, "eos_token": EOS, "pad_token": EOS,
                                                           "mask_token": MASK}, indent=1))
    return {t: tok.token_to_id(t) for t in SPECIAL_TOKENS} | {"vocab_size": tok.get_vocab_size()}


def write_random_llada(directory: str | Path, texts, *, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                       mlp_hidden_size: int = 160, vocab_size: int = 1024, seed: int = 0,
                       dtype: torch.dtype = torch.float32, model_vocab_size: int | None = None,
                       init_device: str | None = None) -> Path:
    """A randomly initialised LLaDA-architecture checkpoint in the official layout (config.json, safetensors,
    index) with a BPE tokenizer trained on ``texts``; the config's special ids are the tokenizer's.
    ``model_vocab_size``: embedding rows beyond the tokenizer's (LLaDA-8B: 126,464; ids the tokenizer lacks decode
    to nothing). ``init_device``: build the weights there in ``dtype`` (an 8B model on a GPU in seconds) instead of
    in float32 on the CPU from the global seed."""
    from agrpo.model.llada import LLaDA, LLaDAConfig, empty_llada

    d = Path(directory)
    ids = train_bpe_tokenizer(texts, d, vocab_size)
    vocab = max(ids["vocab_size"], model_vocab_size or 0)
    config = LLaDAConfig(d_model=d_model, n_heads=n_heads, n_kv_heads=n_heads, n_layers=n_layers,
                         mlp_hidden_size=mlp_hidden_size, vocab_size=vocab, embedding_size=vocab,
                         mask_token_id=ids[MASK], eos_token_id=ids[EOS], pad_token_id=ids[EOS])
    if init_device is None:
        torch.manual_seed(seed)
        model, g = LLaDA(config), None
    else:
        model = empty_llada(config, dtype).to_empty(device=init_device)  # allocated in dtype (8B: 16 GB, not 32)
        g = torch.Generator(init_device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith(("norm.weight", "ln_f.weight")) else p.normal_(0, 0.02, generator=g)
    model.to(dtype).save_pretrained(d)
    return d
