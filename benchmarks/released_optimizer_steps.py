"""How many real optimizer and LR-scheduler steps the *released* AGRPO trainer takes per nominal optimizer step.

The released ``AGRPOTrainer.compute_loss`` (probablyabot/agrpo) back-propagates Monte Carlo draws 0..k−2 itself,
through ``accelerator.backward(loss, scale_wrt_gas=False)``, and leaves draw k−1 to HF Trainer's own backward.
Under DeepSpeed, accelerate's ``DeepSpeedEngineWrapper.backward`` calls ``engine.step()`` after *every* backward of
a micro-batch marked for gradient sync, so the last micro-batch of each accumulation window may take k AdamW steps
instead of one. This script measures it: it runs the released trainer, unmodified, for a few nominal steps
(``trainer.state.global_step``) on a tiny random LLaDA-architecture model (our ``agrpo.model.llada.LLaDA`` behind
a ``transformers.PreTrainedModel``) with a local word-level tokenizer and counts

* optimizer_steps: calls of any torch optimizer's ``step`` (a global post hook; DeepSpeed's ZeRO optimizer steps
  the torch AdamW inside it), and adam_step: the AdamW state's own step counter (what bias correction sees);
* scheduler_steps: calls of ``torch.optim.lr_scheduler.LRScheduler.step``;
* backward_calls: calls of ``accelerator.backward``; engine_step_calls / engine_global_steps under DeepSpeed.

Counts start at ``on_train_begin`` (setup steps, e.g. the scheduler's initial step, are not counted). Two shims,
both recorded in the JSON: the released code runs only under DeepSpeed as published (without it accelerate hands
``scale_wrt_gas`` to ``Tensor.backward``, a TypeError), so on the plain control path our backward counter drops that
keyword; under DeepSpeed the LR scheduler's per-group lists are cut to the groups DeepSpeed kept (see Recorder).

    accelerate launch --config_file benchmarks/configs/released_zero2.yaml --num_processes 1 \\
        benchmarks/released_optimizer_steps.py --released .released --out results.json [--steps 3 --mc-samples 4]

``released_plain.yaml`` is the no-DeepSpeed control (the only path that runs without CUDA).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"optimizer_steps": 0, "scheduler_steps": 0, "backward_calls": 0, "engine_step_calls": 0,
          "scale_wrt_gas_dropped": 0}
SEEN_OPTIMIZERS: list = []  # torch optimizers that stepped (the innermost one under DeepSpeed)
STEP_LRS: list = []  # (learning rate, backward calls so far) at every real optimizer step, in order
WORDS = ("add subtract times plus minus what is the sum of and then give answer number count step first last "
         "value total half double more less than equal to from with each").split()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--released", type=Path, required=True, help="directory with the released agrpo_trainer.py etc.")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--steps", type=int, default=3, help="nominal optimizer steps (max_steps)")
    p.add_argument("--mc-samples", type=int, default=4, help="MC timestep draws k per sequence")
    p.add_argument("--grad-accum", type=int, default=2, help="gradient_accumulation_steps (must match the yaml)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 training and a bf16 model (default: on exactly when CUDA is available)")
    p.add_argument("--seed", type=int, default=333)
    return p.parse_args()


def install_counters():
    """Count every torch optimizer step and every LR-scheduler step in the process, whoever calls them."""
    def after_step(optimizer, args, kwargs):
        COUNTS["optimizer_steps"] += 1
        STEP_LRS.append((float(optimizer.param_groups[0]["lr"]), COUNTS["backward_calls"]))
        if not any(o is optimizer for o in SEEN_OPTIMIZERS):
            SEEN_OPTIMIZERS.append(optimizer)

    from torch.optim.lr_scheduler import LRScheduler
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(after_step)
    LRScheduler.step = counted(LRScheduler.step, "scheduler_steps")


def counted(fn, key):
    def wrapper(*args, **kwargs):
        COUNTS[key] += 1
        return fn(*args, **kwargs)

    return wrapper


def build_tokenizer():
    """A word-level PreTrainedTokenizerFast: <pad> <eos> <mask> <unk>, the numbers 0..127 and 30 words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["<pad>", "<eos>", "<mask>", "<unk>"] + [str(i) for i in range(128)] + list(WORDS)  # 162 > top_k
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", mask_token="<mask>",
                                   unk_token="<unk>", padding_side="left")


