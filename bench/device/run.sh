#!/usr/bin/env bash
# One call on the lent GPU machine (H100 + Xeon with AMX): build, run every test (the CUDA
# kernels against the reference on the GPU too), benchmark lowbit's CUDA kernels against
# torch's baselines in the same call, and record the x86 demo on the Xeon. Everything lands
# in $OUT. Dependencies travel as extracted Debian packages in .deps/ (the machine reaches no
# package registry): see docs/benchmarks.md for the command that sends it.
# Usage: bench/device/run.sh [SOURCE_DIR]  (default: this checkout; a committed snapshot made
# with `git archive HEAD | tar -x -C .snapshot` keeps uncommitted edits out of the numbers)
# LOWBIT_DEVICE_PARTS=cuda runs only the CUDA tests and benchmark (a shorter call); =profile
# adds Nsight Compute reports of two candidates (bench/device/profile.sh). LOWBIT_DEVICE_TESTS=REGEX
# builds and runs only the ctest tests matching REGEX, then stops (a quick check while developing);
# LOWBIT_DEVICE_TESTS_EXCLUDE=REGEX leaves those matching it out (every test in two calls on a
# freshly started machine, whose cold compiles no longer fit one: 'CudaWgmma\.' in one call, then
# '.' excluding it in the next).
# LOWBIT_DEVICE_PARTS=cpu_torch builds only the CLI and the problem dump, then runs the x86
# comparison with torch on the Xeon (bench/cpu_compare.sh) and lowbit's thread scaling at M=1
# and M=16 (`lowbit bench --threads 1..16`), and stops. LOWBIT_DEVICE_PARTS=formats: the
# compute-sanitizer sample and issue 4's format rows (below; the release call runs them too when
# time is left; LOWBIT_DEVICE_RELEASE_CPU=0 leaves the release call's Xeon table out to make that
# time). LOWBIT_DEVICE_PARTS=cpu_policy: the Xeon's heuristic against tuned (below).
# LOWBIT_DEVICE_BENCH: see below (LOWBIT_DEVICE_BENCH_SECONDS bounds its lowbit part, default 400). LOWBIT_DEVICE_TORCH_SECONDS bounds torch_baselines.py in the
# sweep, the formats part and the bench mode (default 180: gemlite's first call on each row compiles its kernel). LOWBIT_DEVICE_FLUSH=read|write|rotate: the L2 protocol of every
# CUDA timing, lowbit's and torch's alike (bench/l2_flush.h; default read). The release call also
# times the floor shapes at M <= 16 under both other protocols (with read: write, the memset of the
# tables before 2026-11-22's session 7, and rotate, the back-to-back run), for a side-by-side.
set -uo pipefail
deps="$PWD/.deps/usr"  # the checkout root: where the call starts
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${1:-.}" || exit 1
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
export PYTHONPATH="$deps/../python${PYTHONPATH:+:$PYTHONPATH}"  # gemlite, torch_baselines.py's third baseline (prepare.sh)
jobs=$(nproc)
# LOWBIT_DEVICE_FLUSH may name several protocols, space-separated: the LOWBIT_DEVICE_BENCH mode
# times its shapes under each in turn (one table after the other); every other step takes the first.
flushes=${LOWBIT_DEVICE_FLUSH:-read}
flush=${flushes%% *}

# On exit every file under $OUT but the tables, the test and sanitizer logs and the machine
# description goes into raw.tar.gz (pack_outputs.sh).
source "$script_dir/pack_outputs.sh"
trap 'pack_outputs "^(cuda_table\.txt|cuda_formats_table\.txt|cuda_floor_other_table\.txt|cpu_table\.md|ctest\.log|sanitizer\.log|machine\.txt|raw\.tar\.gz|lowbit_marlin\.so)$"' EXIT

{ date -u; nvidia-smi; g++ --version | head -1; cmake --version | head -1; nvcc --version | tail -1; lscpu; } \
  > "$OUT/machine.txt" 2>&1
