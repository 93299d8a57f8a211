"""Layers shared by the tiny model and LLaDA."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + ε), computed in float32 and cast back, then scaled by a learned weight (LLaDA's
    RMSLayerNorm; for float32 inputs the same values as the textbook formula)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


AUTO = "auto"  # a forward's ``bias`` argument: build the padding bias from the attention mask


def padding_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive attention bias: padded keys are never attended; padded queries attend to themselves so every
    softmax stays finite. None when nothing is padded (SDPA then takes its fastest path). Reads the mask on the
    host once: the sampler builds it once per generation and passes it to every step (``bias=``)."""
    if attention_mask is None or attention_mask.bool().all():
        return None
    keep = attention_mask.bool()
    allowed = keep[:, None, None, :] | torch.eye(keep.shape[1], dtype=torch.bool, device=keep.device)
    return torch.zeros(allowed.shape, dtype=dtype, device=keep.device).masked_fill(~allowed, float("-inf"))


def bias_kwargs(model, attention_mask: torch.Tensor) -> dict:
    """``{"bias": padding bias}`` for a model whose forward takes it, built here — outside a compiled or captured
    forward, whose host read of the mask would break the graph — else ``{}``."""
    if not getattr(model, "supports_kv_cache", False):
        return {}
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    return {"bias": padding_bias(attention_mask, dtype)}


class KVCache:
    """Keys and values of the positions outside a window [start, stop) of every layer (Fast-dLLM's caches).

    ``stop=None`` (prefix cache): the first ``start`` positions; later passes compute positions start..end.
    ``stop`` set (dual cache): positions before ``start`` and from ``stop`` on; later passes compute only the
    window. Filled by a full forward pass with ``capture=`` (each block appends its (k, v) of those positions,
    after RoPE), then passed as ``past=`` to forward passes over the window, which attend to the keys in
    sequence order [prefix ; window ; suffix]. Approximate for a bidirectional model: the cached keys do not see
    later changes of the window."""

    def __init__(self, start: int, stop: int | None = None, layers: list | None = None):
        self.start, self.stop, self.layers = start, stop, layers if layers is not None else []

    @property
    def length(self) -> int:  # kept for the prefix cache's callers
        return self.start

    @property
    def dual(self) -> bool:
        return self.stop is not None

    def window(self, total: int) -> int:
        """Positions a pass with this cache computes, in a sequence of ``total``."""
        return (self.stop if self.dual else total) - self.start

    def rows(self, keep: torch.Tensor) -> "KVCache":
        """The cache of a subset of the batch rows (a bool mask or index tensor)."""
        return KVCache(self.start, self.stop, [tuple(t[keep] for t in kv) for kv in self.layers])


PrefixKV = KVCache  # the prefix cache: KVCache(start)


def attend(q, k, v, attn_bias, layer: int, past: KVCache | None, capture: KVCache | None):
    """SDPA over [cached prefix ; current ; cached suffix] keys; stores the cached positions when capturing."""
    import torch.nn.functional as F

    if capture is not None:
        kv = (k[:, :, :capture.start], v[:, :, :capture.start])
        capture.layers.append(kv + ((k[:, :, capture.stop:], v[:, :, capture.stop:]) if capture.dual else ()))
    if past is not None:
        pk, pv, *suffix = past.layers[layer]
        k, v = torch.cat([pk, k, *suffix[:1]], 2), torch.cat([pv, v, *suffix[1:]], 2)
    if attn_bias is not None and attn_bias.dtype != q.dtype:  # fp32 weights under bf16 autocast
        attn_bias = attn_bias.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, is_causal=False)
