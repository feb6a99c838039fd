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
#   utilization (tensor pipe included), L2 and shared throughput, scheduler and stall figures
#   (the report lands as $OUT/ncu_NAME.ncu-rep, its details and raw pages beside it).
#   LOWBIT_PROFILE_SOURCE=1 adds the SASS page: every instruction with its executions and its
#   sampled warp stalls ($OUT/ncu_NAME_sass.csv; sampling every 32 cycles), which separates the
#   producer's and the consumers' code and, in the consumers', the waits from the dequantization.
# Or:    bench/device/profile.sh --torch DESCRIPTOR NAME
#   cuBLAS's kernel for the descriptor's M, N, K and act (torch's F.linear, the baseline of
#   torch_baselines.py) with the same sections and raw figures, for a side-by-side.
set -uo pipefail
# The tensor pipe's name for wgmma where this Nsight Compute knows one (Hopper: gmma), else hmma's.
tensor_metrics() {
  local names
  names=$(ncu --query-metrics --chip gh100 2>/dev/null | awk '{print $1}' | grep -E '^sm__pipe_tensor_op_gmma_cycles_active$|^sm__inst_executed_pipe_tensor_op_gmma$' | tr '\n' ' ')
  local list=""
  for name in $names; do list+=",$name.avg.pct_of_peak_sustained_active,$name.sum"; done
  echo "$list"
}
# The summary of a report's raw page (profile_summary RAW_FILE).
profile_summary() {
  grep -E "gpu__time_duration.sum|sm__cycles_elapsed.avg.per_second|sm__cycles_active.avg |smsp__inst_executed.sum |sm__pipe_tensor_op_(hmma|gmma)_cycles_active.avg.pct_of_peak_sustained_(active|elapsed)|sm__inst_executed_pipe_tensor_op_gmma|lts__t_bytes.sum |lts__t_bytes.sum.per_second|lts__throughput.avg.pct|l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct|l1tex__data_bank_(reads|writes).avg.pct|l1tex__throughput.avg.pct|smsp__issue_active.avg.pct|smsp__warps_eligible.avg.per_cycle_active|smsp__warps_active.avg.per_cycle_active|launch__registers_per_thread |dram__throughput.avg.pct|sm__throughput.avg.pct|smsp__inst_executed_pipe_(alu|fma|fmaheavy|fp16|lsu|uniform).avg.pct|sm__inst_executed_pipe_(alu|fma|fmaheavy|fp16|lsu|uniform)_realtime.avg.pct" \
    "$1" | awk '{print $1, $(NF-1), $NF}' | head -40
  grep -E "smsp__average_warps_issue_stalled_.*_per_issue_active.ratio" "$1" |
    awk '$NF + 0 >= 0.05 {print $1, $NF}' | sort -k2 -g -r | head -14
}
if [ "$1" = --torch ]; then
  descriptor=$2 name=$3
  # F.linear in the descriptor's act on random bf16/fp16 data: 5 calls, the 5th profiled.
  ncu -k regex:'gemm|nvjet|xmma|cutlass|sm90' --launch-skip 4 --launch-count 1 --clock-control "${LOWBIT_PROFILE_CLOCKS:-none}" \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section WarpStateStats --section SchedulerStats --section LaunchStats \
    --metrics "smsp__inst_executed.sum,lts__t_bytes.sum,lts__t_bytes.sum.per_second,sm__cycles_elapsed.avg.per_second,sm__cycles_active.avg$(tensor_metrics)" \
    -o "$OUT/ncu_$name" python3 -c "
import torch, torch.nn.functional as F
fields = dict(item.split('=', 1) for item in '$descriptor'.split(','))
dtype = torch.bfloat16 if fields.get('act', 'bf16') == 'bf16' else torch.float16
m, n, k = int(fields['m']), int(fields['n']), int(fields['k'])
x = torch.randn(m, k, device='cuda', dtype=dtype)
w = torch.randn(n, k, device='cuda', dtype=dtype)
for _ in range(5):
    F.linear(x, w)
