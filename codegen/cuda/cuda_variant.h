// The *how* of a CUDA kernel. Searched by the tuner, stored in the cache as JSON.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/descriptor.h"
#include "lowbit/fields.h"

namespace lowbit::cuda {

// gemv: CUDA-core FMAs (templates/gemv.cuh); gemv_mma: tensor-core mma.sync with the
// weights as the A operand (templates/gemv_mma.cuh). Both serve M = 1..8. dequant_gemm:
// dequantize to bf16/fp16 then a cuBLASLt GEMM, for large M (codegen/cuda/dequant_gemm_kernel.h).
enum class CudaFamily { gemv, gemv_mma, dequant_gemm };
std::string_view to_string(CudaFamily family);

}  // namespace lowbit::cuda

template <>
struct lowbit::EnumNames<lowbit::cuda::CudaFamily> {
  static constexpr std::array<std::string_view, 3> names{"gemv", "gemv_mma", "dequant_gemm"};
};

namespace lowbit::cuda {

struct CudaVariant {
  CudaFamily family = CudaFamily::gemv;
  int warps = 4;   // warps per block; they split one panel's K
  int unroll = 2;  // gemv: 16-byte loads a lane keeps in flight (whole chunks); gemv_mma: cp.async stages

  bool operator==(const CudaVariant&) const = default;

  static constexpr auto fields() {
    return std::tuple{field("family", &CudaVariant::family), field("warps", &CudaVariant::warps),
                      field("unroll", &CudaVariant::unroll)};
  }
};

// Complete, parseable name, e.g. "cuda_sm90a_gemv_w4g128_m1_w4u2", "cuda_sm90a_gemvmma_w4g128_m1_w4u2".
std::string variant_name(const OpDesc& desc, const CudaVariant& variant, const std::string& arch);
nlohmann::json to_json(const CudaVariant& variant);
CudaVariant variant_from_json(const nlohmann::json& json);

}  // namespace lowbit::cuda
