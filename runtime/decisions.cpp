#include "runtime/decisions.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <nlohmann/json.hpp>

#include "codegen/x86/registry.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "runtime/cuda_backend.h"
#include "tuner/measure.h"
#include "tuner/tuner.h"

namespace lowbit::runtime {

void require_served(const OpDesc& desc, const std::string& isa) {
  if (desc.device.kind == DeviceKind::cuda) {
    const std::string refusal = cuda_refusal(desc);
    if (!refusal.empty()) throw Unsupported(fmt::format("no CUDA kernel serves {}: {}", to_string(desc), refusal));
    return;
  }
  x86::Validity served = x86::supports(desc, isa);
  if (!served) throw Unsupported(fmt::format("no x86 kernel serves {}: {}", to_string(desc), served.reason));
}

std::string cache_path(const GetOptions& options) {
  return options.cache_path.empty() ? cache::default_cache_path() : options.cache_path;
}

std::vector<std::string> shipped_cache_paths(const GetOptions& options) {
  if (!options.shipped_caches.empty()) return options.shipped_caches;
  std::vector<std::string> paths;
  const char* listed = std::getenv("LOWBIT_SHIPPED_CACHE");
  std::string_view rest = listed != nullptr ? listed : "";
  while (!rest.empty()) {
    const std::size_t colon = rest.find(':');
    if (colon != 0) paths.emplace_back(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
  }
  return paths;
}

int thread_budget(const GetOptions& options) {
  const int cores = std::max(1, cpu_info().physical_cores);
  return options.max_threads > 0 ? std::min(options.max_threads, cores) : cores;
}

std::string decision_fingerprint(const OpDesc& desc, const GetOptions& options) {
  if (desc.device.kind == DeviceKind::cuda) return cuda_fingerprint(desc);
  const int budget = thread_budget(options);
  if (budget < std::max(1, cpu_info().physical_cores))
    return fmt::format("{};threads={}", cpu_info().fingerprint(), budget);
  return cpu_info().fingerprint();
}

std::string decision_generator_version(const OpDesc& desc, const GetOptions& options) {
  return desc.device.kind == DeviceKind::cuda ? cuda_generator_version() : x86::generator_version(options.isa);
}

bool store_decision(cache::DecisionCache& decisions, const OpDesc& desc, const GetOptions& options,
                    const tuner::TuneResult& result) {
  const bool on_cuda = desc.device.kind == DeviceKind::cuda;
  cache::Decision decision;
  decision.descriptor = to_string(desc);
  decision.fingerprint = decision_fingerprint(desc, options);
  decision.generator_version = decision_generator_version(desc, options);
  decision.variant_name = result.winner->name();
  decision.variant_json = result.winner->variant_json().dump();
  decision.median_us = result.median_us;
  decision.rel_err = result.rel_err;
  decision.candidates = static_cast<int>(std::count_if(result.ranked.begin(), result.ranked.end(),
                                                      [](const auto& candidate) { return candidate.verified; }));
  decision.protocol = std::string(on_cuda ? tuner::cuda_protocol_id : tuner::protocol_id);
  nlohmann::json source = {{"lowbit_version", LOWBIT_VERSION},
                           {"tuned_rows", result.rows},
                           {"search", result.search},
                           {"reference_us", result.reference_us},
                           {"top", tuner::top_candidates_json(result, 3)}};
  if (on_cuda)
    source["gpu"] = cuda_provenance(desc);
  else
    source["cpu"] = cpu_info().to_json();
  decision.source_json = source.dump();
  // The cubin first: a decision whose cubin is missing still works (it is compiled once more),
  // while the reverse order would let another process find the decision and compile anyway.
  if (on_cuda) decision.artifact_key = store_cuda_cubin(decisions, *result.winner);
  return decisions.store(decision);
}

}  // namespace lowbit::runtime
