"""A tiny bidirectional transformer dLLM, trained from scratch (the ``tiny`` profile's model).

LLaDA's architecture in miniature: pre-norm blocks with RMSNorm, rotary position embeddings, SwiGLU MLP,
no biases, non-causal scaled-dot-product attention, and a ``[MASK]`` token. Position ids are counted over
real tokens only, so left-padding a prompt does not change its logits.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from agrpo.model.base import MaskedDiffusionLM
from agrpo.model.layers import AUTO, KVCache, RMSNorm, attend, padding_bias
from agrpo.io import save_safetensors
from agrpo.model.tokenizer import CharTokenizer


@dataclass
class TinyConfig:
    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 384
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x1, x2) of the head dimension by the position angle: (x1 cos − x2 sin, x2 cos + x1 sin)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)  # bf16 weights: back to bf16


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.attn_out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.ff_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ff_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)  # gate (LLaDA's name)
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.ff_out = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x, cos, sin, attn_bias, layer: int = 0, past=None, capture=None):
        b, n, d = x.shape
        h = self.attn_norm(x)
        q, k, v = (p(h).view(b, n, self.n_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        a = attend(q, k, v, attn_bias, layer, past, capture)
        x = x + self.attn_out(a.transpose(1, 2).reshape(b, n, d))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class TinyDLLM(MaskedDiffusionLM):
    supports_kv_cache = True
    def __init__(self, cfg: TinyConfig, tokenizer: CharTokenizer):
        super().__init__()
        if cfg.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"config vocab_size {cfg.vocab_size} != tokenizer vocabulary {tokenizer.vocab_size}")
        if cfg.d_model % cfg.n_heads or (cfg.d_model // cfg.n_heads) % 2:
            raise ValueError("d_model must split into n_heads heads of even size")
        self.cfg, self.tokenizer = cfg, tokenizer
        self.mask_id, self.eos_id, self.pad_id = tokenizer.mask_id, tokenizer.eos_id, tokenizer.pad_id
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init)

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)

    def forward(self, input_ids, attention_mask=None, past: KVCache | None = None, capture: KVCache | None = None,
                bias=AUTO):
        """Logits (B, N, V). With ``past`` the ids are the window the cache leaves out (positions past.start on)
        and ``attention_mask`` covers the whole sequence; ``capture`` collects the cached keys/values. ``bias``:
        the padding bias of ``attention_mask`` already built (``padding_bias``; None = no padding), so that a
        pass reads nothing back to the host."""
        if attention_mask is None:
            attention_mask = torch.ones((input_ids.shape[0], input_ids.shape[1] + (past.start if past else 0)),
                                        dtype=torch.long, device=input_ids.device)
        n = input_ids.shape[1]
        start = past.start if past is not None else 0
        keep = attention_mask.bool()
        pos = (keep.long().cumsum(-1) - 1).clamp(min=0).float()[:, start:start + n]  # positions over real tokens
        head_dim = self.cfg.d_model // self.cfg.n_heads  # RoPE frequencies per call, float32 (no castable buffer)
        inv_freq = self.cfg.rope_theta ** (-torch.arange(0, head_dim, 2, device=input_ids.device).float() / head_dim)
        angles = pos[:, None, :, None] * inv_freq  # (B, 1, N, head_dim/2)
        cos, sin = angles.cos(), angles.sin()
        attn_bias = padding_bias(attention_mask, self.embed.weight.dtype) if isinstance(bias, str) else bias
        if attn_bias is not None and past is not None:
            attn_bias = attn_bias[:, :, start:start + n]  # queries: the uncached positions
        x = self.embed(input_ids)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, attn_bias, i, past, capture)
        return self.lm_head(self.norm(x))

    @property
    def logits_size(self) -> int:
        return self.cfg.vocab_size

    def forward_flops(self, seq_len: int) -> float:
        c = self.cfg
        matmul_params = self.num_parameters() - c.vocab_size * c.d_model  # embedding lookup is free
        attention = 4 * c.n_layers * seq_len * seq_len * c.d_model  # QK^T and AV
        return 2.0 * matmul_params * seq_len + attention

    # --- persistence: safetensors weights + JSON config + tokenizer, no pickles ---
    def save_pretrained(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_safetensors({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, d / "model.safetensors")
        (d / "config.json").write_text(json.dumps({"model_type": "tiny", **asdict(self.cfg)}, indent=1))
        self.tokenizer.save(d / "tokenizer.json")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "TinyDLLM":
        d = Path(directory)
        for name in ("config.json", "tokenizer.json", "model.safetensors"):
            if not (d / name).is_file():
                raise FileNotFoundError(f"model directory {d} is missing {name}")
        cfg = json.loads((d / "config.json").read_text())
        cfg.pop("model_type", None)
        model = cls(TinyConfig(**cfg), CharTokenizer.load(d / "tokenizer.json"))
        model.load_state_dict(load_file(str(d / "model.safetensors")))
        return model


def load_model(directory: str | Path) -> MaskedDiffusionLM:
    """Kept for callers of the tiny module; ``agrpo.model.load_model`` dispatches on the checkpoint's model_type."""
    from agrpo.model import load_model as load_any

    return load_any(directory)


def init_tiny(tokenizer: CharTokenizer, **overrides) -> TinyDLLM:
    return TinyDLLM(TinyConfig(vocab_size=tokenizer.vocab_size, **overrides), tokenizer)
