#!/usr/bin/env bash
# Build the wheel folder that benchmarks/small_on_device.sh carries to a lent GPU machine, whose image lacks
# snakemake and whose pip cannot reach an index (benchmarks/device_install.py installs what it lacks from here).
#   bash benchmarks/device_wheels.sh [folder: .whl] [device python: 3.12]
# Pure-Python wheels are built here (pip wheel, any local Python); each compiled one is fetched again for the
# device's Python. Carry the folder with the run: carry [".whl"] (it stays under the 64 MiB carry limit: ~28 MB).
set -euo pipefail
W=${1:-.whl}
PY=${2:-3.12}
SNAKEMAKE=$(grep -o '"snakemake==[0-9.]*"' pyproject.toml | tr -d '"')
rm -rf "$W" && mkdir -p "$W"
python3 -m pip wheel -q "$SNAKEMAKE" -w "$W"
tag=cp$(python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
for w in "$W"/*-"$tag"-"$tag"-*.whl; do
  [ -e "$w" ] || continue
  name=$(basename "$w" | cut -d- -f1); version=$(basename "$w" | cut -d- -f2)
  python3 -m pip download -q "$name==$version" --no-deps -d "$W" --python-version "$PY" --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
  [ "$tag" = "cp${PY/./}" ] || rm "$w"
done
du -sh "$W"; ls "$W" | wc -l
