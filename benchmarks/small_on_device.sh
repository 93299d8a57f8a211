#!/usr/bin/env bash
# The small profile on one lent GPU machine (the device tool), which allows 10 minutes a command and keeps a machine
# for 30: Snakemake runs in the background in its own session (so it outlives each command) from a copy of the repo
# outside the synced working tree, and successive commands wait on it and pack what has finished into $OUT.
#   bash benchmarks/small_on_device.sh start <git sha>   install the carried wheels (.whl), start MPS if it works,
#                                                         copy the repo to /tmp/proj, start snakemake (no report:
#                                                         the device lacks pandas; aggregate where they are)
#   bash benchmarks/small_on_device.sh resume <git sha>  start snakemake again in the existing copy (a later part on
#                                                         the same warm machine: its base and SFT models are reused)
#   bash benchmarks/small_on_device.sh wait <seconds>    wait for snakemake (at most <seconds>), print progress, pack
#   bash benchmarks/small_on_device.sh bench <git sha>   GPU benchmarks on the RL-trained small model, packed
#   bash benchmarks/small_on_device.sh dtype <git sha>   eval.dtype float32 vs bfloat16 on a freshly pretrained base
# Here, after the last command: tar xzf each eval_*.tgz / small_logs.tgz into the repo root, then
#   agrpo report --config workflow/config/small.yaml --cells work/small/eval --out results/small  (or snakemake)
# In parts, one lease each (a profile too large for one 30-minute lease): SNAKE_ARGS="--config set=rl.seeds=[1]"
# PART=seed1 runs the runs of one RL seed (and the base and SFT models they start from) and tags the packed files
# with PART; with pretrain.deterministic every part rebuilds the same base (its summary's weights_sha256 says so).
# Unpack every part's files here, then `agrpo report` as above checks that the merged cells are the whole grid.
# Parts to commit (benchmarks/results/small_final_parts*): recompress them first, `bash benchmarks/repack_parts.sh
# <folder>` (gzip → xz, ~6x smaller), or the committed parts and the carried wheels pass the tool's 64 MiB tree limit.
# A machine that stops answering mid-command brings back nothing of that command (2026-12-04: a `wait 560` lost a
# whole run), so poll with shorter waits (`wait 300`): each return brings back the packed logs and cells so far.
# Until 2026-12-08 a piped `start ... | tail` did not return until the run ended (a background subshell holding the
# pipe: start_snakemake); fixed, and sending the output to a file in $OUT (`> $OUT/start.txt 2>&1; tail -30
# $OUT/start.txt`) is safe either way.
# Some methods' runs only: `run_methods` in SNAKE_ARGS (--config set=rl.seeds=[0],run_methods=[agrpo,wd1]).
# Several parts fit one lease when the later ones `resume` on the warm machine (its files then hold every part so
# far). CORES (default 16) is snakemake's --cores: with the profile's threads: 4, CORES/4 jobs share the GPU at a
# time (CORES=32 for two seeds in one part: SNAKE_ARGS="--config set=rl.seeds=[1,2]"; issue 19's final runs at 400
# batches on an H200: seed 0 with pretraining 11 min 37 s, seeds 1 and 2 together 18 min 09 s).
set -uo pipefail
P=/tmp/proj
CFG=workflow/config/small.yaml
OUT=${OUT:-/tmp/small_out}
mkdir -p "$OUT"
# wheels install to /tmp/site (their console scripts, snakemake among them, to /tmp/site/bin); /tmp/bin holds `agrpo`
export PYTHONPATH=/tmp/site:$P PATH=/tmp/site/bin:/tmp/bin:$PATH PYTHONUNBUFFERED=1
# the GPU's short name (h100, h200) tags the benchmark result files
gpu_tag() { nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -o 'H[0-9]*' | tr 'H' 'h'; }

