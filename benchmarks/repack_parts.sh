#!/usr/bin/env bash
# Recompress the parts that small_on_device.sh packed (gzip, quick on the GPU machine) as xz before committing them:
# the eval cells' generations.jsonl shrink about 6x more (the issue-19 parts: 25 MB of .tgz → about 4 MB of .tar.xz),
# which keeps the working tree under the device tool's 64 MiB limit with several parts committed.
#   bash benchmarks/repack_parts.sh <parts folder>
# Each <name>.tgz becomes <name>.tar.xz holding the byte-identical tar stream (checked by its SHA-256 before the
# .tgz is removed); small_report_from_parts.sh reads both kinds.
set -euo pipefail
D=${1:?parts folder}
shopt -s nullglob
tgz=("$D"/*.tgz)
[ ${#tgz[@]} -gt 0 ] || { echo "no *.tgz in $D"; exit 1; }
for f in "${tgz[@]}"; do
  x=${f%.tgz}.tar.xz
  gzip -dc "$f" | xz -9e -c > "$x.partial"
  a=$(gzip -dc "$f" | sha256sum | cut -d' ' -f1)
  b=$(xz -dc "$x.partial" | sha256sum | cut -d' ' -f1)
  [ "$a" = "$b" ] || { rm -f "$x.partial"; echo "$f: the xz copy's tar stream differs; $f kept"; exit 1; }
  mv "$x.partial" "$x" && rm "$f"
  echo "$f → $x ($(du -h "$x" | cut -f1))"
done
