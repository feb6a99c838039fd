// CUDA GEMV generator (small M, 1..8): 2-, 3-, 4- and 8-bit weights in the native layout, one
// block per 16-column panel, warps splitting K, dequantization by exponent-bit OR, optional
// per-K equalization scale folded into the load of x. Two families: CUDA-core FMAs
// (templates/gemv.cuh) and tensor-core mma.sync (templates/gemv_mma.cuh).
// candidates / is_valid / emit as every generator.
#pragma once

#include <string>
#include <vector>

#include "codegen/cuda/cuda_variant.h"
#include "lowbit/descriptor.h"

namespace lowbit::cuda {

struct Validity {
  bool ok = true;
  std::string reason;
  explicit operator bool() const { return ok; }
};

class GemvGenerator {
 public:
  static constexpr std::string_view family = "cuda_gemv";
  static constexpr int version = 2;
  static constexpr int max_rows = 8;
  static constexpr const char* entry_point = "lowbit_kernel";

  std::vector<CudaVariant> candidates(const OpDesc& desc) const;
  // arch_major: the device's compute capability major (8 = Ampere/Ada, 9 = Hopper).
  Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const;
  // The complete CUDA source for NVRTC: the template text and a thin instantiation.
  std::string emit(const OpDesc& desc, const CudaVariant& variant) const;
  CudaVariant heuristic(const OpDesc& desc) const;
};

}  // namespace lowbit::cuda