pack() {
  # each run's train_log.live.jsonl too (appended per batch): a lease cut mid-run still brings back its curves
  # Snakemake's own log inside logs/small (a /tmp path would unpack into ./tmp here)
  mkdir -p $P/logs/small && cp /tmp/smk.log "$P/logs/small/snakemake${PART:+_$PART}.log" 2>/dev/null
  (cd $P && tar czf "$OUT/small_logs${PART:+_$PART}.tgz" logs/small work/small/config \
     $(ls work/small/runs/*/train_log*.jsonl work/small/models/*/config.json work/small/models/*/*.json \
       work/small/headroom/*.json 2>/dev/null) \
     2>/dev/null)
  for t in tiny_arith tiny_countdown tiny_sudoku; do
    (cd $P && find work/small/eval -path "*/$t/*" \( -name metrics.json -o -name generations.jsonl \) -print0 \
       | tar czf "$OUT/eval_$t${PART:+_$PART}.tgz" --null -T -)
  done
  ls -la "$OUT"
}

progress() {
  cd $P
  echo "cells: $(find work/small/eval -name metrics.json 2>/dev/null | wc -l) metrics.json"
  for f in logs/small/pretrain.log logs/small/sft/*.log logs/small/train/*.log; do
    [ -f "$f" ] && echo "$f: $(tail -c 300 "$f" | tr '\r' '\n' | grep -v '^$' | tail -1 | cut -c1-150)"
  done
  tail -5 /tmp/smk.log
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader
}

start_snakemake() {
  # the PID file is written by the process that becomes snakemake (exec keeps the PID): `$!` of a background
  # `setsid` is not it where setsid forks (a process-group leader), and `wait` then saw a live run as finished
  # `cd` apart from the background command: `cd $P && cmd > log &` backgrounds a subshell whose stdout is the
  # caller's and which waits for snakemake, so a piped `start | tail` waited for the whole run (2026-12-08)
  cd $P || exit 1
  AGRPO_GIT_SHA=$1 setsid nohup bash -c 'echo $$ > /tmp/smk.pid; exec "$@"' _ \
    snakemake --cores "${CORES:-16}" --configfile $CFG --omit-from report --keep-going ${SNAKE_ARGS:-} \
    > /tmp/smk.log 2>&1 < /dev/null &
  sleep 20; progress
}

case "${1:-}" in
start)
  python3 benchmarks/device_install.py .whl /tmp/site || exit 1
  mkdir -p /tmp/bin
  printf '#!/bin/sh\nexec python3 -m agrpo.cli "$@"\n' > /tmp/bin/agrpo && chmod +x /tmp/bin/agrpo
  # MPS lets the concurrent jobs' kernels share the GPU instead of time-slicing; off again if a client cannot start
  # (the daemon's output to a file: one that held the caller's stdout kept a piped `start | tail` waiting)
  if command -v nvidia-cuda-mps-control > /dev/null && nvidia-cuda-mps-control -d > /tmp/mps.log 2>&1 < /dev/null; then
    timeout 60 python3 -c "import torch; torch.ones(1, device='cuda').sum().item(); print('MPS on')" \
      || { echo quit | nvidia-cuda-mps-control; echo "MPS off"; }
  else
    echo "MPS not available"
  fi
  rm -rf $P && mkdir -p $P && tar --exclude=./.whl --exclude=./.git --exclude=./work -cf - . | tar -xf - -C $P
  start_snakemake "${2:?git sha}"
  ;;
resume)
  [ -d $P ] || { echo "no $P: run start first"; exit 1; }
  start_snakemake "${2:?git sha}"
  ;;
wait)
  # a machine without start's PID file is a fresh one (the last went back with its job): say so, wait on nothing
  [ -f /tmp/smk.pid ] || { echo "no run on this machine (/tmp/smk.pid missing): a fresh machine, start again"; exit 3; }
  end=$((SECONDS + ${2:?seconds}))
  # the PID start wrote (a pattern match could find the polling command's own command line)
  running() { kill -0 "$(cat /tmp/smk.pid 2>/dev/null)" 2>/dev/null; }
  # packed every 2 minutes too, so that a command cut by the lease still brings back the finished jobs
  while [ $SECONDS -lt $end ] && running; do sleep 5; [ $(((end - SECONDS) % 120)) -lt 5 ] && pack > /dev/null; done
  running && echo "snakemake: running" || echo "snakemake: finished"
  progress; pack
  ;;
bench)
  cd $P
  m=$(ls -d work/small/runs/agrpo-seed0/step* | sort -V | tail -1)  # its last checkpoint (step80 before 2026-12-02)
  AGRPO_GIT_SHA=${2:?git sha} python3 benchmarks/sampler_cost.py --config $CFG --model $m --task tiny_arith \
    --device cuda --tag small_rl_$(gpu_tag) --batch-sizes 1 8 32 128 256 --threads 4 || exit 1
  for o in agrpo diffu_grpo; do
    AGRPO_GIT_SHA=$2 python3 benchmarks/update_cost.py --objective $o --device cuda --d-model 512 --n-layers 8 \
      --n-heads 8 --batch 128 --gen-length 40 --block-length 8 --steps 20 --k 8 --repeats 5 --threads 4 \
      --tag small_$(gpu_tag) || exit 1
  done
  tar czf "$OUT/bench.tgz" benchmarks/results docs/performance.md docs/*.md
  ls -la "$OUT"
  ;;
dtype)
  # eval.dtype on the GPU: the small profile's base model (pretrained here, ~1 min) timed and scored by
  # sampler_cost.py as loaded (float32) and cast to bfloat16, one after the other in this command
  export PYTHONPATH=/tmp/site:$PWD
  python3 benchmarks/device_install.py .whl /tmp/site || exit 1
  for t in tiny_arith tiny_countdown tiny_sudoku; do python3 -m agrpo.cli data --config $CFG --task $t --quiet || exit 1; done
  AGRPO_GIT_SHA=${2:?git sha} python3 -m agrpo.cli base --config $CFG --out work/small/models/base > /tmp/base.log 2>&1 \
    || { tail -20 /tmp/base.log; exit 1; }
  tail -1 /tmp/base.log
  for dt in model bfloat16; do
    AGRPO_GIT_SHA=$2 python3 benchmarks/sampler_cost.py --config $CFG --model work/small/models/base --task tiny_arith \
      --device cuda --tag small_base_${dt/model/float32}_$(gpu_tag) --batch-sizes 1 32 128 --threads 4 --dtype $dt \
      || exit 1
  done
  tar czf "$OUT/dtype.tgz" benchmarks/results/sampler_cost_small_base_* docs/performance.md
  ls -la "$OUT"
  ;;
*)
  echo "usage: $0 start <sha> | resume <sha> | wait <seconds> | bench <sha> | dtype <sha>"; exit 2
  ;;
esac
