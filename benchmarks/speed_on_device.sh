#!/usr/bin/env bash
# The speed benchmarks (benchmarks/speed.py) on one lent GPU machine (the device tool: 10 minutes a command, the
# machine given back 30 s after a command returns): the work runs in the background in its own session from a copy
# of the repo, and each later command waits on it and copies what has finished into $OUT. Parts run in the order given.
#   bash benchmarks/speed_on_device.sh start <git sha> [parts]   copy the repo to /tmp/proj, start `all` in the
#                                                          background (parts: default "tests small accel llada8b";
#                                                          also "profile" (benchmarks/profile_rl.py) and "rl" (the
#                                                          RL iterations alone, the fastest setting vs 449b441);
#                                                          "rltests" (the trainer's GPU speed-option tests);
#                                                          "pytests" (any tests: PYTEST_ARGS);
#                                                          "concurrency" (one job vs N concurrent jobs);
#                                                          "headroom" (benchmarks/small_headroom.py, HEADROOM_ARGS);
#                                                          "paper8b" (benchmarks/paper_smoke_gpu.py: needs .smoke8b
#                                                          and the wheels in /tmp/site; SMOKE_PROTOCOLS=d1 for one))
#   bash benchmarks/speed_on_device.sh wait <seconds>     wait (at most <seconds>), print the log's tail, copy results
# `all`: the CUDA-graph tests; `speed.py small` (with the checkout of 449b441 in .baseline449, if carried);
# pretraining the small model at generation length 128 and `speed.py accel` on it; `speed.py llada8b`.
set -uo pipefail
P=/tmp/proj
R=/tmp/speed_out
OUT=${OUT:-/tmp/speed_copy}
export PYTHONPATH=$P:/tmp/site PYTHONUNBUFFERED=1   # /tmp/site: wheels installed by benchmarks/device_install.py
gpu_tag() { nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -o 'H[0-9]*' | tr 'H' 'h'; }

case "${1:-}" in
start)
  rm -rf $P $R /tmp/smoke8b_run && mkdir -p $P $R
  tar --exclude=./.git --exclude=./work --exclude=./.whl --exclude=./.venv -cf - . | tar -xf - -C $P
  [ -d .smoke8b ] && cp -r .smoke8b /tmp/smoke8b_run
  # `cd` apart: `cd $P && cmd > log &` would background a subshell holding this command's stdout until cmd ends
  cd $P || exit 1
  AGRPO_GIT_SHA=${2:?git sha} PARTS="${3:-tests small accel llada8b}" setsid nohup \
    bash benchmarks/speed_on_device.sh all > $R/log.txt 2>&1 < /dev/null &
  sleep 15; tail -5 $R/log.txt
  ;;
