"""LLaDA-8B's architecture and loader on a tiny random checkpoint written here in the official layout."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from agrpo.model.llada import LLaDA, LLaDAConfig, load_llada
from agrpo.model.lora import LLADA_TARGETS

CFG = {"architectures": ["LLaDAModelLM"], "auto_map": {"AutoModel": "modeling_llada.LLaDAModelLM"},
       "model_type": "llada", "block_type": "llama", "activation_type": "silu", "layer_norm_type": "rms",
       "weight_tying": False, "include_bias": False, "alibi": False, "d_model": 32, "n_heads": 4, "n_kv_heads": 4,
       "n_layers": 2, "mlp_hidden_size": 48, "vocab_size": 64, "embedding_size": 64, "rope_theta": 500000.0,
       "rms_norm_eps": 1e-5, "mask_token_id": 63, "eos_token_id": 61, "pad_token_id": 61, "max_sequence_length": 128}
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] in ['user', 'assistant'] %}"
                 "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
                 "{% endif %}{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>"
                 "\n\n{% endif %}")


def official_state(cfg: dict, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    d, h, v = cfg["d_model"], cfg["mlp_hidden_size"], cfg["embedding_size"]
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731
    state = {"model.transformer.wte.weight": r(v, d), "model.transformer.ln_f.weight": 1 + r(d),
             "model.transformer.ff_out.weight": r(v, d)}
    for i in range(cfg["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        state |= {p + "attn_norm.weight": 1 + r(d), p + "ff_norm.weight": 1 + r(d), p + "q_proj.weight": r(d, d),
                  p + "k_proj.weight": r(d, d), p + "v_proj.weight": r(d, d), p + "attn_out.weight": r(d, d),
                  p + "ff_proj.weight": r(h, d), p + "up_proj.weight": r(h, d), p + "ff_out.weight": r(d, h)}
    return state


def write_checkpoint(d, cfg=CFG, tokenizer=True):
    """config.json, two safetensors shards with an index, tokenizer files; plus a remote-code file that must never run."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))
    state = official_state(cfg)
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2], "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, ks in shards.items():
        save_file({k: state[k] for k in ks}, str(d / name))
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: n for n, ks in shards.items() for k in ks}}))
    (d / "modeling_llada.py").write_text("raise RuntimeError('remote code was executed')\n")
    if tokenizer:
        from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

        specials = ["<|startoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|endoftext|>", "<|eot_id|>",
                    "<|mdm_mask|>"]
        vocab = {f"w{i}": i for i in range(57)} | {"<reasoning>": 57} | {t: 58 + i for i, t in enumerate(specials)}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.add_special_tokens([AddedToken(t, special=True) for t in specials])
        tok.save(str(d / "tokenizer.json"))
        (d / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "mask_token": "<|mdm_mask|>", "chat_template": CHAT_TEMPLATE}))
    return state


def reference_forward(state: dict, cfg: dict, ids: torch.Tensor) -> torch.Tensor:
    """LLaDA's equations written out independently: RMSNorm, RoPE (rotate-half, absolute positions), full
    bidirectional softmax attention, SwiGLU, final norm and output projection."""
    d, nh, eps = cfg["d_model"], cfg["n_heads"], cfg["rms_norm_eps"]
    hd = d // nh

    def rms(x, w):
        return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))

    pos = torch.arange(ids.shape[1], dtype=torch.float32)
    inv = cfg["rope_theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.outer(pos, inv)  # (N, hd/2)

    def rope(x):  # x (B, H, N, hd): pairs (x_j, x_{j + hd/2}) rotated by ang_j
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return torch.cat([a * ang.cos() - b * ang.sin(), b * ang.cos() + a * ang.sin()], -1)

    x = state["model.transformer.wte.weight"][ids]
    for i in range(cfg["n_layers"]):
        w = {k.split(f"blocks.{i}.")[1]: v for k, v in state.items() if f"blocks.{i}." in k}
        h = rms(x, w["attn_norm.weight"])
        q, k, v = ((h @ w[f"{n}_proj.weight"].T).view(*ids.shape, nh, hd).transpose(1, 2) for n in "qkv")
        q, k = rope(q), rope(k)
        att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, -1) @ v
        x = x + att.transpose(1, 2).reshape(*ids.shape, d) @ w["attn_out.weight"].T
        h = rms(x, w["ff_norm.weight"])
        x = x + (torch.nn.functional.silu(h @ w["ff_proj.weight"].T) * (h @ w["up_proj.weight"].T)) @ w["ff_out.weight"].T
    return rms(x, state["model.transformer.ln_f.weight"]) @ state["model.transformer.ff_out.weight"].T


