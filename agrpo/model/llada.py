"""LLaDA-8B(-Instruct) in plain PyTorch, loading the official checkpoint layout without ``trust_remote_code``.

Architecture (LLaDA's ``modeling_llada.py``, block type ``llama``): token embedding ``wte``; n_layers blocks of

    h = x + attn_out(Attention(RoPE(q_proj(RMS(x))), RoPE(k_proj(RMS(x))), v_proj(RMS(x))))      (bidirectional)
    y = h + ff_out(silu(ff_proj(RMS(h))) ⊙ up_proj(RMS(h)))

then ``ln_f`` (RMSNorm) and the output projection ``ff_out`` (no weight tying, no biases). RMSNorm normalises in
float32 and scales by its weight after casting back; RoPE (θ = rope_theta, rotate-half convention) is applied in
float32 at absolute positions 0..N−1 (left padding shifts the real tokens, as in LLaDA); padded keys are masked
when an attention mask is given (LLaDA's October-2025 behaviour; d1's evaluation attended them).

Parameter names match the official safetensors keys: ``model.transformer.wte.weight``,
``model.transformer.blocks.{i}.{attn_norm,ff_norm,q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out}.weight``,
``model.transformer.ln_f.weight``, ``model.transformer.ff_out.weight`` — so peft can target LLaDA's released
LoRA modules by name. Weights load only from safetensors (sharded through ``model.safetensors.index.json``);
pickle checkpoints and remote code are refused.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from agrpo.model.base import MaskedDiffusionLM, token_list
from agrpo.model.layers import AUTO, KVCache, RMSNorm, attend, padding_bias

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


@dataclass
class LLaDAConfig:
    d_model: int = 4096
    n_heads: int = 32
    n_kv_heads: int | None = 32
    n_layers: int = 32
    mlp_hidden_size: int = 12288
    vocab_size: int = 126464
    embedding_size: int | None = 126464
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int = 126081
    max_sequence_length: int = 4096

    @classmethod
    def from_json(cls, path: Path) -> "LLaDAConfig":
        raw = json.loads(path.read_text())
        unsupported = {k: raw.get(k) for k, ok in (("block_type", "llama"), ("activation_type", "silu"),
                                                    ("layer_norm_type", "rms"), ("weight_tying", False),
                                                    ("include_bias", False), ("alibi", False))
                       if k in raw and raw[k] != ok}
        if raw.get("n_kv_heads") not in (None, raw.get("n_heads")):
            unsupported["n_kv_heads"] = raw["n_kv_heads"]
        if unsupported:
            raise ValueError(f"{path}: unsupported LLaDA configuration {unsupported}")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class LLaDABlock(nn.Module):
    def __init__(self, c: LLaDAConfig):
        super().__init__()
        self.n_heads = c.n_heads
        self.attn_norm, self.ff_norm = RMSNorm(c.d_model, c.rms_norm_eps), RMSNorm(c.d_model, c.rms_norm_eps)
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.k_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.v_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.attn_out = nn.Linear(c.d_model, c.d_model, bias=False)
        self.ff_proj = nn.Linear(c.d_model, c.mlp_hidden_size, bias=False)
        self.up_proj = nn.Linear(c.d_model, c.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(c.mlp_hidden_size, c.d_model, bias=False)

    def forward(self, x, cos, sin, attn_bias, layer: int = 0, past=None, capture=None):
        b, n, d = x.shape
        h = self.attn_norm(x)
        q, k, v = (p(h).view(b, n, self.n_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q = (q.float() * cos + rotate_half(q.float()) * sin).to(v.dtype)
        k = (k.float() * cos + rotate_half(k.float()) * sin).to(v.dtype)
        a = attend(q, k, v, attn_bias, layer, past, capture)
        x = x + self.attn_out(a.transpose(1, 2).reshape(b, n, d))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDA(MaskedDiffusionLM):
    """The MaskedDiffusionLM interface over LLaDA's weights; ``tokenizer`` is a transformers tokenizer (or None)."""

    supports_kv_cache = True
    system_prompt: str = "template"  # how system turns reach the model (see encode_prompt)
    activation_checkpointing: bool = False  # recompute each block in backward (training only): memory for compute

    def __init__(self, config: LLaDAConfig, tokenizer=None):
        super().__init__()
        self.config = config
        self.mask_id, self.eos_id, self.pad_id = config.mask_token_id, config.eos_token_id, config.pad_token_id
        self.tokenizer = tokenizer
        vocab = config.embedding_size or config.vocab_size
        self.model = nn.Module()
        self.model.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, config.d_model),
            "blocks": nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers)),
            "ln_f": RMSNorm(config.d_model, config.rms_norm_eps),
            "ff_out": nn.Linear(config.d_model, vocab, bias=False),
        })

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past: KVCache | None = None, capture: KVCache | None = None, bias=AUTO) -> torch.Tensor:
        """Logits (B, N, V). With ``past`` the ids are the window the cache leaves out (absolute positions from
        past.start) and ``attention_mask`` covers the whole sequence; ``capture`` collects the cached
        keys/values (agrpo.model.layers.KVCache). ``bias``: the padding bias already built (None = no padding)."""
        t = self.model.transformer
        n, start = input_ids.shape[1], past.start if past is not None else 0
        freqs = torch.arange(start, start + n, device=input_ids.device, dtype=torch.float32)[:, None] * self.inv_freq(input_ids.device)
        angles = torch.cat([freqs, freqs], -1)  # (N, head_dim)
        cos, sin = angles.cos()[None, None], angles.sin()[None, None]
        attn_bias = padding_bias(attention_mask, t["wte"].weight.dtype) if isinstance(bias, str) else bias
        if attn_bias is not None and past is not None:
            attn_bias = attn_bias[:, :, start:start + n]  # queries: the uncached positions
        x = t["wte"](input_ids)
        for i, block in enumerate(t["blocks"]):
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, cos, sin, attn_bias, use_reentrant=False)
            else:
                x = block(x, cos, sin, attn_bias, i, past, capture)
        return t["ff_out"](t["ln_f"](x))

    @property
    def logits_size(self) -> int:
        return self.config.embedding_size or self.config.vocab_size

    def inv_freq(self, device) -> torch.Tensor:
        """RoPE frequencies θ^(−2j/d_head), float32, computed per call: no buffer that a dtype cast (``.to(bf16)``,
        DeepSpeed's bf16 engine) could round."""
        head_dim = self.config.d_model // self.config.n_heads
        return 1.0 / self.config.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)

    def encode_prompt(self, task, example) -> list[int]:
        """The task's messages through the tokenizer's chat template with the generation prompt, then the
        protocol's assistant prefix (d1: ``<reasoning>``). LLaDA-8B-Instruct's template emits only user and
        assistant turns, so a system turn is dropped — what the released AGRPO code feeds LLaDA
        (``system_prompt: template``); ``merge`` prepends it to the first user turn instead."""
        messages = [dict(m) for m in task.messages(example)]
        if self.system_prompt == "merge" and messages and messages[0]["role"] == "system":
            system = messages.pop(0)["content"]
            messages[0]["content"] = system + "\n\n" + messages[0]["content"]
        elif self.system_prompt not in ("template", "merge"):
            raise ValueError(f"system_prompt must be 'template' or 'merge', got {self.system_prompt!r}")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text + getattr(task, "assistant_prefix", ""), add_special_tokens=False)["input_ids"]

    def encode_pair(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        """An SFT example as d1 renders it: the conversation [user: prompt, assistant: completion] through the chat
        template; the prompt is the user turn with the generation prompt (what RL and evaluation condition on),
        the completion the rest of the rendering (the reply and the template's end-of-turn token)."""
        user = [{"role": "user", "content": prompt}]
        head = self.tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = self.tokenizer.apply_chat_template(user + [{"role": "assistant", "content": completion}], tokenize=False)
        if not full.startswith(head):
            raise ValueError("the chat template's rendering of [user, assistant] does not start with its rendering of "
                             "[user] + generation prompt; cannot split an SFT example into prompt and completion")
        encode = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        return encode(head), encode(full[len(head):])

    def decode_completion(self, ids, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(token_list(ids), skip_special_tokens=skip_special_tokens)

    def save_pretrained(self, directory: str | Path, max_shard_bytes: int = 5 * 2**30) -> None:
        """The official layout: config.json, safetensors shards with an index, tokenizer files."""
        from agrpo.io import save_safetensors

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        fields = {k: getattr(self.config, k) for k in self.config.__dataclass_fields__}
        (d / "config.json").write_text(json.dumps({
            "model_type": "llada", "architectures": ["LLaDAModelLM"], "block_type": "llama",
            "activation_type": "silu", "layer_norm_type": "rms", "weight_tying": False, "include_bias": False,
            **fields}, indent=1))
        shards, current, size = [], {}, 0
        for k, v in self.state_dict().items():
            nbytes = v.numel() * v.element_size()
            if current and size + nbytes > max_shard_bytes:
                shards.append(current)
                current, size = {}, 0
            current[k], size = v.contiguous(), size + nbytes
        shards.append(current)
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_safetensors(shard, d / name)
            weight_map |= dict.fromkeys(shard, name)
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}, indent=1))
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(d))

    def forward_flops(self, seq_len: int) -> float:
        c = self.config
        matmul = self.num_parameters() - (c.embedding_size or c.vocab_size) * c.d_model
        return 2.0 * matmul * seq_len + 4 * c.n_layers * seq_len * seq_len * c.d_model


