"""Baselines for the CUDA benchmark, measured by torch in the same device call as lowbit's
kernels: cuBLAS through torch.nn.functional.linear in the descriptor's activation dtype (bf16 or
fp16), torch's int4 kernel (aten._weight_int4pack_mm, "tinygemm", group 128, bf16 only), gemlite's
integer kernels (Triton; when the package is importable: bench/device/prepare.sh carries it) and
the device's copy bandwidth. cuBLAS and tinygemm do not depend on the descriptor's bits, group or
zero: each (M, N, K, act) is measured once. gemlite is measured at each width the row's
descriptors name that it has (2, 4 or 8 bits; 3 is reported as missing): group 128, the HQQ format
(q - z) s with its default fma_mode, scales and integer zeros in the activation dtype, its shipped
H100 configs. vLLM's Marlin kernels (marlin_baseline.py, when built: --marlin-build) are measured
likewise at 4 bits, the one width they have with integer zeros: AWQ's format (q - z) s, group 128.
Each one's output is checked against x times its dequantized weights in fp32 (max_err, normalised
by the largest output, as lowbit_cuda_bench's max_rel_err); its first call (gemlite compiles its
Triton kernel there, and autotunes where no shipped config fits) is timed apart (first_call_s), and
so is the host's enqueue of a call (host_us: see time_flushed_us).
Times: the same protocols as lowbit_cuda_bench (bench/l2_flush.h), the median of the repeats:
--flush read (default; CUDA events around each call, a read of a 512 MiB buffer before it
leaves only clean lines in L2), write (the same with a 512 MiB memset, triton.testing.do_bench's
way, which leaves dirty lines the timed call must write back) or rotate (R copies of the call's
inputs, x and the weight, or tinygemm's packed weight and scales, together >= 4x L2; the calls
back to back round-robin over them, an event before each and after the last, each call's time
the interval to the next event; the run queued behind torch.cuda._sleep, long enough by the
host's clock that Python's dispatch never shows, else repeated behind a longer sleep; torch's
outputs come from its caching allocator and are not rotated; the same run again with events
only at its two ends gives the run's mean, *_run_mean_us: bench/l2_flush.h's Timing says why). The copy bandwidth is
triton.testing.do_bench's (a 1 GiB copy: 2 GiB of traffic, the flush's lines do not matter).
Prints one JSON object per line. Usage: python3 torch_baselines.py SHAPES_FILE [--flush read|write|rotate]"""
import argparse
import json
import math
import time

import torch
import triton.testing

import marlin_baseline


def descriptor_fields(line):
    return dict(item.split("=", 1) for item in line.strip().split(","))


FLUSH_BYTES = 512 << 20
WARMUP = 10
REPEATS = 100
HOST_ENQUEUE_HIDDEN_US = 40  # a call enqueued faster than this stays hidden behind the 512 MiB flush without a sleep


