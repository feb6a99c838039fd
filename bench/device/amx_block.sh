#!/usr/bin/env bash
# One device call for the AMX-BF16 kernels on the Xeon (docs/benchmarks.md): builds only the x86
# tests, the CLI and the ISA bench, runs the AMX tests, then at 16 threads, in interleaved
# rounds (the Xeon is noisy: the same kernel moved 2x within one call), every result in $OUT as
# soon as it exists:
#   round r = (a) a few AMX-BF16 candidates on every shape (lowbit_x86_isa_bench --every --only:
#   the heuristic's blocks with and without scaled_decode), then (b) torch's bf16 linear on the
#   same shapes (bench/cpu_torch_baselines.py's timing, rotate-median:1; torch's int4 kernel is
#   left out: it trails by 3-10x and costs most of a round).
# Rounds start while the call is younger than LOWBIT_ROUNDS_UNTIL seconds (default 200), at most
# LOWBIT_ROUNDS (default 3); amx_rounds.md then holds, per shape and variant, the median over
# the rounds and the ratio torch bf16 / lowbit.
# Usage (from the checkout root): bash SNAPSHOT/bench/device/amx_block.sh SNAPSHOT
# LOWBIT_DEVICE_TESTS=REGEX picks the ctest tests (default Amx); LOWBIT_AMX_SHAPES the shapes file
# (default bench/shapes/amx_scaled_cpu.txt); LOWBIT_AMX_ONLY the variant name suffixes.
set -uo pipefail
deps="$PWD/.deps/usr"
cd "${1:-.}" || exit 1
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
# The device tool returns at most 8 files: on exit every file but the tables, the test log and
# the machine description goes into raw.tar.gz.
pack_outputs() {
  local list
  list=$(mktemp)
  (cd "$OUT" && find . -maxdepth 1 -type f ! -name amx_rounds.md ! -name breakdown.txt ! -name ctest.log \
    ! -name machine.txt ! -name raw.tar.gz -printf '%f\n' > "$list" && tar -czf raw.tar.gz -T "$list" --remove-files)
  rm -f "$list"
}
trap pack_outputs EXIT
{ date -u; lscpu; } > "$OUT/machine.txt" 2>&1
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
  -DLOWBIT_WERROR=OFF > "$OUT/build.log" 2>&1 &&
  cmake --build build-device -j "$(nproc)" --target lowbit_x86_tests lowbit lowbit_x86_isa_bench \
    >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build done at ${SECONDS}s"
build-device/cli/lowbit info > "$OUT/lowbit_info.txt" 2>&1

(cd build-device && timeout 100 ctest -j 12 --timeout 95 --output-on-failure -R "${LOWBIT_DEVICE_TESTS:-Amx}") \
  > "$OUT/ctest.log" 2>&1
grep -E "tests passed|Failed|Timeout|Not Run|worst normalised" "$OUT/ctest.log" | tail -20
echo "tests done at ${SECONDS}s"

# LOWBIT_AMX_BREAKDOWN="N K M1,M2 VARIANT...": bench/device/amx_breakdown.cpp built against the
# build's libraries and run once (the tdpbf16ps ceiling, then time against M per variant).
if [ -n "${LOWBIT_AMX_BREAKDOWN:-}" ]; then
  link_dir=build-device/bench/CMakeFiles/lowbit_x86_isa_bench.dir
  flags="$(sed -n 's/^CXX_INCLUDES = //p' "$link_dir/flags.make") $(grep -o -- '-DFMT_SHARED' "$link_dir/flags.make")"
  libs=$(sed 's/.* -o lowbit_x86_isa_bench //' "$link_dir/link.txt")
  # shellcheck disable=SC2086  # word lists on purpose
  (cd build-device/bench && c++ -O2 -std=c++20 $flags ../../bench/device/amx_breakdown.cpp -o amx_breakdown $libs) \
    > "$OUT/breakdown.txt" 2>&1 &&
    timeout 60 build-device/bench/amx_breakdown $LOWBIT_AMX_BREAKDOWN >> "$OUT/breakdown.txt" 2>&1
  cat "$OUT/breakdown.txt"
  echo "breakdown done at ${SECONDS}s"
fi

