#!/usr/bin/env bash
# Where gemv_mma's time goes at small M (issue 4, docs/benchmarks.md "CUDA small M, fifth
# round"): the read-pattern bench (bench/read_pattern_bench.cpp: an empty kernel, a contiguous
# read, gemv_mma's exact loads without decode or math, and the variants themselves, each
# timed after a memset flush, on rotated cold copies, and back to back) on the two floor
# shapes, then Nsight Compute's full set on gemv_mma's M=1 variants and on the read kernels.
# Run after run.sh built build-device (same call), from the source directory. Everything lands
# in $OUT/diagnostic.tar.gz (run.sh packs only what exists before it exits); the summary goes to
# stdout. Usage: bench/device/gemv_diagnostic.sh
set -uo pipefail
OUT=${OUT:-/tmp/lowbit-device-out}
work="$OUT/diagnostic"
mkdir -p "$work"
bench=build-device/bench/lowbit_read_pattern_bench
m1=m=1,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0
for descriptor in "$m1" m=1,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16,device=cuda:0; do
  timeout 60 "$bench" "$descriptor" --repeats 20 >> "$work/read_pattern.jsonl" 2>> "$work/read_pattern.err"
done
python3 - "$work/read_pattern.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    if "descriptor" in row:
        print(f"== {row['descriptor']}: {row['weight_bytes']} weight bytes, {row['copies']} copies, L2 {row['l2_bytes']}")
        continue
    gb = lambda key: f"{row[key + '_gbps']:6.0f}" if row["bytes"] else "     -"
    print(f"{row['kernel']:>12} flushed {row['flushed_us']:6.1f} us {gb('flushed')} GB/s | rotated {row['rotated_us']:6.1f} {gb('rotated')}"
          f" | b2b {row['back_to_back_us']:6.1f} {gb('back_to_back')} | {row['what']}")
PY
tail -3 "$work/read_pattern.err"

# Nsight Compute, full set (ncu flushes L2 before each pass): the metrics the brief names.
summary='gpu__time_duration.sum|dram__throughput.avg.pct_of_peak_sustained_elapsed|dram__bytes_read.sum |dram__bytes_write.sum |lts__t_sector_hit_rate.pct|sm__warps_active.avg.pct_of_peak_sustained_active|smsp__average_warps_issue_stalled_(long_scoreboard|not_selected|short_scoreboard|barrier|wait|mio_throttle|lg_throttle|math_pipe_throttle|selected|no_instruction|drain|membar|branch_resolving|dispatch_stall)_per_issue_active|smsp__issue_active.avg.pct|launch__registers_per_thread|launch__occupancy_limit|sm__maximum_warps_per_active_cycle_pct|l1tex__t_(sectors|requests)_pipe_lsu_mem_global_op_(ld|ldgsts).sum '
profile() {  # NAME, then the command ncu runs
  local name=$1
  shift
  timeout 60 ncu --set full --import-source no -o "$work/ncu_$name" "$@" > "$work/ncu_$name.log" 2>&1
  ncu -i "$work/ncu_$name.ncu-rep" --page details --print-details all > "$work/ncu_$name.txt" 2>&1
  ncu -i "$work/ncu_$name.ncu-rep" --page raw > "$work/ncu_${name}_raw.txt" 2>&1
  echo "== ncu $name"
  grep -E "$summary" "$work/ncu_${name}_raw.txt" | awk '{print $1, $(NF-1), $NF}' | head -40
}
shapes=$(mktemp)
echo "$m1" > "$shapes"
for variant in cuda_sm90a_gemvmma_w4g128_m1_w16u4_k128 cuda_sm90a_gemvmma_w4g128_m1_w8u2; do
  # Launch 0 checks against the reference, 1..3 warm up: the first timed launch.
  profile "${variant##*_m1_}" -k regex:lowbit_kernel --launch-skip 4 --launch-count 1 \
    build-device/bench/lowbit_cuda_bench "$shapes" --repeats 3 --variant "$variant"
done
for kernel in pattern_read direct_read stream_read; do
  profile "$kernel" -k "regex:^$kernel\$" --launch-skip 4 --launch-count 1 "$bench" "$m1" --repeats 1
done
tar -czf "$OUT/diagnostic.tar.gz" -C "$OUT" diagnostic && rm -rf "$work"
