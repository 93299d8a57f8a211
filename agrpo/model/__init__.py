"""Models: the tiny from-scratch dLLM, LLaDA-8B, the enumerable toy; ``load_model`` picks by ``config.json`` (or
merges an adapter checkpoint into its base)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agrpo.model.base import MaskedDiffusionLM


def load_model(name_or_path: str | Path, dtype=None, device: str = "cpu") -> MaskedDiffusionLM:
    """A checkpoint directory (ours, or LLaDA's official layout; or an adapter checkpoint, merged into its base on
    load) or a LLaDA hub id; ``model_type`` decides."""
    d = Path(name_or_path)
    if not d.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", str(name_or_path)) and not str(name_or_path).startswith("."):
        import torch

        from agrpo.model.llada import load_llada  # a hub id such as GSAI-ML/LLaDA-8B-Instruct

        return load_llada(str(name_or_path), dtype=dtype or torch.float32, device=device)
    cfg_path = d / "config.json"
    from agrpo.model.lora import is_adapter_checkpoint, load_adapter_checkpoint

    if is_adapter_checkpoint(d):  # rl.checkpoint_format: adapter — the base with the adapter merged in
        return load_adapter_checkpoint(d, lambda base: load_model(base, dtype=dtype, device=device))
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no model at {d}: {cfg_path} does not exist")
    model_type = json.loads(cfg_path.read_text()).get("model_type")
    if model_type == "tiny":
        from agrpo.model.tiny import TinyDLLM

        return TinyDLLM.from_pretrained(d).to(device)
    if model_type == "llada":
        import torch

        from agrpo.model.llada import load_llada

        return load_llada(str(d), dtype=dtype or torch.float32, device=device)
    raise ValueError(f"{cfg_path}: unsupported model_type {model_type!r} (tiny, llada)")


def supports_kv_cache(model_type: str) -> bool:
    """Whether a ``model.type`` has the KV-cache passes the prefix and dual caches need."""
    return model_type in ("tiny", "llada")
