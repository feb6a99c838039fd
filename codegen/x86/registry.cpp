#include "codegen/x86/registry.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "codegen/x86/x86_kernel.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"

namespace lowbit::x86 {

std::string generator_version() {
  return fmt::format("{}@{}", Avx512FloatGenerator::family, Avx512FloatGenerator::version);
}

Validity supports(const OpDesc& desc) {
  // A variant every ISA flavour accepts tells whether the descriptor is served at all.
  return Avx512FloatGenerator().is_valid(desc, X86Variant{}, cpu_info());
}

std::vector<X86Variant> candidates(const OpDesc& desc, int max_threads) {
  return Avx512FloatGenerator().candidates(desc, cpu_info(), max_threads);
}

X86Variant heuristic(const OpDesc& desc, int max_threads) {
  return Avx512FloatGenerator().heuristic(desc, cpu_info(), max_threads);
}

Validity is_valid(const OpDesc& desc, const X86Variant& variant) {
  return Avx512FloatGenerator().is_valid(desc, variant, cpu_info());
}

std::shared_ptr<const Kernel> build(const OpDesc& desc, const X86Variant& variant, int max_threads) {
  return std::make_shared<X86Kernel>(desc, variant, max_threads);
}

std::shared_ptr<const Kernel> build_from_json(const OpDesc& desc, const nlohmann::json& variant, int max_threads) {
  return build(desc, variant_from_json(variant), max_threads);
}

}  // namespace lowbit::x86
