// The *how* of a CUDA kernel. Searched by the tuner, stored in the cache as JSON.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/descriptor.h"
#include "lowbit/fields.h"

namespace lowbit::cuda {

enum class CudaFamily { gemv };

struct CudaVariant {
  CudaFamily family = CudaFamily::gemv;
  int warps = 4;   // warps per block; they split one panel's K
  int unroll = 2;  // steps (16 bytes a lane) whose loads are in flight together

  bool operator==(const CudaVariant&) const = default;

  static constexpr auto fields() {
    return std::tuple{field("family", &CudaVariant::family), field("warps", &CudaVariant::warps),
                      field("unroll", &CudaVariant::unroll)};
  }
};

// Complete, parseable name, e.g. "cuda_sm90a_gemv_w4g128_m1_w4u2".
std::string variant_name(const OpDesc& desc, const CudaVariant& variant, const std::string& arch);
nlohmann::json to_json(const CudaVariant& variant);
CudaVariant variant_from_json(const nlohmann::json& json);

}  // namespace lowbit::cuda
