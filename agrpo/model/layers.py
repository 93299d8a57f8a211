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


def padding_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive attention bias: padded keys are never attended; padded queries attend to themselves so every
    softmax stays finite. None when nothing is padded (SDPA then takes its fastest path)."""
    if attention_mask is None or attention_mask.bool().all():
        return None
    keep = attention_mask.bool()
    allowed = keep[:, None, None, :] | torch.eye(keep.shape[1], dtype=torch.bool, device=keep.device)
    return torch.zeros(allowed.shape, dtype=dtype, device=keep.device).masked_fill(~allowed, float("-inf"))


class PrefixKV:
    """Keys and values of the first ``length`` positions of every layer (Fast-dLLM's prefix cache).

    Filled by a full forward pass with ``capture=`` (each block appends its (k, v) of those positions, after
    RoPE), then passed as ``past=`` to forward passes over the remaining positions only, which attend to
    [cached prefix ; their own keys]. Approximate for a bidirectional model: the cached prefix does not see
    later changes of the suffix."""

    def __init__(self, length: int, layers: list | None = None):
        self.length, self.layers = length, layers if layers is not None else []

    def rows(self, keep: torch.Tensor) -> "PrefixKV":
        """The cache of a subset of the batch rows (a bool mask or index tensor)."""
        return PrefixKV(self.length, [(k[keep], v[keep]) for k, v in self.layers])


def attend(q, k, v, attn_bias, layer: int, past: PrefixKV | None, capture: PrefixKV | None):
    """SDPA over [cached prefix ; current] keys; stores the current prefix keys when capturing."""
    import torch.nn.functional as F

    if capture is not None:
        capture.layers.append((k[:, :, :capture.length], v[:, :, :capture.length]))
    if past is not None:
        pk, pv = past.layers[layer]
        k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, is_causal=False)
