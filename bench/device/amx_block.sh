#!/usr/bin/env bash
# One device call for the AMX-BF16 cache blocking (k_block; docs/benchmarks.md): builds only the
# x86 tests, the CLI and the ISA bench, runs the AMX tests, then on the Xeon at 16 threads
# (every step bounded by a timeout, every result in $OUT as soon as it exists):
#   1. lowbit's no-tune kernels on bench/shapes/amx_block_cpu.txt (`lowbit bench --no-tune`);
#   2. torch's bf16 linear and int4 kernel on the same shapes; cpu_compare.py joins them;
#   3. every AMX-BF16 candidate (block x k_block) on those shapes (lowbit_x86_isa_bench --every):
#      what AmxBf16Generator's candidates and heuristic_k_block_size rest on.
# Usage (from the checkout root): bash SNAPSHOT/bench/device/amx_block.sh SNAPSHOT
# LOWBIT_DEVICE_TESTS=REGEX picks the ctest tests (default Amx); LOWBIT_EVERY_SECONDS bounds step 3.
set -uo pipefail
deps="$PWD/.deps/usr"
cd "${1:-.}" || exit 1
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
{ date -u; lscpu; } > "$OUT/machine.txt" 2>&1
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" -DOPENSSL_ROOT_DIR="$deps" \
  -DLOWBIT_WERROR=OFF > "$OUT/build.log" 2>&1 &&
  cmake --build build-device -j "$(nproc)" --target lowbit_x86_tests lowbit lowbit_x86_isa_bench \
    >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build done at ${SECONDS}s"
build-device/cli/lowbit info > "$OUT/lowbit_info.txt" 2>&1
grep -i "l2\|cache" "$OUT/lowbit_info.txt" | head -5

(cd build-device && timeout 100 ctest -j 12 --timeout 95 --output-on-failure -R "${LOWBIT_DEVICE_TESTS:-Amx}") \
  > "$OUT/ctest.log" 2>&1
grep -E "tests passed|Failed|Timeout|Not Run" "$OUT/ctest.log" | tail -20
echo "tests done at ${SECONDS}s"

shapes=bench/shapes/amx_block_cpu.txt
lowbit=build-device/cli/lowbit
: > "$OUT/lowbit_cpu.jsonl"
grep -v '^[[:space:]]*\(#\|$\)' "$shapes" | while read -r descriptor; do
  timeout 15 "$lowbit" bench --json --no-tune --threads 16 --db build-device/empty.sqlite --desc "$descriptor" \
    2>> "$OUT/lowbit_cpu.err" |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['policy']='heuristic'; print(json.dumps(r))" \
    >> "$OUT/lowbit_cpu.jsonl"
done
echo "lowbit bench done at ${SECONDS}s"
timeout 60 python3 bench/cpu_torch_baselines.py "$shapes" --threads 16 > "$OUT/torch_cpu.jsonl" 2> "$OUT/torch_cpu.err"
python3 bench/cpu_compare.py "$OUT/lowbit_cpu.jsonl" "$OUT/torch_cpu.jsonl" --policy heuristic > "$OUT/cpu_table.md" 2>&1
cat "$OUT/cpu_table.md"
echo "torch done at ${SECONDS}s"

every=()
# M=256 first (the rows furthest behind torch), in case the time bound cuts the list.
while read -r descriptor; do every+=(--desc "$descriptor"); done < <(grep -v '^[[:space:]]*\(#\|$\)' "$shapes" | tac)
timeout "${LOWBIT_EVERY_SECONDS:-90}" build-device/bench/lowbit_x86_isa_bench --every --threads 16 --isa amx \
  "${every[@]}" > "$OUT/amx_every.txt" 2>&1
cat "$OUT/amx_every.txt"
echo "all done at ${SECONDS}s"
