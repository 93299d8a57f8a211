"""Character-level tokenizer for the tiny profile.

Special tokens are single ids: ``[PAD]``, ``[MASK]`` (the diffusion mask), ``[EOS]`` (completion padding, as in
LLaDA's SFT data the model learns to fill the tail of the canvas with EOS) and the answer tags ``<answer>`` /
``</answer>``, so a tag costs one position. Everything else is one character.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[MASK]", "[EOS]", "<answer>", "</answer>"]
CHARACTERS = list("0123456789abcdefghijklmnopqrstuvwxyz +-*/=()?:,.>")


class CharTokenizer:
    """Maps text to ids one character at a time; the tags in ``SPECIAL_TOKENS`` are matched first."""

    def __init__(self, characters: list[str] | None = None):
        self.characters = list(characters or CHARACTERS)
        self.vocab = SPECIAL_TOKENS + self.characters
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("tokenizer vocabulary has duplicate entries")
        self.token_to_id = {tok: i for i, tok in enumerate(self.vocab)}
        self.pad_id = self.token_to_id["[PAD]"]
        self.mask_id = self.token_to_id["[MASK]"]
        self.eos_id = self.token_to_id["[EOS]"]
        self._tags = sorted((t for t in SPECIAL_TOKENS if t.startswith("<")), key=len, reverse=True)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            for tag in self._tags:
                if text.startswith(tag, i):
                    ids.append(self.token_to_id[tag])
                    i += len(tag)
                    break
            else:
                ch = text[i]
                if ch not in self.token_to_id:
                    raise ValueError(f"character {ch!r} at offset {i} is not in the tiny tokenizer's vocabulary: {text!r}")
                ids.append(self.token_to_id[ch])
                i += 1
        return ids

    def decode(self, ids, stop_at_eos: bool = True) -> str:
        """Text of ``ids``; stops at the first EOS (the completion's end), drops PAD, renders MASK as ``_``."""
        out = []
        for i in (int(x) for x in ids):
            if i == self.eos_id and stop_at_eos:
                break
            if i == self.pad_id or i == self.eos_id:
                continue
            out.append("_" if i == self.mask_id else self.vocab[i])
        return "".join(out)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "characters": self.characters}))

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        data = json.loads(Path(path).read_text())
        return cls(data["characters"])
