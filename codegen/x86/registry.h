// The x86 backend's generators, and the map for adding one.
//
// Adding a kernel family (e.g. AVX512-VNNI int8, AMX-BF16, AMX-INT8):
//   1. Write codegen/x86/<family>_generator.{h,cpp}: a Program class deriving BlockProgram
//      (block_program.h: block functions, the K loop) that emits the code, and a generator
//      with candidates / is_valid / emit / heuristic.
//   2. Give the variant what it needs to name the family (X86Isa), build it in X86Kernel, and
//      register the generator in registry.cpp (the `generators` list, in order of preference;
//      an ISA family LOWBIT_ISA / GetOptions.isa can force).
//   3. Bump the generator's version so cached decisions made without the family are re-tuned.
//   4. Tests: tests/x86/ runs every candidate against the reference (test_x86_kernels.cpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/cpu_info.h"
#include "lowbit/kernel.h"

namespace lowbit::x86 {

// Every function below that takes `isa` restricts the generators to one ISA family: `isa` is
// GetOptions.isa / the CLI's --isa; empty means $LOWBIT_ISA, and empty or unset there means
// every family, best first. Allowed values: "avx2", "avx512", "avx512_vnni", "amx". Anything
// else throws InvalidArgument naming "isa" (resp. "LOWBIT_ISA") and the allowed values.
//
// Compute modes never cross: every generator serves one mode (compute=float: the AMX-BF16,
// AVX-512 and AVX2 float generators; compute=int8: the AMX-INT8, AVX512-VNNI and AVX2 int8
// generators) and a descriptor only meets the generators of its own mode. So for compute=int8
// both "avx512" and "avx512_vnni" select the VNNI generator ("avx512" names the register file,
// which the VNNI one shares), "amx" selects the AMX-INT8 generator, and "avx2" the AVX2 int8
// generator (avx2_vnni with AVX-VNNI, else avx2_int8); for compute=float "amx" selects AMX-BF16
// and "avx512_vnni" selects nothing (refused: it names an int8 family).

// Identifies the code the allowed generators emit
// ("x86_amx_bf16@4+x86_avx512_float@4+x86_amx_int8@1+x86_avx512_vnni_int8@2+x86_avx2_float@1+
// x86_avx2_int8@1";
// each AMX family only on CPUs with its AMX-BF16 / AMX-INT8 unless forced;
// one of them when an ISA is forced); part of every cache key, so a decision tuned under a
// forced ISA is never served to a caller that did not force it, nor the other way round.
std::string generator_version(std::string_view isa = {});

// Whether some allowed generator serves desc on this CPU; the reason when not (for a forced
// ISA the CPU lacks: which feature is missing).
Validity supports(const OpDesc& desc, std::string_view isa = {});
// The same with the CPU given, for tests.
Validity supports(const OpDesc& desc, std::string_view isa, const CpuInfo& cpu);

// The candidates of the allowed generators of desc's compute mode that serve desc: for
// compute=float, AMX-BF16 (from AmxBf16Generator::min_rows rows) beside AVX-512 where the CPU has
// them, else the AVX2 fallback; for compute=int8, AMX-INT8 (from AmxInt8Generator::min_rows
// rows) beside AVX512-VNNI, else AVX2 int8. The heuristic: AMX from 16 rows on, else AVX-512, else AVX2 (a
// forced family's own).
std::vector<X86Variant> candidates(const OpDesc& desc, int max_threads, std::string_view isa = {});
X86Variant heuristic(const OpDesc& desc, int max_threads, std::string_view isa = {});

// Asks the generator of variant.isa (no restriction applies: a variant names its family).
Validity is_valid(const OpDesc& desc, const X86Variant& variant);

// The bound a variant's output is verified at (the tuner, the tests; lowbit/tolerance.h): the
// reference's tolerance(desc), except for variants that round each dequantized weight to bf16
// before multiplying (amx_bf16 with scaled_decode=1): dequantized_weights_tolerance(desc).
double verification_tolerance(const OpDesc& desc, const X86Variant& variant);

std::shared_ptr<const Kernel> build(const OpDesc& desc, const X86Variant& variant, int max_threads);
std::shared_ptr<const Kernel> build_from_json(const OpDesc& desc, const nlohmann::json& variant, int max_threads);

}  // namespace lowbit::x86
