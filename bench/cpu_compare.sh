#!/usr/bin/env bash
# lowbit's x86 kernels against torch on the CPU, same machine, same run, same thread count
# (issue 3's benchmark). Steps, all written to OUT_DIR:
#   1. check torch's int4 kernel against lowbit's reference on the same quantized weights
#      (lowbit_cpu_problem_dump + cpu_torch_baselines.py --check), at M=4 on every N x K of
#      the shape file, so that the int4 column is the same work as lowbit's;
#   2. torch: F.linear bf16 and _weight_int4pack_mm_for_cpu (cpu_torch_baselines.py);
#   3. lowbit: bench/heuristic_vs_tuned.sh into OUT_DIR/lowbit: every descriptor tuned into a
#      fresh cache, then the tuned winner and the no-tune heuristic timed back to back
#      (`lowbit bench`, rotate-median:1, the protocol torch's side copies);
#   4. the tables: OUT_DIR/table.md (lowbit tuned against torch, cpu_compare.py) and
#      OUT_DIR/lowbit/table.md (heuristic against tuned), both printed.
# Usage: bench/cpu_compare.sh [BUILD_DIR] [THREADS] [OUT_DIR] [SHAPES]
#   THREADS: default every usable core (nproc); PYTHON: the interpreter with torch (default
#   .venv/bin/python when it exists, else python3; docs/benchmarks.md says how to install it).
#   Needs the targets lowbit and lowbit_cpu_problem_dump built in BUILD_DIR.
set -euo pipefail
bench_dir="$(cd "$(dirname "$0")" && pwd)"
build_dir=${1:-build}
threads=${2:-$(nproc)}
out_dir=${3:-$build_dir/cpu_compare}
shapes=${4:-$bench_dir/shapes/llama3_8b_cpu_sweep.txt}
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
lowbit="$build_dir/cli/lowbit"
mkdir -p "$out_dir"


mapfile -t descriptors < <(grep -v '^[[:space:]]*\(#\|$\)' "$shapes")

"$lowbit" info > "$out_dir/lowbit_info.txt"
"$python" -c "import torch; print('torch', torch.__version__)" >> "$out_dir/lowbit_info.txt"

echo "== 1. torch int4 against lowbit's reference (same quantized weights, M=4)" >&2
: > "$out_dir/check.jsonl"
for descriptor in "${descriptors[@]}"; do
  case "$descriptor" in m=1,*) ;; *) continue ;; esac  # each N x K once
  shape=${descriptor#m=1,}
  "$build_dir/bench/lowbit_cpu_problem_dump" "m=4,$shape" 4 "$out_dir/check_problem"
  # A failed check is reported loudly but does not stop the timings.
  "$python" "$bench_dir/cpu_torch_baselines.py" --threads "$threads" --check "$out_dir/check_problem" \
    >> "$out_dir/check.jsonl" || echo "cpu_compare: CHECK FAILED: torch's int4 result is not lowbit's reference" >&2
  tail -1 "$out_dir/check.jsonl" >&2
done
rm -rf "$out_dir/check_problem"

echo "== 2. torch baselines, $threads threads" >&2
# Also on stderr: a log that comes back from a timed-out device call still holds the rows.
"$python" "$bench_dir/cpu_torch_baselines.py" "$shapes" --threads "$threads" | tee "$out_dir/torch.jsonl" >&2

echo "== 3. lowbit: tuned and heuristic, $threads threads" >&2
bash "$bench_dir/heuristic_vs_tuned.sh" "$build_dir" "$threads" "$out_dir/lowbit" "$shapes"

echo "== 4. lowbit (tuned) against torch" >&2
"$python" "$bench_dir/cpu_compare.py" "$out_dir/lowbit/bench.jsonl" "$out_dir/torch.jsonl" | tee "$out_dir/table.md"
