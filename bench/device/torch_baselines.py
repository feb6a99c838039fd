"""Baselines for the CUDA benchmark, measured by torch in the same device call as lowbit's
kernels: cuBLAS through torch.nn.functional.linear in the descriptor's activation dtype (bf16 or
fp16), torch's int4 kernel (aten._weight_int4pack_mm, "tinygemm", group 128, bf16 only), and the
device's copy bandwidth. The baselines do not depend on the descriptor's bits, group or zero:
each (M, N, K, act) is measured once.
Times: CUDA events around each call, L2 emptied before every one by the same protocol as
lowbit_cuda_bench (bench/l2_flush.h): --flush read (default; a read of a 512 MiB buffer leaves
only clean lines in L2) or write (a 512 MiB memset, triton.testing.do_bench's way, which leaves
dirty lines the timed call must write back); the median of the repeats. The copy bandwidth is
triton.testing.do_bench's (a 1 GiB copy: 2 GiB of traffic, the flush's lines do not matter).
Prints one JSON object per line. Usage: python3 torch_baselines.py SHAPES_FILE [--flush read|write]"""
import argparse
import json

import torch
import triton.testing


def descriptor_fields(line):
    return dict(item.split("=", 1) for item in line.strip().split(","))


FLUSH_BYTES = 512 << 20
WARMUP = 10
REPEATS = 100


class L2Flush:
    """bench/l2_flush.h's two protocols. The read kernel is torch's sum over the buffer (one
    float written); the buffer holds ones, so the sum never overflows or varies."""

    def __init__(self, mode):
        self.mode = mode
        self.buffer = torch.ones(FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")

    def run(self):
        if self.mode == "read":
            self.buffer.sum()
        else:
            self.buffer.zero_()


def time_us(fn, flush, repeats=REPEATS):
    """Median microseconds of `repeats` calls, each after flush.run(), between CUDA events."""
    for _ in range(WARMUP):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for start, stop in zip(starts, stops):
        flush.run()
        start.record()
        fn()
        stop.record()
    torch.cuda.synchronize()
    times = sorted(1e3 * start.elapsed_time(stop) for start, stop in zip(starts, stops))
    return times[len(times) // 2]


def copy_bandwidth_gbps():
    source = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    microseconds = 1e3 * triton.testing.do_bench(lambda: target.copy_(source), warmup=25, rep=200, return_mode="median")
    return 2 * source.numel() / (microseconds * 1e-6) / 1e9  # bytes read + bytes written


def tinygemm(x, n, k, group):
    # Random int4 codes packed the way torch expects: uint8 [n, k/2], then the tile packing.
    codes = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
    packed_bytes = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
    weight = torch.ops.aten._convert_weight_to_int4pack(packed_bytes, 8)
    scales_and_zeros = torch.randn(k // group, n, 2, dtype=torch.bfloat16, device="cuda") * 0.01
    return lambda: torch.ops.aten._weight_int4pack_mm(x, weight, group, scales_and_zeros)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shapes", help="a file of descriptors, one a line")
    parser.add_argument("--flush", choices=["read", "write"], default="read", help="how L2 is emptied before each run")
    arguments = parser.parse_args()
    torch.manual_seed(0)
    flush = L2Flush(arguments.flush)
    print(json.dumps({"copy_gbps": copy_bandwidth_gbps(), "device": torch.cuda.get_device_name(), "flush": arguments.flush}),
          flush=True)
    measured = set()
    for line in open(arguments.shapes):
        if not line.strip() or line.startswith("#"):
            continue
        fields = descriptor_fields(line)
        m, n, k = int(fields["m"]), int(fields["n"]), int(fields["k"])
        act = fields.get("act", "bf16")
        if (m, n, k, act) in measured:
            continue
        measured.add((m, n, k, act))
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[act]
        x = torch.randn(m, k, dtype=dtype, device="cuda")
        weight = torch.randn(n, k, dtype=dtype, device="cuda")
        row = {"m": m, "n": n, "k": k, "act": act, "cublas_us": time_us(lambda: torch.nn.functional.linear(x, weight), flush)}
        if act != "bf16":
            row["tinygemm_error"] = "torch's int4 kernel takes bf16 activations only"
        else:
            try:
                row["tinygemm_us"] = time_us(tinygemm(x, n, k, 128), flush)
            except Exception as error:  # report, do not hide: the table shows the reason
                row["tinygemm_error"] = str(error)[:200]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
