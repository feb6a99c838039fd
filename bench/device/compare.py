"""Joins lowbit_cuda_bench's JSON lines with torch_baselines.py's (same device call) into the
table of docs/benchmarks.md: time, % of the bandwidth floor (bytes moved / measured copy
bandwidth), and speedups over cuBLAS (in the row's activation dtype), tinygemm (bf16 rows) and
gemlite at the row's width (2, 4 or 8 bits, when torch_baselines.py could import it; "gem err" is its output's largest error against x
times its dequantized weights, over the largest output, as lowbit's "max err") and vLLM's Marlin at 4 bits (when
marlin_baseline.py built it; "mar err" likewise);
"read %": the pure-read reference (l2_flush's read kernel over the call's weight buffer, timed
under the same protocol) as % of its own bytes' floor, "—" for files from before it existed;
"launch us": the same kernel over one 256-byte line (what a call with almost no bytes costs under
the protocol; session 27 on, "—" before).
Under rotate a second table gives the same rows by each run's mean without per-call events
(*_run_mean_us; bench/l2_flush.h's Timing says why both).
Both files must name the same L2 flush protocol (bench/l2_flush.h: read, write or rotate; files
from before the field existed were measured with the memset, "write"); a mix is refused.
Usage: compare.py LOWBIT.jsonl TORCH.jsonl"""
import json
import sys


def fields(descriptor):
    return dict(item.split("=", 1) for item in descriptor.split(","))


def main():
    lowbit_rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    torch_rows = [json.loads(line) for line in open(sys.argv[2]) if line.startswith("{")]
    if not torch_rows or "copy_gbps" not in torch_rows[0]:
        sys.exit(f"compare.py: {sys.argv[2]} holds no torch baselines (did torch_baselines.py run out of time?)")
    copy_gbps = torch_rows[0]["copy_gbps"]
    flush = torch_rows[0].get("flush", "write")
    mixed = sorted({row.get("flush", "write") for row in lowbit_rows} - {flush})
    if mixed:
        sys.exit(f"compare.py: the torch baselines were timed with --flush {flush}, lowbit rows with {', '.join(mixed)}: "
                 "not comparable; measure both with the same --flush")
    baselines = {(row["m"], row["n"], row["k"], row.get("act", "bf16")): row for row in torch_rows[1:]}
    overlap = "; lowbit calls set overlap_previous (gemv_mma may start while the call before it ends)" if any(
        row.get("overlap_previous") for row in lowbit_rows) else ""
    versions = "".join(f"; {name} {torch_rows[0][name]}" for name in ("torch", "gemlite", "marlin") if name in torch_rows[0])
    print(f"device: {torch_rows[0]['device']}; copy bandwidth {copy_gbps:.0f} GB/s (read + write); L2 flush: {flush}{overlap}"
          f"{versions}")
    print(f"{'M':>4} {'N x K':>12} {'format':>10} {'lowbit us':>10} {'% floor':>8} {'cuBLAS us':>10} {'x cuBLAS':>9} "
          f"{'tinygemm us':>12} {'x tinygemm':>11} {'gemlite us':>11} {'x gemlite':>10} {'gem err':>8} "
          f"{'marlin us':>10} {'x marlin':>9} {'mar err':>8} {'heur us':>8} {'max err':>9} "
          f"{'read %':>7} {'launch us':>9}  best variant")
    for row in lowbit_rows:
        f = fields(row["descriptor"])
        key = (int(f["m"]), int(f["n"]), int(f["k"]), f.get("act", "bf16"))
        base = baselines.get(key, {})
        cublas = base.get("cublas_us", base.get("cublas_bf16_us", float("nan")))
        form = f"w{f['bits']}g{f['group']} {key[3]}"
        floor_us = row["bytes"] / (copy_gbps * 1e9) * 1e6
        tiny = base.get("tinygemm_us")
        # "—": the heuristic's variant was not timed (a --family or --variant run left it out).
        heuristic = f"{row['heuristic_us']:.1f}" if "heuristic_us" in row else "—"
        read = (f"{100 * row['read_bytes'] / (copy_gbps * 1e9) * 1e6 / row['read_us']:.0f}%"
                if "read_us" in row else "—")
        # What a call with almost no bytes costs under the same protocol (rows from session 27 on).
        launch = f"{row['launch_us']:.1f}" if "launch_us" in row else "—"
        if "best_variant" not in row or not row["best_variant"]:
            print(f"{key[0]:>4} {key[1]:>6}x{key[2]:<5} {form:>10} no variant passed: {row.get('failures', '?')}")
            continue
        gem_row = library_row(base, "gemlite", f["bits"])
        gem = gem_row.get("us", float("nan"))
        marlin_row = library_row(base, "marlin", f["bits"])
        marlin = marlin_row.get("us", float("nan"))
        print(f"{key[0]:>4} {key[1]:>6}x{key[2]:<5} {form:>10} {row['best_us']:>10.1f} {100 * floor_us / row['best_us']:>7.0f}% "
              f"{cublas:>10.1f} {cublas / row['best_us']:>8.2f}x "
              f"{(tiny if tiny else float('nan')):>12.1f} {((tiny / row['best_us']) if tiny else float('nan')):>10.2f}x "
              f"{gem:>11.1f} {gem / row['best_us']:>9.2f}x {gem_row.get('max_err', float('nan')):>8.1e} "
              f"{marlin:>10.1f} {marlin / row['best_us']:>8.2f}x {marlin_row.get('max_err', float('nan')):>8.1e} "
              f"{heuristic:>8} {row['max_rel_err']:>9.1e} {read:>7} {launch:>9}  {row['best_variant']}")

    run_mean_table(lowbit_rows, baselines, copy_gbps)


