#!/usr/bin/env bash
# Cache-hit latency of get_kernel in fresh processes: resolves one tuned descriptor N times,
# each in a new `lowbit get` process, and prints the median, 90th percentile and maximum of
# get_kernel_ms (the call alone, process start excluded).
# Usage: bench/cache_hit_latency.sh BUILD_DIR DB DESCRIPTOR [N=30]
set -euo pipefail
build_dir=$1 db=$2 descriptor=$3 count=${4:-30}
for _ in $(seq "$count"); do
  "$build_dir/cli/lowbit" get --db "$db" --desc "$descriptor" | grep -o 'get_kernel_ms=[0-9.]*' | cut -d= -f2
done | sort -g | awk '{ v[NR] = $1 } END {
  printf "get_kernel_ms over %d processes: median %.3f  p90 %.3f  max %.3f\n", NR, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }'
