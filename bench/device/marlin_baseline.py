"""vLLM's Marlin kernels as a baseline of the CUDA benchmark (torch_baselines.py), built on the device.

The sources are vllm 0.20.0's csrc/quantization/marlin and csrc/core, from its PyPI sdist
(bench/device/prepare.sh puts them under .deps/marlin; 0.20.0 is the release that pins the
device's torch 2.11). What is built, as one torch extension:
- marlin.cu: marlin_gemm, the launcher that picks a kernel and a split of the rows per call;
- awq_marlin_repack.cu: the weight repacking;
- marlin_ops.cpp (here): the op schemas, which vLLM declares in its own bindings;
- the Marlin kernel instantiations for int4 codes with integer zero points (AWQ's format,
  (q - z) s: lowbit's zero=int) at group 128, fp16 and bf16, one file each so they compile in
  parallel. They are the instantiations vLLM 0.20's generate_kernels.py emits for those types and
  that group (the same thread shapes and row blocks; 15 a dtype), so marlin_gemm picks among the
  kernels a vLLM build has for these calls. Other types and groups are not built: marlin_gemm
  refuses them.

vLLM's defaults for the call: use_fp32_reduce on, atomic adds off (vLLM turns them on only by an
environment variable), no activation reordering.

Usage on the device: python3 marlin_baseline.py BUILD_DIR [--sources .deps/marlin] [--verbose]
compiles (ninja, a job per core) and prints the seconds it took; torch_baselines.py then loads the
library with load_built(BUILD_DIR)."""
import argparse
import os
import pathlib
import time

import torch

EXTENSION = "lowbit_marlin"
RELEASE = "vllm-0.20.0"  # the marker prepare.sh leaves in the sources folder

# (thread_k, thread_n, threads) of a block, and the blocks of 16 rows a block takes (0.5: 8 rows).
THREAD_SHAPES = ((128, 128, 256), (64, 256, 256), (64, 128, 128), (128, 64, 128))
ROW_BLOCKS = (0.5, 1, 2, 3, 4)
STAGES = 4
GROUP = 128
ACTIVATIONS = {torch.float16: "kFloat16", torch.bfloat16: "kBFloat16"}
WEIGHT_TYPE = "kU4"  # codes 0..15 with integer zero points


