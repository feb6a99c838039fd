#!/usr/bin/env bash
# Per-block stream-K timelines on the lent H100 (bench/stream_k_timeline.cpp): builds the tool
# (same flags as run.sh), then for each "DESCRIPTOR VARIANT" line of $1 writes
# $OUT/timeline_<variant>.csv and its summary (bench/stream_k_timeline.py), and tars the CSVs.
# Usage, from a snapshot's root: bash bench/device/stream_k_timeline.sh LIST [RUNS]
set -uo pipefail
deps="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/.deps/usr"
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
  -DLOWBIT_WERROR=OFF > "$OUT/build.log" 2>&1 &&
  cmake --build build-device -j "$(nproc)" --target lowbit_stream_k_timeline >> "$OUT/build.log" 2>&1 ||
  { tail -40 "$OUT/build.log"; exit 1; }
while read -r desc variant; do
  [ -z "$desc" ] && continue
  csv="$OUT/timeline_${variant##*_w4g128_}.csv"
  build-device/bench/lowbit_stream_k_timeline --desc "$desc" --variant "$variant" --runs "${2:-3}" > "$csv"
  python3 bench/stream_k_timeline.py "$csv" --desc "$desc" --variant "$variant"
done < "$1"
tar -czf "$OUT/timelines.tar.gz" -C "$OUT" $(cd "$OUT" && ls timeline_*.csv) && rm -f "$OUT"/timeline_*.csv
