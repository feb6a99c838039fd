#include "codegen/cuda/registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <string_view>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/dequant_gemm_kernel.h"
#include "codegen/cuda/code_digest.h"
#include "codegen/cuda/embedded_templates.h"
#include "codegen/cuda/mma_generator.h"
#include "codegen/cuda/wgmma_generator.h"
#include "lowbit/errors.h"
#include "lowbit/tolerance.h"

namespace lowbit::cuda {
namespace {

// One registered generator: its name and version, the families of variants it owns, and its
// questions.
struct Generator {
  std::string_view family;
  int version;
  std::vector<CudaFamily> owns;
  // sm_count: the device's SMs (0: unknown), for the generators whose rules count waves.
  std::vector<CudaVariant> (*candidates)(const OpDesc&, int sm_count);
  // arch_major: the device's compute capability major, for the generators whose choice depends
  // on the arch's limits (GemvGenerator: shared memory); the others ignore it.
  CudaVariant (*heuristic)(const OpDesc&, int arch_major, int sm_count);
  // Whether its heuristic is the no-tune choice for desc on a device of compute capability
  // arch_major (where it was measured to win); a generator without a preference is preferred
  // wherever it is valid.
  bool (*preferred)(const OpDesc&, int arch_major);
  // Whether a default (not exhaustive) tune times this candidate of the generator; a generator
  // without a rule times all of them.
  bool (*in_default_search)(const OpDesc&, const CudaVariant&, int sm_count);
  Validity (*is_valid)(const OpDesc&, const CudaVariant&, int);
  std::string (*emit)(const OpDesc&, const CudaVariant&);
  // Loads the cubin of emit(desc, variant) into the family's kernel.
  std::shared_ptr<const ProgramKernel> (*load)(const OpDesc&, const CudaVariant&, std::vector<char>);
  // The verification bound of its kernels (lowbit/tolerance.h).
  double (*tolerance)(const OpDesc&);
};

// Families whose whole kernel is the one NVRTC program, at the reference's tolerance.
struct PlainProgram {
  static std::shared_ptr<const ProgramKernel> load(const OpDesc& desc, const CudaVariant& variant,
                                                   std::vector<char> cubin) {
    return std::make_shared<CudaKernel>(desc, variant, std::move(cubin));
  }
  static double tolerance(const OpDesc& desc) { return lowbit::tolerance(desc); }
};

// The fallback: its program dequantizes, cuBLASLt multiplies weights rounded to 16 bits.
struct DequantGemmProgram {
  static std::shared_ptr<const ProgramKernel> load(const OpDesc& desc, const CudaVariant& variant,
                                                   std::vector<char> cubin) {
    return std::make_shared<DequantGemmKernel>(desc, variant, std::move(cubin));
  }
  static double tolerance(const OpDesc& desc) { return dequantized_weights_tolerance(desc); }
};

// One program whose kernel rounds each dequantized weight s (q - z) to the activation type
// (wgmma: the scales are folded into the A operand), verified at dequant_gemm's bound.
struct RoundedWeightsProgram {
  static std::shared_ptr<const ProgramKernel> load(const OpDesc& desc, const CudaVariant& variant,
                                                   std::vector<char> cubin) {
    return std::make_shared<CudaKernel>(desc, variant, std::move(cubin));
  }
  static double tolerance(const OpDesc& desc) { return dequantized_weights_tolerance(desc); }
};

// The generator for a device of sm_count SMs: those that count waves take it, the others ignore it.
template <class G>
G generator_for(int sm_count) {
  if constexpr (std::is_constructible_v<G, int>)
    return G(sm_count);
  else
    return G();
}

template <class G, class Program = PlainProgram>
Generator make_generator(std::vector<CudaFamily> owns) {
  return {G::family,
          G::version,
          std::move(owns),
          [](const OpDesc& desc, int sm_count) { return generator_for<G>(sm_count).candidates(desc); },
          [](const OpDesc& desc, int arch_major, int sm_count) {
            const G generator = generator_for<G>(sm_count);
            if constexpr (requires { generator.heuristic(desc, arch_major); })
              return generator.heuristic(desc, arch_major);
            else
              return generator.heuristic(desc);
          },
          [](const OpDesc& desc, int arch_major) {
            if constexpr (requires { G::preferred(desc, arch_major); })
              return G::preferred(desc, arch_major);
            else if constexpr (requires { G::preferred(desc); })
              return G::preferred(desc);
            else
              return true;
          },
          [](const OpDesc& desc, const CudaVariant& variant, int sm_count) {
            const G generator = generator_for<G>(sm_count);
            if constexpr (requires { generator.in_default_search(desc, variant); })
              return generator.in_default_search(desc, variant);
            else
              return true;
          },
          [](const OpDesc& desc, const CudaVariant& variant, int arch_major) {
            return G().is_valid(desc, variant, arch_major);
          },
          [](const OpDesc& desc, const CudaVariant& variant) { return G().emit(desc, variant); },
          &Program::load,
          &Program::tolerance};
}

// In order of preference: the first that prefers a descriptor and whose heuristic serves it
// gives its heuristic. So on sm_90: wgmma over its preferred rows (WgmmaGenerator::preferred,
// as measured on the H100: every M from 17 at 2, 3 and 4 bits, 17..2048 at 8, and 16 rows on a wide N), gemv / gemv_mma up to
// M=16 and at 17..24 rows on few panels and a short K (GemvGenerator::short_rows_on_few_panels), then mma up to its max_rows (bits 2/3/8: up to MmaGenerator::preferred_narrow_max_rows,
// as measured) and dequant_gemm beyond. Elsewhere wgmma is invalid
// (sm_90a only) and the order is as without it.
const std::vector<Generator>& generators() {
  static const std::vector<Generator> list{
      make_generator<WgmmaGenerator, RoundedWeightsProgram>({CudaFamily::wgmma}),
      make_generator<GemvGenerator>({CudaFamily::gemv, CudaFamily::gemv_mma}),
      make_generator<MmaGenerator>({CudaFamily::mma}),
      make_generator<DequantGemmGenerator, DequantGemmProgram>({CudaFamily::dequant_gemm}),
  };
  return list;
}

const Generator& owner(const CudaVariant& variant) {
  for (const Generator& generator : generators())
    if (std::find(generator.owns.begin(), generator.owns.end(), variant.family) != generator.owns.end())
      return generator;
  throw Unsupported(fmt::format("no registered CUDA generator owns the family '{}'", to_string(variant.family)));
}

}  // namespace

std::string generator_version() {
  static const std::string version = [] {
    std::string families;
    for (const Generator& generator : generators())
      families += fmt::format("{}{}@{}", families.empty() ? "" : "+", generator.family, generator.version);
    return fmt::format("{};templates={};code={}", families, std::string_view(embedded_templates_digest()).substr(0, 16),
                       std::string_view(cuda_code_digest()).substr(0, 16));
  }();
  return version;
}

std::vector<CudaVariant> candidates(const OpDesc& desc, int arch_major, int sm_count) {
  std::vector<CudaVariant> variants;
  for (const Generator& generator : generators())
    for (const CudaVariant& variant : generator.candidates(desc, sm_count))
      if (generator.is_valid(desc, variant, arch_major)) variants.push_back(variant);
  return variants;
}

std::vector<CudaVariant> tuning_candidates(const OpDesc& desc, int arch_major, int sm_count, bool exhaustive) {
  if (exhaustive) return candidates(desc, arch_major, sm_count);
  const CudaVariant chosen = heuristic(desc, arch_major, sm_count);
  const Generator& preferred = owner(chosen);
  std::vector<CudaVariant> variants;
  for (const Generator& generator : generators()) {
    if (&generator == &preferred) {
      for (const CudaVariant& variant : generator.candidates(desc, sm_count))
        if (generator.in_default_search(desc, variant, sm_count) && generator.is_valid(desc, variant, arch_major))
          variants.push_back(variant);
      // The no-tune choice is always measured, also where it lies outside the candidates.
      if (std::find(variants.begin(), variants.end(), chosen) == variants.end()) variants.push_back(chosen);
      continue;
    }
    CudaVariant sentinel = generator.heuristic(desc, arch_major, sm_count);
    if (generator.is_valid(desc, sentinel, arch_major)) variants.push_back(std::move(sentinel));
  }
  return variants;
}

CudaVariant candidate_named(const OpDesc& desc, const std::string& name, const std::string& arch, int arch_major,
                            int sm_count) {
  std::vector<CudaVariant> variants = candidates(desc, arch_major, sm_count);
  variants.push_back(heuristic(desc, arch_major, sm_count));
  std::vector<std::string> names;
  for (const CudaVariant& variant : variants) {
    names.push_back(variant_name(desc, variant, arch));
    if (names.back() == name) return variant;
  }
  std::ranges::sort(names);
  names.erase(std::unique(names.begin(), names.end()), names.end());
  const std::vector<std::string> examples(names.begin(), names.begin() + std::min<std::size_t>(names.size(), 5));
  throw InvalidArgument("variant", fmt::format("--variant '{}' is not a candidate of {} on {}; it has {} (e.g. {})", name,
                                               to_string(desc), arch, names.size(), fmt::join(examples, ", ")));
}

Validity supports(const OpDesc& desc, int arch_major, int sm_count) {
  std::string reasons;
  for (const Generator& generator : generators()) {
    Validity validity = generator.is_valid(desc, generator.heuristic(desc, arch_major, sm_count), arch_major);
    if (validity) return validity;
    reasons += fmt::format("{}{} ({})", reasons.empty() ? "" : "; ", validity.reason, generator.family);
  }
  return Validity{false, reasons};
}

CudaVariant heuristic(const OpDesc& desc, int arch_major, int sm_count) {
  // Preferred generators first; then any that serves (a descriptor only a generator outside its
  // preferred rows serves still gets a kernel).
  for (bool only_preferred : {true, false})
    for (const Generator& generator : generators()) {
      if (only_preferred && !generator.preferred(desc, arch_major)) continue;
      CudaVariant variant = generator.heuristic(desc, arch_major, sm_count);
      if (generator.is_valid(desc, variant, arch_major)) return variant;
    }
  throw Unsupported(
      fmt::format("no CUDA kernel serves {}: {}", to_string(desc), supports(desc, arch_major, sm_count).reason));
}

Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) {
  if (std::string misuse = family_field_misuse(variant); !misuse.empty()) return Validity{false, std::move(misuse)};
  return owner(variant).is_valid(desc, variant, arch_major);
}

