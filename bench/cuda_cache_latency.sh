#!/usr/bin/env bash
# The CUDA cubin cache on a GPU machine: tunes one CUDA descriptor with `lowbit tune` (timed,
# wall clock), then resolves it N times, each in a new `lowbit get` process, (a) with the
# winner's cubin in the cache and (b) from a copy of the cache whose artifacts were deleted, so
# each process compiles with NVRTC. Prints the median and maximum of get_kernel_ms (the call
# alone; process start and the CUDA context, reported as cuda_context_ms, excluded) for both.
# Needs python3 (its sqlite3 module deletes the artifacts).
# Usage: bench/cuda_cache_latency.sh BUILD_DIR DESCRIPTOR [N=10]
set -euo pipefail
build_dir=$1 descriptor=$2 count=${3:-10}
lowbit="$build_dir/cli/lowbit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/cache.sqlite"

start=$(date +%s%N)
"$lowbit" tune --db "$db" --desc "$descriptor"
echo "lowbit tune wall ms (process included): $(( ($(date +%s%N) - start) / 1000000 ))"

summarise() {  # label, then get_kernel_ms values on stdin
  sort -g | awk -v label="$1" '{ v[NR] = $1 } END {
    printf "%s: get_kernel_ms over %d processes: median %.3f  max %.3f\n", label, NR, v[int((NR + 1) / 2)], v[NR] }'
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

for _ in $(seq "$count"); do
  "$lowbit" get --db "$db" --desc "$descriptor" --json > "$work/hit.json"
  [ "$(field source < "$work/hit.json")" = cache ] || { echo "not a cache hit:"; cat "$work/hit.json"; exit 1; }
  field get_kernel_ms < "$work/hit.json"
done | summarise "decision + cubin cached"
echo "cuda_context_ms (last process): $(field cuda_context_ms < "$work/hit.json")"

for _ in $(seq "$count"); do
  cp "$db" "$work/nocubin.sqlite"
  python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM artifacts'); c.commit()" \
    "$work/nocubin.sqlite"
  "$lowbit" get --db "$work/nocubin.sqlite" --desc "$descriptor" --json | field get_kernel_ms
  rm -f "$work"/nocubin.sqlite*
done | summarise "decision cached, cubin compiled by NVRTC"