targets=()
[ "${LOWBIT_DEVICE_PARTS:-}" = cpu_torch ] && targets=(--target lowbit lowbit_cpu_problem_dump lowbit_ceilings)
[ "${LOWBIT_DEVICE_PARTS:-}" = cpu_policy ] && targets=(--target lowbit lowbit_policy_ab_bench)
# vLLM's Marlin kernels, one of torch_baselines.py's baselines, compile beside lowbit's build in the
# calls that time against torch (bench/device/marlin_baseline.py, from the sources prepare.sh
# fetched; a no-op when build-device/marlin is up to date). The build is waited for before any
# timing, so it never shares the CPU with one. LOWBIT_DEVICE_MARLIN=0 leaves it out; a failed
# build leaves the baseline missing (marlin_build.log says why), not the call.
# The library it makes comes back as $OUT/lowbit_marlin.so; copied to .deps/marlin/built/ here and
# carried, later calls on fresh machines load it instead of compiling (about 3 minutes).
marlin_pid=
case "${LOWBIT_DEVICE_PARTS:-}" in cpu_torch|cpu_policy) ;; *)
  if [ "${LOWBIT_DEVICE_MARLIN:-1}" = 1 ] && [ -f "$deps/../marlin/vllm-0.20.0" ] &&
     { [ -z "${LOWBIT_DEVICE_TESTS:-}" ] || [ -n "${LOWBIT_DEVICE_BENCH:-}" ]; }; then
    if [ -f "$deps/../marlin/built/lowbit_marlin.so" ]; then
      mkdir -p build-device/marlin && cp "$deps/../marlin/built/lowbit_marlin.so" build-device/marlin/
      echo "Marlin: the carried build (.deps/marlin/built/lowbit_marlin.so)" > "$OUT/marlin_build.log"
    else
      { timeout 420 python3 bench/device/marlin_baseline.py build-device/marlin --sources "$deps/../marlin" &&
          cp build-device/marlin/lowbit_marlin.so "$OUT/"; } > "$OUT/marlin_build.log" 2>&1 &
      marlin_pid=$!
    fi
  fi ;;
esac
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" -DLOWBIT_WERROR=OFF \
  > "$OUT/build.log" 2>&1 &&
  cmake --build build-device -j "$jobs" "${targets[@]}" >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
if [ -n "$marlin_pid" ]; then
  wait "$marlin_pid" || echo "the Marlin baseline did not build (marlin_build.log); its columns stay empty" >&2
  tail -1 "$OUT/marlin_build.log"
fi

if [ "${LOWBIT_DEVICE_PARTS:-}" = cpu_torch ]; then
  { build-device/cli/lowbit info; build-device/bench/lowbit_ceilings; } > "$OUT/cpu_machine.txt" 2>&1
  for m in 16 1; do
    for threads in 1 2 4 8 16; do
      build-device/cli/lowbit bench --json --threads "$threads" --db build-device/threads.sqlite \
        --desc "m=$m,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16" 2>> "$OUT/threads.err" |
        python3 -c "import json, sys; print(json.dumps(json.load(sys.stdin)))" >> "$OUT/threads.jsonl"
    done
  done
  # Outputs stay in build-device (the call returns few files); the log carries every row.
  PYTHON=python3 bash bench/cpu_compare.sh build-device "$(nproc)" build-device/cpu_compare > "$OUT/cpu_compare.log" 2>&1
  tail -45 "$OUT/cpu_compare.log"
  exit 0
fi

# ctest starts the longest tests first when it has their durations: bench/device/ctest_costs.txt
# holds them from a release call (ctest's own CTestCostData.txt format: name, runs, seconds), so
# the slow GPU compile-and-check tests no longer start last and run past the step's bound. Each
# call returns ctest's updated copy in raw.tar.gz (ctest_costs.txt) to refresh the file with.
seed_test_costs() {
  mkdir -p build-device/Testing/Temporary
  cp bench/device/ctest_costs.txt build-device/Testing/Temporary/CTestCostData.txt 2>/dev/null || true
}
keep_test_costs() {
  cp build-device/Testing/Temporary/CTestCostData.txt "$OUT/ctest_costs.txt" 2>/dev/null || true
}
# ctest's parallel level in every test mode: a test per hardware thread. What once oversubscribed
# the cores at -j 8 were the CUDA tests' NVRTC compiles (a thread per core in each test); they
# now take one of a machine-wide set of slots, a compile per hardware thread whichever test runs
# it (tests/cuda/compile_slots.h, the slot files in the directory below), and a GPU check takes
# milliseconds, so more tests at once only fill the cores that one test's serial checks and
# another's waits for a slot leave idle.
test_jobs=$jobs
export LOWBIT_TEST_COMPILE_SLOT_DIR="$PWD/build-device/compile-slots"

