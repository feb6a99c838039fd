#!/usr/bin/env bash
# One device call for the AMX decode-once and small-M work (docs/benchmarks.md): builds only
# the x86 tests, the CLI and the ISA bench, runs the AMX tests, then on the Xeon at 16 threads
# (every step bounded by a timeout, every result in $OUT as soon as it exists):
#   1. lowbit's no-tune kernels on bench/shapes/amx_speed_cpu.txt (`lowbit bench --no-tune`);
#   2. torch's bf16 linear and int4 kernel on the same shapes; cpu_compare.py joins them;
#   3. the fastest AMX and AVX-512 candidates at M = 4, 8, 16 (lowbit_x86_isa_bench): where
#      AMX starts to win, for AmxBf16Generator::heuristic_from_rows;
#   4. M=1 on 4096x14336 next to 4096x4096 at 4, 8, 16 threads, and the fastest AVX-512
#      candidate of each (why 4096x14336 ran at 34 GB/s in the release check).
# Usage (from the checkout root): bash SNAPSHOT/bench/device/amx_speed.sh SNAPSHOT
set -uo pipefail
deps="$PWD/.deps/usr"
cd "${1:-.}" || exit 1
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
{ date -u; lscpu; } > "$OUT/machine.txt" 2>&1
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
  -DLOWBIT_WERROR=OFF > "$OUT/build.log" 2>&1 &&
  cmake --build build-device -j "$(nproc)" --target lowbit_x86_tests lowbit lowbit_x86_isa_bench \
    >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build done at ${SECONDS}s"

(cd build-device && timeout 70 ctest -j 12 --timeout 65 --output-on-failure -R "${LOWBIT_DEVICE_TESTS:-Amx}") \
  > "$OUT/ctest.log" 2>&1
grep -E "tests passed|Failed|Timeout|Not Run|blocks decode once" "$OUT/ctest.log" | tail -20
echo "tests done at ${SECONDS}s"

shapes=bench/shapes/amx_speed_cpu.txt
lowbit=build-device/cli/lowbit
: > "$OUT/lowbit_cpu.jsonl"
grep -v '^[[:space:]]*\(#\|$\)' "$shapes" | while read -r descriptor; do
  timeout 15 "$lowbit" bench --json --no-tune --threads 16 --db build-device/empty.sqlite --desc "$descriptor" \
    2>> "$OUT/lowbit_cpu.err" |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['policy']='heuristic'; print(json.dumps(r))" \
    >> "$OUT/lowbit_cpu.jsonl"
done
echo "lowbit bench done at ${SECONDS}s"
timeout 45 python3 bench/cpu_torch_baselines.py "$shapes" --threads 16 > "$OUT/torch_cpu.jsonl" 2> "$OUT/torch_cpu.err"
python3 bench/cpu_compare.py "$OUT/lowbit_cpu.jsonl" "$OUT/torch_cpu.jsonl" --policy heuristic > "$OUT/cpu_table.md" 2>&1
cat "$OUT/cpu_table.md"
echo "torch done at ${SECONDS}s"

small=()
for m in 4 8 16; do
  for shape in n=4096,k=4096 n=28672,k=4096; do small+=(--desc "m=$m,$shape,bits=4,group=128,zero=int,act=bf16"); done
done
timeout 40 build-device/bench/lowbit_x86_isa_bench --threads 16 --isa amx,avx512 "${small[@]}" \
  > "$OUT/isa_small_m.txt" 2>&1
cat "$OUT/isa_small_m.txt"
echo "isa bench done at ${SECONDS}s"

: > "$OUT/m1_threads.jsonl"
for shape in n=4096,k=14336 n=4096,k=4096; do
  for threads in 4 8 16; do
    timeout 8 "$lowbit" bench --json --no-tune --threads "$threads" --db build-device/empty.sqlite \
      --desc "m=1,$shape,bits=4,group=128,zero=int,act=bf16" 2>> "$OUT/m1.err" |
      python3 -c "import json,sys; r=json.load(sys.stdin); r['threads']=$threads; print(json.dumps(r))" \
      >> "$OUT/m1_threads.jsonl"
  done
done
timeout 25 build-device/bench/lowbit_x86_isa_bench --threads 16 --isa avx512 \
  --desc m=1,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16 \
  --desc m=1,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16 > "$OUT/isa_m1.txt" 2>&1
cat "$OUT/m1_threads.jsonl" "$OUT/isa_m1.txt"
echo "all done at ${SECONDS}s"
