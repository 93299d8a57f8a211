"""Profile configuration: typed dataclasses and their strict loading.

One YAML file per profile (``workflow/config/<profile>.yaml``). Every key is a dataclass field below with a
``doc`` string; unknown keys and wrong types are rejected with the dotted key path. Cross-field validation and
what a profile resolves to (a method's rollout sampler, optimizer, batch; a task as the profile uses it) live in
``agrpo.resolve``; the JSON schema (for editors and other tools; the workflow loads profiles with this
loader) and ``docs/config.md`` are generated from these
dataclasses by ``agrpo.config_docs`` (``tests/test_config.py`` checks the committed files).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

REMASKING = ("low_confidence", "random")  # the sampler's choices (agrpo/sampling.py), declared here once
CONFIDENCE = ("model", "sampling")
CACHE = ("none", "prefix", "dual")


class ConfigError(ValueError):
    """Bad configuration; the message names the file and key. The CLI exits with code 2."""


def doc(text: str, default=dataclasses.MISSING, default_factory=dataclasses.MISSING, ge=None, gt=None, le=None,
        lt=None, choices: tuple = ()):
    """A documented config field; ``ge``/``gt``/``le``/``lt`` bound a number and ``choices`` lists the values a
    string may take (both checked on load, in the schema and listed in docs/config.md)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    kw = {"metadata": {"doc": text, **({"bounds": bounds} if bounds else {}), **({"choices": choices} if choices else {})}}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, **kw)
    return field(default=default, **kw)


@dataclass
class ModelConfig:
    type: str = doc("model family: `tiny` (from-scratch bidirectional transformer, pretrained by the pipeline) or `llada` (LLaDA-8B: `name_or_path`)", "tiny", choices=('tiny', 'llada'))
    name_or_path: str = doc("llada: local checkpoint directory (official layout) or hub id, e.g. GSAI-ML/LLaDA-8B-Instruct", "")
    dtype: str = doc("llada: `bfloat16` (released runs) or `float32`", "bfloat16", choices=('bfloat16', 'float32'))
    d_model: int = doc("hidden size", 128, gt=0)
    n_layers: int = doc("transformer blocks", 4, gt=0)
    n_heads: int = doc("attention heads (d_model / n_heads must be even)", 4, gt=0)
    d_ff: int = doc("SwiGLU inner size", 384, gt=0)
    activation_checkpointing: bool = doc("llada: recompute each block in backward during RL/SFT updates (memory for ~1 extra forward; released AGRPO: optional)", False)


@dataclass
class DataConfig:
    tasks: list[str] = doc("tasks to pretrain, RL-train and evaluate on", default_factory=lambda: ["tiny_arith", "tiny_countdown", "tiny_sudoku"])
    train_size: int = doc("training examples per task written to the data files", 20000, gt=0)
    test_size: int = doc("test examples per task (the eval set of every cell)", 128, gt=0)
    seed: int = doc("seed of the synthetic data generator", 1234, ge=0)
    protocol: str = doc("evaluation protocol of the real tasks: `d1` or `agrpo` (docs/tasks.md); the tiny tasks have their own", "d1", choices=('d1', 'agrpo'))
    rl_size: int = doc("RL prompts per synthetic task, drawn from its training split disjoint from the `train_size` pretraining/SFT examples (`rl.jsonl`); 0 = RL trains on the pretraining examples themselves (the runs before 2026-12-02). Real tasks have no pretraining: their RL prompts are their training rows", 0, ge=0)
    task_args: dict[str, dict] = doc("options of the synthetic tasks, by task name, e.g. `tiny_arith: {min_steps: 3, max_steps: 4}` (each task's knobs: docs/tasks.md)", default_factory=dict)
    pretrain_task_args: dict[str, dict] = doc("options of the synthetic tasks for the pretraining and d1 SFT examples (`train.jsonl`) alone, by task name, merged over `task_args`, which the RL prompts and test items keep: e.g. `tiny_sudoku: {min_blanks: 9, max_blanks: 10}` beside `task_args` 12 blanks pretrains on easier puzzles than RL trains and is tested on (headroom from a generalisation gap). Needs `rl_size` > 0; empty = every split from `task_args` (the runs before 2026-12-02)", default_factory=dict)
    sources: dict[str, str] = doc("data source per `<task>/<split>` (local .jsonl/.json/.csv or hub id), overriding the task's default, e.g. `countdown/test: data/countdown_cd3_test.jsonl`", default_factory=dict)