shapes=${LOWBIT_AMX_SHAPES:-bench/shapes/amx_scaled_cpu.txt}
only=${LOWBIT_AMX_ONLY:-n2m16k1_t16,n2m16k1_t16_kb1024,n2m16k1_t16_kb1024_sd,n2m32k1_t16_kb1024,n2m32k1_t16_kb1024_sd}
descs=()
while read -r descriptor; do descs+=(--desc "$descriptor"); done < <(grep -v '^[[:space:]]*\(#\|$\)' "$shapes")
for round in $(seq 1 "${LOWBIT_ROUNDS:-3}"); do
  [ "$SECONDS" -lt "${LOWBIT_ROUNDS_UNTIL:-200}" ] || break
  # LOWBIT_AMX_UNITS="1 4": the same candidates once per value of LOWBIT_X86_RUNS_PER_THREAD (runs
  # of blocks of panels per thread of the cache-blocked launcher; x86_kernel.cpp), named "... units=U".
  for units in ${LOWBIT_AMX_UNITS:-default}; do
    suffix=$([ "$units" = default ] || echo "_u$units")
    env $([ "$units" = default ] || echo "LOWBIT_X86_RUNS_PER_THREAD=$units") \
      timeout 120 build-device/bench/lowbit_x86_isa_bench --every --threads 16 --isa amx --only "$only" "${descs[@]}" \
      > "$OUT/round${round}_lowbit${suffix}.txt" 2>&1
  done
  timeout 120 python3 - "$shapes" > "$OUT/round${round}_torch.jsonl" 2> "$OUT/round${round}_torch.err" <<'PY'
import json, sys
import torch
sys.path.insert(0, "bench")
import cpu_torch_baselines as baselines
torch.set_num_threads(16)
generator = torch.Generator().manual_seed(0)
for line in open(sys.argv[1]):
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    fields = baselines.descriptor_fields(line)
    m, n, k = int(fields["m"]), int(fields["n"]), int(fields["k"])
    x = torch.rand(m, k, generator=generator).mul(2).sub(1).to(torch.bfloat16)
    median, minimum, repeats = baselines.time_bf16_linear(x, n, k, generator)
    print(json.dumps({"m": m, "n": n, "k": k, "torch_bf16_us": median, "torch_bf16_min_us": minimum}), flush=True)
PY
  echo "round $round done at ${SECONDS}s"
done

# Per shape and variant the median over the rounds, torch's likewise, and torch / lowbit.
python3 - "$OUT" > "$OUT/amx_rounds.md" <<'PY'
import glob, json, re, statistics, sys
out = sys.argv[1]
lowbit, torch_us = {}, {}
for path in sorted(glob.glob(f"{out}/round*_lowbit*.txt")):
    units = re.search(r"_u(\d+)\.txt$", path)
    tag = f" units={units.group(1)}" if units else ""
    pending = []
    for line in open(path):
        candidate = re.match(r"^\s+(x86_\S+)\s+([\d.]+)\s+([\d.]+)", line)
        shape = re.match(r"^m=(\d+),n=(\d+),k=(\d+)\s", line)
        if candidate:
            pending.append((candidate.group(1), float(candidate.group(2))))
        elif shape:
            key = tuple(int(v) for v in shape.groups())
            for name, us in pending:
                lowbit.setdefault(key, {}).setdefault(re.sub(r"^x86_amxbf16_w4g128_", "", name) + tag, []).append(us)
            pending = []
for path in sorted(glob.glob(f"{out}/round*_torch.jsonl")):
    for line in open(path):
        row = json.loads(line)
        torch_us.setdefault((row["m"], row["n"], row["k"]), []).append(row["torch_bf16_us"])
print("| M | N×K | variant | rounds | lowbit µs (median; each round) | torch bf16 µs (median) | × torch bf16 |")
print("| ---: | --- | --- | ---: | --- | ---: | ---: |")
for key in sorted(lowbit, key=lambda key: (key[0], key[1] * key[2])):
    torch_median = statistics.median(torch_us[key]) if key in torch_us else float("nan")
    for name, times in sorted(lowbit[key].items()):
        median = statistics.median(times)
        each = " / ".join(f"{t:.0f}" for t in times)
        print(f"| {key[0]} | {key[1]}×{key[2]} | {name} | {len(times)} | {median:.1f} ({each}) | "
              f"{torch_median:.1f} | {torch_median / median:.2f} |")
PY
cat "$OUT/amx_rounds.md"
echo "all done at ${SECONDS}s"
