#!/usr/bin/env bash
# Two builds of lowbit side by side in one call, on the brief's cold-start measures: a cold full
# tune (NVRTC's disk cache off: CUDA_CACHE_DISABLE=1) of SHAPES with each build, the new first, and
# a cached m=0 get_kernel in new processes, alternating the builds process by process.
# Usage (device machine, the two trees carried, .deps beside them):
#   bash NEW/bench/device/side_by_side_cold.sh OLD_TREE NEW_TREE [SHAPES=NEW/bench/shapes/cold_start_tune.txt] [PROCESSES=5]
# Writes tune<tree>.json / .err and side_by_side.txt under $OUT.
set -uo pipefail
old=$1 new=$2 shapes=${3:-$2/bench/shapes/cold_start_tune.txt} processes=${4:-5}
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
deps=$PWD/.deps/usr
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu
report="$OUT/side_by_side.txt"
for tree in "$old" "$new"; do
  (cd "$tree" && cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" -DLOWBIT_WERROR=OFF \
     > "$OUT/cmake_$(basename "$tree").log" 2>&1 && cmake --build build-device -j8 --target lowbit \
     > "$OUT/build_$(basename "$tree").log" 2>&1; echo "build $tree: exit $?") &
done
wait
mapfile -t descs < <(grep -v '^#' "$shapes" | grep .)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for tree in "$new" "$old"; do
  name=$(basename "$tree")
  start=$(date +%s%N)
  CUDA_CACHE_DISABLE=1 timeout 260 "$tree/build-device/cli/lowbit" tune --json --db "$work/tune_$name.sqlite" \
    --desc "${descs[@]}" > "$OUT/tune_$name.json" 2> "$OUT/tune_$name.err"
  echo "cold tune of ${#descs[@]} rows, $tree: exit $?, $(( ($(date +%s%N) - start) / 1000000 )) ms wall" | tee -a "$report"
done
any=m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0
for tree in "$new" "$old"; do  # the first process compiles the parts
  "$tree/build-device/cli/lowbit" get --json --no-tune --db "$work/m0_$(basename "$tree").sqlite" --desc "$any" > /dev/null 2>&1
done
for _ in $(seq "$processes"); do
  for tree in "$new" "$old"; do
    "$tree/build-device/cli/lowbit" get --json --no-tune --db "$work/m0_$(basename "$tree").sqlite" --desc "$any" 2>/dev/null |
      python3 -c "import json, sys; r = json.load(sys.stdin); print('m=0 cached get_kernel, $tree:', r['get_kernel_ms'], 'ms, NVRTC loaded:', r['nvrtc_loaded'])"
  done
done | tee -a "$report"
