#include "codegen/cuda/cuda_variant.h"

#include <fmt/format.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "lowbit/errors.h"
#include "lowbit/fields_json.h"

namespace lowbit::cuda {
std::string_view to_string(CudaFamily family) { return EnumNames<CudaFamily>::names[static_cast<std::size_t>(family)]; }

std::string variant_name(const OpDesc& desc, const CudaVariant& variant, const std::string& arch) {
  std::string compact_arch = arch;
  compact_arch.erase(std::remove(compact_arch.begin(), compact_arch.end(), '_'), compact_arch.end());
  std::string family(to_string(variant.family));
  family.erase(std::remove(family.begin(), family.end(), '_'), family.end());
  const std::string group = desc.group == whole_k_group ? std::string("k") : std::to_string(desc.group);
  if (variant.family == CudaFamily::mma)
    return fmt::format("cuda_{}_{}_w{}g{}_m{}_n{}m{}k{}_s{}_w{}x{}x{}", compact_arch, family, desc.bits, group, desc.m,
                       variant.block_n, variant.block_m, variant.block_k, variant.stages, variant.warps_n,
                       variant.warps_m, variant.warps_k);
  if (variant.family == CudaFamily::wgmma)
    return fmt::format("cuda_{}_{}_w{}g{}_m{}_n{}m{}k{}_s{}", compact_arch, family, desc.bits, group, desc.m,
                       variant.block_n, variant.block_m, variant.block_k, variant.stages);
  if (variant.family == CudaFamily::dequant_gemm)  // stages: tiles in flight per block of its dequantization pass
    return fmt::format("cuda_{}_{}_w{}g{}_m{}_w{}u{}s{}", compact_arch, family, desc.bits, group, desc.m, variant.warps,
                       variant.unroll, variant.stages);
  return fmt::format("cuda_{}_{}_w{}g{}_m{}_w{}u{}{}{}{}", compact_arch, family, desc.bits, group, desc.m,
                     variant.warps, variant.unroll,
                     variant.block_k == 0 ? std::string() : fmt::format("_k{}", variant.block_k),
                     variant.gemv_split_k == 1 ? std::string() : fmt::format("_split{}", variant.gemv_split_k),
                     variant.bulk_copy == 0 ? "" : "_bulk");
}

nlohmann::json to_json(const CudaVariant& variant) { return fields_to_json(variant); }

CudaVariant variant_from_json(const nlohmann::json& json) {
  // The tile fields were added with the mma family (a gemv variant stored before lacks them),
  // gemv_split_k and bulk_copy with gemv_mma's split and bulk copies (a variant stored before
  // has neither).
  nlohmann::json completed = json;
  if (completed.is_object()) {
    const nlohmann::json defaults = to_json(CudaVariant{});
    for (const char* name : {"block_n", "block_m", "block_k", "stages", "warps_n", "warps_m", "warps_k", "gemv_split_k", "bulk_copy"})
      if (!completed.contains(name)) completed[name] = defaults[name];
  }
  return fields_from_json<CudaVariant>(completed, "CUDA variant");
}

}  // namespace lowbit::cuda