def test_llada_official_layout_loads_and_matches_the_equations(tmp_path):
    state = write_checkpoint(tmp_path / "ckpt")
    model = load_llada(str(tmp_path / "ckpt"))
    assert sorted(model.state_dict()) == sorted(state)  # exactly the official keys
    assert (model.mask_id, model.eos_id, model.pad_id) == (63, 61, 61)
    ids = torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model(ids), reference_forward(state, CFG, ids), atol=1e-4, rtol=1e-4)
        bf16 = load_llada(str(tmp_path / "ckpt"), dtype=torch.bfloat16, with_tokenizer=False)
        assert bf16.inv_freq('cpu').dtype == torch.float32 and bf16.model.transformer.wte.weight.dtype == torch.bfloat16
        assert torch.allclose(bf16(ids).float(), model(ids), atol=0.5)
    text = model.tokenizer.apply_chat_template([{"role": "system", "content": "w1"}, {"role": "user", "content": "w2 w3"}],
                                               add_generation_prompt=True, tokenize=False)
    assert text == "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nw2 w3<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"


def test_llada_padding_is_masked_and_real_tokens_keep_absolute_positions(tmp_path):
    write_checkpoint(tmp_path / "ckpt", tokenizer=False)
    model = load_llada(str(tmp_path / "ckpt"), with_tokenizer=False)
    ids = torch.tensor([[61, 61, 5, 6, 7], [3, 4, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        out = model(ids, mask)
        alone = model(ids[:1], mask[:1])
        other_pad = model(torch.tensor([[9, 9, 5, 6, 7]]), mask[:1])
    assert torch.isfinite(out).all() and torch.allclose(out[0, 2:], alone[0, 2:], atol=1e-5)
    assert torch.allclose(other_pad[0, 2:], alone[0, 2:], atol=1e-5)  # what sits under padding does not matter


def test_llada_lora_attaches_to_the_released_modules(tmp_path):
    from peft import LoraConfig, get_peft_model

    write_checkpoint(tmp_path / "ckpt", tokenizer=False)
    model = get_peft_model(load_llada(str(tmp_path / "ckpt"), with_tokenizer=False),
                           LoraConfig(r=4, lora_alpha=8, target_modules=LLADA_TARGETS))
    adapted = {n for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert {n.rsplit(".", 1)[-1] for n in adapted} == set(LLADA_TARGETS)
    # peft matches names by suffix: "ff_out" also hits the output head model.transformer.ff_out, exactly as with the
    # released AGRPO target list on LLaDA's own modeling code (7 per block + the head)
    assert len(adapted) == 7 * CFG["n_layers"] + 1 and any(n.endswith("model.transformer.ff_out") for n in adapted)


def test_llada_refuses_pickles_and_unsupported_configs(tmp_path):
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CFG))
    torch.save({"x": torch.zeros(1)}, d / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_llada(str(d), with_tokenizer=False)
    (d / "config.json").write_text(json.dumps({**CFG, "block_type": "sequential"}))
    with pytest.raises(ValueError, match="unsupported LLaDA configuration"):
        load_llada(str(d), with_tokenizer=False)
    with pytest.raises(FileNotFoundError):
        load_llada(str(tmp_path / "missing_dir/"), with_tokenizer=False)
    assert LLaDAConfig().mask_token_id == 126336 and LLaDA(LLaDAConfig(d_model=8, n_heads=2, n_layers=1, mlp_hidden_size=8,
                                                                      vocab_size=16, embedding_size=16)).mask_id == 126336


def test_llada_prompts_go_through_the_chat_template_with_the_protocol_prefix(tmp_path):
    from agrpo.tasks import get_task

    write_checkpoint(tmp_path / "ckpt")
    model = load_llada(str(tmp_path / "ckpt"))
    tok = model.tokenizer
    d1 = get_task("gsm8k", protocol="d1")
    ex = {"question": "w5 w6", "answer": "#### 1"}
    ids = model.encode_prompt(d1, ex)
    # BOS, user header, the user turn (d1: system text + question), <|eot_id|>, assistant header, then <reasoning>
    # ("user" and "assistant" are unknown words to this toy vocabulary: id 0)
    assert ids[:4] == [58, 59, 0, 60] and ids[-8:] == [0, 5, 6, 62, 59, 0, 60, 57] and len(ids) > 20
    agrpo = get_task("gsm8k", protocol="agrpo")
    dropped = model.encode_prompt(agrpo, ex)  # LLaDA's template drops the system turn (as the released code runs)
    model.system_prompt = "merge"
    merged = model.encode_prompt(agrpo, ex)
    assert dropped == [58, 59, 0, 60, 5, 6, 62, 59, 0, 60]  # the question alone: no system text, no prefix
    assert len(merged) > len(dropped) and merged[:4] == dropped[:4] and merged[-6:] == dropped[-6:]
    ids = tok("w7 <|eot_id|> <|endoftext|>", add_special_tokens=False)["input_ids"]
    assert model.decode_completion(ids, skip_special_tokens=True).strip() == "w7"
    assert "<|eot_id|>" in model.decode_completion(ids, skip_special_tokens=False)


def test_llada_save_pretrained_round_trips_through_load_model(tmp_path):
    from agrpo.model import load_model

    write_checkpoint(tmp_path / "ckpt")
    model = load_model(tmp_path / "ckpt")  # dispatches on config.json's model_type
    model.save_pretrained(tmp_path / "copy", max_shard_bytes=20_000)  # several shards
    assert len(list((tmp_path / "copy").glob("model-*.safetensors"))) > 1
    again = load_model(tmp_path / "copy")
    ids = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids))
    assert again.tokenizer("w3", add_special_tokens=False)["input_ids"] == [3]


def test_llada_activation_checkpointing_gives_the_same_gradients(tmp_path):
    write_checkpoint(tmp_path / "ckpt", tokenizer=False)
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(3))
    grads = []
    for flag in (False, True):
        model = load_llada(str(tmp_path / "ckpt"), with_tokenizer=False).train()
        model.activation_checkpointing = flag
        model(ids).logsumexp(-1).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_llada_base_rule_links_the_checkpoint(tmp_path):
    import yaml

    from agrpo.cli import main
    from agrpo.model import load_model

    write_checkpoint(tmp_path / "ckpt")
    d = yaml.safe_load((Path(__file__).resolve().parent.parent / "workflow/config/paper.yaml").read_text())
    d["model"]["name_or_path"] = str(tmp_path / "ckpt")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    assert main(["base", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "base")]) == 0
    assert (tmp_path / "base/config.json").is_symlink() and (tmp_path / "base/model.safetensors.index.json").exists()
    model = load_model(tmp_path / "base")
    assert model.config.d_model == CFG["d_model"] and model.tokenizer is not None


def test_llada_loads_without_importing_dynamo_and_leaves_nn_init_as_it_was(tmp_path):
    """Building on the meta device skips nn.init (its meta path imports torch._dynamo, ~2 s a process) and puts the
    initialisers back, also when the build fails."""
    import subprocess
    import sys

    write_checkpoint(tmp_path / "ckpt", tokenizer=False)
    code = ("import sys, torch; from agrpo.model.llada import load_llada; "
            f"m = load_llada({str(tmp_path / 'ckpt')!r}, with_tokenizer=False); "
            "print('torch._dynamo' in sys.modules, torch.nn.init.normal_.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "torch.nn.init"]
    from agrpo.model import llada

    real = torch.nn.init.kaiming_uniform_
    with pytest.raises(ZeroDivisionError):
        with llada._initialisers_skipped():
            assert torch.nn.init.kaiming_uniform_ is not real
            1 / 0
    assert torch.nn.init.kaiming_uniform_ is real
