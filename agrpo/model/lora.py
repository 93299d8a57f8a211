"""LoRA adapters through peft, the reference model as "adapter off", merged and adapter checkpoints.

The released AGRPO code trains LoRA r = 64, α = 64, dropout 0 on LLaDA's seven projections (q_proj, k_proj,
v_proj, attn_out, ff_proj, up_proj, ff_out) and takes the reference model as the same network with the adapter
disabled. d1 passes Llama's names (q, k, v, o, up, down, gate_proj); peft keeps only the names that exist, so on
LLaDA (and on our tiny model, which uses LLaDA's names) d1 trains q/k/v/up_proj only
(``methods.<name>.d1_compat.lora_targets``). peft matches names by suffix, so on LLaDA the released AGRPO list
also adapts the output projection ``model.transformer.ff_out`` (7 modules per block + the head), exactly as the
released code does; d1's list does not reach it.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch

LLADA_TARGETS = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]
D1_LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"]


def lora_targets(method_cfg) -> list[str]:
    return D1_LLAMA_TARGETS if method_cfg.d1_compat.lora_targets else list(method_cfg.lora.target_modules)


def apply_lora(model, method_cfg):
    """Wrap ``model`` with fresh LoRA adapters (A ~ kaiming, B = 0: the wrapped model starts equal to the base)."""
    from peft import LoraConfig, get_peft_model

    lc = method_cfg.lora
    config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lora_targets(method_cfg))
    return get_peft_model(model, config)


def adapted_module_names(model) -> set[str]:
    """Names of the base modules that carry a LoRA adapter (last path component)."""
    return {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if hasattr(mod, "lora_A")}


class AdapterOff(torch.nn.Module):
    """The reference policy: the LoRA-wrapped model with its adapter disabled (no copy of the weights)."""

    def __init__(self, peft_model):
        super().__init__()
        self._peft = [peft_model]  # a list: not registered as a submodule (its parameters are the policy's)

    def __getattr__(self, name):
        if name == "_peft":
            return super().__getattr__(name)
        return getattr(self._peft[0], name)

    def forward(self, *args, **kwargs):
        with torch.no_grad(), self._peft[0].disable_adapter():
            return self._peft[0](*args, **kwargs)


def merged_copy(peft_model):
    """A plain model with the adapter merged into the weights (what checkpoints store)."""
    return copy.deepcopy(peft_model).merge_and_unload()


def quantize_4bit(model, compute_dtype=torch.bfloat16):
    """Replace every Linear inside the transformer blocks by a bitsandbytes NF4 ``Linear4bit`` with double
    quantisation and ``compute_dtype`` compute (d1: ``BitsAndBytesConfig(load_in_4bit, nf4, double quant, bf16)``).
    Embedding and output head stay unquantised (transformers skips the output embedding too). The weights are
    quantised when the model moves to CUDA."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise ImportError("load_in_4bit needs bitsandbytes: pip install 'agrpo[gpu]' (or bitsandbytes)") from None
    blocks = model.model.transformer["blocks"] if hasattr(model, "model") else model.blocks
    for block in blocks:
        for name, child in list(block.named_modules()):
            if not isinstance(child, torch.nn.Linear) or name == "":
                continue
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  device=child.weight.device)
            q.weight = bnb.nn.Params4bit(child.weight.data.to(compute_dtype), requires_grad=False,
                                         compress_statistics=True, quant_type="nf4")
            parent = block.get_submodule(name.rsplit(".", 1)[0]) if "." in name else block
            setattr(parent, name.rsplit(".", 1)[-1], q)
    return model


def merged_into(base_model, peft_model):
    """``base_model`` (unquantised) with ``peft_model``'s trained adapter merged in: how checkpoints of a 4-bit
    run are made (merging into the NF4 weights would round the base)."""
    from peft import get_peft_model_state_dict

    state = {k: v.detach().to("cpu", torch.float32) for k, v in get_peft_model_state_dict(peft_model).items()}
    return merge_adapter(base_model, peft_model.peft_config["default"], state)