all)
  cd $P
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  T=$(gpu_tag)
  part_tests() {
    python3 -m pytest -q --maxfail=5 -p no:cacheprovider tests/test_cuda_graphs.py > $R/gpu_tests.txt 2>&1
    echo "gpu tests rc=$?"; tail -3 $R/gpu_tests.txt
  }
  part_pytests() {  # PYTEST_ARGS: any tests, e.g. "tests/test_rl_prompts.py -k bf16" (GPU-only tests run here)
    CUBLAS_WORKSPACE_CONFIG=:4096:8 python3 -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:?set PYTEST_ARGS} \
      > $R/gpu_pytests.txt 2>&1
    echo "pytests rc=$?"; tail -3 $R/gpu_pytests.txt
  }
  part_rltests() {  # the trainer-with-every-speed-option GPU tests alone
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py -k every_speed_option > $R/gpu_rltests.txt 2>&1
    echo "gpu rltests rc=$?"; tail -3 $R/gpu_rltests.txt
  }
  part_small() {
    base=""; [ -d .baseline449 ] && base="--baseline-repo .baseline449"
    python3 benchmarks/speed.py small --device cuda --tag $T $base --out $R/speed_small_$T.json; echo "small rc=$?"
  }
  part_accel() {
    python3 - <<'PY'
import yaml
d = yaml.safe_load(open("workflow/config/small.yaml"))
d.update(work_dir="/tmp/pt128", device="cuda")
d["pretrain"].update(gen_length=128, steps=300)
yaml.safe_dump(d, open("/tmp/pt128.yaml", "w"))
PY
    t0=$SECONDS
    for t in tiny_arith tiny_countdown tiny_sudoku; do python3 -m agrpo.cli data --config /tmp/pt128.yaml --task $t --quiet; done
    python3 -m agrpo.cli pretrain --config /tmp/pt128.yaml --out /tmp/pt128/base --quiet; echo "pretrain rc=$? $((SECONDS - t0)) s"
    python3 benchmarks/speed.py accel --device cuda --tag $T --model /tmp/pt128/base --gen-length 128 \
      --out $R/speed_accel_$T.json; echo "accel rc=$?"
  }
  FAST='"rl.autocast": "bfloat16", "rl.fused_adamw": true, "rl.rollout.cuda_graphs": true, "rl.compile": true, "rl.merge_rollout_temperatures": true'
  part_profile() {
    python3 benchmarks/profile_rl.py --device cuda --tag $T --method agrpo --out $R/profile_rl_agrpo_$T.json \
      --setting "{$FAST, \"methods.agrpo.objective_args.old_logprobs\": \"current\", \"methods.agrpo.objective_args.draws_per_pass\": 8, \"rl.rollout.compile_step\": true}"
    echo "profile agrpo rc=$?"
    python3 benchmarks/profile_rl.py --device cuda --tag $T --method diffu_grpo --out $R/profile_rl_diffu_grpo_$T.json \
      --setting "{$FAST}"; echo "profile diffu_grpo rc=$?"
  }
  part_rl() {  # the fastest setting of each method (reduce-overhead) vs 449b441 (.baseline449, if carried)
    base=""; [ -d .baseline449 ] && base="--baseline-repo .baseline449"
    python3 benchmarks/speed.py small --device cuda --tag $T $base --rl-only --settings-only --out $R/speed_small_rl_$T.json \
      --setting "{$FAST, \"methods.agrpo.objective_args.draws_per_pass\": 8, \"rl.rollout.compile_step\": true, \"rl.compile_mode\": \"reduce-overhead\"}"
    echo "rl rc=$?"
  }
  part_concurrency() {  # one job of 16 groups vs 2 and 4 concurrent jobs of 8 and 4 (no MPS)
    python3 benchmarks/speed.py concurrency --device cuda --tag $T --iterations 20 --jobs 1,2,4 \
      --out $R/speed_concurrency_$T.json; echo "concurrency rc=$?"
  }
  part_llada8b() {  # LLADA_ARGS: one run's arguments, or several runs' separated by ';' (one checkpoint)
    IFS=';' read -ra runs <<< "${LLADA_ARGS:---items 64}"
    for i in "${!runs[@]}"; do
      out=$R/speed_llada8b_$T.json; [ ${#runs[@]} -gt 1 ] && out=$R/speed_llada8b_${T}_$i.json
      python3 benchmarks/speed.py llada8b --device cuda --tag $T ${runs[$i]} --batch 32 --out $out
      echo "llada8b ${runs[$i]} rc=$?"
    done   # e.g. LLADA_ARGS="--llada-parts test --items 1319 --test-steps 64": a whole set
  }
  part_paper8b() {  # needs .smoke8b (paper_smoke_gpu.py prepare) and the wheels in /tmp/site
    mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -m agrpo.cli "$@"\n' > /tmp/bin/agrpo && chmod +x /tmp/bin/agrpo
    command -v python > /dev/null || ln -sf "$(command -v python3)" /tmp/bin/python
    for i in $(seq 120); do python3 -c "import bitsandbytes" 2>/dev/null && break; sleep 5; done
    df -h /tmp | tail -1
    PATH=/tmp/bin:$PATH python3 benchmarks/paper_smoke_gpu.py run /tmp/smoke8b_run --out $R/paper_smoke_gpu_$T.json \
      --protocols "${SMOKE_PROTOCOLS:-agrpo,d1}" \
      2>&1 | grep -av "Generating\|it/s\]" | tail -40; echo "paper8b rc=${PIPESTATUS[0]}"; df -h /tmp | tail -1
  }
  part_headroom() {  # issue 19: candidates of the small profile's tasks and pretraining (benchmarks/small_headroom.py)
    # HEADROOM_ARGS: its arguments, e.g. "--candidate '{\"pretrain.steps\": 600}' --candidate '{…}'"
    # cuBLAS's fixed workspace from the process's start, for pretrain.deterministic
    eval CUBLAS_WORKSPACE_CONFIG=:4096:8 python3 benchmarks/small_headroom.py --config workflow/config/small.yaml \
      --device cuda --quiet --out $R/small_headroom_$T.json ${HEADROOM_ARGS:?set HEADROOM_ARGS}; echo "headroom rc=$?"
  }
  PARTS=${PARTS:-tests small accel llada8b}
  for part in $PARTS; do   # every part known before any runs
    declare -F part_$part > /dev/null || { echo "unknown part: $part (parts: $(declare -F | grep -o 'part_.*' | sed 's/part_//' | tr '\n' ' '))"; echo "ALL DONE (nothing run)"; exit 2; }
  done
  for part in $PARTS; do part_$part; done   # in the order given
  echo ALL DONE
  ;;
wait)
  # copies what has finished every 30 s too, so a command cut by the lease still brings back the saved batches
  [ -f $R/log.txt ] || { echo "no run on this machine ($R/log.txt missing): a fresh machine, start again"; exit 3; }
  end=$((SECONDS + ${2:?seconds})); mkdir -p "$OUT"
  copy() { cp $R/*.json $R/*.txt $R/*.log $R/*.md $R/*.csv "$OUT"/ 2>/dev/null; }
  while [ $SECONDS -lt $end ] && ! grep -q "ALL DONE" $R/log.txt; do
    sleep 5; [ $(((end - SECONDS) % 30)) -lt 5 ] && copy
  done
  tail -c 6000 $R/log.txt
  copy; ls -la "$OUT"
  ;;
esac