def resolve_checkpoint(name_or_path: str) -> Path:
    """A local directory, or a hub id fetched (config, safetensors shards, tokenizer files only) to the HF cache."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists() or name_or_path.startswith((".", "/")):
        raise FileNotFoundError(f"{name_or_path}: not a checkpoint directory")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name_or_path, allow_patterns=["config.json", "*.safetensors",
                                                                "model.safetensors.index.json", *TOKENIZER_FILES]))


def _weight_files(d: Path) -> list[Path]:
    index = d / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [f for f in files if not (d / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{index}: shards missing on disk: {missing}")
        return [d / f for f in files]
    files = sorted(d.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in d.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        raise ValueError(f"{d}: only pickle weights ({', '.join(pickles)}); refusing to unpickle — convert them to "
                         "safetensors")
    raise FileNotFoundError(f"{d}: no model.safetensors or shards")


@contextmanager
def _initialisers_skipped():
    """torch.nn.init's in-place initialisers (``normal_``, ``kaiming_uniform_``, ...) as no-ops, while a model is
    built on the meta device: on meta tensors they run through torch._refs, whose first call imports torch._dynamo
    (about 2 s of each process on a CPU), and the values they would write do not exist there."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_") and callable(getattr(nn.init, n))]
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def empty_llada(config: LLaDAConfig, dtype: torch.dtype | None = None) -> LLaDA:
    """LLaDA with its parameters on the meta device (shapes, no memory, no values), in ``dtype`` if given: the
    weights are loaded or written next (``to_empty`` allocates them)."""
    with torch.device("meta"), _initialisers_skipped():
        model = LLaDA(config)
    return model if dtype is None else model.to(dtype)