@dataclass
class PretrainConfig:
    seed: int = doc("seed of initialisation and masking", 0, ge=0)
    steps: int = doc("optimizer steps of masked-diffusion pretraining (kept small to leave RL headroom)", 1500, gt=0)
    batch_size: int = doc("sequences per step (mixed across tasks)", 64, gt=0)
    learning_rate: float = doc("AdamW peak learning rate (linear warmup, cosine decay to 10%)", 1e-3, gt=0)
    warmup_steps: int = doc("linear warmup steps", 100, ge=0)
    weight_decay: float = doc("AdamW weight decay", 0.0, ge=0)
    gen_length: int = doc("completion canvas length; completions are padded to it with EOS (LLaDA SFT)", 40, gt=0)
    gen_lengths: list[int] = doc("canvas lengths, one drawn uniformly per batch in place of `gen_length` (every completion must fit the shortest): a spread teaches the model to end its answer with EOS at every length it is evaluated at; empty = `gen_length` alone", default_factory=list, gt=0)
    mask_eps: float = doc("p_mask = (1 − eps)·t + eps, as LLaDA", 1e-3, ge=0, lt=1)
    autocast: str = doc("`none` (float32, the committed runs) or `bfloat16`: each step's forward and loss under torch.autocast (bf16 matmuls, fp32 weights and AdamW state; CUDA only): meant to speed up the small profile's pretraining (not yet timed), not the same numbers", "none", choices=('none', 'bfloat16'))
    threads: int = doc("torch CPU threads of the pretraining job (it runs alone; fixed for reproducibility)", 2, ge=1)
    deterministic: bool = doc("pretrain under torch.use_deterministic_algorithms (on CUDA with CUBLAS_WORKSPACE_CONFIG=:4096:8, set here unless already set; set it before the process's first matmul where pretraining is not its first CUDA work): the same base model from every run on one GPU type and software stack, so a later session's machine can rebuild the model an earlier one's RL started from; slower. CPU pretraining is deterministic without it", False)


@dataclass
class RolloutConfig:
    """Training-rollout sampler. Defaults are the released AGRPO training sampler (train.yaml)."""
    gen_length: int = doc("completion length L (released: 384)", 384, gt=0)
    block_length: int = doc("semi-autoregressive block length (released: 12)", 12, gt=0)
    steps: int = doc("denoising steps m, a multiple of the number of blocks (released: 128, 3 tokens per step)", 128, gt=0)
    remasking: str = doc("`random` (released AGRPO) or `low_confidence` (LLaDA/d1)", "random", choices=REMASKING)
    temperature: float = doc("sampling temperature T, > 0 for RL (released: 0.6; d1: 0.9)", 0.6, ge=0)
    top_k: int = doc("top-k filter, 0 = off (released: 150)", 150, ge=0)
    top_p: float = doc("top-p filter: keep tokens whose inclusive cumulative mass is ≤ top_p, and the first; 1.0 = off (released: 0.99)", 0.99, gt=0, le=1)
    eos_early_exit: bool = doc("fill the rest of a row with EOS once a whole block is EOS and stop decoding it (released AGRPO: true; LLaDA/d1: false)", True)
    confidence: str = doc("`low_confidence` score: `model` = untempered p_θ(x̂) (LLaDA/d1) or `sampling` = tempered, truncated p̃_θ(x̂) (released AGRPO code)", "model", choices=CONFIDENCE)
    ban_special_tokens: bool = doc("never commit [MASK]/[PAD] (ours; LLaDA and released AGRPO: false, their models put negligible mass there)", True)
    cuda_graphs: bool = doc("replay each denoising step as a CUDA graph (CUDA only; agrpo/cuda_graphs.py): the same tokens as eager steps, without the per-kernel launch overhead", False)
    compile_step: bool = doc("torch.compile the denoising step (network pass, candidate transform, commit; dynamic shapes): fused kernels where a small model is memory-bound; with cuda_graphs the compiled step is what the graphs capture. The same distribution, not the same bits as eager (fused reductions round differently); the first batches pay the compilation", False)


