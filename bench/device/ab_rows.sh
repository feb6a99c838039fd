#!/usr/bin/env bash
# Two builds side by side on named variants (an A/B of a kernel change): each "DESCRIPTOR
# NAME[,NAME...]" line of ROWS timed by BASE_BUILD's and NEW_BUILD's lowbit_cuda_bench in turn,
# ROUNDS times (base, new, base, new, ...; read flush, median of 15, each variant checked against
# the reference first). Writes $OUT/ab_base_<round>.jsonl and ab_new_<round>.jsonl (errors in
# $OUT/ab.err) and prints each variant's times and its mean new / base.
# Usage, from the new tree's root: bash bench/device/ab_rows.sh ROWS BASE_BUILD NEW_BUILD [ROUNDS]
set -uo pipefail
rows=$1 base=$2 new=$3 rounds=${4:-2}
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
row_file=$(mktemp)
trap 'rm -f "$row_file"' EXIT
for round in $(seq 1 "$rounds"); do
  for who in base new; do
    build=$base; [ "$who" = new ] && build=$new
    while read -r desc names; do
      [ -z "$desc" ] && continue
      echo "$desc" > "$row_file"
      "$build/bench/lowbit_cuda_bench" "$row_file" --flush read --repeats 15 --variant "$names" \
        >> "$OUT/ab_${who}_${round}.jsonl" 2>> "$OUT/ab.err"
    done < <(grep -v '^#' "$rows")
  done
done
python3 - "$OUT" "$rounds" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
times = {}
for who in ("base", "new"):
    for r in range(1, rounds + 1):
        for line in open(f"{out}/ab_{who}_{r}.jsonl"):
            row = json.loads(line)
            for name, us in row.get("variants", {}).items():
                times.setdefault(name, {}).setdefault(who, []).append(us)
for name, t in times.items():
    b, n = t.get("base", []), t.get("new", [])
    ratio = (sum(n) / len(n)) / (sum(b) / len(b)) if b and n else float("nan")
    print(f"{name:70s} base {' / '.join(f'{v:.1f}' for v in b):24s} new {' / '.join(f'{v:.1f}' for v in n):24s} {ratio:.3f}")
PY
