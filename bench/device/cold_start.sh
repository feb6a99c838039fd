#!/usr/bin/env bash
# The brief's two cold-start targets on the GPU machine, from a build of run.sh (build-device):
#  1. a full tune of a model's 4 layer shapes x 8 M buckets (bench/shapes/cold_start_tune.txt)
#     with one `lowbit tune` into a fresh cache, wall clock (target: <= 2 minutes); the progress
#     lines give each descriptor's seconds, the JSON (tune.json) its compile seconds;
#  2. get_kernel on a shape of that cache in a new process (`lowbit get`, get_kernel_ms: the call
#     alone, the CUDA context apart; target: <= 1 ms, no compilation), for exact-M rows, then
#     for an m=0 descriptor (its row-bucket kernels: the first process compiles them, the next
#     ones load them from the cache); for one row of each, whether the process opened libnvrtc
#     (nvrtc_loaded); then the four exact-M rows asked for by one process, in order (its first
#     call pays the connection to the cache file, the later ones find it kept); then all of it
#     again with the cache as a deployment ships it (--shipped-db: immutable, no user cache), the
#     m=0 descriptor included (its row plan, stored by the first m=0 process, loads every part);
#  3. lowbit_resolve_breakdown: the steps of one exact-M hit, timed apart.
# Everything lands in $OUT (cold_start.txt, tune.json, tune.err).
# Usage (in the tree that holds BUILD_DIR):
#   bash bench/device/cold_start.sh BUILD_DIR [TUNE_SECONDS=330] [PROCESSES=5] [SHAPES=bench/shapes/cold_start_tune.txt]
# (SHAPES must hold the m=1 and m=256 rows of 6144x4096 and 28672x4096 that step 2 asks for;
# bench/shapes/cold_start_hits.txt is those four alone, a short tune.)
set -uo pipefail
build_dir=$1 tune_seconds=${2:-330} processes=${3:-5} shapes=${4:-bench/shapes/cold_start_tune.txt}
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
lowbit="$build_dir/cli/lowbit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/cache.sqlite"
report="$OUT/cold_start.txt"

mapfile -t descs < <(grep -v '^#' "$shapes" | grep .)
start=$(date +%s%N)
timeout "$tune_seconds" "$lowbit" tune --json --top 1000 --db "$db" --desc "${descs[@]}" > "$OUT/tune.json" 2> "$OUT/tune.err"
status=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
{
  echo "== 1. lowbit tune of ${#descs[@]} descriptors: exit $status, ${elapsed_ms} ms wall (process included; timeout ${tune_seconds} s)"
  grep '^\[' "$OUT/tune.err"
  [ "$status" = 0 ] && python3 -c "
import json, sys
rows = json.load(open(sys.argv[1]))['results']
total = sum(r['tune_s'] for r in rows); compile_s = sum(r['compile_s'] for r in rows)
print(f'sum of the rows\' tune_s {total:.1f} s (their spans overlap: one compile queue), of their compile spans {compile_s:.1f} s; reference {sum(r[\"reference_us\"] for r in rows) / 1e6:.1f} s')
" "$OUT/tune.json"
} >> "$report"

field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
latency() {  # label, get arguments...: get_kernel_ms of $processes new processes, and the last one's source
  local label=$1; shift
  local values=() row
  for _ in $(seq "$processes"); do
    row=$("$lowbit" get --json --db "$db" "$@")
    values+=("$(echo "$row" | field get_kernel_ms)")
  done
  printf '%s\n' "${values[@]}" | sort -g | awk -v label="$label" -v source="$(echo "$row" | field source)" '{ v[NR] = $1 } END {
    printf "%-70s median %8.3f ms  max %8.3f ms  (%d processes, %s)\n", label, v[int((NR + 1) / 2)], v[NR], NR, source }' >> "$report"
}
loads_nvrtc() {  # get arguments...: whether a new process of lowbit get loaded NVRTC
  "$lowbit" get --json --db "$db" "$@" | python3 -c "import json, sys; print(json.load(sys.stdin)['nvrtc_loaded'])"
}
echo "== 2. get_kernel_ms in new processes (lowbit get --json --no-tune), cache of step 1" >> "$report"
for shape in n=6144,k=4096 n=28672,k=4096; do
  for m in 1 256; do
    desc="m=$m,$shape,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0"
    latency "$desc" --no-tune --desc "$desc"
  done
