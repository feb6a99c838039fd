// CUDA Hopper GEMM generator (medium and large M, sm_90a only): int4 weights in the native
// layout, wgmma.mma_async m64nNk16 with the dequantized weights as the A operand from registers
// and x as B from 128-byte-swizzled shared memory, a cp.async ring of BLOCK_K-k stages
// (templates/wgmma_gemm.cuh). Block tiles of BLOCK_N weight columns (64 per consumer
// warpgroup) x BLOCK_M rows of x (the wgmma's N). candidates / is_valid / emit as every
// generator, plus the launch geometry the kernel class uses.
#pragma once

#include <string>
#include <vector>

#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/gemv_generator.h"
#include "lowbit/descriptor.h"

namespace lowbit::cuda {

class WgmmaGenerator {
 public:
  static constexpr std::string_view family = "cuda_wgmma";
  static constexpr int version = 1;
  static constexpr int64_t max_rows = int64_t{1} << 24;
  static constexpr const char* entry_point = "lowbit_kernel";

  std::vector<CudaVariant> candidates(const OpDesc& desc) const;
  // arch_major: the device's compute capability major; only 9 (sm_90a) has wgmma.
  Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const;
  // The complete CUDA source for NVRTC: the templates and a thin instantiation.
  std::string emit(const OpDesc& desc, const CudaVariant& variant) const;
  CudaVariant heuristic(const OpDesc& desc) const;
  // Blocks over (M, N) tiles, a warpgroup per 64 weight columns, the ring's shared memory.
  LaunchGeometry launch_geometry(const OpDesc& desc, const CudaVariant& variant) const;
  // Shared memory of one block, in bytes (the template's WgmmaTile::SHARED_BYTES).
  static int shared_bytes(const OpDesc& desc, const CudaVariant& variant);
};

}  // namespace lowbit::cuda
