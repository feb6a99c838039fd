"""Joins lowbit's CPU timings (`lowbit bench --json`: a JSON array, one object, or JSON lines
as bench/heuristic_vs_tuned.sh writes them, of which the "tuned" rows are taken) with torch's
(cpu_torch_baselines.py, JSON lines) into a Markdown table. Speedups are baseline time over
lowbit time: above 1 means lowbit is faster.
Usage: python3 cpu_compare.py LOWBIT_JSON TORCH_JSONL [--policy tuned|heuristic]
(--policy: which of lowbit's rows to take, default tuned; rows without a policy count as tuned;
a shape timed in several rounds is represented by its median round)"""
import json
import sys


def descriptor_fields(text):
    return dict(item.split("=", 1) for item in text.split(","))


def load_lowbit(path, policy):
    text = open(path).read()
    try:
        results = json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        results = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(results, dict):
        results = [results]
    results = [result for result in results if result.get("policy", "tuned") == policy]
    # heuristic_vs_tuned.sh times each descriptor in several rounds: the row of the median time
    # (the upper middle of an even count, as the timing protocol takes it) stands for the shape.
    rounds = {}
    for result in results:
        fields = descriptor_fields(result["descriptor"])
        rounds.setdefault((int(result["m"]), int(fields["n"]), int(fields["k"])), []).append(result)
    rows = {}
    for key, taken in rounds.items():
        taken.sort(key=lambda result: result["time_us"])
        rows[key] = dict(taken[len(taken) // 2], rounds_timed=len(taken))
    return rows


def load_torch(path):
    header, rows = {}, {}
    for line in open(path):
        if not line.strip():
            continue
        row = json.loads(line)
        if "m" in row:
            rows[(row["m"], row["n"], row["k"])] = row
        else:
            header = row
    return header, rows


def speedup(baseline_us, lowbit_us):
    return f"{baseline_us / lowbit_us:.2f}" if baseline_us else "—"


def short_variant(name):
    # x86_avx512bf16_w4g128_n4m1k2_t2 -> avx512bf16 n4m1k2_t2
    parts = name.split("_")
    return f"{parts[1]} {'_'.join(parts[3:])}" if len(parts) > 3 else name


def main():
    policy = sys.argv[sys.argv.index("--policy") + 1] if "--policy" in sys.argv else "tuned"
    lowbit_rows = load_lowbit(sys.argv[1], policy)
    header, torch_rows = load_torch(sys.argv[2])
    print(f"lowbit: {policy} variants; torch {header.get('torch', '?')}, {header.get('threads', '?')} threads; protocol "
          f"{header.get('protocol', '?')} on both sides; speedup = torch time / lowbit time")
    print()
    print("| M | N×K | lowbit µs | lowbit variant | weight GB/s | % of read GB/s | torch bf16 µs | × bf16 | torch int4 µs "
          "| × int4 |")
    print("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in lowbit_rows:  # the shape file's order
        m, n, k = key
        lowbit = lowbit_rows[key]
        baseline = torch_rows.get(key, {})
        bf16_us = baseline.get("torch_bf16_us")
        int4_us = baseline.get("torch_int4_us")
        int4_text = f"{int4_us:.1f}" if int4_us else baseline.get("torch_int4_error", "—")
        # lowbit bench's own streaming-read reading, taken in the same process just before the kernel's
        # timing; read_fraction (lowbit bench --rounds) is the median over rounds of each timing
        # against its own reading.
        read_gbps = lowbit.get("mem_read_gbps")
        fraction = lowbit.get("read_fraction", lowbit["weight_gbps"] / read_gbps if read_gbps else None)
        read_text = f"{100 * fraction:.0f} % of {read_gbps:.0f}" if read_gbps else "—"
        print(f"| {m} | {n}×{k} | {lowbit['time_us']:.1f} | {short_variant(lowbit['variant'])} | "
              f"{lowbit['weight_gbps']:.1f} | {read_text} | {bf16_us or 0:.1f} | {speedup(bf16_us, lowbit['time_us'])} | "
              f"{int4_text} | {speedup(int4_us, lowbit['time_us'])} |")


if __name__ == "__main__":
    main()