def library_row(base, library, bits):
    """torch_baselines.py's figures of a quantized library ("gemlite", "marlin") at this width ({} where not measured)."""
    return base.get(library, {}).get(str(bits), {})


def run_mean_table(lowbit_rows, baselines, copy_gbps):
    """rotate's second figure: each run's time over its calls, events only at the run's two ends."""
    rows = [row for row in lowbit_rows if "best_run_mean_us" in row]
    if not rows:
        return
    print("rotate, the run's mean (no event between calls; the best variant by the median above):")
    print(f"{'M':>4} {'N x K':>12} {'lowbit us':>10} {'% floor':>8} {'cuBLAS us':>10} {'x cuBLAS':>9} "
          f"{'tinygemm us':>12} {'x tinygemm':>11} {'gemlite us':>11} {'x gemlite':>10} {'marlin us':>10} {'x marlin':>9} {'read %':>7}  copies")
    nan = float("nan")
    for row in rows:
        f = fields(row["descriptor"])
        key = (int(f["m"]), int(f["n"]), int(f["k"]), f.get("act", "bf16"))
        base = baselines.get(key, {})
        lowbit = row["best_run_mean_us"]
        cublas = base.get("cublas_run_mean_us", nan)
        tiny = base.get("tinygemm_run_mean_us", nan)
        gem = library_row(base, "gemlite", f["bits"]).get("run_mean_us", nan)
        marlin = library_row(base, "marlin", f["bits"]).get("run_mean_us", nan)
        floor_us = row["bytes"] / (copy_gbps * 1e9) * 1e6
        read = 100 * row["read_bytes"] / (copy_gbps * 1e9) * 1e6 / row["read_run_mean_us"]
        print(f"{key[0]:>4} {key[1]:>6}x{key[2]:<5} {lowbit:>10.1f} {100 * floor_us / lowbit:>7.0f}% "
              f"{cublas:>10.1f} {cublas / lowbit:>8.2f}x {tiny:>12.1f} {tiny / lowbit:>10.2f}x "
              f"{gem:>11.1f} {gem / lowbit:>9.2f}x {marlin:>10.1f} {marlin / lowbit:>8.2f}x {read:>6.0f}%  {row['copies']}")


if __name__ == "__main__":
    main()
