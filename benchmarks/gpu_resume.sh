#!/usr/bin/env bash
# Resume under DeepSpeed ZeRO-2 on one GPU (run on the device machine; results under $OUT). Needs the tiny profile's
# base model and data copied to work/gpu_resume (models/base, data/) and deepspeed. For each of AGRPO and
# diffu-GRPO: one uninterrupted `accelerate launch … agrpo.cli train` run, and one SIGKILLed (with its process group)
# as soon as its first resume state exists, then rerun to the end; the two training logs are compared.
set -uo pipefail
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
CFG=benchmarks/configs/gpu_resume.yaml
W=work/gpu_resume
OUT=${OUT:-/tmp/gpu_resume}
mkdir -p "$OUT"
LAUNCH="accelerate launch --config_file workflow/accelerate/zero2.yaml --num_processes 1 --mixed_precision bf16 -m agrpo.cli"
for m in ${METHODS:-agrpo diffu_grpo}; do   # METHODS="diffu_grpo" reruns one
  $LAUNCH train --config $CFG --method $m --seed 0 --base $W/models/base --out $W/runs/$m-whole --quiet > "$OUT/$m-whole.log" 2>&1 \
    || { tail -30 "$OUT/$m-whole.log"; exit 1; }
  setsid $LAUNCH train --config $CFG --method $m --seed 0 --base $W/models/base --out $W/runs/$m-killed --quiet \
    > "$OUT/$m-killed-1.log" 2>&1 &
  pid=$!
  until [ -f $W/runs/$m-killed/resume/state.json ] || ! kill -0 $pid 2>/dev/null; do sleep 0.1; done
  # torch elastic starts its workers in their own sessions: kill the launcher's group and the workers
  kill -9 -- -$pid 2>/dev/null; pkill -9 -f "agrpo.cli train .*$m-killed"
  wait $pid 2>/dev/null
  while pgrep -f "agrpo.cli train .*$m-killed" > /dev/null; do sleep 0.1; done
  [ -f $W/runs/$m-killed/resume/state.json ] && [ ! -f $W/runs/$m-killed/train_log.jsonl ] \
    || { echo "$m: the kill came too late (run finished)"; exit 1; }
  echo "$m: killed after $(python3 -c "import json;print(json.load(open('$W/runs/$m-killed/resume/state.json'))['iteration'])") iterations"
  $LAUNCH train --config $CFG --method $m --seed 0 --base $W/models/base --out $W/runs/$m-killed --quiet > "$OUT/$m-killed-2.log" 2>&1 \
    || { tail -30 "$OUT/$m-killed-2.log"; exit 1; }
  grep -h "resuming after iteration" "$OUT/$m-killed-2.log" || { echo "$m: the rerun did not resume"; exit 1; }
  cp $W/runs/$m-whole/train_log.jsonl "$OUT/$m-whole.jsonl"; cp $W/runs/$m-killed/train_log.jsonl "$OUT/$m-killed.jsonl"
  python3 - "$OUT/$m-whole.jsonl" "$OUT/$m-killed.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
for x, y in zip(a, b):
    print(x["iteration"], *(f"{k} {x[k]:.6g}/{y[k]:.6g}" for k in ("reward_mean", "loss", "grad_norm")))
PY
done
echo done