class L2Flush:
    """bench/l2_flush.h's protocols. The read kernel is torch's sum over the buffer (one float
    written); the buffer holds ones, so the sum never overflows or varies. rotate needs no buffer."""

    def __init__(self, mode):
        self.mode = mode
        if mode != "rotate":
            self.buffer = torch.ones(FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")

    def run(self):
        if self.mode == "read":
            self.buffer.sum()
        else:
            self.buffer.zero_()


def rotation_copies(call_bytes):
    """bench/l2_flush.h's rotation_copies: copies of call_bytes together >= 4x this GPU's L2, at least 2."""
    return max(2, math.ceil(4 * torch.cuda.get_device_properties(0).L2_cache_size / call_bytes))


def sleep_cycles_per_us():
    """torch.cuda._sleep counts clock cycles: its rate, measured once with events."""
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(1000)  # first launch outside the measurement
    start.record()
    torch.cuda._sleep(10_000_000)
    stop.record()
    torch.cuda.synchronize()
    return 10_000_000 / (1e3 * start.elapsed_time(stop))


def time_flushed_us(fn, flush, repeats, cycles_per_us):
    """Median microseconds of `repeats` calls, each after flush.run(), between CUDA events. Where the host's
    enqueue of a call is slow (gemlite's Python dispatch: 0.15-0.27 ms, longer than the read flush's ~0.17 ms
    on the GPU), a GPU sleep of twice that enqueue follows each flush, so the start event is still recorded
    while the GPU is busy and the interval holds the call alone; the sleep touches no memory, so the flush's
    L2 state is the same."""
    host_us = []
    for _ in range(WARMUP):
        begin = time.perf_counter()
        fn(0)
        host_us.append(1e6 * (time.perf_counter() - begin))
        torch.cuda.synchronize()
    settled_us = max(host_us[WARMUP // 2:])  # the first calls may set up handles and heuristics
    cover_cycles = int(2 * settled_us * cycles_per_us) if settled_us > HOST_ENQUEUE_HIDDEN_US else 0
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for start, stop in zip(starts, stops):
        flush.run()
        if cover_cycles:
            torch.cuda._sleep(cover_cycles)
        start.record()
        fn(0)
        stop.record()
    torch.cuda.synchronize()
    times = sorted(1e3 * start.elapsed_time(stop) for start, stop in zip(starts, stops))
    return times[len(times) // 2]


def run_rotated(fn, copies, repeats, cycles_per_us, event_per_call):
    """Intervals (us) between consecutive events of `repeats` back-to-back calls fn(copy),
    round-robin over `copies`, an event before each call and after the last (event_per_call) or
    only before the first and after the last; queued behind a sleep of the GPU that outlasts the
    host's enqueue (checked by the host's clock; a run that did not fit is repeated behind twice
    the enqueue time, at most 4 times, then refused)."""
    events = [torch.cuda.Event(enable_timing=True) for _ in range(repeats + 1 if event_per_call else 2)]
    sleep_us = 2000 + 50 * (WARMUP + repeats + len(events))  # Python's dispatch: ~10-20 us an operation
    for _ in range(4):
        begin = time.perf_counter()
        torch.cuda._sleep(int(sleep_us * cycles_per_us))
        for copy in range(WARMUP):
            fn(copy % copies)
        for index in range(repeats):
            if event_per_call or index == 0:
                events[index if event_per_call else 0].record()
            fn((WARMUP + index) % copies)
        events[-1].record()
        enqueue_us = 1e6 * (time.perf_counter() - begin)
        torch.cuda.synchronize()
        if enqueue_us < sleep_us:
            return [1e3 * events[i].elapsed_time(events[i + 1]) for i in range(len(events) - 1)]
        sleep_us = 2 * enqueue_us
    raise RuntimeError(f"--flush rotate: enqueueing {repeats} calls took {enqueue_us:.0f} us, "
                       "longer than the GPU's sleep ahead of them, 4 times")


def time_rotated_us(fn, copies, repeats, cycles_per_us):
    """(median of the per-call intervals, the run's mean without per-call events): bench/l2_flush.h's Timing."""
    for copy in range(WARMUP):
        fn(copy % copies)
    torch.cuda.synchronize()
    times = sorted(run_rotated(fn, copies, repeats, cycles_per_us, True))
    return times[len(times) // 2], run_rotated(fn, copies, repeats, cycles_per_us, False)[0] / repeats


class Timer:
    """Times fn(copy) under one protocol; under rotate the caller made `copies` of the inputs."""

    def __init__(self, mode):
        self.mode = mode
        self.flush = L2Flush(mode)
        self.cycles_per_us = sleep_cycles_per_us()

    def copies(self, call_bytes):
        return rotation_copies(call_bytes) if self.mode == "rotate" else 1

    def time_us(self, fn, copies, repeats=REPEATS):
        """(median, run mean or None): the run mean only under rotate."""
        if self.mode == "rotate":
            return time_rotated_us(fn, copies, repeats, self.cycles_per_us)
        return time_flushed_us(fn, self.flush, repeats, self.cycles_per_us), None


def copy_bandwidth_gbps():
    source = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    microseconds = 1e3 * triton.testing.do_bench(lambda: target.copy_(source), warmup=25, rep=200, return_mode="median")
    return 2 * source.numel() / (microseconds * 1e-6) / 1e9  # bytes read + bytes written


def cublas(x, n, k, timer):
    """F.linear on R copies of x and the weight (the same bytes: clones)."""
    weight = torch.randn(n, k, dtype=x.dtype, device="cuda")
    copies = timer.copies(x.nbytes + weight.nbytes)
    operands = [(x.clone(), weight.clone()) for _ in range(copies)]
    return timer.time_us(lambda copy: torch.nn.functional.linear(*operands[copy]), copies)


def tinygemm(x, n, k, group, timer):
    # Random int4 codes packed the way torch expects: uint8 [n, k/2], then the tile packing.
    codes = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
    packed_bytes = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
    weight = torch.ops.aten._convert_weight_to_int4pack(packed_bytes, 8)
    scales_and_zeros = torch.randn(k // group, n, 2, dtype=torch.bfloat16, device="cuda") * 0.01
    copies = timer.copies(x.nbytes + weight.nbytes + scales_and_zeros.nbytes)
    operands = [(x.clone(), weight.clone(), scales_and_zeros.clone()) for _ in range(copies)]

    def call(copy):
        x_copy, weight_copy, scales_copy = operands[copy]
        return torch.ops.aten._weight_int4pack_mm(x_copy, weight_copy, group, scales_copy)
    return timer.time_us(call, copies)


def import_gemlite():
    """(the gemlite module, None) or (None, why not)."""
    try:
        import gemlite
        return gemlite, None
    except Exception as error:  # report, do not hide: every row says why
        return None, f"gemlite not importable: {error}"[:200]


GEMLITE_BITS = (2, 4, 8)  # gemlite's integer weight widths that lowbit also has (it has no 3-bit kernels)


def random_quantized_weights(n, k, bits, group, dtype):
    """Random `bits`-bit codes [n, k], scales and integer zeros [n, k / group] (the zeros in dtype, exact integers)."""
    codes = torch.randint(0, 1 << bits, (n, k), dtype=torch.uint8, device="cuda")
    scales = (torch.rand(n, k // group, device="cuda") * (0.3 / (1 << bits)) + 0.002).to(dtype)
    zeros = torch.randint(0, 1 << bits, (n, k // group), device="cuda").to(dtype)
    return codes, scales, zeros


def measure_quantized(x, codes, scales, zeros, group, make_call, timer):
    """Times a quantized library's call on these weights, as a dict: us and run_mean_us (rotate only), max_err (the
    largest error against x times the dequantized weights (q - z) s in fp32, over the largest output), first_call_s
    (its first call: a compile or an autotune) and host_us (the host's median enqueue of a call). make_call() packs the
    weights into the library's format and returns a callable y = call(x) with a weight_bytes attribute; one call per
    rotated copy."""
    first = make_call()
    begin = time.perf_counter()
    y = first(x)
    torch.cuda.synchronize()
    result = {"first_call_s": time.perf_counter() - begin}
    dequantized = (codes.float() - zeros.float().repeat_interleave(group, 1)) * scales.float().repeat_interleave(group, 1)
    reference = x.float() @ dequantized.t()
    result["max_err"] = ((y.float() - reference).abs().max() / reference.abs().max()).item()
    del dequantized, reference
    copies = timer.copies(x.nbytes + first.weight_bytes)
    operands = [(x.clone(), first if copy == 0 else make_call()) for copy in range(copies)]
    host = []
    for _ in range(20):
        begin = time.perf_counter()
        first(x)
        host.append(1e6 * (time.perf_counter() - begin))
        torch.cuda.synchronize()
    result["host_us"] = sorted(host)[len(host) // 2]
    result["us"], run_mean = timer.time_us(lambda copy: operands[copy][1](operands[copy][0]), copies)
    if run_mean is not None:
        result["run_mean_us"] = run_mean
    return result


def gemlite_linear(x, n, k, bits, group, timer, gemlite):
    """gemlite's GemLiteLinear on random `bits`-bit codes, scales and integer zeros in x's dtype (measure_quantized)."""
    codes, scales, zeros = random_quantized_weights(n, k, bits, group, x.dtype)
    dtype = gemlite.DType.BF16 if x.dtype == torch.bfloat16 else gemlite.DType.FP16

    def packed_layer():
        layer = gemlite.GemLiteLinear(bits, group_size=group, in_features=k, out_features=n, input_dtype=dtype,
                                      output_dtype=dtype)
        layer.pack(codes, scales, zeros, None)
        layer.weight_bytes = layer.W_q.nbytes + layer.scales.nbytes + layer.zeros.nbytes
        return layer
    return measure_quantized(x, codes, scales, zeros, group, packed_layer, timer)


def marlin_linear(x, n, k, group, timer, marlin):
    """vLLM's Marlin (marlin_baseline.py) on random int4 codes, scales and integer zeros (measure_quantized)."""
    codes, scales, zeros = random_quantized_weights(n, k, 4, group, x.dtype)
    return measure_quantized(x, codes, scales, zeros, group,
                             lambda: marlin_baseline.marlin_call(x.shape, codes, scales, zeros, marlin), timer)


def by_width(widths, missing, refusal, measure):
    """A quantized library's figures at each width: {"4": measure(4), "3": {"error": why}}. missing: why the library
    is not there (None when it is); refusal(bits): why it has no kernel of that width (None when it has); a measure
    that raises is reported by its message, not hidden."""
    figures = {}
    for bits in sorted(widths):
        why = missing or refusal(bits)
        if why:
            figures[str(bits)] = {"error": why}
            continue
        try:
            figures[str(bits)] = measure(bits)
        except Exception as error:
            figures[str(bits)] = {"error": str(error)[:200]}
    return figures


def shape_rows(shapes_file):
    """{(m, n, k, act): the set of bits its descriptors name}, in the file's order."""
    rows = {}
    for line in open(shapes_file):
        if not line.strip() or line.startswith("#"):
            continue
        fields = descriptor_fields(line)
        key = (int(fields["m"]), int(fields["n"]), int(fields["k"]), fields.get("act", "bf16"))
        rows.setdefault(key, set()).add(int(fields.get("bits", 4)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shapes", help="a file of descriptors, one a line")
    parser.add_argument("--flush", choices=["read", "write", "rotate"], default="read",
                        help="how the timed calls' operands are kept out of L2 (bench/l2_flush.h)")
    parser.add_argument("--marlin-build", default="build-device/marlin",
                        help="where bench/device/marlin_baseline.py built vLLM's Marlin kernels")
    arguments = parser.parse_args()
    torch.manual_seed(0)
    timer = Timer(arguments.flush)
    gemlite, gemlite_missing = import_gemlite()
    marlin, marlin_missing = marlin_baseline.load_built(arguments.marlin_build)
    print(json.dumps({"copy_gbps": copy_bandwidth_gbps(), "device": torch.cuda.get_device_name(), "flush": arguments.flush,
                      "torch": torch.__version__, "gemlite": gemlite.__version__ if gemlite else gemlite_missing,
                      "marlin": marlin_baseline.RELEASE if marlin else marlin_missing}),
          flush=True)
    for (m, n, k, act), widths in shape_rows(arguments.shapes).items():
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[act]
        x = torch.randn(m, k, dtype=dtype, device="cuda")
        row = {"m": m, "n": n, "k": k, "act": act}
        row["cublas_us"], run_mean = cublas(x, n, k, timer)
        if run_mean is not None:
            row["cublas_run_mean_us"] = run_mean
        if act != "bf16":
            row["tinygemm_error"] = "torch's int4 kernel takes bf16 activations only"
        else:
            try:
                row["tinygemm_us"], run_mean = tinygemm(x, n, k, 128, timer)
                if run_mean is not None:
                    row["tinygemm_run_mean_us"] = run_mean
            except Exception as error:  # report, do not hide: the table shows the reason
                row["tinygemm_error"] = str(error)[:200]
        # gemlite and Marlin at each width the row's descriptors name: {"4": {"us": ...}, "3": {"error": ...}}.
        row["gemlite"] = by_width(widths, gemlite_missing,
                                  lambda bits: None if bits in GEMLITE_BITS else f"gemlite has no {bits}-bit integer kernels",
                                  lambda bits: gemlite_linear(x, n, k, bits, 128, timer, gemlite))
        row["marlin"] = by_width(widths, marlin_missing,
                                 lambda bits: None if bits == 4 else (f"Marlin has no {bits}-bit kernels with integer "
                                                                      "zeros (its 8-bit format is symmetric)"),
                                 lambda bits: marlin_linear(x, n, k, marlin_baseline.GROUP, timer, marlin))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
