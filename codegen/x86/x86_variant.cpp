#include "codegen/x86/x86_variant.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "lowbit/errors.h"

namespace lowbit::x86 {
namespace {

constexpr std::array<std::string_view, 3> isa_names{"avx512_fma", "avx512_bf16", "avx2_fma"};
constexpr std::array<std::string_view, 3> isa_short_names{"avx512fma", "avx512bf16", "avx2fma"};

void read_field(const nlohmann::json& json, std::string_view name, int& value) {
  if (!json.is_number_integer())
    throw InvalidArgument(std::string(name), fmt::format("variant field '{}' must be an integer", name));
  value = json.get<int>();
}

void read_field(const nlohmann::json& json, std::string_view name, X86Isa& value) {
  std::string text = json.is_string() ? json.get<std::string>() : std::string();
  for (std::size_t i = 0; i < isa_names.size(); ++i) {
    if (text == isa_names[i]) {
      value = static_cast<X86Isa>(i);
      return;
    }
  }
  throw InvalidArgument(std::string(name), fmt::format("variant field '{}': '{}' is not an x86 ISA "
                                                       "flavour (allowed: {})",
                                                       name, text, fmt::join(isa_names, ", ")));
}

nlohmann::json field_json(int value) { return value; }
nlohmann::json field_json(X86Isa value) { return std::string(to_string(value)); }

}  // namespace

std::string_view to_string(X86Isa isa) { return isa_names[static_cast<std::size_t>(isa)]; }

std::string variant_name(const OpDesc& desc, const X86Variant& variant) {
  return fmt::format("x86_{}_w{}g{}_n{}m{}k{}_t{}", isa_short_names[static_cast<std::size_t>(variant.isa)],
                     desc.bits, desc.group == whole_k_group ? std::string("k") : std::to_string(desc.group),
                     variant.n_panels, variant.m_rows, variant.k_unroll, variant.threads);
}

nlohmann::json to_json(const X86Variant& variant) {
  nlohmann::json json = nlohmann::json::object();
  for_each_field(variant, [&](std::string_view name, const auto& value) { json[std::string(name)] = field_json(value); });
  return json;
}

X86Variant variant_from_json(const nlohmann::json& json) {
  if (!json.is_object()) throw InvalidArgument("variant", "an x86 variant must be a JSON object");
  X86Variant variant;
  for_each_field(variant, [&](std::string_view name, auto& value) {
    auto found = json.find(std::string(name));
    if (found == json.end())
      throw InvalidArgument(std::string(name), fmt::format("x86 variant JSON lacks field '{}'", name));
    read_field(*found, name, value);
  });
  return variant;
}

}  // namespace lowbit::x86