std::string emit(const OpDesc& desc, const CudaVariant& variant) { return owner(variant).emit(desc, variant); }

std::shared_ptr<const Kernel> build(const OpDesc& desc, const CudaVariant& variant) {
  const DeviceInfo& device = device_info(desc.device.index);
  const std::string name = variant_name(desc, variant, device.arch());
  Validity validity = is_valid(desc, variant, device.major);
  if (!validity) throw Unsupported(fmt::format("cannot build {}: {}", name, validity.reason));
  return load(desc, variant, compile_to_cubin(emit(desc, variant), name, device.arch()));
}

std::shared_ptr<const ProgramKernel> load(const OpDesc& desc, const CudaVariant& variant, std::vector<char> cubin) {
  return owner(variant).load(desc, variant, std::move(cubin));
}

std::vector<CompiledCandidate> compile_candidates(const OpDesc& desc, const std::vector<CudaVariant>& variants,
                                                  const std::string& arch) {
  CompileQueue queue(compile_jobs(desc, variants), arch);
  std::vector<CompiledCandidate> compiled(variants.size());
  while (auto finished = queue.next()) compiled[finished->first] = std::move(finished->second);
  return compiled;
}

double verification_tolerance(const OpDesc& desc, const CudaVariant& variant) {
  return owner(variant).tolerance(desc);
}

std::shared_ptr<const Kernel> build(const OpDesc& desc, const nlohmann::json& variant) {
  return build(desc, variant_from_json(variant));
}

}  // namespace lowbit::cuda
