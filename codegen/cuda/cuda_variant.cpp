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
  return fmt::format("cuda_{}_{}_w{}g{}_m{}_w{}u{}", compact_arch, family, desc.bits,
                     desc.group == whole_k_group ? std::string("k") : std::to_string(desc.group), desc.m,
                     variant.warps, variant.unroll);
}

nlohmann::json to_json(const CudaVariant& variant) { return fields_to_json(variant); }

CudaVariant variant_from_json(const nlohmann::json& json) { return fields_from_json<CudaVariant>(json, "CUDA variant"); }

}  // namespace lowbit::cuda
