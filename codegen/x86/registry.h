// The x86 backend's generators, and the map for adding one.
//
// Adding a kernel family (e.g. AVX512-VNNI int8, AMX):
//   1. Write codegen/x86/<family>_generator.{h,cpp}: a Program class deriving JitGenerator
//      that emits the code, and a generator with candidates / is_valid / emit / heuristic.
//   2. Give the variant what it needs to name the family (X86Isa) and register the
//      generator in registry.cpp: supports() asks each in turn, candidates() concatenates.
//   3. Bump generator_version() so cached decisions made without the family are re-tuned.
//   4. Tests: tests/x86/ runs every candidate against the reference (test_x86_kernels.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/kernel.h"

namespace lowbit::x86 {

// Identifies the code the x86 generators emit; part of every cache key.
std::string generator_version();

// Whether some generator serves desc on this CPU; the reason when not.
Validity supports(const OpDesc& desc);

std::vector<X86Variant> candidates(const OpDesc& desc, int max_threads);
X86Variant heuristic(const OpDesc& desc, int max_threads);
Validity is_valid(const OpDesc& desc, const X86Variant& variant);

std::shared_ptr<const Kernel> build(const OpDesc& desc, const X86Variant& variant, int max_threads);
std::shared_ptr<const Kernel> build_from_json(const OpDesc& desc, const nlohmann::json& variant, int max_threads);

}  // namespace lowbit::x86