def merge_adapter(base_model, lora_config, state: dict):
    """W ← W + (α / r)·B·A for every adapted module of ``base_model``: the adapter ``state`` (peft's key names)
    under ``lora_config`` merged in; returns the plain model."""
    from peft import get_peft_model, set_peft_model_state_dict

    config = copy.deepcopy(lora_config)
    config.base_model_name_or_path = None  # the base is already loaded (peft warns on a name it cannot check)
    fresh = get_peft_model(base_model, config)
    result = set_peft_model_state_dict(fresh, state)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"adapter weights for modules this model lacks: {result.unexpected_keys[:3]}")
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise ValueError(f"adapter weights missing for {len(missing)} LoRA tensors, e.g. {missing[0]}")
    return fresh.merge_and_unload().requires_grad_(True)  # peft froze the base; a plain model trains every weight


# An adapter checkpoint (rl.checkpoint_format: adapter): peft's two files and the model they adapt.
ADAPTER_CONFIG, ADAPTER_WEIGHTS, ADAPTER_BASE = "adapter_config.json", "adapter_model.safetensors", "adapter_base.json"


def save_adapter(peft_model, directory: Path, base: str | Path) -> None:
    """Write the trained adapter alone (what the released trainers save every ``save_steps``: a few hundred MB at
    8B instead of 16 GB) with the base it adapts: a path relative to ``directory``, or a hub id as given. (A
    checkpoint written into a sibling temporary directory and renamed keeps the same relative path.)"""
    from peft import get_peft_model_state_dict

    from agrpo.io import save_safetensors

    directory = Path(directory)
    state = {k: v.detach().to("cpu").contiguous() for k, v in get_peft_model_state_dict(peft_model).items()}
    save_safetensors(state, directory / ADAPTER_WEIGHTS)
    config = copy.deepcopy(peft_model.peft_config["default"])
    if Path(base).exists():
        ref = {"path": os.path.relpath(os.path.abspath(base), os.path.abspath(directory))}
        config.base_model_name_or_path = os.path.abspath(base)  # for peft users; adapter_base.json is what we read
    else:
        ref = {"hub_id": str(base)}
        config.base_model_name_or_path = str(base)
    config.save_pretrained(str(directory))
    (directory / ADAPTER_BASE).write_text(json.dumps(ref, indent=1) + "\n")


def is_adapter_checkpoint(directory: Path) -> bool:
    """Ours (``adapter_base.json``), or any peft adapter directory without a model ``config.json``."""
    d = Path(directory)
    return ((d / ADAPTER_BASE).is_file() or (d / ADAPTER_CONFIG).is_file()) and not (d / "config.json").is_file()


def adapter_base(directory: Path) -> str:
    """Where an adapter checkpoint's base is (a directory, or a hub id)."""
    d = Path(directory)
    if not (d / ADAPTER_BASE).is_file():  # a peft adapter saved elsewhere: its own base_model_name_or_path
        base = json.loads((d / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{d}: adapter checkpoint without {ADAPTER_BASE}, and {ADAPTER_CONFIG} names no "
                             "base_model_name_or_path")
        return base
    try:
        ref = json.loads((d / ADAPTER_BASE).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{d / ADAPTER_BASE}: invalid JSON ({e.msg})") from None
    if "path" in ref:
        return os.path.normpath(d / ref["path"])
    if "hub_id" in ref:
        return ref["hub_id"]
    raise ValueError(f"{d / ADAPTER_BASE}: expected a 'path' or 'hub_id' key")


def load_adapter_checkpoint(directory: Path, load_base):
    """The plain model of an adapter checkpoint: ``load_base(base)`` with the adapter merged in (as a merged
    checkpoint of the same run stores it)."""
    from peft import LoraConfig
    from safetensors.torch import load_file

    d = Path(directory)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d}: adapter checkpoint without {name}")
    state = {k: v.to(torch.float32) for k, v in load_file(str(d / ADAPTER_WEIGHTS)).items()}
    return merge_adapter(load_base(adapter_base(d)), LoraConfig.from_pretrained(str(d)), state)