def build_model(tokenizer, dtype):
    """A tiny random LLaDA (our plain-PyTorch architecture) behind the transformers/peft model interface."""
    from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import MaskedLMOutput

    from agrpo.model.llada import LLaDA, LLaDAConfig

    class TinyLLaDAConfig(PretrainedConfig):
        model_type = "tiny_llada_bench"

        def __init__(self, vocab_size=160, d_model=64, n_layers=2, n_heads=4, mlp_hidden_size=128,
                     mask_token_id=2, **kwargs):
            self.vocab_size, self.d_model, self.n_layers = vocab_size, d_model, n_layers
            self.n_heads, self.mlp_hidden_size, self.mask_token_id = n_heads, mlp_hidden_size, mask_token_id
            super().__init__(**kwargs)

    class TinyLLaDAModelLM(PreTrainedModel, GenerationMixin):
        config_class = TinyLLaDAConfig
        base_model_prefix = "model"

        def __init__(self, config):
            super().__init__(config)
            self.model = LLaDA(LLaDAConfig(
                d_model=config.d_model, n_heads=config.n_heads, n_kv_heads=config.n_heads,
                n_layers=config.n_layers, mlp_hidden_size=config.mlp_hidden_size, vocab_size=config.vocab_size,
                embedding_size=config.vocab_size, mask_token_id=config.mask_token_id,
                eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, max_sequence_length=256))
            self.post_init()

        def _init_weights(self, module):
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                torch.nn.init.normal_(module.weight, std=0.02)

        def forward(self, input_ids=None, attention_mask=None, **kwargs):  # peft passes labels=None etc.
            return MaskedLMOutput(logits=self.model(input_ids, attention_mask))

    config = TinyLLaDAConfig(vocab_size=len(tokenizer), mask_token_id=tokenizer.mask_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return TinyLLaDAModelLM(config).to(dtype)


def build_data(seed: int, n: int = 32):
    """n plain-text prompts of 4..9 words, and a reward with variance within every group of completions."""
    from datasets import Dataset

    rng = random.Random(seed)
    prompts = [" ".join(rng.choice(WORDS) if rng.random() < 0.5 else str(rng.randrange(128))
                        for _ in range(rng.randint(4, 9))) for _ in range(n)]

    def distinct_tokens_reward(prompts, completions, **kwargs):  # distinct words, plus a little noise
        return [len(set(c.split())) / 12 + 0.1 * rng.random() for c in completions]

    return Dataset.from_dict({"prompt": prompts}), distinct_tokens_reward


def main():
    args = parse_args()
    sys.path.insert(0, str(REPO))  # our agrpo package (accelerate launch puts only benchmarks/ on the path)
    sys.path.append(str(args.released.resolve()))  # appended: the released utils.py/data.py shadow nothing
    install_counters()
    from peft import LoraConfig
    from transformers import TrainerCallback, set_seed

    from agrpo_config import AGRPOConfig  # the released code, unmodified
    from agrpo_trainer import AGRPOTrainer

    cuda = torch.cuda.is_available()
    bf16 = cuda if args.bf16 is None else args.bf16
    set_seed(args.seed)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, torch.bfloat16 if bf16 else torch.float32)
    vocab = len(tokenizer)
    # Released train.yaml where it matters; lengths cut down (C % sampling_steps == 0, steps % blocks == 0).
    config = AGRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="released_steps_"), max_steps=args.steps, seed=args.seed,
        per_device_train_batch_size=8, gradient_accumulation_steps=args.grad_accum, num_generations=8,
        steps_per_generation=1, num_iterations=1, mc_samples=args.mc_samples, low_discrepancy=True,
        importance_sampling="entropy", beta=0.0, epsilon=0.2, learning_rate=5e-6, lr_scheduler_type="cosine",
        warmup_ratio=0.01, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.99, max_grad_norm=1.0,
        temperature=0.6, top_p=0.99, top_k=min(150, vocab), unmasking="random", max_completion_length=12,
        block_length=4, sampling_steps=6, mask_token_id=tokenizer.mask_token_id, bf16=bf16, use_cpu=not cuda,
        gradient_checkpointing=False, shuffle_dataset=True, remove_unused_columns=False, report_to="none",
        save_strategy="no", logging_steps=1, log_completions=False, dataset="synthetic")
    lora = LoraConfig(r=64, lora_alpha=64, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"])
    dataset, reward = build_data(args.seed)
    trainer = AGRPOTrainer(model=model, reward_funcs=[reward], args=config, train_dataset=dataset,
                           processing_class=tokenizer, peft_config=lora)
    deepspeed_on = bool(trainer.is_deepspeed_enabled)

    accelerator, backward = trainer.accelerator, trainer.accelerator.backward

    def counted_backward(loss, **kwargs):
        COUNTS["backward_calls"] += 1
        if not deepspeed_on and kwargs.pop("scale_wrt_gas", None) is not None:
            COUNTS["scale_wrt_gas_dropped"] += 1  # DeepSpeed-only keyword; Tensor.backward would raise
        return backward(loss, **kwargs)

    accelerator.backward = counted_backward
    rows, state = [], {}

    class Recorder(TrainerCallback):
        def on_train_begin(self, targs, tstate, control, **kwargs):
            state["base"], state["lrs"], state["bw"] = dict(COUNTS), len(STEP_LRS), COUNTS["backward_calls"]
            # DeepSpeed drops HF's empty no-decay param group (LoRA only) from the optimizer the scheduler was
            # built on; torch 2.13's strict zip in LRScheduler._update_lr then fails (the released torch 2.9.1
            # evidently truncated, or released runs would crash here). Truncate the per-group lists likewise.
            sched = getattr(trainer.lr_scheduler, "scheduler", trainer.lr_scheduler)
            groups = len(sched.optimizer.param_groups)
            state["scheduler_groups_trimmed"] = len(sched.base_lrs) - groups
            if groups < len(sched.base_lrs):
                sched.base_lrs, sched._last_lr = sched.base_lrs[:groups], sched._last_lr[:groups]
                if hasattr(sched, "lr_lambdas"):
                    sched.lr_lambdas = sched.lr_lambdas[:groups]
            engine = getattr(trainer, "deepspeed", None) if deepspeed_on else None
            if engine is not None:  # count engine.step() calls (accelerate's wrapper calls engine.step)
                engine.step = counted(engine.step, "engine_step_calls")
                state["engine"], state["engine_base"] = engine, engine.global_steps

        def on_step_end(self, targs, tstate, control, **kwargs):
            steps = STEP_LRS[state["lrs"]:]  # the real steps in this nominal one: lr, after which backward
            row = {"global_step": tstate.global_step, "step_lrs": [lr for lr, _ in steps],
                   "step_after_backward": [b - state["bw"] for _, b in steps], "lr_next": trainer._get_learning_rate()}
            state["lrs"], state["bw"] = len(STEP_LRS), COUNTS["backward_calls"]
            row.update({k: COUNTS[k] - state["base"][k] for k in COUNTS})
            adam = [float(s["step"]) for o in SEEN_OPTIMIZERS for s in o.state.values() if "step" in s]
            row["adam_step"] = max(adam) if adam else 0.0
            if "engine" in state:
                row["engine_global_steps"] = state["engine"].global_steps - state["engine_base"]
            rows.append(row)  # cumulative; per-step differences below

    trainer.add_callback(Recorder())
    trainer.train()
    result = summarise(args, rows, state, deepspeed_on, bf16, str(accelerator.distributed_type))
    if accelerator.is_main_process:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"released AGRPO: deepspeed={deepspeed_on} k={args.mc_samples} G={args.grad_accum}: per nominal step "
              f"{result['optimizer_steps_per_nominal_step']} optimizer steps, "
              f"{result['scheduler_steps_per_nominal_step']} scheduler steps, "
              f"{result['backward_calls_per_nominal_step']} backward calls "
              f"(adam_step {result['totals'].get('adam_step')} after {len(rows)} steps) -> {args.out}", flush=True)


