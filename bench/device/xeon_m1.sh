#!/usr/bin/env bash
# Issue 3's M=1 rows on the lent machine's Xeon host (no GPU needed): int4 g128 zero=int bf16 on
# the four Llama-3-8B shapes, compute=float and compute=int8 (bench/shapes/llama3_8b_cpu_m1.txt).
#   1. sweep: every M=1 candidate of each mode (register blocks n1..n4, k_unroll 1/2/4) at every
#      software-prefetch distance of PREFETCHES (bytes ahead per weight stream), at 4, 8 and all
#      threads, cold (weights rotated from memory), interleaved run by run, with a read-bandwidth
#      reading before and after each (descriptor, threads): lowbit_x86_m1_bandwidth_bench --hot 0.
#      Next to it, the no-tune heuristic's variant at each thread count (`lowbit get --no-tune`).
#   2. tuned against no-tune at all threads: `lowbit tune` into a fresh cache, then per descriptor
#      `lowbit bench --rounds 3` on it (the tuned winner) and `--no-tune` on an empty cache.
#   3. the machine's NUMA layout (lscpu, /sys nodes): the read reading and the kernels both read
#      buffers first touched by the main thread, and the pool's threads are not pinned.
# XEON_M1_PARTS (default "sweep tuned") picks the parts and their order; SWEEP_THREADS, SWEEP_ROUNDS,
# SWEEP_FILTER, SWEEP_HOT and PREFETCHES shape the sweep (below).
# Writes under $OUT: machine.txt, xeon_m1_table.md (every table), raw.tar.gz (sweep.txt,
# sweep.jsonl, heuristic.jsonl, tune.json, bench.jsonl, build.log, stderr).
# Usage (device call, carry .deps and the snapshot):
#   bash SNAPSHOT/bench/device/xeon_m1.sh SNAPSHOT
# Every step is bounded so that the whole call ends by XEON_M1_DEADLINE seconds (default 225).
# Both parts at full size do not fit one 240 s call (measured: build 52 s, the full sweep about
# 110 s, tune 40 s, the 16 `lowbit bench --rounds 3` about 7 s each: each round reads a fresh
# buffer of 8x the 300 MiB L3); send XEON_M1_PARTS=sweep and XEON_M1_PARTS=tuned as two calls.
set -uo pipefail
deps="$PWD/.deps/usr"  # the checkout root: where the call starts
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${1:-.}" || exit 1
OUT=${OUT:-/tmp/lowbit-xeon-m1-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
shapes=${SHAPES:-bench/shapes/llama3_8b_cpu_m1.txt}
prefetches=${PREFETCHES:-0,256,512,1024,2048,4096,8192}
all_threads=$(nproc)
sweep_threads=${SWEEP_THREADS:-4,8,$all_threads}
sweep_rounds=${SWEEP_ROUNDS:-15}
# SWEEP_FILTER=TEXT: only candidates whose name holds TEXT (e.g. k2); SWEEP_HOT=1: also each one's
# hot rate (one copy again and again, from cache where it fits: bound by instructions, not memory).
sweep_filter=${SWEEP_FILTER:-}
sweep_hot=${SWEEP_HOT:-0}

source "$script_dir/pack_outputs.sh"
trap 'pack_outputs "^(machine\.txt|xeon_m1_table\.md|raw\.tar\.gz)$"' EXIT

# Seconds left before the deadline, capped at $1 (each step's timeout).
within() {
  local left=$(( ${XEON_M1_DEADLINE:-225} - SECONDS ))
  [ "$left" -gt "$1" ] && left=$1
  [ "$left" -lt 1 ] && left=1
  echo "$left"
}

{ date -u; lscpu; echo "== NUMA nodes (cpulist, memory)"; for node in /sys/devices/system/node/node*; do
    [ -d "$node" ] && echo "$(basename "$node"): cpus $(cat "$node/cpulist"); $(grep MemTotal "$node/meminfo")"; done
  command -v numactl > /dev/null && numactl -H; echo "nproc $(nproc)"; } > "$OUT/machine.txt" 2>&1

# XEON_M1_BUILD=DIR: a build directory that already holds both targets (a dry run on another machine).
build=${XEON_M1_BUILD:-build-device}
if [ -z "${XEON_M1_BUILD:-}" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
    -DLOWBIT_WERROR=OFF > "$OUT/build.log" 2>&1 &&
    cmake --build "$build" -j "$all_threads" --target lowbit lowbit_x86_m1_bandwidth_bench >> "$OUT/build.log" 2>&1 ||
    { tail -40 "$OUT/build.log"; exit 1; }
fi
lowbit=$build/cli/lowbit
rm -f "$build"/xeon_m1_*.sqlite*
"$lowbit" info >> "$OUT/machine.txt" 2>&1
echo "built at ${SECONDS} s"
mapfile -t descriptors < <(grep -v '^[[:space:]]*\(#\|$\)' "$shapes")

# 1. The sweep, and the heuristic's choice at each sweep thread count.
sweep_part() {
  for descriptor in "${descriptors[@]}"; do
    for threads in ${sweep_threads//,/ }; do
      "$lowbit" get --json --no-tune --threads "$threads" --db "$build/xeon_m1_empty.sqlite" --desc "$descriptor" 2>> "$OUT/sweep.err" |
        python3 -c "import json,sys; r=json.load(sys.stdin); r['threads']=$threads; print(json.dumps(r))" \
        >> "$OUT/heuristic.jsonl"
    done
    timeout "$(within 30)" "$build"/bench/lowbit_x86_m1_bandwidth_bench --threads "$sweep_threads" --isa avx512 \
      --rounds "$sweep_rounds" --hot "$sweep_hot" --prefetch "$prefetches" ${sweep_filter:+--filter "$sweep_filter"} \
      --desc "$descriptor" >> "$OUT/sweep.txt" 2>> "$OUT/sweep.err"
    echo "sweep $descriptor done at ${SECONDS} s (exit $?)"
  done
}

# 2. Tuned against no-tune at all threads, rounds interleaved inside each `lowbit bench`.
tuned_part() {
  desc_args=()
  for descriptor in "${descriptors[@]}"; do desc_args+=(--desc "$descriptor"); done
  timeout "$(within 90)" "$lowbit" tune --json --threads "$all_threads" --db "$build/xeon_m1_tuned.sqlite" "${desc_args[@]}" \
    > "$OUT/tune.json" 2> "$OUT/tune.err"
  echo "tuned at ${SECONDS} s"
  for descriptor in "${descriptors[@]}"; do
    for policy in tuned heuristic; do
      options=(--db "$build/xeon_m1_tuned.sqlite")
      [ "$policy" = heuristic ] && options=(--db "$build/xeon_m1_empty.sqlite" --no-tune)
      timeout "$(within 20)" "$lowbit" bench --json --rounds 3 --threads "$all_threads" "${options[@]}" --desc "$descriptor" \
        2>> "$OUT/bench.err" |
        python3 -c "import json,sys; r=json.load(sys.stdin); r['policy']='$policy'; print(json.dumps(r))" >> "$OUT/bench.jsonl"
    done
  done
  echo "benched at ${SECONDS} s"
}

# XEON_M1_PARTS: which parts, in this order (default "sweep tuned").
for part in ${XEON_M1_PARTS:-sweep tuned}; do "${part}_part"; done

# 3. The tables.
python3 - "$OUT" > "$OUT/xeon_m1_table.md" 2>&1 <<'PYTHON'
import json, math, re, sys, collections
out = sys.argv[1]
header = re.compile(r"^(\S+) threads=(\d+) read ([\d.]+) GB/s; pattern P=1 ([\d.]+), P=2 ([\d.]+), P=4 ([\d.]+) GB/s; "
                    r"with prefetch 2048: P=1 ([\d.]+), P=4 ([\d.]+) GB/s")
row = re.compile(r"^  (x86_\S+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s+(\S+)")
after = re.compile(r"read after the kernels: ([\d.]+)")
shape = re.compile(r"_n(\d)m1k(\d+)_t\d+(?:_p(\d+))?$")
blocks, current = [], None
for line in open(f"{out}/sweep.txt"):
    if m := header.match(line):
        current = dict(descriptor=m[1], threads=int(m[2]), read_gbps=float(m[3]),
                       pattern={k: float(v) for k, v in zip(["P1", "P2", "P4", "P1_p2048", "P4_p2048"], m.groups()[3:])},
                       rows=[])
        blocks.append(current)
    elif (m := row.match(line)) and current:
        s = shape.search(m[1])
        current["rows"].append(dict(variant=m[1], us=float(m[2]), gbps=float(m[3]), hot_us=None if m[4] == "-" else float(m[4]),
                                    hot_gbps=None if m[5] == "-" else float(m[5]), n_panels=int(s[1]),
                                    k_unroll=int(s[2]), prefetch=int(s[3] or 0)))
    elif (m := after.search(line)) and current:
        current["read_after_gbps"] = float(m[1])
with open(f"{out}/sweep.jsonl", "w") as jsonl:
    for block in blocks:
        for r in block["rows"]:
            jsonl.write(json.dumps(dict(descriptor=block["descriptor"], threads=block["threads"],
                                        mem_read_gbps=block["read_gbps"], read_after_gbps=block.get("read_after_gbps"),
                                        read_fraction=r["gbps"] / block["read_gbps"], **r)) + "\n")
def mode(d):
    return "int8" if "compute=int8" in d else "float"
def short(d):
    f = dict(p.split("=") for p in d.split(","))
    return f"{f['n']}x{f['k']} {mode(d)}"
heuristic = {}
for line in open(f"{out}/heuristic.jsonl"):
    r = json.loads(line)
    heuristic[(short(r["descriptor"]), r["threads"])] = r["variant"]
print("## Sweep: every M=1 candidate x prefetch, cold, interleaved; % of the read reading taken just before\n")
print("| N×K mode | threads | read GB/s (after) | best | best % read | best n1 | n1 % | best n4 | n4 % | heuristic | heur. % | heur./best time |")
print("|---|---:|---:|---|---:|---|---:|---|---:|---|---:|---:|")
suffix = lambda v: v.split("_", 3)[-1]
ranks = collections.defaultdict(list)  # (threads, mode, n, k, p) -> time / best
for b in blocks:
    rows = b["rows"]
    if not rows: continue
    best = min(rows, key=lambda r: r["us"])
    pct = lambda r: f"{100 * r['gbps'] / b['read_gbps']:.0f}"
    n1 = min((r for r in rows if r["n_panels"] == 1), key=lambda r: r["us"], default=best)
    n4 = min((r for r in rows if r["n_panels"] == 4), key=lambda r: r["us"], default=best)
    name = heuristic.get((short(b["descriptor"]), b["threads"]), "?")
    h = next((r for r in rows if r["variant"] == name), None)
    print(f"| {short(b['descriptor'])} | {b['threads']} | {b['read_gbps']:.1f} ({b.get('read_after_gbps', 0):.1f}) | "
          f"{suffix(best['variant'])} | {pct(best)} | {suffix(n1['variant'])} | {pct(n1)} | {suffix(n4['variant'])} | "
          f"{pct(n4)} | {suffix(name)} | {pct(h) if h else '-'} | {h['us'] / best['us'] if h else float('nan'):.2f} |")
    for r in rows:
        ranks[(b["threads"], mode(b["descriptor"]), r["n_panels"], r["k_unroll"], r["prefetch"])].append(r["us"] / best["us"])
print("\n## Each (n_panels, k_unroll, prefetch) over a mode's 4 shapes: geometric mean and worst of time / the row's best\n")
for threads, kind in sorted({k[:2] for k in ranks}):
    items = sorted(((math.exp(sum(map(math.log, v)) / len(v)), max(v), k) for k, v in ranks.items() if k[:2] == (threads, kind)))
    print(f"threads={threads} {kind}: " + "; ".join(f"n{k[2]}k{k[3]}p{k[4]} {g:.3f} (worst {w:.2f})" for g, w, k in items[:8]))
    for rank, (g, w, k) in enumerate(items, 1):
        if k[3] == 2 and k[4] in (1024, 2048, 4096, 8192):
            print(f"  n{k[2]}k2p{k[4]}: {g:.3f} (worst {w:.2f}), rank {rank} of {len(items)}")
print("\n## Pattern reads (GB/s, plain loads in the kernels' order; P = panels per block)\n")
for b in blocks:
    print(f"{short(b['descriptor'])} t={b['threads']}: read {b['read_gbps']:.1f}; " +
          ", ".join(f"{k} {v:.1f}" for k, v in b["pattern"].items()))
hot = [(b, r) for b in blocks for r in b["rows"] if r["hot_gbps"] is not None]
if hot:
    print("\n## Hot (one copy again and again, from cache where it fits) against cold, GB/s of weights\n")
    print("| N×K mode | threads | variant | cold GB/s | % read | hot GB/s | hot / read |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for b, r in hot:
        print(f"| {short(b['descriptor'])} | {b['threads']} | {suffix(r['variant'])} | {r['gbps']:.1f} | "
              f"{100 * r['gbps'] / b['read_gbps']:.0f} | {r['hot_gbps']:.1f} | {r['hot_gbps'] / b['read_gbps']:.2f} |")
print("\n## Tuned against no-tune (lowbit bench --rounds 3, all threads)\n")
print("| N×K mode | tuned variant | tuned us | % read | heuristic variant | heur. us | % read | heur./tuned |")
print("|---|---|---:|---:|---|---:|---:|---:|")
bench = collections.defaultdict(dict)
try:
    for line in open(f"{out}/bench.jsonl"):
        r = json.loads(line)
        bench[r["descriptor"]][r["policy"]] = r
except FileNotFoundError:
    pass
for d, p in bench.items():
    t, h = p.get("tuned"), p.get("heuristic")
    if not (t and h): continue
    print(f"| {short(d)} | {suffix(t['variant'])} | {t['time_us']:.1f} | {100 * t['read_fraction']:.0f} | "
          f"{suffix(h['variant'])} | {h['time_us']:.1f} | {100 * h['read_fraction']:.0f} | {h['time_us'] / t['time_us']:.2f} |")
PYTHON
cat "$OUT/xeon_m1_table.md"
grep -E "^(Model name|Socket|Core|Thread|NUMA|L3)|^node|^available" "$OUT/machine.txt"
echo "done at ${SECONDS} s"
