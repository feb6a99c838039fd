#include "codegen/x86/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/amx_int8_generator.h"
#include "codegen/x86/avx2_float_generator.h"
#include "codegen/x86/avx2_int8_generator.h"
#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/avx512_vnni_int8_generator.h"
#include "codegen/x86/x86_kernel.h"
#include "lowbit/errors.h"
#include "lowbit/tolerance.h"

namespace lowbit::x86 {
namespace {

// One registered generator: the ISA families that force it, its version, and its questions.
struct Generator {
  std::string_view isa;        // the LOWBIT_ISA / GetOptions.isa value that selects it
  std::string_view also_isa;   // a second value that selects it (empty: none)
  Compute compute;             // the one compute mode it serves
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

// How a generator competes (see Generator); the defaults are those of a plain family.
struct Competition {
  std::string_view also_isa = {};
  int probe_rows = 1;
  bool companion = false;
  int64_t heuristic_from_rows = 0;
  std::string_view required_feature = {};
};

template <class G>
Generator make_generator(std::string_view isa, X86Isa probe_isa, Compute compute, Competition competition = {}) {
  return {isa,
          competition.also_isa,
          compute,
          G::family,
          G::version,
          probe_isa,
          competition.probe_rows,
          competition.companion,
          competition.heuristic_from_rows,
          competition.required_feature,
          [](const OpDesc& desc, const CpuInfo& cpu, int threads) { return G().candidates(desc, cpu, threads); },
          [](const OpDesc& desc, const CpuInfo& cpu, int threads) { return G().heuristic(desc, cpu, threads); },
          [](const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) {
            // Cache blocking of K (k_block) and the scaled decode are the bf16 flavours' alone
            // (AMX-BF16, and AVX512-BF16 on the AMX decode); the others would ignore them.
            const bool bf16_flavour = variant.isa == X86Isa::amx_bf16 || variant.isa == X86Isa::avx512_bf16;
            if (variant.k_block != 0 && !bf16_flavour)
              return Validity{false, "only amx_bf16 and avx512_bf16 block K for the caches: k_block must be 0"};
            if (variant.scaled_decode != 0 && !bf16_flavour)
              return Validity{false,
                              "only amx_bf16 and avx512_bf16 fold the scales into decoded weights: scaled_decode must "
                              "be 0"};
            return G().is_valid(desc, variant, cpu);
          }};
}

// In order of preference. Each AMX family is a companion of its mode's AVX-512 generator: timed
// beside it (AMX-BF16 from AmxBf16Generator::min_rows, AMX-INT8 from one tile of rows on) and the
// no-tune choice from its heuristic_from_rows on (AMX-BF16: measured; AMX-INT8: one full tile). The AVX2 fallback only competes where AVX-512
// does not serve: it does the same work in registers half as wide, so timing it next to AVX-512
// variants would only lengthen tuning. Each generator computes one mode and refuses the other
// (is_valid), so a descriptor only ever meets the generators of its compute mode.
const std::array<Generator, 6>& generators() {
  static const std::array<Generator, 6> list{
      make_generator<AmxBf16Generator>("amx", X86Isa::amx_bf16, Compute::floating,
                                       {.probe_rows = amx_tile_rows,
                                        .companion = true,
                                        .heuristic_from_rows = AmxBf16Generator::heuristic_from_rows,
                                        .required_feature = "amx_bf16"}),
      make_generator<Avx512FloatGenerator>("avx512", X86Isa::avx512_fma, Compute::floating),
      make_generator<AmxInt8Generator>("amx", X86Isa::amx_int8, Compute::int8,
                                       {.probe_rows = amx_tile_rows,
                                        .companion = true,
                                        .heuristic_from_rows = amx_tile_rows,
                                        .required_feature = "amx_int8"}),
      make_generator<Avx512VnniInt8Generator>("avx512_vnni", X86Isa::avx512_vnni, Compute::int8,
                                              {.also_isa = "avx512"}),
      make_generator<Avx2FloatGenerator>("avx2", X86Isa::avx2_fma, Compute::floating),
      // Probed with avx2_int8, the flavour every AVX2 CPU runs (avx2_vnni where AVX-VNNI is).
      make_generator<Avx2Int8Generator>("avx2", X86Isa::avx2_int8, Compute::int8)};
  return list;
}

bool selects(const Generator& generator, std::string_view isa) {
  return isa == generator.isa || (!generator.also_isa.empty() && isa == generator.also_isa);
}

// The ISA family asked for: the argument, else $LOWBIT_ISA (empty: none), and where it came from.
struct RequestedIsa {
  std::string_view field;
  std::string value;
};
RequestedIsa requested_isa(std::string_view isa) {
  if (!isa.empty()) return {"isa", std::string(isa)};
  const char* environment = std::getenv("LOWBIT_ISA");
  return {"LOWBIT_ISA", environment ? environment : ""};
}

// The generators `isa` allows (see registry.h for where it comes from).
std::vector<const Generator*> allowed_generators(std::string_view isa) {
  const auto [field, requested] = requested_isa(isa);
  std::vector<const Generator*> allowed;
  for (const Generator& generator : generators())
    if (requested.empty() || selects(generator, requested)) allowed.push_back(&generator);
  if (allowed.empty())
    throw InvalidArgument(std::string(field), fmt::format("{}={} is not an x86 ISA family; allowed: avx2, avx512, "
                                                          "avx512_vnni, amx "
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

// The allowed generators of desc's compute mode: the tuner never crosses modes.
std::vector<const Generator*> generators_for(const OpDesc& desc, std::string_view isa) {
  std::vector<const Generator*> same_mode;
  for (const Generator* generator : allowed_generators(isa))
    if (generator->compute == desc.compute) same_mode.push_back(generator);
  return same_mode;
}

// The allowed generators of desc's mode that compete for desc: the first that serves it, with
// the companions before it that serve it too.
std::vector<const Generator*> serving_generators(const OpDesc& desc, std::string_view isa) {
  std::vector<const Generator*> serving;
  for (const Generator* generator : generators_for(desc, isa)) {
    if (!probe(*generator, desc, cpu_info())) continue;
    serving.push_back(generator);
    if (!generator->companion) break;
  }
  return serving;
}

const Generator* generator_of(X86Isa isa) {
  switch (isa) {
    case X86Isa::amx_bf16: return &generators()[0];
    case X86Isa::avx512_fma:
    case X86Isa::avx512_bf16: return &generators()[1];
    case X86Isa::amx_int8: return &generators()[2];
    case X86Isa::avx512_vnni: return &generators()[3];
    case X86Isa::avx2_fma: return &generators()[4];
    case X86Isa::avx2_vnni:
    case X86Isa::avx2_int8: return &generators()[5];
  }
  throw InvalidArgument("isa", "unknown x86 flavour");
}

}  // namespace

std::string generator_version(std::string_view isa) {
  std::string version;
  const std::vector<const Generator*> allowed = allowed_generators(isa);
  const bool forced = !requested_isa(isa).value.empty();
  for (const Generator* generator : allowed) {
    if (!forced && !generator->required_feature.empty() && !cpu_info().has(generator->required_feature)) continue;
    version += fmt::format("{}{}@{}", version.empty() ? "" : "+", generator->family, generator->version);
  }
  return version;
}

Validity supports(const OpDesc& desc, std::string_view isa, const CpuInfo& cpu) {
  const std::vector<const Generator*> allowed = generators_for(desc, isa);
  const std::string requested = requested_isa(isa).value;
  if (allowed.empty()) {
    std::string serving;
    for (const Generator& generator : generators())
      if (generator.compute == desc.compute)
        serving += fmt::format("{}{}", serving.empty() ? "" : ", ", generator.isa);
    return Validity{false, fmt::format("isa={} has no compute={} kernels (compute={} is served by isa {})", requested,
                                       to_string(desc.compute), to_string(desc.compute), serving)};
  }
  std::string reasons;
  for (const Generator* generator : allowed) {
    Validity validity = probe(*generator, desc, cpu);
    if (validity) return validity;
    if (allowed.size() == 1 && !requested.empty()) {
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

double verification_tolerance(const OpDesc& desc, const X86Variant& variant) {
  return variant.scaled_decode ? dequantized_weights_tolerance(desc) : tolerance(desc);
}

std::shared_ptr<const Kernel> build(const OpDesc& desc, const X86Variant& variant, int max_threads) {
  return std::make_shared<X86Kernel>(desc, variant, max_threads);
}

std::shared_ptr<const Kernel> build_from_json(const OpDesc& desc, const nlohmann::json& variant, int max_threads) {
  return build(desc, variant_from_json(variant), max_threads);
}

}  // namespace lowbit::x86
