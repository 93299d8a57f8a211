"""An enumerable toy dLLM: logits are a free table indexed by the whole completion state.

With a vocabulary of V content tokens and a canvas of L positions there are (V+1)^L states (each position a
token or [MASK]); the model's logits at position j of state x are θ[x, j, :]. Small V and L make every
trajectory of the sampler enumerable, so the exact expected reward E_{τ∼π_θ}[R(o)] and its gradient are
computable — the ground truth the AGRPO unbiasedness tests and the variance study compare against.

Token ids: 0..V−1 content, V = [MASK], V+1 = [PAD] = [EOS]. The table has no entries for [MASK]/[PAD]: their
logits are −inf, so generation is content only and every trajectory runs all m steps.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import torch
from torch import nn

from agrpo.model.base import MaskedDiffusionLM


class TabularDLLM(MaskedDiffusionLM):
    def __init__(self, vocab: int = 3, length: int = 3, init_std: float = 1.5, seed: int = 0):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.mask_id, self.pad_id, self.eos_id = vocab, vocab + 1, vocab + 1
        self.tokenizer = None
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(((vocab + 1) ** length, length, vocab), generator=g, dtype=torch.float64) * init_std)
        self.register_buffer("place", (vocab + 1) ** torch.arange(length), persistent=False)

    def state_index(self, completion: torch.Tensor) -> torch.Tensor:
        """Index of each completion state (B, L) in the table: base-(V+1) digits, [MASK] = V."""
        digits = completion.clamp(max=self.vocab)  # [PAD]/[EOS] never occur in completions; treat as [MASK]
        return (digits * self.place).sum(-1)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n = ids.shape
        content = self.table[self.state_index(ids[:, -self.length:])]  # (B, L, V)
        special = torch.full((b, self.length, 2), float("-inf"), dtype=content.dtype)
        completion = torch.cat([content, special], -1)
        prompt = torch.zeros((b, n - self.length, self.vocab + 2), dtype=content.dtype)
        return torch.cat([prompt, completion], 1)

    def num_parameters(self) -> int:
        return self.table.numel()

    @property
    def logits_size(self) -> int:
        return self.vocab + 2

    def forward_flops(self, seq_len: int) -> float:
        return 0.0

    # ------------------------------------------------------------------ exact quantities by enumeration

    def completions(self) -> list[tuple[int, ...]]:
        return list(itertools.product(range(self.vocab), repeat=self.length))

    def expected_reward(self, reward: dict[tuple[int, ...], float], temperature: float = 1.0) -> torch.Tensor:
        """E_{τ∼π_θ}[R(o)] (differentiable in θ) for the random-order, one-token-per-step sampler over one block.

        At a state with n masked positions the sampler picks each with probability 1/n and fills it with
        v ∼ softmax(θ[x, j] / T). The recursion below sums over every order and every token.
        """
        mask = self.vocab

        @lru_cache(maxsize=None)
        def value(state: tuple[int, ...]) -> torch.Tensor:
            masked = [j for j, v in enumerate(state) if v == mask]
            if not masked:
                return torch.tensor(float(reward[state]), dtype=torch.float64)
            idx = int(sum(v * (mask + 1) ** j for j, v in enumerate(state)))
            total = 0.0
            for j in masked:
                p = torch.softmax(self.table[idx, j] / temperature, -1)
                for v in range(self.vocab):
                    total = total + p[v] * value(state[:j] + (v,) + state[j + 1:]) / len(masked)
            return total

        return value((mask,) * self.length)
