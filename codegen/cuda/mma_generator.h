// CUDA tensor-core GEMM generator (medium M, 1..max_rows, or m=0: any M, rows given per launch):
// 2-, 3-, 4- or 8-bit weights in the native layout, eqscale,
// block tiles of BLOCK_N columns x BLOCK_M rows, a cp.async pipeline of BLOCK_K-k stages,
// mma.sync m16n8k16 with the weights as the A operand, dequantized in registers
// (templates/mma_gemm.cuh). candidates / is_valid / emit as every generator, plus the launch
// geometry the kernel class uses.
#pragma once

#include <string>
#include <vector>

#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/gemv_generator.h"
#include "lowbit/descriptor.h"

namespace lowbit::cuda {

class MmaGenerator {
 public:
  static constexpr std::string_view family = "cuda_mma";
  // 2: the entry point takes the launch's rows (m=0 kernels). 3: bits 2, 3, 8 and eqscale.
  // 4: 4-bit codes masked a word at a time, one PRMT a register (same results).
  static constexpr int version = 4;
  static constexpr int max_rows = 512;
  static constexpr const char* entry_point = "lowbit_kernel";

  std::vector<CudaVariant> candidates(const OpDesc& desc) const;
  // arch_major: the device's compute capability major (8 = Ampere/Ada, 9 = Hopper); the
  // shared memory a block may use is that arch's opt-in limit.
  Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const;
  // The complete CUDA source for NVRTC: the templates and a thin instantiation.
  std::string emit(const OpDesc& desc, const CudaVariant& variant) const;
  CudaVariant heuristic(const OpDesc& desc) const;
  // Blocks over (M, N) tiles, the warps of the layout, the pipeline's shared memory.
  LaunchGeometry launch_geometry(const OpDesc& desc, const CudaVariant& variant) const;
  // Shared memory of one block, in bytes (the template's MmaTile::SHARED_BYTES).
  static int shared_bytes(const OpDesc& desc, const CudaVariant& variant);
  // Where its heuristic is the no-tune choice (codegen/cuda/registry.cpp). Measured on the H100
  // (docs/benchmarks.md, "mma family: bits 2, 3 and 8"), bits 2/3/8 against dequant_gemm on
  // 4096x4096 and 28672x4096: mma 1.0-3.5x faster at M = 32 and 64, 0.94-1.21x at M = 128, and
  // 0.59-0.66x at M = 256, so above preferred_narrow_max_rows those widths go to dequant_gemm.
  // int4 and m=0 (dequant_gemm needs an exact M) wherever it is valid. (On sm_90a wgmma comes
  // first for every width over its own rows, WgmmaGenerator::preferred.)
  static constexpr int64_t preferred_narrow_max_rows = 128;
  static bool preferred(const OpDesc& desc) { return desc.bits == 4 || desc.m <= preferred_narrow_max_rows; }
};

}  // namespace lowbit::cuda
