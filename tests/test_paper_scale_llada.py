"""Paper-scale options on CPU: compiled evaluation, 4-bit checkpoint merging, SFT with LoRA, launch validation.

The GPU side (DeepSpeed ZeRO-2 through `accelerate launch`, the NF4 base, compile on CUDA) runs in
benchmarks/gpu_paths.sh; its figures are in docs/performance.md."""


import pytest
import torch

from agrpo.config import ConfigError, MethodConfig, from_dict, load_config
from agrpo.data import write_task_data
from agrpo.evaluate import load_eval_model
from agrpo.model import load_model
from agrpo.model.lora import apply_lora, merged_copy, merged_into
from agrpo.sampling import SamplerConfig, generate
from agrpo.sft import sft
from tests.test_llada import write_checkpoint


def test_llada_compiled_eval_matches_eager(tmp_path):
    """eval.compile: the torch.compile'd forward gives the same greedy completions; the warm-up is untimed."""
    write_checkpoint(tmp_path / "ckpt")
    cfg = load_config("workflow/config/tiny.yaml", {"model.type": "llada", "model.name_or_path": str(tmp_path / "ckpt"),
                                                    "model.dtype": "float32", "eval.compile": True})
    compiled = load_eval_model(cfg, tmp_path / "ckpt")
    eager = load_model(tmp_path / "ckpt")
    assert "forward" in vars(compiled)  # the instance forward is the compiled one
    ids = torch.randint(0, 57, (3, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    sc = SamplerConfig(gen_length=16, block_length=8, steps=8, remasking="low_confidence", temperature=0.0, top_k=0,
                       top_p=1.0, eos_early_exit=False)

    out_c = generate(compiled, ids, mask, sc, torch.Generator().manual_seed(0), record=False).completion_ids
    out_e = generate(eager, ids, mask, sc, torch.Generator().manual_seed(0), record=False).completion_ids
    assert torch.equal(out_c, out_e)
    logits_c, logits_e = compiled(ids, mask), eager(ids, mask)
    assert torch.allclose(logits_c, logits_e, atol=1e-5)


def test_llada_4bit_run_checkpoint_merges_the_adapter_into_the_unquantised_base(tmp_path):
    """Checkpoints of a `load_in_4bit` run merge the trained adapter into a fresh full-precision base: with an
    unquantised policy this must equal merging in place (what other LoRA runs save)."""
    write_checkpoint(tmp_path / "ckpt")
    mcfg = from_dict(MethodConfig, {"lora": {"r": 4, "alpha": 8}})
    policy = apply_lora(load_model(tmp_path / "ckpt"), mcfg)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # a trained adapter (B = 0 at init would make the check vacuous)
    expected = merged_copy(policy).state_dict()
    merged = merged_into(load_model(tmp_path / "ckpt"), policy).state_dict()
    base = load_model(tmp_path / "ckpt").state_dict()
    assert merged.keys() == expected.keys() == base.keys()
    changed = [k for k in merged if not torch.equal(merged[k], base[k])]
    assert len(changed) >= 2 * 7  # 2 blocks x 7 adapted projections (+ the head)
    for k in merged:
        torch.testing.assert_close(merged[k], expected[k], rtol=1e-6, atol=1e-6)


def test_llada_sft_with_lora_saves_a_merged_model(tmp_path, tiny_model):
    """methods.<m>.sft.lora: d1's SFT trains LoRA adapters; the saved SFT model is a plain model with them merged."""
    base_dir = tmp_path / "base"
    tiny_model.save_pretrained(base_dir)
    cfg = load_config("workflow/config/tiny.yaml", {
        "work_dir": str(tmp_path / "work"), "data.tasks": ["tiny_arith"], "data.train_size": 40, "data.test_size": 4,
        "methods": {"d1": {"objective": "diffu_grpo", "sft": {"steps": 3, "batch_size": 4, "learning_rate": 1e-2,
                                                               "lora": {"r": 4, "alpha": 8,
                                                                        "target_modules": ["q_proj", "k_proj", "v_proj"]}}}}})
    write_task_data(cfg, "tiny_arith")
    summary = sft(cfg, "d1", base_dir, tmp_path / "sft", progress=False)
    assert summary["steps"] == 3
    saved = load_model(tmp_path / "sft").state_dict()
    before = load_model(base_dir).state_dict()
    assert saved.keys() == before.keys()  # no lora_A / lora_B keys: merged
    changed = {k.rsplit(".", 2)[-2] for k in saved if not torch.equal(saved[k], before[k])}
    assert changed == {"q_proj", "k_proj", "v_proj"}


@pytest.mark.parametrize("overrides,message", [
    ({"launch.strategy": "zero2", "launch.mixed_precision": "no"}, "zero2` needs bf16"),
    ({"launch.strategy": "fsdp"}, "launch.strategy"),
    ({"launch.gpus": 3}, "multiple of launch.gpus"),
    ({"model.activation_checkpointing": True}, "model.activation_checkpointing"),
    ({"methods.agrpo.load_in_4bit": True}, "methods.agrpo.load_in_4bit"),
])
def test_llada_launch_and_memory_options_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("workflow/config/tiny.yaml", overrides)


def test_llada_paper_profile_launches_zero2_on_8_gpus_with_the_released_memory_options():
    cfg = load_config("workflow/config/paper.yaml")
    assert (cfg.launch.gpus, cfg.launch.strategy, cfg.launch.mixed_precision) == (8, "zero2", "bf16")
    assert cfg.rl.prompts_per_batch % cfg.launch.gpus == 0
    assert cfg.eval.compile and cfg.model.activation_checkpointing
    assert not cfg.methods["agrpo"].load_in_4bit  # released AGRPO: load_in_4bit false
    assert all(cfg.methods[m].load_in_4bit for m in ("diffu_grpo", "d1"))  # d1: hard-coded 4-bit
    assert cfg.methods["d1"].sft.lora.r == 128 and cfg.methods["d1"].sft.lora.alpha == 256


def test_eval_dtype_bfloat16_casts_the_tiny_model_and_runs_padded_batches(tmp_path, tiny_model, tokenizer, monkeypatch):
    """eval.dtype: bfloat16 casts the weights after loading (the tiny architecture otherwise stays float32); a
    left-padded batch then runs with a bfloat16 attention bias, and its logits stay close to float32's."""
    tiny_model.save_pretrained(tmp_path / "m")
    cfg = load_config("workflow/config/tiny.yaml", {"eval.dtype": "bfloat16"})
    model = load_eval_model(cfg, tmp_path / "m")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_eval_model(load_config("workflow/config/tiny.yaml"), tmp_path / "m").parameters()} \
        == {torch.float32}
    ids = torch.randint(4, tokenizer.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    import agrpo.model.tiny as tiny_module
    bias_dtypes = set()

    def attend(q, k, v, attn_bias, *rest):
        bias_dtypes.add(None if attn_bias is None else attn_bias.dtype)
        return tiny_module.__dict__["_attend"](q, k, v, attn_bias, *rest)

    monkeypatch.setitem(tiny_module.__dict__, "_attend", tiny_module.attend)
    monkeypatch.setattr(tiny_module, "attend", attend)
    low = model(ids, mask)
    assert bias_dtypes == {torch.bfloat16}  # CUDA's SDPA wants the bias in the query's dtype
    ref = tiny_model(ids, mask)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low[mask.bool()]).all()
    torch.testing.assert_close(low.float()[mask.bool()], ref[mask.bool()], atol=0.05, rtol=0.05)
    sc = SamplerConfig(gen_length=16, block_length=8, steps=8)
    out = generate(model, ids, mask, sc, torch.Generator().manual_seed(0), record=False)
    assert out.completion_ids.shape == (3, 16)
    with pytest.raises(ConfigError, match="eval.dtype"):
        load_config("workflow/config/tiny.yaml", {"eval.dtype": "float16"})