torch.cuda.synchronize()
" > "$OUT/ncu_$name.log" 2>&1
  ncu -i "$OUT/ncu_$name.ncu-rep" --page raw > "$OUT/ncu_${name}_raw.txt" 2>&1
  echo "== $name (cuBLAS through F.linear, launch 4)"
  grep -E "==ERROR==|==WARNING==|==PROF== Profiling" "$OUT/ncu_$name.log" | head -3
  grep -m1 -E "^  [a-zA-Z_0-9]+.*\(" "$OUT/ncu_${name}_raw.txt"
  profile_summary "$OUT/ncu_${name}_raw.txt"
  exit 0
fi
if [ "$1" = --variant ]; then
  descriptor=$2 variant=$3 name=$4
  shapes=$(mktemp)
  echo "$descriptor" > "$shapes"
  # Launch 0 checks against the reference, 1..3 warm up: skip 4 (a split's reduce kernel is
  # named lowbit_split_reduce and not counted). LOWBIT_PROFILE_LAUNCH=0 takes the check launch
  # instead: the one launch a variant that fails its check still makes (a scratch build's
  # timing-only change, e.g. a stream-K fix-up left out). LOWBIT_PROFILE_CLOCKS=base locks the
  # clocks as Nsight Compute does by default; the default here, none, leaves them free so the
  # duration compares with the bench's (1.43 GHz locked against ~1.75 boost on the H100).
  # Sections kept to what separates "tensor pipe / issue / L2 / shared / stalls" (each kernel is
  # replayed once per pass: ~40 passes).
  source_sections=()
  [ "${LOWBIT_PROFILE_SOURCE:-0}" = 1 ] && source_sections=(--section SourceCounters --section InstructionStats --warp-sampling-interval 0)
  ncu -k regex:lowbit_kernel --launch-skip "${LOWBIT_PROFILE_LAUNCH:-4}" --launch-count 1 \
    --clock-control "${LOWBIT_PROFILE_CLOCKS:-none}" \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section WarpStateStats --section SchedulerStats --section LaunchStats "${source_sections[@]}" \
    --metrics "smsp__inst_executed.sum,lts__t_bytes.sum,lts__t_bytes.sum.per_second,lts__t_sectors.sum.per_second,sm__cycles_elapsed.avg.per_second,sm__cycles_active.avg$(tensor_metrics)" \
    -o "$OUT/ncu_$name" \
    build-device/bench/lowbit_cuda_bench "$shapes" --repeats 3 --variant "$variant" > "$OUT/ncu_$name.log" 2>&1
  ncu -i "$OUT/ncu_$name.ncu-rep" --page details --print-details all > "$OUT/ncu_$name.txt" 2>&1
  ncu -i "$OUT/ncu_$name.ncu-rep" --page raw > "$OUT/ncu_${name}_raw.txt" 2>&1
  [ "${LOWBIT_PROFILE_SOURCE:-0}" = 1 ] &&
    ncu -i "$OUT/ncu_$name.ncu-rep" --page source --csv --print-source sass > "$OUT/ncu_${name}_sass.csv" 2>&1
  echo "== $name ($variant, launch ${LOWBIT_PROFILE_LAUNCH:-4}, clocks ${LOWBIT_PROFILE_CLOCKS:-none})"
  grep -E "==ERROR==|==WARNING==" "$OUT/ncu_$name.log" | head -3
  # The raw figures: duration and clock, instructions, tensor pipe (wgmma counts as hmma's pipe
  # on the H100, and as gmma's where this Nsight Compute names it), L2 and shared throughput,
  # issue activity and the pipes' shares, and the stall reasons over 0.05 cycles per issued
  # instruction.
  profile_summary "$OUT/ncu_${name}_raw.txt"
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