@dataclass
class LoRAConfig:
    """LoRA adapters (peft). r = 0 trains every weight (the tiny profile). Released AGRPO: r 64, α 64, dropout 0,
    LLaDA's seven projections; d1: r 128, α 64, dropout 0.05 (targets: see `d1_compat.lora_targets`)."""
    r: int = doc("LoRA rank; 0 = full fine-tuning, no adapter", 0, ge=0)
    alpha: float = doc("LoRA α (scale α/r)", 64.0, gt=0)
    dropout: float = doc("LoRA dropout", 0.0, ge=0, lt=1)
    target_modules: list[str] = doc("module names to adapt (LLaDA's names)", default_factory=lambda: ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"])


@dataclass
class SFTConfig:
    """Masked SFT before RL (d1 = SFT, then diffu-GRPO). Defaults are d1's SFT settings (`SFT/sft_train.py`)."""
    steps: int = doc("optimizer steps; 0 = no SFT stage (RL starts from the base model). d1: 2,460", 0, ge=0)
    dataset: str = doc("`tasks` (the profile's tasks: train-split prompts with their reference traces) or `s1k:<hub id or local .jsonl/.json>` (d1: simplescaling/s1K)", "tasks")
    learning_rate: float = doc("AdamW peak learning rate (d1: 1e-5)", 1e-5, gt=0)
    lr_schedule: str = doc("`linear` decay to 0 after warmup (d1: the HF Trainer default) or `constant`", "linear", choices=('linear', 'constant'))
    batch_size: int = doc("sequences per optimizer step (d1: 8 = 2 GPUs × 1 × 4 accumulation)", 8, gt=0)
    warmup_steps: int = doc("linear warmup steps", 0, ge=0)
    weight_decay: float = doc("AdamW weight decay (d1: 0.1)", 0.1, ge=0)
    max_grad_norm: float = doc("gradient clipping norm (d1: 1.0)", 1.0, gt=0)
    mask_eps: float = doc("p_mask = (1 − eps)·t + eps (d1, LLaDA: 1e-3)", 1e-3, ge=0, lt=1)
    completion_length: int = doc("response canvas, padded with EOS; 0 = the pretraining canvases (`pretrain.gen_lengths`, one drawn per batch, else `pretrain.gen_length`), so the SFT model writes answers at the lengths the base was taught (d1: sequences up to 4,096 tokens)", 0, ge=0)
    deterministic: bool = doc("SFT under torch.use_deterministic_algorithms, as `pretrain.deterministic`: the same SFT model on every run of one GPU type and software stack", False)
    seed: int = doc("seed of batch order and masking", 0, ge=0)
    lora: LoRAConfig = doc("LoRA for the SFT stage (r 0 = full fine-tuning; d1: r 128, α 256, dropout 0.05 on q/k/v_proj); the saved SFT model has the adapter merged", default_factory=lambda: LoRAConfig(r=0))


@dataclass
class D1CompatConfig:
    """d1's shipped quirks, reproducible on request; all off = what d1 intended (docs/baselines.md)."""
    sudoku_temperature_unset: bool = doc("Sudoku rollouts at `rollout.temperature` (0.9) although d1's sbatch asks for 0.3: its `--temperature 0.3` line is cut off by a missing `\\`, so `task_temperature` is ignored for Sudoku tasks", False)
    lora_targets: bool = doc("LoRA targets = d1's hard-coded Llama names (q,k,v,o,up,down,gate_proj), which on LLaDA's module names match only q/k/v/up_proj (needs `lora`)", False)
    train_mode_rollouts: bool = doc("sample rollouts with the policy in train mode, as d1 does inside its training step: LoRA dropout (d1: 0.05) is then on while generating (needs `lora.dropout > 0`)", False)
    math_boxed_backspace: bool = doc("d1's MATH format reward tests `\"\\boxed\"` as a Python literal (a backspace + 'oxed'), which never matches: 0.75 with answer tags instead of 1.0 (MATH tasks only)", False)


@dataclass
class MethodConfig:
    objective: str = doc("objective class: `agrpo` or `diffu_grpo`", "agrpo")
    inner_iterations: int = doc("μ: optimizer steps per rollout batch (AGRPO released: 1; d1: 12/8)", 1, ge=1)
    learning_rate: float = doc("AdamW learning rate (released AGRPO: 5e-6; d1: 3e-6)", 5e-6, gt=0)
    objective_args: dict = doc("keyword arguments of the objective (see docs/config.md, objectives)", default_factory=dict)
    rollout: dict = doc("overrides of `rl.rollout` for this method's training rollouts", default_factory=dict)
    sft: SFTConfig = doc("masked SFT stage before RL (steps 0 = none; d1 = SFT + diffu-GRPO)", default_factory=SFTConfig)
    task_temperature: dict[str, float] = doc("rollout temperature per task family (gsm8k, math, countdown, sudoku), overriding `rollout.temperature` (d1's Sudoku runs: 0.3)", default_factory=dict)
    lora: LoRAConfig = doc("LoRA adapters; the reference model is then the adapter-off policy", default_factory=LoRAConfig)
    d1_compat: D1CompatConfig = doc("reproduce d1's shipped quirks (all off by default)", default_factory=D1CompatConfig)
    optimizer: dict = doc("overrides of the shared optimizer keys for this method: `lr_schedule`, `warmup_ratio`, `weight_decay`, `max_grad_norm`, `adam_beta1`, `adam_beta2` (d1 and wd1 released: constant_with_warmup, warmup 1e-4, weight decay 0.1, clipping 0.2)", default_factory=dict)
    group_size: int = doc("G of this method's rollouts; 0 = `rl.group_size` (d1 and wd1 released: 6). Changes the rollouts per batch: budgets are then equal in prompts, not rollouts", 0, ge=0)
    prompts_per_batch: int = doc("prompts per rollout batch for this method; 0 = `rl.prompts_per_batch` (d1 released: 16 = 8 GPUs × 2 accumulation steps; wd1: 8 = 4 × 2)", 0, ge=0)
    max_prompt_length: int = doc("keep only the last N tokens of each prompt (TRL's left truncation; d1 and wd1 released: 200); 0 = whole prompts", 0, ge=0)
    per_task: dict[str, dict] = doc("overrides of this method's keys for the run that trains on one task (`rl.runs: per_task`), by task name: e.g. `{countdown: {inner_iterations: 8}}` (d1: μ 12 for GSM8K/MATH, 8 for Countdown/Sudoku)", default_factory=dict)
    train_tasks: list[str] = doc("the tasks this method trains on under `rl.runs: per_task` (empty = every task of `data.tasks`): e.g. a smoke run or a study of one task", default_factory=list)
    load_in_4bit: bool = doc("llada: train on a 4-bit NF4 base (bitsandbytes, double quantisation, bf16 compute; as d1) under the LoRA adapter; needs `lora.r > 0`, CUDA and bitsandbytes. Checkpoints merge the adapter into the unquantised base", False)


@dataclass
class RLConfig:
    """Shared trainer settings. Defaults follow the released AGRPO train.yaml where it sets them."""
    seeds: list[int] = doc("RL seeds: one run per method and seed", default_factory=lambda: [0], ge=0)
    iterations: int = doc("rollout batches per run; equal for every method (equal rollout budgets)", 40, ge=1)
    checkpoint_every: int = doc("save a checkpoint every N rollout batches (released: every 15 optimizer steps)", 20, ge=1)
    checkpoint_format: str = doc("`merged`: each checkpoint is a plain model, the LoRA adapter merged in (16 GB at 8B) or `adapter`: a LoRA run's checkpoints hold the adapter alone (peft's adapter_config.json + adapter_model.safetensors; what the released HF/TRL trainers save) and `adapter_base.json` naming the base, merged into it when loaded (a 4-bit run's into the unquantised base, as `merged` does); full fine-tunes always save the whole model", "merged", choices=('merged', 'adapter'))
    prompts_per_batch: int = doc("prompts per rollout batch (released AGRPO: 16 per optimizer step)", 16, ge=1)
    group_size: int = doc("G: completions per prompt (released AGRPO: 8; d1: 6)", 8, ge=2)
    weight_decay: float = doc("AdamW weight decay (released: 0.01)", 0.01, ge=0)
    adam_beta1: float = doc("AdamW β1", 0.9, ge=0, lt=1)
    adam_beta2: float = doc("AdamW β2 (released: 0.99)", 0.99, ge=0, lt=1)
    max_grad_norm: float = doc("gradient clipping norm", 1.0, gt=0)
    warmup_ratio: float = doc("fraction of optimizer steps of linear warmup (released: 0.01)", 0.01, ge=0, le=1)
    warmup_convention: str = doc("`hf`: W = ⌈ratio·T⌉ warmup steps at lr·s/W for step s = 0, 1, … (HF Trainer: the released runs; the first step at lr 0) or `shifted`: W = ⌊ratio·T⌋ at lr·(s+1)/W (this harness before 2026-12)", "hf", choices=('hf', 'shifted'))
    lr_schedule: str = doc("`constant`, `constant_with_warmup` (the same: constant after the warmup) or `cosine` (released AGRPO: cosine; d1, wd1: constant_with_warmup)", "cosine", choices=('constant', 'constant_with_warmup', 'cosine'))
    scale_rewards: bool = doc("divide advantages by the group std (+1e-4); off in released AGRPO and d1 (Dr.GRPO-style Â = R − mean)", False)
    rollout: RolloutConfig = doc("training rollout sampler", default_factory=RolloutConfig)
    runs: str = doc("`mixed`: one run per method and seed on every task of `data.tasks` together (the tiny and small profiles); `per_task`: one run per method, task and seed, trained on that task alone with `methods.<m>.per_task.<task>` applied and evaluated on it (the papers)", "mixed", choices=('mixed', 'per_task'))
    autocast: str = doc("`none` (every pass in the weights' dtype, the committed runs) or `bfloat16`: rollouts, re-scoring and updates under torch.autocast (bf16 matmuls, fp32 master weights and optimizer state; for the tiny architecture on a GPU — LLaDA's released runs use bf16 weights: `model.dtype`)", "none", choices=('none', 'bfloat16'))
    merge_rollout_temperatures: bool = doc("rows whose rollout samplers differ only in temperature (`methods.<m>.task_temperature`, d1's Sudoku T 0.3) sampled in the same passes, each at its own T: one forward per step for the whole batch instead of one per temperature (and static shapes for CUDA graphs). The draws then differ from the per-temperature calls (the committed runs); the distribution does not", False)
    compile: bool = doc("torch.compile the policy for the objectives' passes (re-scoring, old log-probs, updates; and a full fine-tune's frozen reference copy; dynamic shapes; one process only): fewer, fused kernels where a small model is launch-bound; rollouts stay eager (or CUDA graphs). Compilation takes the first iterations' time; last-bit differences from eager", False)
    compile_mode: str = doc("torch.compile mode of `rl.compile`: `default`, `reduce-overhead` (CUDA only: the compiled forward and backward replayed as CUDA graphs, one per shape, for launch-bound small models; each pass's outputs live until the next pass replaces them) or `max-autotune-no-cudagraphs`", "default", choices=('default', 'reduce-overhead', 'max-autotune-no-cudagraphs'))
    monitor_every: int = doc("every N rollout batches, score the policy as evaluation does — greedy, the eval sampler at the first eval length and L/2 steps (the headroom check's setting) — on the first `monitor_items` test items of each task, and log it as `eval_accuracy/<task>` in train_log.jsonl (plotted with the training curves): the learning signal that the rollout reward, measured with another sampler, may not show (agrpo/rl/monitor.py). Monitoring only: nothing is selected by it and the run's training numbers are unchanged. 0 = off", 0, ge=0)
    monitor_items: int = doc("test items per task scored every `monitor_every` batches", 64, ge=1)
    fused_adamw: bool = doc("torch's fused AdamW kernel (CUDA only): one launch per step instead of one per tensor group; last-bit differences from the default implementation", False)


@dataclass
class EvalConfig:
    gen_lengths: list[int] = doc("generation lengths of the grid", default_factory=lambda: [40], gt=0)
    block_length: int = doc("block length of evaluation sampling", 8, gt=0)
    steps_divisors: list[int] = doc("steps grid: steps = gen_length / d for each d (1 = one token per step)", default_factory=lambda: [1, 2, 4, 8], ge=1)
    claims_steps_divisor: int = doc("the sampling steps at which the report answers the claims (Tables 3 and 4, claims.csv; Table 2 and the accuracy-vs-training-step plot follow it): steps = gen_length / d, and the drop at 4x fewer steps compares them with gen_length / 4d. 1 = one token per step, L → L/4 (this harness's convention, LLaDA's best-quality setting); 2 = the papers' evaluation sampler, L/2 → L/8 (d1's eval.py and AGRPO's eval.yaml: steps = L/2). Must be one of `steps_divisors`; a report-only key (no eval cell reruns)", 1, ge=1)
    remasking: str = doc("unmasking rule at evaluation", "low_confidence", choices=REMASKING)
    temperature: float = doc("evaluation temperature (0 = greedy, the d1 protocol)", 0.0, ge=0)
    seeds: list[int] = doc("evaluation seeds (matter only at temperature > 0)", default_factory=lambda: [0], ge=0)
    batch_size: int = doc("prompts per generation batch", 128, ge=1)
    eos_early_exit: bool = doc("stop decoding a row once a whole block is EOS (AGRPO's eval: true; d1/LLaDA: false); NFE is counted per row", False)
    confidence: str = doc("`low_confidence` score at T > 0: `model` (LLaDA/d1) or `sampling` (released AGRPO); irrelevant when greedy", "model", choices=CONFIDENCE)
    caches: list[str] = doc("KV-cache axis of the grid: `none` (exact, the papers), `prefix` (Fast-dLLM prefix cache: keys/values of the prompt and finished blocks computed once per block; approximate) and/or `dual` (Fast-dLLM dual cache: also the not-yet-decoded blocks after the current one; each later step computes only the current block)", default_factory=lambda: ["none"], choices=CACHE)
    thresholds: list[float] = doc("decoding axis of the grid: 0 = the fixed steps schedule (the papers); τ in (0, 1) = Fast-dLLM confidence-threshold parallel decoding (commit every position with confidence ≥ τ, at least one per step; one cell per length, steps chosen by the data)", default_factory=lambda: [0.0], ge=0, lt=1)
    cuda_graphs: bool = doc("replay each denoising step as a CUDA graph (CUDA only; agrpo/cuda_graphs.py): the same tokens as eager steps, without the per-kernel launch overhead", False)
    compile_step: bool = doc("torch.compile the denoising step (network pass, candidate transform, commit; dynamic shapes; cache 'none' only): fused kernels where a small model is memory-bound; with cuda_graphs the compiled step is what the graphs capture. The same distribution, not the same bits as eager (fused reductions round differently); the first batches pay the compilation; cells with a KV cache run the eager step", False)
    compile: bool = doc("torch.compile the model's forward for evaluation (released AGRPO eval: true); numerics may differ from eager in the last bits", False)
    headroom_items: int = doc("RL prompts and test items per task of the base model's headroom check before RL (agrpo/headroom.py: eval accuracy on both, each method's rollout reward, pass@G and zero-variance groups), reported first in report.md; 0 = no check", 0, ge=0)
    sort_by_length: bool = doc("batch the test set in order of prompt token length (stable; rows still reported in test-set order): less left padding, e.g. 16% fewer tokens per GSM8K cell at batch 32 and 256 tokens. Off = test-set order, as the released evaluations batch. The tiny architecture's positions skip padding, so its results are unchanged at T = 0; LLaDA's absolute positions shift with a row's padding, so its numerics (and at T > 0 every model's random draws) change with the batching", False)
    dtype: str = doc("dtype evaluation runs in: `model` (as loaded: LLaDA in `model.dtype`, the tiny architecture in float32; the committed runs) or `bfloat16` (weights cast after loading: half the memory traffic, and on CUDA SDPA's flash kernel for unpadded batches; numerics differ from float32 — docs/performance.md measures by how much)", "model", choices=('model', 'bfloat16'))


@dataclass
class LaunchConfig:
    """How training jobs are started (the Snakemake rules read this; docs/distributed.md)."""
    gpus: int = doc("processes (= GPUs) per training run: 0 = one plain process on `device`; N ≥ 1 = `accelerate launch` with N processes, declared to Snakemake as the rule's `gpu` resource", 0, ge=0)
    strategy: str = doc("data-parallel strategy with `gpus` ≥ 1: `ddp` (torch DDP) or `zero2` (DeepSpeed ZeRO-2, the released AGRPO and d1 launcher; needs deepspeed)", "ddp", choices=('ddp', 'zero2'))
    mixed_precision: str = doc("accelerate mixed precision: `no` (weights in `model.dtype`, the default) or `bf16` (autocast; released launchers set bf16 with bf16 weights)", "no", choices=('no', 'bf16'))
    eval_gpus: int = doc("GPUs declared per eval job (one process each; 0 = CPU)", 0, ge=0)


@dataclass
class SweepConfig:
    """The learning-rate sweep (`agrpo/sweep.py`; `snakemake sweep`): every method trained at each of its rates for
    the same number of rollout batches, from the same start model, with the profile's schedule and warmup."""
    learning_rates: dict[str, list[float]] = doc("per method, the learning rates to try, e.g. `{agrpo: [1.0e-5, 3.0e-5, 1.0e-4]}` (each > 0); a method left out is not swept", default_factory=dict)
    iterations: int = doc("rollout batches per sweep run, the same for every method (0 = rl.iterations)", 0, ge=0)
    seeds: list[int] = doc("RL seeds of each sweep run", default_factory=lambda: [0])
    select_window: float = doc("the chosen rate maximises the mean training reward over this last fraction of a sweep run's batches (its prompts are fresh RL prompts while a run takes fewer than one pass over rl.jsonl)", 0.2, gt=0, le=1)
    report_dir: str = doc("a sweep's summary directory (`sweep.md` and `sweep.png`, as `agrpo sweep-report` or `benchmarks/small_headroom.py --summarise` write them; `sweep_test.md` too if present), relative to the checkout, that `agrpo report` includes as its 'Learning-rate sweep' section: the sweep the profile's rates were chosen from, e.g. a committed one; empty = no section", "")


@dataclass
class LoggingConfig:
    """Where training progress goes besides `train_log.live.jsonl` (appended as each rollout batch ends) and
    `train_log.jsonl` (the whole log, when a run completes)."""
    tensorboard: bool = doc("also write every logged scalar to TensorBoard under `<run>/tensorboard/` (needs `pip install -e '.[tensorboard]'`)", False)


@dataclass
class ProfileConfig:
    profile: str = doc("profile name, used in result paths", "tiny")
    work_dir: str = doc("intermediate outputs: data, models, checkpoints, eval cells", "work/tiny")
    results_dir: str = doc("the pipeline's outputs: summary.csv, report.md, plots (committed copies live in `published_dir`)", "results/tiny")
    reference_csv: str = doc("published numbers shown beside ours", "results/reference/paper_numbers.csv")
    published_dir: str = doc("a committed copy of this profile's results (e.g. `results/published/tiny`): the report of a fresh run checks whether its numbers equal it; empty = no check", "")
    device: str = doc("torch device", "cpu")
    threads: int = doc("torch CPU threads per job (fixed for bitwise-reproducible CPU runs)", 1, ge=1)
    model: ModelConfig = doc("model architecture", default_factory=ModelConfig)
    data: DataConfig = doc("data", default_factory=DataConfig)
    pretrain: PretrainConfig = doc("base-model pretraining", default_factory=PretrainConfig)
    rl: RLConfig = doc("RL trainer settings shared by every method", default_factory=RLConfig)
    methods: dict[str, MethodConfig] = doc("RL methods to train, by name", default_factory=dict)
    run_methods: list[str] = doc("the methods of `methods` whose runs (× rl.seeds) this invocation trains, evaluates and expects in the report; empty = all. For a profile run in parts, one machine each: a part sets it (`--config set=run_methods=[agrpo,wd1]`), the report over the merged parts leaves it empty", default_factory=list)
    eval: EvalConfig = doc("evaluation grid", default_factory=EvalConfig)
    launch: LaunchConfig = doc("processes and GPUs per job", default_factory=LaunchConfig)
    logging: LoggingConfig = doc("training logs", default_factory=LoggingConfig)
    sweep: SweepConfig = doc("the learning-rate sweep", default_factory=SweepConfig)


# ---------------------------------------------------------------- strict loading

def _convert(value, tp, key: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        args = typing.get_args(tp)
        if not args:
            return dict(value)
        return {str(k): _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} at {key}")


BOUNDS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b), "le": ("<=", lambda v, b: v <= b),
          "lt": ("<", lambda v, b: v < b)}


