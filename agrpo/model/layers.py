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
