#include "codegen/x86/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/avx2_float_generator.h"
#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/x86_kernel.h"
#include "lowbit/errors.h"

namespace lowbit::x86 {
namespace {

// One registered generator: the ISA family that forces it, its version, and its questions.
struct Generator {
  std::string_view isa;  // the LOWBIT_ISA / GetOptions.isa value that selects it
  std::string_view family;
  int version;
  X86Isa probe_isa;  // a flavour every CPU of the family runs, to ask whether desc is served
  int probe_rows;    // the probe's m_rows (AMX blocks are whole 16-row tiles)
  // Whether the generators after it still compete where it serves (AMX: the AVX-512 kernels
  // are timed beside it; AVX-512: the AVX2 fallback is not).
  bool companion;
  int64_t heuristic_from_rows;  // its heuristic is the no-tune choice from this M on (0: any M)
  // A CPU feature without which the family emits nothing: unforced, it is then left out of
  // generator_version, so that cache keys on CPUs without it do not change with its arrival.
  std::string_view required_feature;
  std::vector<X86Variant> (*candidates)(const OpDesc&, const CpuInfo&, int);
  X86Variant (*heuristic)(const OpDesc&, const CpuInfo&, int);
  Validity (*is_valid)(const OpDesc&, const X86Variant&, const CpuInfo&);
};

template <class G>
Generator make_generator(std::string_view isa, X86Isa probe_isa, int probe_rows = 1, bool companion = false,
                         int64_t heuristic_from_rows = 0, std::string_view required_feature = {}) {
  return {isa,
          G::family,
          G::version,
          probe_isa,
          probe_rows,
          companion,
          heuristic_from_rows,
          required_feature,
          [](const OpDesc& desc, const CpuInfo& cpu, int threads) { return G().candidates(desc, cpu, threads); },
          [](const OpDesc& desc, const CpuInfo& cpu, int threads) { return G().heuristic(desc, cpu, threads); },
          [](const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) {
            return G().is_valid(desc, variant, cpu);
          }};
}

// In order of preference. AMX is timed beside AVX-512 (its candidates start at
// AmxBf16Generator::min_rows) and is the no-tune choice from one full tile of rows on. The AVX2
// fallback only competes where AVX-512 does not serve: it does the same work in registers half
// as wide, so timing it next to AVX-512 variants would only lengthen tuning.
const std::array<Generator, 3>& generators() {
  static const std::array<Generator, 3> list{
      make_generator<AmxBf16Generator>("amx", X86Isa::amx_bf16, amx_tile_rows, true, amx_tile_rows, "amx_bf16"),
      make_generator<Avx512FloatGenerator>("avx512", X86Isa::avx512_fma),
      make_generator<Avx2FloatGenerator>("avx2", X86Isa::avx2_fma)};
  return list;
}

// The generators `isa` allows (see registry.h for where it comes from).
std::vector<const Generator*> allowed_generators(std::string_view isa) {
  std::string_view field = "isa";
  std::string requested(isa);
  if (requested.empty()) {
    const char* environment = std::getenv("LOWBIT_ISA");
    requested = environment ? environment : "";
    field = "LOWBIT_ISA";
  }
  std::vector<const Generator*> allowed;
  for (const Generator& generator : generators())
    if (requested.empty() || requested == generator.isa) allowed.push_back(&generator);
  if (allowed.empty())
    throw InvalidArgument(std::string(field), fmt::format("{}={} is not an x86 ISA family; allowed: avx2, avx512, amx "
                                                          "(or empty: the best this CPU has)",
                                                          field, requested));
  return allowed;
}

Validity probe(const Generator& generator, const OpDesc& desc, const CpuInfo& cpu) {
  X86Variant variant;
  variant.isa = generator.probe_isa;
  variant.m_rows = generator.probe_rows;
  return generator.is_valid(desc, variant, cpu);
}

// The allowed generators that compete for desc: the first that serves it, with the companions
// before it that serve it too.
std::vector<const Generator*> serving_generators(const OpDesc& desc, std::string_view isa) {
  std::vector<const Generator*> serving;
  for (const Generator* generator : allowed_generators(isa)) {
    if (!probe(*generator, desc, cpu_info())) continue;
    serving.push_back(generator);
    if (!generator->companion) break;
  }
  return serving;
}

const Generator* generator_of(X86Isa isa) {
  if (isa == X86Isa::amx_bf16) return &generators()[0];
  return &generators()[is_avx512(isa) ? 1 : 2];
}

}  // namespace

std::string generator_version(std::string_view isa) {
  std::string version;
  const std::vector<const Generator*> allowed = allowed_generators(isa);
  const bool forced = allowed.size() == 1;
  for (const Generator* generator : allowed) {
    if (!forced && !generator->required_feature.empty() && !cpu_info().has(generator->required_feature)) continue;
    version += fmt::format("{}{}@{}", version.empty() ? "" : "+", generator->family, generator->version);
  }
  return version;
}

Validity supports(const OpDesc& desc, std::string_view isa, const CpuInfo& cpu) {
  const std::vector<const Generator*> allowed = allowed_generators(isa);
  std::string reasons;
  for (const Generator* generator : allowed) {
    Validity validity = probe(*generator, desc, cpu);
    if (validity) return validity;
    if (allowed.size() == 1) {
      validity.reason = fmt::format("{} kernels were asked for (isa={}), but {}", generator->isa,
                                    isa.empty() ? "$LOWBIT_ISA" : std::string(isa), validity.reason);
      return validity;
    }
    if (reasons.find(validity.reason) == std::string::npos)
      reasons += fmt::format("{}{} ({})", reasons.empty() ? "" : "; ", validity.reason, generator->isa);
  }
  return Validity{false, reasons};
}

Validity supports(const OpDesc& desc, std::string_view isa) { return supports(desc, isa, cpu_info()); }

std::vector<X86Variant> candidates(const OpDesc& desc, int max_threads, std::string_view isa) {
  std::vector<X86Variant> variants;
  for (const Generator* generator : serving_generators(desc, isa)) {
    std::vector<X86Variant> own = generator->candidates(desc, cpu_info(), max_threads);
    variants.insert(variants.end(), own.begin(), own.end());
  }
  return variants;
}

// The first serving generator whose heuristic applies from desc's M on (m=0, any M, counts as
// one row); the last serving one when none does (a forced family always answers).
X86Variant heuristic(const OpDesc& desc, int max_threads, std::string_view isa) {
  const std::vector<const Generator*> serving = serving_generators(desc, isa);
  if (serving.empty())
    throw Unsupported(fmt::format("no x86 kernel serves {}: {}", to_string(desc), supports(desc, isa).reason));
  const int64_t m = std::max<int64_t>(desc.m, 1);
  for (const Generator* generator : serving)
    if (m >= generator->heuristic_from_rows) return generator->heuristic(desc, cpu_info(), max_threads);
  return serving.back()->heuristic(desc, cpu_info(), max_threads);
}

Validity is_valid(const OpDesc& desc, const X86Variant& variant) {
  return generator_of(variant.isa)->is_valid(desc, variant, cpu_info());
}

std::shared_ptr<const Kernel> build(const OpDesc& desc, const X86Variant& variant, int max_threads) {
  return std::make_shared<X86Kernel>(desc, variant, max_threads);
}

std::shared_ptr<const Kernel> build_from_json(const OpDesc& desc, const nlohmann::json& variant, int max_threads) {
  return build(desc, variant_from_json(variant), max_threads);
}

}  // namespace lowbit::x86
