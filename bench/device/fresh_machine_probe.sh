#!/usr/bin/env bash
# Why a freshly started lent machine runs its first heavy job slower (docs/benchmarks.md,
# session 19: the first full tune 144-178 s, the next 58 s): the same `lowbit tune` (compile-bound:
# NVRTC on every core) into a new cache file, twice in a row, each with the machine's CPU time
# split (user, system, iowait, steal, from /proc/stat), its page faults (minor, major, from
# /proc/vmstat) and the CPU clock (/proc/cpuinfo's MHz, mean over cores) before and after.
# Steal time says another guest had the cores; system time and minor faults, the kernel backing
# fresh memory; iowait and major faults, a cold disk.
# Each round may run under an environment setting: PROBE_ROUNDS lists the rounds, "plain" or a
# VAR=VALUE for that round's tune (default "plain plain"); after each round, the size of the
# driver's and NVRTC's on-disk compute cache ($CUDA_CACHE_PATH, else ~/.nv/ComputeCache).
# Usage (after building, in the tree that holds BUILD_DIR):
#   bash bench/device/fresh_machine_probe.sh BUILD_DIR [SHAPES=bench/shapes/fresh_probe.txt]
set -uo pipefail
build_dir=$1 shapes=${2:-bench/shapes/fresh_probe.txt}
read -r -a rounds <<< "${PROBE_ROUNDS:-plain plain}"
compute_cache=${CUDA_CACHE_PATH:-$HOME/.nv/ComputeCache}
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t descs < <(grep -v '^#' "$shapes" | grep .)

# user nice system idle iowait irq softirq steal (clock ticks), then minor and major faults.
counters() {
  awk '/^cpu /{ print $2 + $3, $4 + $7 + $8, $5, $6, $9 }' /proc/stat | tr '\n' ' '
  awk '/^pgfault /{ f = $2 } /^pgmajfault /{ m = $2 } END { print f, m }' /proc/vmstat
}
mean_mhz() { awk '/^cpu MHz/{ s += $4; n++ } END { if (n) printf "%.0f", s / n; else printf "?" }' /proc/cpuinfo; }
report() {  # label, counters before, counters after, seconds
  local hz; hz=$(getconf CLK_TCK)
  read -r u0 s0 i0 w0 t0 f0 m0 <<< "$2"
  read -r u1 s1 i1 w1 t1 f1 m1 <<< "$3"
  awk -v label="$1" -v hz="$hz" -v secs="$4" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v i=$((i1 - i0)) -v w=$((w1 - w0)) \
      -v t=$((t1 - t0)) -v f=$((f1 - f0)) -v m=$((m1 - m0)) -v mhz="$5" 'BEGIN {
    printf "%-28s %7.1f s wall  cpu-s: user %7.1f  system %6.1f  idle %7.1f  iowait %5.1f  steal %5.1f  faults: minor %9d  major %6d  MHz %s\n",
      label, secs, u / hz, s / hz, i / hz, w / hz, t / hz, f, m, mhz }'
}
{
  echo "== fresh machine probe: ${#descs[@]} descriptors from $shapes, $(nproc) cores, uptime $(cut -d' ' -f1 /proc/uptime) s"
  echo "compute cache $compute_cache: $(du -sh "$compute_cache" 2>/dev/null | cut -f1 || echo none)"
  for round in $(seq "${#rounds[@]}"); do
    setting=${rounds[$((round - 1))]}
    environment=()
    [ "$setting" != plain ] && environment=("$setting")
    before=$(counters); mhz_before=$(mean_mhz); start=$(date +%s%N)
    timeout 280 env "${environment[@]}" "$build_dir/cli/lowbit" tune --json --db "$work/round$round.sqlite" --desc "${descs[@]}" > "$work/tune$round.json" 2> "$work/tune$round.err"
    status=$?
    seconds=$(awk -v ns=$(( $(date +%s%N) - start )) 'BEGIN { printf "%.1f", ns / 1e9 }')
    report "round $round $setting (exit $status)" "$before" "$(counters)" "$seconds" "$mhz_before->$(mean_mhz)"
    echo "   compute cache after: $(du -sh "$compute_cache" 2>/dev/null | cut -f1 || echo none)"
    python3 -c "
import json, sys
rows = json.load(open(sys.argv[1]))['results']
print('   compile_s by row:', ' '.join(f'{r[\"compile_s\"]:.1f}' for r in rows), ' tune_s:', ' '.join(f'{r[\"tune_s\"]:.1f}' for r in rows))
" "$work/tune$round.json" 2>/dev/null || tail -3 "$work/tune$round.err"
  done
} | tee -a "$OUT/fresh_probe.txt"
