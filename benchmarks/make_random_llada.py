"""Write a random LLaDA-architecture checkpoint in the official layout, with a tokenizer that has LLaDA's special
tokens at their real ids and a chat template of LLaDA-8B-Instruct's form (one token per character otherwise).

    python benchmarks/make_random_llada.py --out DIR [--d-model 512 --layers 4 --heads 8 --mlp 1376]

For exercising the paper profile's code paths where the real weights cannot be downloaded (benchmarks/gpu_paths.sh).
Random weights: generations are noise."""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

import torch

from agrpo.model.llada import LLaDA, LLaDAConfig
from agrpo.model.llada_tokenizer import CHAT_TEMPLATE

SPECIAL_IDS = {"<|startoftext|>": 126080, "<|endoftext|>": 126081, "<|start_header_id|>": 126346,
               "<|end_header_id|>": 126347, "<|eot_id|>": 126348, "<|mdm_mask|>": 126336}


def write_tokenizer(d: Path) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers

    chars = sorted(set(string.printable))
    vocab = {c: i for i, c in enumerate(chars)} | SPECIAL_IDS
    tok = Tokenizer(models.WordLevel(vocab, unk_token="?"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_IDS])
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "mask_token": "<|mdm_mask|>", "chat_template": CHAT_TEMPLATE}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--mlp", type=int, default=1376)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    d = Path(a.out)
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(a.seed)
    model = LLaDA(LLaDAConfig(d_model=a.d_model, n_heads=a.heads, n_kv_heads=a.heads, n_layers=a.layers,
                              mlp_hidden_size=a.mlp))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") or name.endswith("ln_f.weight") else p.normal_(0, 0.02)
    model.to(torch.bfloat16).save_pretrained(d)
    write_tokenizer(d)
    print(json.dumps({"out": str(d), "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