# Seconds left before LOWBIT_DEVICE_DEADLINE (seconds since this script started; default 570,
# under the device tool's 600 s per call), capped at $1: each step below gets that as its
# timeout, so a slow step shortens the later ones instead of losing the call's results.
within() {
  local left=$(( ${LOWBIT_DEVICE_DEADLINE:-570} - SECONDS ))
  [ "$left" -gt "$1" ] && left=$1
  [ "$left" -lt 1 ] && left=1
  echo "$left"
}

# LOWBIT_DEVICE_PARTS=cpu_policy: the Xeon's no-tune heuristic against its tuned winner, paired in
# one process (bench/heuristic_vs_tuned.sh with ROUNDS=0), every thread, on each shapes file of
# LOWBIT_DEVICE_POLICY_SHAPES (default the CPU sweep) in turn, then stop.
if [ "${LOWBIT_DEVICE_PARTS:-}" = cpu_policy ]; then
  for shapes in ${LOWBIT_DEVICE_POLICY_SHAPES:-bench/shapes/llama3_8b_cpu_sweep.txt}; do
    name=$(basename "$shapes" .txt)
    ROUNDS=0 PAIRS=${PAIRS:-11} RUNS=${RUNS:-3} timeout "$(within 570)" \
      bash bench/heuristic_vs_tuned.sh build-device "$(nproc)" "$OUT/policy_$name" "$shapes" > "$OUT/policy_$name.log" 2>&1
    tail -14 "$OUT/policy_$name.log"
  done
  exit 0
fi

# lowbit's CUDA candidates and torch's baselines on one shapes file under one L2 flush, each step
# bounded (within), joined by compare.py into $OUT/TABLE; the JSON lines and stderr lie beside it
# as lowbit_TAG.* and torch_TAG.*.
# Usage: bench_against_torch TAG SHAPES FLUSH TABLE LOWBIT_SECONDS TORCH_SECONDS [lowbit_cuda_bench options]
bench_against_torch() {
  local tag=$1 shapes=$2 flush_mode=$3 table=$4 lowbit_seconds=$5 torch_seconds=$6
  shift 6
  timeout "$(within "$lowbit_seconds")" build-device/bench/lowbit_cuda_bench "$shapes" --flush "$flush_mode" "$@" \
    > "$OUT/lowbit_$tag.jsonl" 2> "$OUT/lowbit_$tag.err"
  timeout "$(within "$torch_seconds")" python3 bench/device/torch_baselines.py "$shapes" --flush "$flush_mode" \
    > "$OUT/torch_$tag.jsonl" 2> "$OUT/torch_$tag.err"
  python3 bench/device/compare.py "$OUT/lowbit_$tag.jsonl" "$OUT/torch_$tag.jsonl" > "$OUT/$table" 2>&1
}

# compute-sanitizer (memcheck on a sample of every family's checks, racecheck on the
# shared-memory families) and the format rows of issue 4's benchmark (fp16 at every M; 2, 3 and
# 8 bits at M=1 and 16) against torch's baselines in the same call.
formats_part() {
  local sanitizer sample filter tool
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  sample='Bits/CudaKernelsBits.EveryFormatAndKTail/w4:CudaMma.NoBiasAndOddN:CudaDequantGemm.OddShapesAgainstTheReference'
  sample+=':CudaWgmma.EverySplitOfSplitShapes:CudaWgmma.SplitRunsAreBitIdentical:CudaOperandAlignment.*'
  sample+=':CudaWgmma.StreamKSampleForTheSanitizers'
  # LOWBIT_DEVICE_SANITIZER=0 leaves the sanitizers out (a call that times the format rows only).
  for tool in memcheck racecheck; do
    [ "${LOWBIT_DEVICE_SANITIZER:-1}" = 0 ] && break
    filter=$sample
    [ "$tool" = racecheck ] && filter='CudaMma.NoBiasAndOddN:Bits/CudaKernelsBits.TensorCoreFamilyUpToSixteenRows/w4:CudaWgmma.SplitRunsAreBitIdentical:CudaWgmma.StreamKSampleForTheSanitizers'
    echo "== compute-sanitizer --tool $tool, tests $filter" >> "$OUT/sanitizer.log"
    timeout "$(within 90)" "$sanitizer" --tool "$tool" --error-exitcode 99 build-device/tests/cuda/lowbit_cuda_tests \
      --gtest_filter="$filter" >> "$OUT/sanitizer.log" 2>&1
    echo "== $tool exit status $? (124: stopped by its time limit)" >> "$OUT/sanitizer.log"
  done
  grep -E "^== |ERROR SUMMARY|PASSED|FAILED" "$OUT/sanitizer.log" | tail -20
  bench_against_torch formats bench/shapes/llama3_8b_cuda_formats.txt "$flush" cuda_formats_table.txt 250 "${LOWBIT_DEVICE_TORCH_SECONDS:-180}" --repeats 10
  cat "$OUT/cuda_formats_table.txt"
}

