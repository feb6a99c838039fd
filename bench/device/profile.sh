#!/usr/bin/env bash
# Nsight Compute reports of chosen CUDA candidates, for the "why is it slow" questions in
# docs/benchmarks.md. Run after run.sh built build-device (same call). Writes $OUT/ncu_*.txt.
# Usage: bench/device/profile.sh DESCRIPTOR CANDIDATE_INDEX NAME [FAMILY]
#   CANDIDATE_INDEX: position in GemvGenerator::candidates (gemv w2u2=0 ... gemv_mma w8u8=17), or
#   with FAMILY (e.g. gemv_mma) in that family's candidates alone (lowbit_cuda_bench --family:
#   only that family is compiled and launched, so the profile comes sooner).
# Or:    bench/device/profile.sh --variant DESCRIPTOR VARIANT_NAME NAME
#   the one candidate of that full name (lowbit_cuda_bench --variant, e.g.
#   cuda_sm90a_wgmma_w4g128_m256_n128m256k64_s4), its first timed launch, with the pipe
#   utilization (tensor pipe included), instruction and scheduler sections too.
set -uo pipefail
if [ "$1" = --variant ]; then
  descriptor=$2 variant=$3 name=$4
  shapes=$(mktemp)
  echo "$descriptor" > "$shapes"
  # Launch 0 checks against the reference, 1..3 warm up: skip 4 (a split's reduce kernel is
  # named lowbit_split_reduce and not counted).
  ncu -k regex:lowbit_kernel --launch-skip 4 --launch-count 1 \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section WarpStateStats --section SchedulerStats --section InstructionStats \
    --section Occupancy --section LaunchStats --print-details all \
    build-device/bench/lowbit_cuda_bench "$shapes" --repeats 3 --variant "$variant" > "$OUT/ncu_$name.txt" 2>&1
  echo "== $name ($variant)"
  grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|Issued Warp Per|No Eligible|Active Warps Per|Eligible Warps|Warp Cycles Per Issued|Registers Per|Executed Ipc|Tensor|Achieved Occupancy|Shared Memory Throughput|L2 Cache Throughput|DRAM Throughput|Stall|stall|cycles being stalled" \
    "$OUT/ncu_$name.txt" | head -40
  exit 0
fi
descriptor=$1 index=$2 name=$3
family_args=()
[ -n "${4:-}" ] && family_args=(--family "$4")
shapes=$(mktemp)
echo "$descriptor" > "$shapes"
# lowbit_cuda_bench launches each candidate 1 (check) + 3 (warm-up) + 10 (timed) times here.
launches_per_candidate=14
ncu -k regex:lowbit_kernel --launch-skip $((index * launches_per_candidate + 4)) --launch-count 1 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
  --section Occupancy --section LaunchStats --section SchedulerStats --section InstructionStats \
  build-device/bench/lowbit_cuda_bench "$shapes" --repeats 10 "${family_args[@]}" > "$OUT/ncu_$name.txt" 2>&1
grep -E "Executed Instructions|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issued Warp|Stall|One or More Eligible" \
  "$OUT/ncu_$name.txt" | head -32
