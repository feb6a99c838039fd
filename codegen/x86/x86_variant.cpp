#include "codegen/x86/x86_variant.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "lowbit/errors.h"
#include "lowbit/fields_json.h"

namespace lowbit::x86 {
namespace {

constexpr std::array<std::string_view, 8> isa_short_names{"avx512fma", "avx512bf16", "avx2fma",  "avx512vnni",
                                                          "amxbf16",   "amxint8",    "avx2vnni", "avx2int8"};

}  // namespace

std::string_view to_string(X86Isa isa) { return EnumNames<X86Isa>::names[static_cast<std::size_t>(isa)]; }

std::string variant_name(const OpDesc& desc, const X86Variant& variant) {
  // split_k=1, k_block=0, scaled_decode=0 and prefetch=0 add nothing, so the names of variants
  // stored before those fields existed still hold.
  return fmt::format("x86_{}_w{}g{}_n{}m{}k{}_t{}{}{}{}{}", isa_short_names[static_cast<std::size_t>(variant.isa)],
                     desc.bits, desc.group == whole_k_group ? std::string("k") : std::to_string(desc.group),
                     variant.n_panels, variant.m_rows, variant.k_unroll, variant.threads,
                     variant.split_k == 1 ? std::string() : fmt::format("_s{}", variant.split_k),
                     variant.k_block == 0 ? std::string() : fmt::format("_kb{}", variant.k_block),
                     variant.scaled_decode == 0 ? "" : "_sd",
                     variant.prefetch == 0 ? std::string() : fmt::format("_p{}", variant.prefetch));
}

nlohmann::json to_json(const X86Variant& variant) { return fields_to_json(variant); }

X86Variant variant_from_json(const nlohmann::json& json) {
  // Variants stored before split_k (k_block, scaled_decode, prefetch) existed lack it and meant
  // no split (no blocking, scales applied per group, no prefetch).
  if (json.is_object() && (!json.contains("split_k") || !json.contains("k_block") || !json.contains("scaled_decode") ||
                           !json.contains("prefetch"))) {
    nlohmann::json completed = json;
    if (!completed.contains("split_k")) completed["split_k"] = 1;
    if (!completed.contains("k_block")) completed["k_block"] = 0;
    if (!completed.contains("scaled_decode")) completed["scaled_decode"] = 0;
    if (!completed.contains("prefetch")) completed["prefetch"] = 0;
    return fields_from_json<X86Variant>(completed, "x86 variant");
  }
  return fields_from_json<X86Variant>(json, "x86 variant");
}

}  // namespace lowbit::x86