def _check_bounds(value, bounds: dict, key: str) -> None:
    """Every number of ``value`` (a number or a list of numbers) within the field's bounds."""
    for name, bound in bounds.items():
        text, ok = BOUNDS[name]
        for v in value if isinstance(value, list) else [value]:
            if not ok(v, bound):
                raise ConfigError(f"{key}: must be {text} {bound}, got {v!r}")


def _check_choices(value, choices: tuple, key: str) -> None:
    """``value`` (a string or a list of strings) one of the field's ``choices``."""
    if not choices:
        return
    allowed = " or ".join(map(repr, choices)) if len(choices) == 2 else "one of " + ", ".join(map(repr, choices))
    for v in value if isinstance(value, list) else [value]:
        if v not in choices:
            raise ConfigError(f"{key}: expected {allowed}, got {v!r}")


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``; unknown keys, wrong types, out-of-range numbers and values outside
    a field's choices raise ConfigError naming the key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in data:
        if k not in fields:
            path = f"{prefix}.{k}" if prefix else str(k)
            raise ConfigError(f"unknown key '{path}' (known keys here: {', '.join(sorted(fields))})")
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        kwargs[k] = _convert(v, hints[k], key)
        _check_bounds(kwargs[k], fields[k].metadata.get("bounds", {}), key)
        _check_choices(kwargs[k], fields[k].metadata.get("choices", ()), key)
    return cls(**kwargs)


def load_config(paths: str | Path | list, overrides: dict | None = None) -> ProfileConfig:
    """Read, validate and resolve a profile: one file (or several, later ones merged over earlier ones, as
    Snakemake's repeated ``--configfile``), each with its ``extends`` chain, then the dotted ``overrides`` (a None
    value removes the key, as null does in an extending profile)."""
    from agrpo.profile_yaml import deep_merge, dotted, read_profile

    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    data = {}
    for p in paths:
        data = deep_merge(data, read_profile(p))
    flat = dotted(overrides or {})
    for key, value in flat.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {key}: '{part}' is not a mapping")
            node = child
        if value is None:  # as in an extending profile: null removes the key (e.g. a method)
            node.pop(last, None)
        else:
            node[last] = value
    where = " + ".join(str(p) for p in paths)
    if flat:
        where += f" (with overrides of {', '.join(flat)})"
    return build_config(data, where)


def build_config(data: dict, where: str) -> ProfileConfig:
    """A validated ``ProfileConfig`` from a mapping; an error names ``where`` it came from, then the key."""
    from agrpo.validation import validate  # cross-field checks need the tasks and objectives

    try:
        cfg = from_dict(ProfileConfig, data)
        validate(cfg)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
