#!/usr/bin/env bash
# The paper profile's code paths on one GPU, at small size (run on the device machine; results under $OUT):
#  1. a random LLaDA-architecture checkpoint in the official layout (benchmarks/make_random_llada.py), linked by
#     `agrpo base` as the paper rule does;
#  2. `agrpo train` through `accelerate launch` + DeepSpeed ZeRO-2 + bf16 (the rule's command, 1 process):
#     AGRPO with LoRA, diffu-GRPO with LoRA on a 4-bit NF4 base; activation checkpointing on;
#  3. `agrpo eval` of every checkpoint on CUDA with torch.compile, and once without (the compile speed ratio);
#  4. the update-equivalence helper on CUDA: a plain process vs ZeRO-2 (bf16 both): loss and gradient norm.
# Needs deepspeed and bitsandbytes (wheels carried in .whl). Config: benchmarks/configs/gpu_smoke.yaml.
set -euo pipefail
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
CFG=benchmarks/configs/gpu_smoke.yaml
W=work/gpu_smoke
OUT=${OUT:-/tmp/gpu_paths}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
LAUNCH="accelerate launch --config_file workflow/accelerate/zero2.yaml --num_processes 1 --mixed_precision bf16 -m agrpo.cli"

python benchmarks/make_random_llada.py --out $W/llada_random | tee "$OUT/checkpoint.json"
python -m agrpo.cli base --config $CFG --out $W/models/base

for m in agrpo diffu_grpo; do
  start=$(date +%s)
  $LAUNCH train --config $CFG --method $m --seed 0 --base $W/models/base --out $W/runs/$m-seed0 --quiet \
    > "$OUT/train_$m.log" 2>&1 || { tail -50 "$OUT/train_$m.log"; exit 1; }
  echo "{\"method\": \"$m\", \"seconds\": $(( $(date +%s) - start ))}" > "$OUT/train_$m.time.json"
  cp $W/runs/$m-seed0/train_log.jsonl "$OUT/train_log_$m.jsonl"
  ls $W/runs/$m-seed0
done

sed 's/  compile: true/  compile: false/' $CFG > $W/eager.yaml
for compile in true false; do
  cfg=$CFG; [ $compile = false ] && cfg=$W/eager.yaml
  for run in agrpo-seed0/step2 agrpo-seed0/step4 diffu_grpo-seed0/step4; do
    python -m agrpo.cli eval --config $cfg --model $W/runs/$run --method ${run%%-seed0*} --run-seed 0 \
      --train-step ${run##*step} --task gsm8k --out "$OUT/eval_compile_$compile/$run" --quiet \
      > "$OUT/eval_${compile}_${run//\//_}.log" 2>&1 \
      || { tail -50 "$OUT/eval_${compile}_${run//\//_}.log"; exit 1; }
  done
done

export AGRPO_TEST_DEVICE=cuda AGRPO_TEST_DTYPE=bfloat16
for case in agrpo agrpo_lora diffu_grpo_group diffu_grpo_batch wd1; do
  python tests/scripts/distributed_update.py "$OUT/update_plain_$case.json" $case > "$OUT/update_plain_$case.log" 2>&1 \
    || { tail -30 "$OUT/update_plain_$case.log"; exit 1; }
  accelerate launch --config_file workflow/accelerate/zero2.yaml --num_processes 1 --mixed_precision bf16 \
    tests/scripts/distributed_update.py "$OUT/update_zero2_$case.json" $case > "$OUT/update_zero2_$case.log" 2>&1 \
    || { tail -30 "$OUT/update_zero2_$case.log"; exit 1; }
done
echo done
