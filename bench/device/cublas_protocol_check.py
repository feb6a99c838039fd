"""cuBLAS bf16 (torch.nn.functional.linear) at a few mid and large M under each timing protocol,
in one process: the `read` and `write` L2 flushes of torch_baselines.py (100 calls), triton's
do_bench (write flush, 200 ms of calls), and the `read` flush over 1000 calls. Shows how much of
a cuBLAS figure is the flush and how much is how long the GPU has been busy (its clock falls
under sustained tensor load). Usage (from the checkout root, on the GPU machine):
python3 bench/device/cublas_protocol_check.py"""
import sys

import torch
import triton.testing

sys.path.insert(0, "bench/device")
import torch_baselines  # noqa: E402

SHAPES = [(1024, 28672, 4096), (1024, 4096, 14336), (256, 6144, 4096), (4096, 4096, 4096)]


def main():
    for m, n, k in SHAPES:
        x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
        weight = torch.randn(n, k, dtype=torch.bfloat16, device="cuda")
        call = lambda: torch.nn.functional.linear(x, weight)  # noqa: E731
        read = torch_baselines.time_us(call, torch_baselines.L2Flush("read"))
        write = torch_baselines.time_us(call, torch_baselines.L2Flush("write"))
        do_bench = 1e3 * triton.testing.do_bench(call, warmup=25, rep=200, return_mode="median")
        read_long = torch_baselines.time_us(call, torch_baselines.L2Flush("read"), repeats=1000)
        print(f"M={m} {n}x{k}: read 100 calls {read:.1f} us, write 100 calls {write:.1f}, "
              f"do_bench (write, 200 ms) {do_bench:.1f}, read 1000 calls {read_long:.1f}", flush=True)


if __name__ == "__main__":
    main()
