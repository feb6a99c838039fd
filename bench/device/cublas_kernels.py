#!/usr/bin/env python3
"""Which kernels torch's F.linear (cuBLAS) runs for each row of a shapes file, and how long each takes.

The kernel names of cuBLAS's Hopper GEMMs carry their tile, cluster and schedule
(e.g. ..._tilesize128x256x64_cluster2x1x1_..._stream_k_...), which is what lowbit's wgmma
tiles are compared against. Each descriptor's m, n, k and act are read (the rest is ignored);
x is [m, k], the weight [n, k], both random. Prints one line per kernel a call launched:
the row, the kernel's name and its median CUDA time over --repeats calls (torch.profiler).

Usage: python3 bench/device/cublas_kernels.py SHAPES [--repeats N]
"""
import argparse
import statistics
import sys

import torch


def rows_of(path):
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = dict(part.split("=", 1) for part in line.split(",") if "=" in part)
        act = fields.get("act", "bf16")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(act)
        if dtype is None:
            sys.exit(f"cublas_kernels.py: {line}: act must be bf16 or fp16")
        yield int(fields["m"]), int(fields["n"]), int(fields["k"]), dtype, act


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}")
    for m, n, k, dtype, act in rows_of(args.shapes):
        x = torch.randn(m, k, device="cuda", dtype=dtype)
        w = torch.randn(n, k, device="cuda", dtype=dtype)
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profile:
            for _ in range(args.repeats):
                torch.nn.functional.linear(x, w)
            torch.cuda.synchronize()
        times = {}
        for event in profile.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                times.setdefault(event.name, []).append(event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total)
        for name, values in times.items():
            print(f"m={m:5d} {n}x{k} {act}  {statistics.median(values):8.1f} us  x{len(values)}  {name}")


if __name__ == "__main__":
    main()
