// get_kernel: the policy that joins cache, tuner and generators.
//   hit  -> build the stored variant (no timing, no reference)
//   miss -> tune, store, return the winner; or (OnMiss::heuristic) the heuristic variant
// Resolved kernels are also kept for the life of the process, so an engine asking again for
// the same descriptor gets the same object without touching the file.
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "cache/decision_cache.h"
#include "codegen/x86/registry.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/kernel.h"
#include "runtime/cuda_backend.h"
#include "runtime/decisions.h"
#include "tuner/tuner.h"

namespace lowbit {
namespace {

struct ProcessCache {
  std::mutex mutex;
  std::map<std::string, ResolvedKernel> kernels;
};

ProcessCache& process_cache() {
  static ProcessCache cache;
  return cache;
}

std::string process_key(const OpDesc& desc, const GetOptions& options, const std::string& cache_path) {
  return fmt::format("{}|{}|{}|{}|{}|{}", to_string(desc), cache_path, options.max_threads, options.use_cache,
                     options.on_miss == OnMiss::tune ? "tune" : "heuristic", x86::generator_version(options.isa));
}

std::optional<ResolvedKernel> from_cache(const OpDesc& desc, const cache::DecisionCache& decisions,
                                         const GetOptions& options) {
  if (!decisions.usable()) return std::nullopt;
  auto decision = decisions.lookup(to_string(desc), runtime::decision_fingerprint(options),
                                  x86::generator_version(options.isa));
  if (!decision) return std::nullopt;
  try {
    ResolvedKernel resolved;
    resolved.kernel = x86::build_from_json(desc, nlohmann::json::parse(decision->variant_json), options.max_threads);
    resolved.source = KernelSource::cache;
    resolved.median_us = decision->median_us;
    return resolved;
  } catch (const std::exception& error) {
    warn(fmt::format("cache {}: the stored variant of {} cannot be built ({}); re-resolving", decisions.path(),
                     to_string(desc), error.what()));
    return std::nullopt;
  }
}

}  // namespace

ResolvedKernel get_kernel(const OpDesc& desc, const GetOptions& options) {
  validate(desc);
  runtime::require_served(desc, options.isa);
  const std::string cache_path = options.use_cache ? runtime::cache_path(options) : "";
  const std::string key = process_key(desc, options, cache_path);
  ProcessCache& memory = process_cache();
  {
    std::lock_guard<std::mutex> lock(memory.mutex);
    auto found = memory.kernels.find(key);
    if (found != memory.kernels.end()) return found->second;
  }

  if (desc.device.kind == DeviceKind::cuda) {
    // CUDA kernels come from the heuristic until the tuner times them on the device.
    ResolvedKernel resolved{runtime::build_cuda_heuristic(desc), KernelSource::heuristic, 0};
    std::lock_guard<std::mutex> lock(memory.mutex);
    return memory.kernels.emplace(key, resolved).first->second;
  }

  // Look up through a read-only connection (the cheapest open: no schema or journal-mode
  // work); open for writing only when a tuned result has to be stored.
  std::optional<ResolvedKernel> resolved;
  if (options.use_cache && std::filesystem::exists(cache_path)) {
    cache::DecisionCache reader = cache::DecisionCache::open(cache_path, cache::OpenMode::read_only);
    resolved = from_cache(desc, reader, options);
  }
  if (!resolved) {
    resolved.emplace();
    if (options.on_miss == OnMiss::heuristic) {
      resolved->kernel =
          x86::build(desc, x86::heuristic(desc, runtime::thread_budget(options), options.isa), options.max_threads);
      resolved->source = KernelSource::heuristic;
    } else {
      tuner::TuneOptions tune_options;
      tune_options.max_threads = options.max_threads;
      tune_options.isa = options.isa;
      if (options.progress)
        tune_options.on_candidate = [&](int index, int count, const std::string& name) {
          std::fprintf(stderr, "\rtuning %s  [%d/%d] %-40s", to_string(desc).c_str(), index + 1, count, name.c_str());
          if (index + 1 == count) std::fprintf(stderr, "\n");
        };
      tuner::TuneResult result = tuner::tune(desc, tune_options);
      if (options.use_cache) {
        cache::DecisionCache writer = cache::DecisionCache::open(cache_path, cache::OpenMode::read_write);
        runtime::store_decision(writer, desc, options, result);
      }
      resolved->kernel = result.winner;
      resolved->source = KernelSource::tuned;
      resolved->median_us = result.median_us;
    }
  }
  // Two threads that missed together both resolved; the first stored wins for both.
  std::lock_guard<std::mutex> lock(memory.mutex);
  return memory.kernels.emplace(key, *resolved).first->second;
}

}  // namespace lowbit
