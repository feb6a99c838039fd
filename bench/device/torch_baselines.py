"""Baselines for the CUDA benchmark, measured by torch in the same device call as lowbit's
kernels: cuBLAS through torch.nn.functional.linear in the descriptor's activation dtype (bf16 or
fp16), torch's int4 kernel (aten._weight_int4pack_mm, "tinygemm", group 128, bf16 only), and the
device's copy bandwidth. The baselines do not depend on the descriptor's bits, group or zero:
each (M, N, K, act) is measured once.
Times: triton.testing.do_bench (CUDA events, L2 flushed before every run), median.
Prints one JSON object per line. Usage: python3 torch_baselines.py SHAPES_FILE"""
import json
import sys

import torch
import triton.testing


def descriptor_fields(line):
    return dict(item.split("=", 1) for item in line.strip().split(","))


def time_us(fn):
    return 1e3 * triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


def copy_bandwidth_gbps():
    source = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    microseconds = time_us(lambda: target.copy_(source))
    return 2 * source.numel() / (microseconds * 1e-6) / 1e9  # bytes read + bytes written


def tinygemm(x, n, k, group):
    # Random int4 codes packed the way torch expects: uint8 [n, k/2], then the tile packing.
    codes = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
    packed_bytes = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
    weight = torch.ops.aten._convert_weight_to_int4pack(packed_bytes, 8)
    scales_and_zeros = torch.randn(k // group, n, 2, dtype=torch.bfloat16, device="cuda") * 0.01
    return lambda: torch.ops.aten._weight_int4pack_mm(x, weight, group, scales_and_zeros)


def main():
    torch.manual_seed(0)
    print(json.dumps({"copy_gbps": copy_bandwidth_gbps(), "device": torch.cuda.get_device_name()}), flush=True)
    measured = set()
    for line in open(sys.argv[1]):
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
        row = {"m": m, "n": n, "k": k, "act": act, "cublas_us": time_us(lambda: torch.nn.functional.linear(x, weight))}
        if act != "bf16":
            row["tinygemm_error"] = "torch's int4 kernel takes bf16 activations only"
        else:
            try:
                row["tinygemm_us"] = time_us(tinygemm(x, n, k, 128))
            except Exception as error:  # report, do not hide: the table shows the reason
                row["tinygemm_error"] = str(error)[:200]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