def kernel_configs():
    """The template arguments of every Marlin kernel built, as dicts."""
    for activation in ACTIVATIONS.values():
        for row_blocks in ROW_BLOCKS:
            for thread_k, thread_n, threads in THREAD_SHAPES:
                # 256-thread blocks come in one shape per batch size: 128x128 up to 16 rows, 64x256 above.
                if threads == 256 and (thread_k, thread_n) != ((128, 128) if row_blocks <= 1 else (64, 256)):
                    continue
                yield {"a_type": activation, "b_type": WEIGHT_TYPE, "c_type": activation, "s_type": activation,
                       "threads": threads, "thread_m_blocks": max(int(row_blocks), 1),
                       "thread_n_blocks": thread_n // 16, "thread_k_blocks": thread_k // 16,
                       "m_block_size_8": "true" if row_blocks == 0.5 else "false", "stages": STAGES,
                       "group_blocks": GROUP // 16, "is_zp_float": "false"}


def template_arguments(config):
    types = ", ".join(f"vllm::{config[name]}.id()" for name in ("a_type", "b_type", "c_type", "s_type"))
    values = ", ".join(str(config[name]) for name in ("threads", "thread_m_blocks", "thread_n_blocks",
                                                      "thread_k_blocks", "m_block_size_8", "stages",
                                                      "group_blocks", "is_zp_float"))
    return f"{types}, {values}"


def kernel_source(config):
    return ('#include "kernel.h"\n#include "marlin_template.h"\n\nnamespace MARLIN_NAMESPACE_NAME {\n'
            f"template __global__ void Marlin<{template_arguments(config)}>(MARLIN_KERNEL_PARAMS);\n}}\n")


def selector_source(configs):
    """kernel_selector.h: marlin.cu includes it inside get_marlin_kernel, whose arguments it tests."""
    branches = []
    for config in configs:
        condition = " && ".join(
            [f"{name} == vllm::{config[name]}" for name in ("a_type", "b_type", "c_type", "s_type")] +
            [f"{name} == {config[name]}" for name in ("threads", "thread_m_blocks", "thread_n_blocks",
                                                       "thread_k_blocks", "m_block_size_8", "stages",
                                                       "group_blocks", "is_zp_float")])
        keyword = "if" if not branches else "else if"
        branches.append(f"{keyword} ({condition})\n  kernel = Marlin<{template_arguments(config)}>;\n")
    return "// written by bench/device/marlin_baseline.py\n" + "".join(branches)


def write_if_changed(path, text):
    """Leaves an unchanged file alone, so ninja's up-to-date check holds across calls."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generated_sources(folder):
    folder.mkdir(parents=True, exist_ok=True)
    configs = list(kernel_configs())
    write_if_changed(folder / "kernel_selector.h", selector_source(configs))
    paths = []
    for index, config in enumerate(configs):
        path = folder / f"marlin_kernel_{index:02d}.cu"
        write_if_changed(path, kernel_source(config))
        paths.append(path)
    return paths


def build(build_dir, sources, verbose=False):
    """Compiles the extension into build_dir (a no-op when it is up to date) and loads it."""
    from torch.utils import cpp_extension
    csrc = pathlib.Path(sources) / "csrc"
    marlin = csrc / "quantization" / "marlin"
    if not (pathlib.Path(sources) / RELEASE).exists():
        raise RuntimeError(f"{sources} holds no {RELEASE} sources (bench/device/prepare.sh fetches them)")
    build_dir = pathlib.Path(build_dir)
    generated = build_dir / "generated"
    kernels = generated_sources(generated)
    major, minor = torch.cuda.get_device_capability()
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", f"{major}.{minor}")
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count()))
    cuda_flags = [
        "-O3", "-DENABLE_FP8",
        # vLLM's build drops torch's half-precision operator bans; the kernels use those operators.
        "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-U__CUDA_NO_HALF2_OPERATORS__",
        # Kernel templates instantiated in one file and launched from marlin.cu (CUDA >= 12.8).
        "-static-global-template-stub=false",
    ]
    cpp_extension.load(
        name=EXTENSION,
        sources=[str(marlin / "marlin.cu"), str(marlin / "awq_marlin_repack.cu"),
                 str(pathlib.Path(__file__).with_name("marlin_ops.cpp"))] + [str(path) for path in kernels],
        extra_include_paths=[str(csrc), str(marlin), str(generated)],
        extra_cflags=["-O3"], extra_cuda_cflags=cuda_flags, build_directory=str(build_dir),
        is_python_module=False, verbose=verbose)
    return getattr(torch.ops, EXTENSION)


def load_built(build_dir):
    """(the ops, None) when build() has made the library in build_dir, else (None, why not)."""
    library = pathlib.Path(build_dir) / f"{EXTENSION}.so"
    if not library.exists():
        return None, f"Marlin not built: no {library} (bench/device/marlin_baseline.py builds it)"
    try:
        torch.ops.load_library(str(library))
        return getattr(torch.ops, EXTENSION), None
    except Exception as error:  # report, do not hide: every row says why
        return None, f"Marlin not loadable: {error}"[:200]


AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AWQ's order of 8 columns in an int32 word (awq_marlin_repack undoes it)
SCALE_ORDER = tuple(row + 8 * column for row in range(8) for column in range(8))  # Marlin's order of 64 columns


def pack_columns(values):
    """(rows, columns) int4 values -> (rows, columns / 8) int32, column 8c + i in bits 4i..4i+3 of word c."""
    values = values.to(torch.int32)
    packed = torch.zeros(values.shape[0], values.shape[1] // 8, dtype=torch.int32, device=values.device)
    for position in range(8):
        packed |= values[:, position::8] << (4 * position)
    return packed


def reorder_columns(values, order):
    """Every run of len(order) consecutive elements of the row-major values, permuted by order."""
    index = torch.tensor(order, device=values.device)
    return values.reshape(-1, len(order))[:, index].reshape(values.shape)


def marlin_weights(codes, scales, zeros, ops):
    """lowbit's orientation (codes [n, k] in 0..15; scales and integer zeros [n, k / GROUP]) in Marlin's
    layout: the repacked weight, the permuted scales [k / GROUP, n] and the packed zero points."""
    n, k = codes.shape
    awq_codes = pack_columns(reorder_columns(codes.t().contiguous(), AWQ_ORDER))
    weight = ops.awq_marlin_repack(awq_codes, k, n, 4, False)
    marlin_scales = reorder_columns(scales.t().contiguous(), SCALE_ORDER).contiguous()
    marlin_zeros = pack_columns(reorder_columns(reorder_columns(zeros.t().contiguous().to(torch.int32), SCALE_ORDER),
                                                AWQ_ORDER))
    return weight, marlin_scales, marlin_zeros


def marlin_call(x_shape, codes, scales, zeros, ops):
    """A callable y = marlin_gemm(x) on Marlin's packing of these weights (its own copy), with vLLM's defaults."""
    m, k = x_shape
    n = codes.shape[0]
    weight, marlin_scales, marlin_zeros = marlin_weights(codes, scales, zeros, ops)
    workspace = torch.zeros(torch.cuda.get_device_properties(0).multi_processor_count, dtype=torch.int32,
                            device="cuda")
    type_id = ops.weight_type_id("uint4")

    def call(x):
        return ops.marlin_gemm(x, None, weight, None, marlin_scales, None, None, marlin_zeros, None, None, workspace,
                               type_id, m, n, k, True, False, True, False)
    call.weight_bytes = weight.nbytes + marlin_scales.nbytes + marlin_zeros.nbytes
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build_dir", help="where the extension is compiled (kept between calls on a warm machine)")
    parser.add_argument("--sources", default=".deps/marlin", help="the folder prepare.sh extracted vLLM's sources to")
    parser.add_argument("--verbose", action="store_true", help="print ninja's compile lines")
    arguments = parser.parse_args()
    begin = time.perf_counter()
    build(arguments.build_dir, arguments.sources, arguments.verbose)
    print(f"Marlin ({RELEASE}, {len(list(kernel_configs()))} kernels) built in {time.perf_counter() - begin:.1f} s "
          f"into {arguments.build_dir}", flush=True)


if __name__ == "__main__":
    main()
