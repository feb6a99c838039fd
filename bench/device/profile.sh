#!/usr/bin/env bash
# Nsight Compute reports of chosen CUDA candidates, for the "why is it slow" questions in
# docs/benchmarks.md. Run after run.sh built build-device (same call). Writes $OUT/ncu_*.txt.
# Usage: bench/device/profile.sh DESCRIPTOR CANDIDATE_INDEX NAME [FAMILY]
#   CANDIDATE_INDEX: position in GemvGenerator::candidates (gemv w2u2=0 ... gemv_mma w8u8=17), or
#   with FAMILY (e.g. gemv_mma) in that family's candidates alone (lowbit_cuda_bench --family:
#   only that family is compiled and launched, so the profile comes sooner).
set -uo pipefail
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
