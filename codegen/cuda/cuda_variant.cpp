#include "codegen/cuda/cuda_variant.h"

#include <fmt/format.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "lowbit/errors.h"

namespace lowbit::cuda {
namespace {

nlohmann::json field_json(int value) { return value; }
nlohmann::json field_json(CudaFamily family) { return std::string(to_string(family)); }

void read_field(const nlohmann::json& json, std::string_view name, int& value) {
  if (!json.is_number_integer())
    throw InvalidArgument(std::string(name), fmt::format("variant field '{}' must be an integer", name));
  value = json.get<int>();
}

void read_field(const nlohmann::json& json, std::string_view name, CudaFamily& value) {
  const std::string text = json.is_string() ? json.get<std::string>() : std::string();
  for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma}) {
    if (text == to_string(family)) {
      value = family;
      return;
    }
  }
  throw InvalidArgument(std::string(name),
                        fmt::format("variant field '{}': '{}' is not a CUDA family (allowed: gemv, gemv_mma)", name, text));
}

}  // namespace

std::string_view to_string(CudaFamily family) { return family == CudaFamily::gemv ? "gemv" : "gemv_mma"; }

std::string variant_name(const OpDesc& desc, const CudaVariant& variant, const std::string& arch) {
  std::string compact_arch = arch;
  compact_arch.erase(std::remove(compact_arch.begin(), compact_arch.end(), '_'), compact_arch.end());
  std::string family(to_string(variant.family));
  family.erase(std::remove(family.begin(), family.end(), '_'), family.end());
  return fmt::format("cuda_{}_{}_w{}g{}_m{}_w{}u{}", compact_arch, family, desc.bits,
                     desc.group == whole_k_group ? std::string("k") : std::to_string(desc.group), desc.m,
                     variant.warps, variant.unroll);
}

nlohmann::json to_json(const CudaVariant& variant) {
  nlohmann::json json = nlohmann::json::object();
  for_each_field(variant, [&](std::string_view name, const auto& value) { json[std::string(name)] = field_json(value); });
  return json;
}

CudaVariant variant_from_json(const nlohmann::json& json) {
  if (!json.is_object()) throw InvalidArgument("variant", "a CUDA variant must be a JSON object");
  CudaVariant variant;
  for_each_field(variant, [&](std::string_view name, auto& value) {
    auto found = json.find(std::string(name));
    if (found == json.end())
      throw InvalidArgument(std::string(name), fmt::format("CUDA variant JSON lacks field '{}'", name));
    read_field(*found, name, value);
  });
  return variant;
}

}  // namespace lowbit::cuda