def load_llada(name_or_path: str, dtype: torch.dtype = torch.float32, device: str = "cpu",
               with_tokenizer: bool = True) -> LLaDA:
    """Build LLaDA from config.json and load the safetensors weights strictly (every official key, nothing else).

    The model's own ``modeling_llada.py`` and ``auto_map`` are never imported (no remote code); the tokenizer is
    loaded with ``trust_remote_code=False``."""
    from safetensors.torch import load_file

    dev = torch.device(device)
    device = "cpu" if dev.type == "cpu" else str(dev)  # safetensors wants "cuda:0" or "cpu" (not "cpu:0")
    d = resolve_checkpoint(name_or_path)
    config = LLaDAConfig.from_json(d / "config.json")
    model = empty_llada(config)
    state = {}
    for f in _weight_files(d):
        state.update(load_file(str(f), device=device))
    model = model.to_empty(device=device)
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(f"{d}: checkpoint keys do not match LLaDA: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.to(dtype)
    if with_tokenizer:
        model.tokenizer = load_tokenizer(d)
        check_mask_token(model.tokenizer, config, d)
    return model


def load_tokenizer(d: Path):
    """``AutoTokenizer.from_pretrained(d, trust_remote_code=False)``. Where tokenizer_config.json names
    ``PreTrainedTokenizerFast`` and no ``auto_map``, that class is what AutoTokenizer resolves to, and it is loaded
    directly: AutoTokenizer first builds its map of every model's tokenizer (about 2.4 s a process on a CPU)."""
    import transformers

    f = d / "tokenizer_config.json"
    tc = json.loads(f.read_text()) if f.is_file() else {}
    if tc.get("tokenizer_class") == "PreTrainedTokenizerFast" and "auto_map" not in tc:
        return transformers.PreTrainedTokenizerFast.from_pretrained(str(d))
    return transformers.AutoTokenizer.from_pretrained(str(d), trust_remote_code=False)


def check_mask_token(tokenizer, config: LLaDAConfig, d: Path, token: str = "<|mdm_mask|>") -> None:
    """The sampler writes ``config.mask_token_id``; the tokenizer must call that id LLaDA's mask token."""
    vocab = tokenizer.get_vocab()
    if vocab.get(token) != config.mask_token_id:
        found = f"id {vocab[token]}" if token in vocab else "no such token"
        raise ValueError(f"{d}: the tokenizer's mask token {token} must have id {config.mask_token_id} "
                         f"(config.json mask_token_id); the tokenizer files have {found}")


def link_checkpoint(name_or_path: str, out_dir: str | Path) -> Path:
    """Make ``out_dir`` the pipeline's base model: symlinks to the resolved checkpoint's files (downloaded first
    for a hub id), created in a temporary directory and renamed into place."""
    from agrpo.io import fresh_tmp_dir, replace_dir

    src = resolve_checkpoint(name_or_path).resolve()
    files = [f for f in src.iterdir() if f.name in ("config.json", "model.safetensors.index.json", *TOKENIZER_FILES)
             or f.suffix == ".safetensors"]
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src}: no config.json")
    out = Path(out_dir)
    tmp = fresh_tmp_dir(out)
    for f in files:
        (tmp / f.name).symlink_to(f)
    replace_dir(tmp, out)
    return out
