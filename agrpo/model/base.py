"""The model interface shared by the tiny from-scratch dLLM and LLaDA-8B.

A masked diffusion LM maps a batch of token ids (some equal to ``mask_id``) to per-position logits over the
vocabulary; attention is bidirectional. Everything else in the harness (sampler, objectives, evaluation) talks
to models only through this interface.
"""

from __future__ import annotations

import torch
from torch import nn


def token_list(ids) -> list[int]:
    """Token ids as Python ints: a tensor in one transfer (``int()`` per element would read the device once per
    token), anything else element by element."""
    return ids.tolist() if isinstance(ids, torch.Tensor) else [int(i) for i in ids]


class MaskedDiffusionLM(nn.Module):
    """Abstract base: ``forward(input_ids, attention_mask) -> logits`` plus the ids the sampler needs."""

    mask_id: int
    eos_id: int
    pad_id: int
    tokenizer: object
    supports_kv_cache: bool = False  # forward takes past= / capture= (KVCache) and bias= (the sampler's caches)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids`` (B, N) long; ``attention_mask`` (B, N) with 1 for real tokens, 0 for padding.

        Returns logits (B, N, V). Padding positions neither attend nor are attended to.
        """
        raise NotImplementedError

    def encode_prompt(self, task, example) -> list[int]:
        """Token ids of a task prompt. Default (tokenizers without a chat template): the task's plain text."""
        return self.tokenizer.encode(task.prompt(example))

    def encode_pair(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        """(prompt ids, completion ids) of one SFT / pretraining example. Default: the plain texts."""
        return self.tokenizer.encode(prompt), self.tokenizer.encode(completion)

    def decode_completion(self, ids, skip_special_tokens: bool = True) -> str:
        """Text of a completion (evaluation judges keep special tokens where a protocol's parser expects them)."""
        return self.tokenizer.decode(token_list(ids))

    @property
    def logits_size(self) -> int:
        """V, the size of the logits' last dimension (the sampler draws its noise before each pass)."""
        return self.tokenizer.vocab_size

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward_flops(self, seq_len: int) -> float:
        """Estimated FLOPs of one forward pass over one sequence of ``seq_len`` tokens (2·params·tokens + attention)."""
        raise NotImplementedError