# The release call: every test, the CUDA sweep against torch, lowbit's no-tune CPU kernels against
# torch on the Xeon, then, with the time left, the formats part; each step bounded (within) so
# that a slow one leaves the later ones time, and every result written to $OUT as soon as it exists.
# LOWBIT_DEVICE_RELEASE_TESTS=0 leaves the tests out: on a freshly started machine the whole suite
# takes about 320 s (NVRTC compiles cold), more than this call can give it, so it runs as its own
# call first (CTEST_TEST_TIMEOUT=400 LOWBIT_DEVICE_TESTS='.'; docs/benchmarks.md, session 6).
if [ "${LOWBIT_DEVICE_PARTS:-}" = release ]; then
  if [ "${LOWBIT_DEVICE_RELEASE_TESTS:-1}" != 0 ]; then
    seed_test_costs
    (cd build-device && timeout "$(within 200)" ctest -j "$test_jobs" --timeout 150 --output-on-failure) > "$OUT/ctest.log" 2>&1
    keep_test_costs
    grep -E "tests passed|\(Failed\)|\(Timeout\)|Not Run" "$OUT/ctest.log" | tail -20
  fi
  # LOWBIT_DEVICE_SWEEP_SECONDS bounds lowbit's part of the sweep (default 220; session 10's call
  # was cut before its last M = 4096 rows: 300 lets it finish when the floor tables may run short).
  bench_against_torch sweep bench/shapes/llama3_8b_cuda_sweep.txt "$flush" cuda_table.txt \
    "${LOWBIT_DEVICE_SWEEP_SECONDS:-220}" "${LOWBIT_DEVICE_TORCH_SECONDS:-180}" --repeats 15
  tail -40 "$OUT/cuda_table.txt"
  # The floor shapes at M <= 16 again under each other protocol, lowbit and torch alike; both
  # tables in one file (the call returns at most 8 files; the parts go into raw.tar.gz).
  : > "$OUT/cuda_floor_other_table.txt"
  for other in read write rotate; do
    [ "$other" = "$flush" ] && continue
    bench_against_torch "floor_$other" bench/shapes/gemv3_floor.txt "$other" "floor_$other.txt" 90 40 --repeats 15
    cat "$OUT/floor_$other.txt" >> "$OUT/cuda_floor_other_table.txt"
  done
  cat "$OUT/cuda_floor_other_table.txt"
  # LOWBIT_DEVICE_RELEASE_CPU=0 leaves the Xeon's table out (a call whose x86 kernels are those of
  # a measured call already), so that the formats part fits.
  if [ "${LOWBIT_DEVICE_RELEASE_CPU:-1}" != 0 ]; then
    threads=$(nproc)
    : > "$OUT/lowbit_cpu.jsonl"
    grep -v '^[[:space:]]*\(#\|$\)' bench/shapes/llama3_8b_cpu_sweep.txt | while read -r descriptor; do
      timeout "$(within 30)" build-device/cli/lowbit bench --json --no-tune --threads "$threads" \
        --db build-device/empty.sqlite --desc "$descriptor" 2>> "$OUT/lowbit_cpu.err" |
        python3 -c "import json,sys; r=json.load(sys.stdin); r['policy']='heuristic'; print(json.dumps(r))" \
        >> "$OUT/lowbit_cpu.jsonl"
    done
    timeout "$(within 120)" python3 bench/cpu_torch_baselines.py bench/shapes/llama3_8b_cpu_sweep.txt \
      --threads "$threads" > "$OUT/torch_cpu.jsonl" 2> "$OUT/torch_cpu.err"
    python3 bench/cpu_compare.py "$OUT/lowbit_cpu.jsonl" "$OUT/torch_cpu.jsonl" --policy heuristic \
      > "$OUT/cpu_table.md" 2>&1
    cat "$OUT/cpu_table.md"
  fi
  echo "release part done at ${SECONDS} s"
  [ "$SECONDS" -lt $(( ${LOWBIT_DEVICE_DEADLINE:-570} - 60 )) ] && formats_part
  exit 0
