#!/usr/bin/env bash
# The small profile's report from the packed parts of its final runs (benchmarks/results/small_final_parts: what
# small_on_device.sh packed per lease, .tgz or as repacked by repack_parts.sh, .tar.xz), here on CPU:
#   bash benchmarks/small_report_from_parts.sh [out: results/small] [parts: benchmarks/results/small_final_parts] \
#     [more `agrpo report` arguments, e.g. --partial]
# Unpacks every part into a fresh work/small and logs/small (a base cell packed by two parts is the same cell: the
# base is rebuilt deterministically), writes the test examples (`agrpo data`), then `agrpo report`, which refuses
# merged cells that miss a run (a method x rl.seeds of small.yaml), naming it, unless --partial. With out =
# results/published/small it writes the committed copy, compared with nothing (published_dir: "": a report checked
# against itself says nothing). CONFIG (default workflow/config/small.yaml) is the profile the parts ran: for a set
# run with --config overrides, a file that extends small.yaml with them (benchmarks/configs/small_800.yaml).
set -euo pipefail
OUT=${1:-results/small}
PARTS=${2:-benchmarks/results/small_final_parts}
shift $(( $# < 2 ? $# : 2 ))
shopt -s nullglob
parts=("$PARTS"/*.tgz "$PARTS"/*.tar.xz)   # as packed on the device (gzip) or repacked (repack_parts.sh: xz)
[ ${#parts[@]} -gt 0 ] || { echo "no parts (*.tgz, *.tar.xz) in $PARTS"; exit 1; }
for d in work/small logs/small; do
  [ -e $d ] && { echo "$d exists: move it away first (this script unpacks into fresh ones)"; exit 1; }
done
for f in "${parts[@]}"; do tar xf "$f"; done   # tar picks the decompressor
PROFILE=${CONFIG:-workflow/config/small.yaml}
CFG=$PROFILE
# the test examples for the report's failure categories: not packed, rebuilt (deterministic, seconds on a CPU)
for t in $(python -c "from agrpo.config import load_config; print(*load_config('$CFG').data.tasks)"); do
  [ -f work/small/data/$t/test.jsonl ] || agrpo data --config $CFG --task $t
done
if [ "$OUT" = results/published/small ]; then
  CFG=$(mktemp --suffix .yaml)
  printf 'extends: %s\npublished_dir: ""\n' "$(realpath "$PROFILE")" > "$CFG"
fi
agrpo report --config "$CFG" --cells work/small/eval --out "$OUT" --headroom work/small/headroom/base.json "$@"