done
any="m=0,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0"
first=$("$lowbit" get --json --db "$db" --no-tune --desc "$any")
echo "$any, first process (compiles its row buckets' cubins): $(echo "$first" | field get_kernel_ms) ms, $(echo "$first" | field variant)" >> "$report"
latency "$any (cubins cached)" --no-tune --desc "$any"
hits=()
for shape in n=6144,k=4096 n=28672,k=4096; do
  for m in 1 256; do hits+=(--desc "m=$m,$shape,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0"); done
done
for _ in $(seq "$processes"); do
  "$lowbit" get --json --db "$db" --no-tune "${hits[@]}" | python3 -c "
import json, sys
print('the 4 rows above in one process, get_kernel_ms in order:', ' '.join(f'{r[\"get_kernel_ms\"]:.3f}' for r in json.load(sys.stdin)))"
done >> "$report"
exact="m=1,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0"
echo "NVRTC loaded by a new process's cached get: $exact: $(loads_nvrtc --no-tune --desc "$exact"); $any: $(loads_nvrtc --no-tune --desc "$any")" >> "$report"
# The same cache shipped with a deployment: read immutable, under a user cache that does not exist.
shipped="$work/shipped.sqlite"
"$lowbit" export --db "$db" --out "$shipped" >> "$report"
echo "== 2b. the cache of step 1 as a shipped one (lowbit get --shipped-db, immutable; the user cache --db does not exist)" >> "$report"
for shape in n=6144,k=4096 n=28672,k=4096; do
  for m in 1 256; do
    desc="m=$m,$shape,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0"
    values=()
    for _ in $(seq "$processes"); do
      values+=("$("$lowbit" get --json --db "$work/user.sqlite" --shipped-db "$shipped" --no-tune --desc "$desc" | field get_kernel_ms)")
    done
    printf '%s\n' "${values[@]}" | sort -g | awk -v label="$desc" '{ v[NR] = $1 } END {
      printf "%-70s median %8.3f ms  max %8.3f ms  (%d processes)\n", label, v[int((NR + 1) / 2)], v[NR], NR }' >> "$report"
  done
done
for _ in $(seq "$processes"); do
  "$lowbit" get --json --db "$work/user.sqlite" --shipped-db "$shipped" --no-tune "${hits[@]}" | python3 -c "
import json, sys
rows = json.load(sys.stdin)
print('the 4 rows in one process, get_kernel_ms in order:', ' '.join(f'{r[\"get_kernel_ms\"]:.3f}' for r in rows),
      ' sources:', ' '.join(sorted(set(r['source'] for r in rows))), ' NVRTC loaded:', rows[-1]['nvrtc_loaded'])"
done >> "$report"
# m=0 from the shipped cache: its row plan (recorded by step 2's first m=0 process) loads every part.
values=()
for _ in $(seq "$processes"); do
  row=$("$lowbit" get --json --db "$work/user.sqlite" --shipped-db "$shipped" --no-tune --desc "$any")
  values+=("$(echo "$row" | field get_kernel_ms)")
done
printf '%s\n' "${values[@]}" | sort -g | awk -v label="$any" -v nvrtc="$(echo "$row" | field nvrtc_loaded)" '{ v[NR] = $1 } END {
  printf "%-70s median %8.3f ms  max %8.3f ms  (%d processes; NVRTC loaded: %s)\n", label, v[int((NR + 1) / 2)], v[NR], NR, nvrtc }' >> "$report"
[ -e "$work/user.sqlite" ] && echo "BUG: the user cache was created by cache hits" >> "$report"


{
  echo "== 3. lowbit_resolve_breakdown (one process; ms)"
  "$build_dir/bench/lowbit_resolve_breakdown" --db "$db" --repeats 5 \
    --desc "m=1,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0" \
    --desc "m=256,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0" \
    --desc "m=1024,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,device=cuda:0" 2>&1
} >> "$report"
cat "$report"