def summarise(args, rows, state, deepspeed_on, bf16, distributed_type) -> dict:
    """Per-step differences of the cumulative rows, totals, versions and the engine's settings."""
    keys = ("optimizer_steps", "scheduler_steps", "backward_calls", "engine_step_calls", "adam_step",
            "engine_global_steps", "scale_wrt_gas_dropped")
    per_step, previous = [], {}
    for row in rows:
        per_step.append({**{k: row[k] for k in ("global_step", "step_lrs", "step_after_backward", "lr_next")},
                         **{k: row[k] - previous.get(k, 0) for k in keys if k in row}})
        previous = row
    totals, n = {k: v for k, v in (rows[-1] if rows else {}).items() if k in keys}, len(rows)

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    engine = state.get("engine")
    return {
        "measures": "real optimizer / LR-scheduler steps of the released AGRPOTrainer per nominal step",
        "versions": {p: version(p) for p in ("torch", "transformers", "trl", "accelerate", "deepspeed", "peft")},
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "deepspeed": deepspeed_on, "distributed_type": distributed_type,
        "zero_stage": engine.zero_optimization_stage() if engine is not None else None,
        "engine_gradient_accumulation_steps": engine.gradient_accumulation_steps() if engine is not None else None,
        "engine_has_lr_scheduler": (engine.lr_scheduler is not None) if engine is not None else None,
        "mc_samples": args.mc_samples, "grad_accum": args.grad_accum, "nominal_steps": args.steps, "bf16": bf16,
        "optimizer_classes": sorted({type(o).__name__ for o in SEEN_OPTIMIZERS}),
        "setup_counts": state.get("base"), "scale_wrt_gas_shim": not deepspeed_on,
        "scheduler_groups_trimmed": state.get("scheduler_groups_trimmed"),
        "per_step": per_step, "totals": totals, "recorded_steps": n,
        **{f"{k}_per_nominal_step": totals.get(k, 0) / n if n else None
           for k in ("optimizer_steps", "scheduler_steps", "backward_calls")},
    }


if __name__ == "__main__":
    main()