fi

if [ "${LOWBIT_DEVICE_PARTS:-}" = formats ]; then
  formats_part
  exit 0
fi

if [ -n "${LOWBIT_DEVICE_TESTS:-}" ]; then
  seed_test_costs
  exclude=()
  [ -n "${LOWBIT_DEVICE_TESTS_EXCLUDE:-}" ] && exclude=(-E "$LOWBIT_DEVICE_TESTS_EXCLUDE")
  (cd build-device && ctest -j "$test_jobs" --output-on-failure -R "$LOWBIT_DEVICE_TESTS" "${exclude[@]}") > "$OUT/ctest.log" 2>&1
  status=$?
  keep_test_costs
  grep -E "tests passed|FAILED|Failed|Skipped|Not Run" "$OUT/ctest.log" | tail -30
  [ -z "${LOWBIT_DEVICE_BENCH:-}" ] && exit $status
fi

# LOWBIT_DEVICE_BENCH="SHAPES_FILE [lowbit_cuda_bench options]": time lowbit's CUDA candidates
# and torch's two baselines on those shapes in this call, print the side-by-side table, and stop
# (after the tests of LOWBIT_DEVICE_TESTS when both are set). A quick loop while tuning a family.
if [ -n "${LOWBIT_DEVICE_BENCH:-}" ]; then
  read -r -a bench_args <<< "$LOWBIT_DEVICE_BENCH"
  if [ "$flushes" = "$flush" ]; then
    bench_against_torch bench "${bench_args[0]}" "$flush" cuda_table.txt "${LOWBIT_DEVICE_BENCH_SECONDS:-400}" "${LOWBIT_DEVICE_TORCH_SECONDS:-180}" "${bench_args[@]:1}"
    cat "$OUT/cuda_table.txt"
    tail -3 "$OUT/lowbit_bench.err"
    exit 0
  fi
  # Several protocols: each its own tables (into raw.tar.gz), joined in cuda_table.txt.
  : > "$OUT/cuda_table.txt"
  for mode in $flushes; do
    bench_against_torch "bench_$mode" "${bench_args[0]}" "$mode" "table_$mode.txt" 400 "${LOWBIT_DEVICE_TORCH_SECONDS:-180}" "${bench_args[@]:1}"
    cat "$OUT/table_$mode.txt" >> "$OUT/cuda_table.txt"
    tail -n 3 "$OUT/lowbit_bench_$mode.err" "$OUT/torch_bench_$mode.err"
  done
  cat "$OUT/cuda_table.txt"
  exit 0
fi

parts=${LOWBIT_DEVICE_PARTS:-all}
filter=()
[ "$parts" != all ] && filter=(-R "Cuda")
seed_test_costs
(cd build-device && ctest -j "$test_jobs" --output-on-failure "${filter[@]}") > "$OUT/ctest.log" 2>&1
keep_test_costs
grep -E "tests passed|FAILED|Failed|Skipped" "$OUT/ctest.log" | tail -12

bench_against_torch gemv bench/shapes/llama3_8b_cuda_gemv.txt "$flush" cuda_table.txt 400 100
cat "$OUT/cuda_table.txt"
tail -3 "$OUT/lowbit_gemv.err" "$OUT/torch_gemv.err"

if [ "$parts" = profile ]; then
  bash bench/device/profile.sh m=8,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0 15 mma_m8
  bash bench/device/profile.sh m=1,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0 1 gemv_m1
fi
[ "$parts" != all ] && exit 0
{ build-device/cli/lowbit info; build-device/bench/lowbit_ceilings;
  bash bench/demo.sh build-device; } > "$OUT/x86_demo.txt" 2>&1
tail -22 "$OUT/x86_demo.txt"
