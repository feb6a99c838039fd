#!/usr/bin/env bash
# Named variants side by side, with torch's baselines in the same call (after run.sh has built
# build-device in this snapshot): each "DESCRIPTOR NAME[,NAME...]" line of ROWS is timed by
# lowbit_cuda_bench --variant (each checked against the reference first; read flush, median of
# REPEATS), then torch_baselines.py times cuBLAS and tinygemm on the rows' descriptors, and
# variant_rows.py prints every variant's time and its ratio to cuBLAS ($OUT/variant_rows.txt;
# the raw JSON lines in $OUT/variant_rows.jsonl and $OUT/variant_rows_torch.jsonl).
# Usage, from a snapshot's root: bash bench/device/variant_rows.sh ROWS [REPEATS]
set -uo pipefail
rows=$1
repeats=${2:-15}
deps="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/.deps/usr"
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
row_file=$(mktemp)
: > "$OUT/variant_rows.jsonl"
while read -r desc names; do
  [ -z "$desc" ] && continue
  echo "$desc" > "$row_file"
  build-device/bench/lowbit_cuda_bench "$row_file" --flush read --repeats "$repeats" --variant "$names" \
    >> "$OUT/variant_rows.jsonl" 2>> "$OUT/variant_rows.err"
done < "$rows"
awk '{print $1}' "$rows" | sort -u > "$row_file"
python3 bench/device/torch_baselines.py "$row_file" --flush read > "$OUT/variant_rows_torch.jsonl" 2>> "$OUT/variant_rows.err"
python3 bench/device/variant_rows.py "$OUT/variant_rows.jsonl" "$OUT/variant_rows_torch.jsonl" | tee "$OUT/variant_rows.txt"
