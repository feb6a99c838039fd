#!/usr/bin/env bash
# make demo: tune the Llama-3-8B demo shapes on this machine into a fresh cache, print the
# summary table, then resolve every shape again from the cache, each in a new process, and
# print the cache-hit latency of get_kernel.
set -euo pipefail
build_dir=${1:-build}
lowbit="$build_dir/cli/lowbit"
shapes="$(dirname "$0")/shapes/llama3_8b_demo.txt"
db="$build_dir/demo-cache.sqlite"
rm -f "$db" "$db-wal" "$db-shm"

mapfile -t descriptors < <(grep -v '^[[:space:]]*\(#\|$\)' "$shapes")
desc_args=()
for descriptor in "${descriptors[@]}"; do desc_args+=(--desc "$descriptor"); done

echo "== lowbit info"
"$lowbit" info
echo
echo "== lowbit tune: ${#descriptors[@]} descriptors from $shapes into $db"
"$lowbit" tune --db "$db" "${desc_args[@]}"
echo
echo "== lowbit get: each descriptor resolved from the cache in a new process"
for descriptor in "${descriptors[@]}"; do
  "$lowbit" get --db "$db" --desc "$descriptor"
done
