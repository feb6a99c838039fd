"""Baselines for the x86 benchmark, measured by torch (CPU) with the thread count lowbit uses:
torch.nn.functional.linear in bf16 (oneDNN) and torch's int4 CPU kernel
aten._weight_int4pack_mm_for_cpu (group from the descriptor, bf16 scales and zeros).

Times follow lowbit's protocol rotate-median:1 (tuner/measure.h) so both sides are measured
alike: the weights (and the int4 kernel's scales and zeros) are copied until the copies
exceed 4x the last-level cache (at least 2, at most 64), consecutive runs use consecutive
copies so every run streams its weights from memory, 2 warm-up runs, then runs timed one by
one until at least 10 runs and 50 ms, or 200 runs; the median is reported.

Usage:
  python3 cpu_torch_baselines.py SHAPES_FILE --threads T    one JSON object per line
  python3 cpu_torch_baselines.py --check DIR [--threads T]  torch's int4 kernel on the
      problem written by lowbit_cpu_problem_dump (bench/cpu_problem_dump.cpp), checked
      against lowbit's reference; exit 1 when it is off by more than the tolerance below
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

WARMUP_RUNS = 2
MINIMUM_REPEATS = 10
MINIMUM_SECONDS = 0.05
MAXIMUM_REPEATS = 200
MAXIMUM_COPIES = 64

# torch's int4 CPU kernel dequantizes w = (q - 8) * scale + zero with scale and zero in
# bf16; lowbit's integer zero point z becomes zero = (8 - z) * scale. Three bf16 roundings
# separate the two results (scale, zero, output), each at most 2^-9 relative: 3 * 2^-9.
CHECK_TOLERANCE = 3.0 / 512


def descriptor_fields(line):
    return dict(item.split("=", 1) for item in line.strip().split(","))


def last_level_cache_bytes():
    # Same floor as tuner/measure.cpp: 32 MiB where the size is unknown or smaller.
    reported = os.sysconf("SC_LEVEL3_CACHE_SIZE") if "SC_LEVEL3_CACHE_SIZE" in os.sysconf_names else 0
    return max(reported, 32 << 20)


def copies_for(bytes_per_copy):
    rotate_bytes = 4 * last_level_cache_bytes()
    return min(max(math.ceil(rotate_bytes / bytes_per_copy), 2), MAXIMUM_COPIES)


def time_rotated(run):
    """run(copy_index) calls the kernel on one copy; returns (median_us, min_us, repeats)."""
    for warmup in range(WARMUP_RUNS):
        run(warmup)
    times = []
    started = time.perf_counter()
    while len(times) < MAXIMUM_REPEATS and (len(times) < MINIMUM_REPEATS or time.perf_counter() - started < MINIMUM_SECONDS):
        begin = time.perf_counter()
        run(WARMUP_RUNS + len(times))
        times.append(1e6 * (time.perf_counter() - begin))
    return statistics.median(times), min(times), len(times)


def int4_weights(codes, torch_scales_and_zeros, group):
    """codes: int32 [n, k] in 0..15; returns (packed weights, scales_and_zeros [k/group, n, 2] bf16)."""
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
    return packed, torch_scales_and_zeros


def random_int4(n, k, group, generator):
    codes = torch.randint(0, 16, (n, k), dtype=torch.int32, generator=generator)
    scales_and_zeros = (torch.rand(k // group, n, 2, generator=generator) * 0.02 + 0.001).to(torch.bfloat16)
    return int4_weights(codes, scales_and_zeros, group)


def time_bf16_linear(x, n, k, generator):
    weight = torch.randn(n, k, dtype=torch.bfloat16, generator=generator)
    copies = [weight.clone() for _ in range(copies_for(weight.numel() * 2))]
    with torch.inference_mode():
        return time_rotated(lambda run: F.linear(x, copies[run % len(copies)]))


def time_int4(x, n, k, group, generator):
    packed, scales_and_zeros = random_int4(n, k, group, generator)
    bytes_per_copy = packed.numel() * packed.element_size() + scales_and_zeros.numel() * 2
    copies = [(packed.clone(), scales_and_zeros.clone()) for _ in range(copies_for(bytes_per_copy))]

    def run(index):
        weights, qparams = copies[index % len(copies)]
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, weights, group, qparams)

    with torch.inference_mode():
        return time_rotated(run)


def sweep(shapes_file, threads):
    generator = torch.Generator().manual_seed(0)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "llc_bytes": last_level_cache_bytes(), "protocol": "rotate-median:1"}), flush=True)
    for line in open(shapes_file):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = descriptor_fields(line)
        m, n, k, group = int(fields["m"]), int(fields["n"]), int(fields["k"]), int(fields["group"])
        if fields.get("act", "bf16") != "bf16" or fields.get("bits", "4") != "4":
            raise SystemExit(f"{line.strip()}: the torch baselines are bf16 activations and int4 weights only")
        x = torch.rand(m, k, generator=generator).mul(2).sub(1).to(torch.bfloat16)
        row = {"m": m, "n": n, "k": k, "group": group, "threads": threads}
        row["torch_bf16_us"], row["torch_bf16_min_us"], row["torch_bf16_repeats"] = time_bf16_linear(x, n, k, generator)
        try:
            row["torch_int4_us"], row["torch_int4_min_us"], row["torch_int4_repeats"] = time_int4(x, n, k, group, generator)
        except Exception as error:  # report, do not hide: the table shows the reason
            row["torch_int4_error"] = str(error)[:200]
        print(json.dumps(row), flush=True)


def torch_qparams(scales_fp16, zeros_fp16, bits):
    """lowbit's [n][groups] fp16 scales and zero points -> torch's [groups, n, 2] bf16."""
    scales = scales_fp16.to(torch.float64)
    zeros = zeros_fp16.to(torch.float64) if zeros_fp16 is not None else torch.full_like(scales, 2 ** (bits - 1))
    torch_zero = (8.0 - zeros) * scales  # (q - z) s = (q - 8) s + (8 - z) s
    return torch.stack([scales.T, torch_zero.T], dim=-1).to(torch.bfloat16).contiguous()  # [groups, n, 2]


def check(directory):
    meta = json.load(open(os.path.join(directory, "problem.json")))
    m, n, k, group, groups = meta["m"], meta["n"], meta["k"], meta["group"], meta["groups"]
    if meta["bits"] != 4 or meta["act"] != "bf16":
        raise SystemExit(f"{meta['descriptor']}: the check compares int4 weights with bf16 activations only")

    def load(name, dtype, shape):  # raw little-endian files: torch alone reads them (no numpy)
        with open(os.path.join(directory, name), "rb") as file:
            return torch.frombuffer(bytearray(file.read()), dtype=dtype).reshape(shape)

    x = load("x.bin", torch.bfloat16, (m, k))
    codes = load("q.bin", torch.uint8, (n, k)).to(torch.int32)
    scales = load("scales.bin", torch.float16, (n, groups))
    zeros = load("zeros.bin", torch.float16, (n, groups)) if meta["has_zeros"] else None
    reference = load("y_ref.bin", torch.float64, (m, n))
    packed, qparams = int4_weights(codes, torch_qparams(scales, zeros, meta["bits"]), group)
    with torch.inference_mode():
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, group, qparams).to(torch.float64)
    finite = bool(torch.isfinite(y).all())
    rel_err = float(torch.linalg.norm(y - reference) / torch.linalg.norm(reference)) if finite else math.inf
    result = {"check": meta["descriptor"], "m": m, "rel_err": rel_err, "tolerance": CHECK_TOLERANCE,
              "passed": rel_err <= CHECK_TOLERANCE}
    print(json.dumps(result), flush=True)
    return result["passed"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes", nargs="?", help="shape file: one lowbit descriptor per line")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--check", metavar="DIR", help="check torch's int4 kernel on a dumped problem")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.check:
        sys.exit(0 if check(args.check) else 1)
    if not args.shapes:
        parser.error("give a shape file or --check DIR")
    sweep(args.shapes, torch.get_num_threads())


if __name__ == "__main__":
    main()
