#!/usr/bin/env bash
# What bounds the wgmma main loop's stage: the heuristic's large-M variants timed as they are, with
# half of x's L2 reads left out, with the consumers' dequantization left out, and with both
# (docs/benchmarks.md, session 17). The two probes give wrong sums, so they live in a patch
# (stage_probe.patch: macros LOWBIT_PROBE_HALF_X / LOWBIT_PROBE_NO_DECODE in the wgmma template,
# LOWBIT_PROBE_DEFINE passing them to NVRTC, the bench timing a probe without its check) applied
# to a scratch copy of this tree, never to lowbit itself. Needs .deps beside the tree (prepare.sh).
# LOWBIT_PROBE_ONE_ROUNDING=1 (session 18) is a third probe, not in the default list: bf16's weights
# as (q - z) s_hi, the scale rounded to bf16 first (two roundings a weight, as a bf16 scale gives;
# within dequantized_weights_tolerance's bound, but not lowbit's one rounding), fp16 unchanged.
# Session 29 added two more: LOWBIT_PROBE_NO_WHOLE_STORE=1 (a stream-K block stores nothing of a
# tile it ran whole: what the mid-run epilogue costs) and LOWBIT_PROBE_NO_DEPOSIT=1 (contributors
# publish their flags without storing their partials: what the deposits cost); rows in
# bench/shapes/epilogue_probe_rows.txt.
# Environment: LOWBIT_PROBES (space-separated, each "none" or a comma list of NAME=VALUE), and
# LOWBIT_PROBE_ROWS (a shapes file) and LOWBIT_PROBE_VARIANTS (full names, comma-separated) replace
# the defaults below.
# Usage, from a snapshot's root on the device machine: bash bench/device/stage_probe.sh [ROUNDS]
set -uo pipefail
rounds=${1:-2}
root=$(pwd)
deps="$(cd "$root/.." && pwd)/.deps/usr"
OUT=${OUT:-/tmp/lowbit-device-out}
mkdir -p "$OUT"
scratch="$root/../.stage-probe"
rm -rf "$scratch" && mkdir -p "$scratch"
tar -C "$root" --exclude=./build-device -cf - . | tar -C "$scratch" -xf -
cd "$scratch" && patch -s -p1 < bench/device/stage_probe.patch || exit 1
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" -DLOWBIT_WERROR=OFF \
  > "$OUT/stage_probe_build.log" 2>&1 &&
  cmake --build build-device -j "$(nproc)" --target lowbit_cuda_bench >> "$OUT/stage_probe_build.log" 2>&1 ||
  { tail -30 "$OUT/stage_probe_build.log"; exit 1; }
export LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
V=cuda_sm90a_wgmma_w4g128
names=${V}_m1024_n128m256k64_s5_ws,${V}_m1024_n128m256k64_s5_ws_sk132r2p,${V}_m256_n128m128k128_s4_ws_sk132p
names=$names,${V}_m256_n128m256k64_s4_ws_sk132p,${V}_m4096_n128m256k64_s4_ws_sk128
names=${LOWBIT_PROBE_VARIANTS:-$names}
for round in $(seq "$rounds"); do
  for probe in ${LOWBIT_PROBES:-none LOWBIT_PROBE_HALF_X=1 LOWBIT_PROBE_NO_DECODE=1 LOWBIT_PROBE_HALF_X=1,LOWBIT_PROBE_NO_DECODE=1}; do
    if [ "$probe" = none ]; then unset LOWBIT_PROBE_DEFINE; else export LOWBIT_PROBE_DEFINE=$probe; fi
    echo "== round $round, probe $probe"
    timeout 120 build-device/bench/lowbit_cuda_bench "${LOWBIT_PROBE_ROWS:-bench/shapes/stage_probe_rows.txt}" --flush read --repeats 15 \
      --variant "$names" | tee -a "$OUT/stage_probe_$round.jsonl" | python3 -c '
import json, sys
for line in sys.stdin:
    row = json.loads(line)
    desc = row.get("descriptor", row.get("desc", ""))
    act = next((part for part in desc.split(",") if part.startswith("act=")), "")
    shape = ",".join(desc.split(",")[:3] + [act])
    for name, us in row.get("variants", {}).items():
        print(f"{shape:24s} {name:64s} {us:8.1f} us")
    error = row.get("max_rel_err") or float("nan")
    print(f"{shape:24s} worst relative error {error:.3g}")
    for name, why in row.get("failures", {}).items():
        print(f"{shape:24s} {name:64s} failed: {why}")'
  done
done
