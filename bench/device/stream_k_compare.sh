#!/usr/bin/env bash
# One device call for a stream-K change: build this snapshot (the bench, the CUDA tests, the
# timeline tool) and, beside it, an older snapshot's bench; run the CUDA tests matching
# $LOWBIT_COMPARE_TESTS; time each "DESCRIPTOR VARIANT" line of ROWS with the older build, then
# this one, alternated (lowbit_cuda_bench --variant, read flush, median of REPEATS); cuBLAS
# (torch_baselines.py) on the rows' descriptors up to LOWBIT_COMPARE_TORCH_MAX_M rows (default
# 1024), after the timeline summary of each line of TIMELINES. LOWBIT_COMPARE_TEST_SECONDS bounds
# the tests (default 90), LOWBIT_COMPARE_TEST_TIMEOUT each test (default 85). Everything lands in
# $OUT (compare.txt, ctest.log, timelines.txt, raw files tarred).
# Usage, from this snapshot's root: bash bench/device/stream_k_compare.sh OLD_SNAPSHOT ROWS [TIMELINES] [REPEATS]
set -uo pipefail
old=$1
rows=$2
timelines=${3:-}
repeats=${4:-15}
deps="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/.deps/usr"
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
configure() {
  cmake -S "$1" -B "$1/build-device" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
    -DLOWBIT_WERROR=OFF
}
{ configure . && cmake --build build-device -j 12 --target lowbit_cuda_bench lowbit_cuda_tests lowbit_stream_k_timeline; } \
  > "$OUT/build.log" 2>&1 &
new_build=$!
{ configure "$old" && cmake --build "$old/build-device" -j 4 --target lowbit_cuda_bench; } > "$OUT/build_old.log" 2>&1 &
old_build=$!
wait $new_build || { tail -30 "$OUT/build.log"; exit 1; }
if [ -n "${LOWBIT_COMPARE_TESTS:-}" ]; then
  (cd build-device && timeout "${LOWBIT_COMPARE_TEST_SECONDS:-90}" ctest -j 4 --timeout "${LOWBIT_COMPARE_TEST_TIMEOUT:-85}" --output-on-failure \
    -R "$LOWBIT_COMPARE_TESTS") > "$OUT/ctest.log" 2>&1
  tail -6 "$OUT/ctest.log"
fi
wait $old_build || { tail -30 "$OUT/build_old.log"; exit 1; }
row_file=$(mktemp)
while read -r desc variant; do
  [ -z "$desc" ] && continue
  echo "$desc" > "$row_file"
  for build in "$old/build-device" build-device; do
    line=$("$build/bench/lowbit_cuda_bench" "$row_file" --repeats "$repeats" --variant "$variant" 2>&1 | tail -1)
    echo "$line" >> "$OUT/bench.jsonl"
    us=$(echo "$line" | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print(r.get('best_us'), r.get('failures', ''))" 2>/dev/null)
    echo "$desc $variant $([ "$build" = build-device ] && echo new || echo old) $us" | tee -a "$OUT/compare.txt"
  done
done < "$rows"
if [ -n "$timelines" ]; then
  while read -r desc variant; do
    [ -z "$desc" ] && continue
    csv="$OUT/timeline_${variant##*_w4g128_}.csv"
    build-device/bench/lowbit_stream_k_timeline --desc "$desc" --variant "$variant" --runs 2 > "$csv" 2>> "$OUT/timelines.txt"
    python3 bench/stream_k_timeline.py "$csv" --desc "$desc" --variant "$variant" >> "$OUT/timelines.txt"
  done < "$timelines"
fi
# torch's tinygemm column takes milliseconds a call at M = 4096: its rows stop at LOWBIT_COMPARE_TORCH_MAX_M.
awk '{print $1}' "$rows" | sort -u | awk -v max="${LOWBIT_COMPARE_TORCH_MAX_M:-1024}" \
  '{ split($1, fields, ","); sub("m=", "", fields[1]); if (fields[1] + 0 <= max) print }' > "$row_file"
python3 bench/device/torch_baselines.py "$row_file" --flush read > "$OUT/torch.jsonl" 2> "$OUT/torch.err"
python3 -c "
import json, sys
for line in open('$OUT/torch.jsonl'):
    r = json.loads(line); print('torch', {k: v for k, v in r.items() if k in ('m', 'n', 'k') or k.endswith('_us')})
" | tee -a "$OUT/compare.txt"
(cd "$OUT" && tar -czf raw.tar.gz bench.jsonl torch.jsonl torch.err build.log build_old.log $(ls timeline_*.csv 2>/dev/null) &&
  rm -f bench.jsonl torch.err build_old.log timeline_*.csv)
