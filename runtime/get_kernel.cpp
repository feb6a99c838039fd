// get_kernel: the policy that joins cache, tuner and generators.
//   hit  -> build the stored variant (no timing, no reference; a CUDA one loads the cubin its
//           decision names: no source generated, NVRTC not loaded)
//   miss -> tune, store, return the winner; or (OnMiss::heuristic) the heuristic variant
// Both backends go the same way; only building a variant differs (x86 registry, or
// runtime/cuda_backend.h with the cubin cache).
// Resolved kernels are also kept for the life of the process, so an engine asking again for
// the same descriptor gets the same object without touching the file.
// m=0 on CUDA is one kernel per row count up to 16, then any-M kernels by range (resolve_row_buckets);
// the parts a decision does not name are recorded in a row plan, which a later process loads first.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <iterator>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <set>
#include <vector>
#include <nlohmann/json.hpp>

#include "cache/decision_cache.h"
#include "codegen/x86/registry.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/kernel.h"
#include "runtime/cuda_backend.h"
#include "runtime/decisions.h"
#include "runtime/kept_readers.h"
#include "runtime/row_buckets.h"
#include "runtime/row_plan.h"
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

// The kernel this process resolved under `key`, if any.
std::optional<ResolvedKernel> remembered(const std::string& key) {
  ProcessCache& memory = process_cache();
  std::lock_guard<std::mutex> lock(memory.mutex);
  auto found = memory.kernels.find(key);
  if (found == memory.kernels.end()) return std::nullopt;
  return found->second;
}

// Keeps `resolved` under `key` and returns what the process keeps there: two threads that missed
// together both resolved, and the first stored wins for both.
ResolvedKernel remember(const std::string& key, const ResolvedKernel& resolved) {
  ProcessCache& memory = process_cache();
  std::lock_guard<std::mutex> lock(memory.mutex);
  return memory.kernels.emplace(key, resolved).first->second;
}

// The process's read-only connection to the cache file (runtime/kept_readers.h), held until the
// lease is dropped: a hit's lookup and build. None when the cache is off or the file does not
// exist (yet).
runtime::ReaderLease lease_reader(const std::string& cache_path) {
  if (cache_path.empty()) return {std::unique_lock<std::mutex>(), nullptr};
  return runtime::lease_reader(cache_path);
}

// A read-only connection of the caller's own, or none when the cache is off or the file does not
// exist yet: for builds that may compile for seconds (a miss's heuristic kernel, m=0's parts),
// which must not hold the process's connection from other threads' hits meanwhile.
std::optional<cache::DecisionCache> open_reader(const std::string& cache_path) {
  std::optional<cache::DecisionCache> reader;
  if (!cache_path.empty() && std::filesystem::exists(cache_path))
    reader.emplace(cache::DecisionCache::open(cache_path, cache::OpenMode::read_only));
  return reader;
}

std::string process_key(const OpDesc& desc, const GetOptions& options, const std::string& cache_path) {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}", to_string(desc), cache_path,
                     options.use_cache ? fmt::format("{}", fmt::join(runtime::shipped_cache_paths(options), ":")) : "",
                     options.max_threads, options.use_cache, options.on_miss == OnMiss::tune ? "tune" : "heuristic",
                     runtime::decision_generator_version(desc, options));
}

// The process's immutable reader of a shipped cache; a missing file is a warning (once per path
// and process: a deployment that names a cache it did not ship should hear of it) and none.
runtime::ReaderLease lease_shipped(const std::string& path) {
  runtime::ReaderLease lease = runtime::lease_reader(path, cache::OpenMode::immutable);
  if (lease.get() == nullptr && !std::filesystem::exists(path)) {
    static std::mutex mutex;
    static std::set<std::string> warned;
    std::lock_guard<std::mutex> lock(mutex);
    if (warned.insert(path).second)
      warn(fmt::format("shipped cache '{}' does not exist; it is ignored (lookups miss)", path));
  }
  return lease;
}

bool on_cuda(const OpDesc& desc) { return desc.device.kind == DeviceKind::cuda; }

// The heuristic variant of desc's backend. A CUDA one takes its cubin from the cache when there
// (reader may be null) and leaves a compiled one in cache_path (when not empty).
std::shared_ptr<const Kernel> build_heuristic(const OpDesc& desc, const GetOptions& options,
                                              const cache::DecisionCache* reader, const std::string& cache_path) {
  if (on_cuda(desc)) return runtime::build_cuda(desc, nullptr, reader, cache_path);
  return x86::build(desc, x86::heuristic(desc, runtime::thread_budget(options), options.isa), options.max_threads);
}

std::optional<ResolvedKernel> from_cache(const OpDesc& desc, const cache::DecisionCache& decisions,
                                         const GetOptions& options, const std::string& cache_path) {
  if (!decisions.usable()) return std::nullopt;
  auto decision = decisions.lookup(to_string(desc), runtime::decision_fingerprint(desc, options),
                                  runtime::decision_generator_version(desc, options));
  if (!decision) return std::nullopt;
  try {
    const nlohmann::json variant = nlohmann::json::parse(decision->variant_json);
    ResolvedKernel resolved;
    resolved.kernel = on_cuda(desc) ? runtime::build_cuda(desc, &variant, &decisions, cache_path, decision->artifact_key)
                                    : x86::build_from_json(desc, variant, options.max_threads);
    resolved.source = KernelSource::cache;
    resolved.median_us = decision->median_us;
    return resolved;
  } catch (const std::exception& error) {
    warn(fmt::format("cache {}: the stored variant of {} cannot be built ({}); re-resolving", decisions.path(),
                     to_string(desc), error.what()));
    return std::nullopt;
  }
}

// A part of a row plan (runtime/row_plan.h) and the connection to the file that holds its cubin.
struct PlannedBuild {
  const runtime::PlannedPart* part;
  const cache::DecisionCache* reader;
};

// One descriptor's kernel (the policy at the top of this file), desc validated and served.
// `shared_reader`: a read-only connection to the cache file the caller already holds (m=0's
// parts share one: each new connection reads the schema again), else this call opens its own.
// `planned`: what a row plan says desc's heuristic kernel is (an m=0 part): on a miss answered
// with the heuristic, that variant's cubin is loaded by its key instead.
ResolvedKernel resolve(const OpDesc& desc, const GetOptions& options,
                       const cache::DecisionCache* shared_reader = nullptr, const PlannedBuild* planned = nullptr) {
  const std::string cache_path = options.use_cache ? runtime::cache_path(options) : "";
  const std::string key = process_key(desc, options, cache_path);
  if (auto known = remembered(key)) return *known;

  // Look up through the process's read-only connection, or the caller's; open for writing only
  // when a tuned result or a new cubin has to be stored.
  std::optional<ResolvedKernel> resolved;
  if (shared_reader != nullptr) {
    resolved = from_cache(desc, *shared_reader, options, cache_path);
  } else {
    const runtime::ReaderLease lease = lease_reader(cache_path);
    if (lease.get() != nullptr) resolved = from_cache(desc, *lease.get(), options, cache_path);
  }
  // Then the shipped caches, under the user's: a decision found there builds from the cubin
  // stored beside it; one compiled again (its cubin missing) is stored in the user's cache.
  if (!resolved && options.use_cache)
    for (const std::string& shipped : runtime::shipped_cache_paths(options)) {
      const runtime::ReaderLease lease = lease_shipped(shipped);
      if (lease.get() != nullptr) resolved = from_cache(desc, *lease.get(), options, cache_path);
      if (resolved) break;
    }
  if (!resolved) {
    resolved.emplace();
    if (options.on_miss == OnMiss::heuristic && planned != nullptr) {
      resolved->kernel = runtime::build_cuda(desc, &planned->part->variant, planned->reader, cache_path,
                                             planned->part->artifact_key);
      resolved->source = KernelSource::heuristic;
    } else if (options.on_miss == OnMiss::heuristic) {
      // Only a CUDA heuristic reads the file (its cubin); an x86 one is generated on the spot.
      std::optional<cache::DecisionCache> own_reader;
      if (shared_reader == nullptr && on_cuda(desc)) own_reader = open_reader(cache_path);
      const cache::DecisionCache* reader = shared_reader != nullptr ? shared_reader : own_reader ? &*own_reader : nullptr;
      resolved->kernel = build_heuristic(desc, options, reader, cache_path);
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
  return remember(key, *resolved);
}

// The any-M variant of each range of runtime::any_rows_range_starts: the tile for its top
// (runtime::any_rows_range_top, cuda_any_rows_variant); every range but the last, which is open,
// serves at most that many rows.
std::vector<nlohmann::json> range_variants(const OpDesc& desc) {
  std::vector<nlohmann::json> variants;
  for (std::size_t range = 0; range < runtime::any_rows_range_count; ++range)
    variants.push_back(runtime::cuda_any_rows_variant(desc, runtime::any_rows_range_top(range),
                                                      !runtime::any_rows_range_is_open(range)));
  return variants;
}

// What resolve_row_buckets is about to build (the exact row counts this process has not resolved
// yet, each by its stored decision or its heuristic, then the ranges' any-M tiles), for
// precompile_cuda. desc's own any-M kernel is resolved before it.
std::vector<runtime::PlannedCudaBuild> row_bucket_builds(const OpDesc& desc, const GetOptions& exact_options,
                                                         const std::vector<nlohmann::json>& ranges,
                                                         const cache::DecisionCache* reader,
                                                         const std::string& cache_path) {
  std::vector<runtime::PlannedCudaBuild> builds;
  for (int64_t rows = 1; rows <= runtime::exact_bucket_rows; ++rows) {
    OpDesc one = desc;
    one.m = rows;
    if (remembered(process_key(one, exact_options, cache_path))) continue;
    std::optional<cache::Decision> decision;
    if (reader != nullptr && reader->usable())
      decision = reader->lookup(to_string(one), runtime::decision_fingerprint(one, exact_options),
                                runtime::decision_generator_version(one, exact_options));
    builds.push_back({one, decision ? std::optional(nlohmann::json::parse(decision->variant_json)) : std::nullopt});
  }
  for (const nlohmann::json& variant : ranges) builds.push_back({desc, variant});
  return builds;
}

// The options m=0's exact parts resolve with: never tuned, no progress bar of their own.
GetOptions exact_part_options(const GetOptions& options) {
  GetOptions exact_options = options;
  exact_options.on_miss = OnMiss::heuristic;
  exact_options.progress = false;
  return exact_options;
}

// A row plan and a connection to the file it was found in, which holds its parts' cubins.
struct FoundRowPlan {
  cache::DecisionCache reader;
  bool in_user_cache = false;
  runtime::RowPlanParts parts;
};

// desc's row plan: the user's cache's, else the first shipped cache's that has one. A plan that
// does not parse is a warning and is passed over; one made for other ranges than today's is
// passed over quietly (it is outdated, not damaged).
std::optional<FoundRowPlan> find_row_plan(const OpDesc& desc, const GetOptions& options, const std::string& cache_path) {
  if (!options.use_cache) return std::nullopt;
  std::vector<std::pair<std::string, cache::OpenMode>> files{{cache_path, cache::OpenMode::read_only}};
  for (const std::string& shipped : runtime::shipped_cache_paths(options))
    files.emplace_back(shipped, cache::OpenMode::immutable);
  const std::string descriptor = to_string(desc);
  const std::string fingerprint = runtime::decision_fingerprint(desc, options);
  const std::string generator_version = runtime::decision_generator_version(desc, options);
  for (const auto& [path, mode] : files) {
    if (!std::filesystem::exists(path)) continue;  // (a missing shipped cache was reported once already)
    cache::DecisionCache reader = cache::DecisionCache::open(path, mode);
    std::optional<cache::RowPlan> plan = reader.lookup_row_plan(descriptor, fingerprint, generator_version);
    if (!plan) continue;
    try {
      runtime::RowPlanParts parts = runtime::row_plan_from_json(nlohmann::json::parse(plan->plan_json));
      if (!parts.made_for_current_ranges()) continue;  // an older lowbit's ranges: a new plan replaces it
      return FoundRowPlan{std::move(reader), path == cache_path, std::move(parts)};
    } catch (const std::exception& error) {
      warn(fmt::format("cache {}: the row plan of {} is unusable ({}); it is ignored", path, descriptor, error.what()));
    }
  }
  return std::nullopt;
}

// m=0's parts as desc's row plan names them: each row count by its decision where one is stored
// (a tune since the plan was made wins), else the plan's part; the ranges and, when desc has no
// decision of its own and a miss takes the heuristic, its any-M kernel likewise. Every cubin loads
// by its key, so neither a heuristic nor NVRTC is consulted. A part whose cubin is gone compiles
// again where NVRTC is (build_cuda); one that cannot be built throws, and the caller then takes
// the long way.
ResolvedKernel rows_from_plan(const OpDesc& desc, const FoundRowPlan& plan, const GetOptions& options,
                              const std::string& cache_path) {
  const runtime::RowPlanParts& parts = plan.parts;
  std::optional<PlannedBuild> planned_any;
  if (parts.any_rows) planned_any = PlannedBuild{&*parts.any_rows, &plan.reader};
  ResolvedKernel resolved = resolve(desc, options, nullptr, planned_any ? &*planned_any : nullptr);
  std::optional<cache::DecisionCache> user_reader;
  if (!plan.in_user_cache) user_reader = open_reader(cache_path);
  const cache::DecisionCache* decisions = plan.in_user_cache ? &plan.reader : user_reader ? &*user_reader : nullptr;
  const GetOptions exact_options = exact_part_options(options);
  std::vector<std::shared_ptr<const Kernel>> exact;
  for (int64_t rows = 1; rows <= runtime::exact_bucket_rows; ++rows) {
    if (parts.is_unserved(rows)) {
      exact.push_back(nullptr);
      continue;
    }
    OpDesc one = desc;
    one.m = rows;
    const runtime::PlannedPart* part = parts.exact_part(rows);
    const PlannedBuild planned{part, &plan.reader};
    exact.push_back(resolve(one, exact_options, decisions, part != nullptr ? &planned : nullptr).kernel);
  }
  std::vector<runtime::RowRange> ranges;
  for (const runtime::PlannedPart& range : parts.ranges)
    ranges.push_back({range.rows, runtime::build_cuda(desc, &range.variant, &plan.reader, cache_path, range.artifact_key)});
  resolved.kernel = std::make_shared<runtime::RowBucketKernel>(desc, std::move(exact), std::move(ranges), resolved.kernel);
  return resolved;
}

// The part of a kernel resolved the long way, for the row plan: its variant and its cubin's key.
runtime::PlannedPart planned_part(int64_t rows, const Kernel& kernel) {
  return {rows, kernel.variant_json(), runtime::cuda_artifact_key(kernel)};
}

// m=0 on CUDA (runtime/row_buckets.h): desc's own any-M kernel by the policy above (its decision
// is the m=0 one), and for each row count up to exact_bucket_rows the exact-M kernel that m=rows
// resolves to: a decision stored for it (`lowbit tune` of that m), else its heuristic, never tuned
// here (sixteen tunes would make the first get_kernel of a shape take minutes). Its cubin is
// compiled once and kept in the cache like any heuristic kernel's. A row count no exact-M family
// serves is left to the any-M kernel. The ranges past 16 rows are any-M kernels with the tile for
// their top (cuda_any_rows_variant: wgmma's on sm_90a, else mma's), their cubins cached alike.
// What it resolved without a decision is then recorded as desc's row plan in the user's cache,
// which the next process reads first (rows_from_plan).
ResolvedKernel resolve_row_buckets(const OpDesc& desc, const GetOptions& options) {
  const std::string cache_path = options.use_cache ? runtime::cache_path(options) : "";
  const std::string key = process_key(desc, options, cache_path) + "|row buckets";
  if (auto known = remembered(key)) return *known;
  if (std::optional<FoundRowPlan> plan = find_row_plan(desc, options, cache_path)) {
    try {
      return remember(key, rows_from_plan(desc, *plan, options, cache_path));
    } catch (const std::exception& error) {
      warn(fmt::format("cache {}: the row plan of {} cannot be built ({}); resolving its parts again",
                       plan->reader.path(), to_string(desc), error.what()));
    }
  }
  ResolvedKernel resolved = resolve(desc, options);
  const std::string compiler_refusal = runtime::cuda_compiler_refusal();
  if (!compiler_refusal.empty())
    warn(fmt::format("{}: NVRTC is unavailable ({}), so of the row counts' own kernels only those whose decisions "
                     "name a stored cubin load; the other row counts run on the any-M kernel",
                     to_string(desc), compiler_refusal));
  const GetOptions exact_options = exact_part_options(options);
  const std::vector<nlohmann::json> ranges_wanted = range_variants(desc);
  // The parts' cubins not in the cache compile at once (a cold start compiles up to 25 programs),
  // then every part is built from the cache through one read-only connection: the planner's, or
  // after compiles that stored cubins a new one (a file they created, or upgraded, is then seen).
  std::optional<cache::DecisionCache> own_reader = open_reader(cache_path);
  if (runtime::precompile_cuda(
          row_bucket_builds(desc, exact_options, ranges_wanted, own_reader ? &*own_reader : nullptr, cache_path),
          own_reader ? &*own_reader : nullptr, cache_path))
    own_reader = open_reader(cache_path);
  const cache::DecisionCache* reader = own_reader ? &*own_reader : nullptr;
  // The plan is recorded only when every part resolved as it would with NVRTC at hand: a part
  // refused for want of it would be recorded as missing.
  runtime::RowPlanParts plan;
  plan.range_starts.assign(std::begin(runtime::any_rows_range_starts), std::end(runtime::any_rows_range_starts));
  bool plan_complete = compiler_refusal.empty();
  if (resolved.source == KernelSource::heuristic) plan.any_rows = planned_part(0, *resolved.kernel);
  std::vector<std::shared_ptr<const Kernel>> exact;
  for (int64_t rows = 1; rows <= runtime::exact_bucket_rows; ++rows) {
    OpDesc one = desc;
    one.m = rows;
    try {
      runtime::require_served(one, options.isa);
    } catch (const Unsupported&) {
      exact.push_back(nullptr);
      plan.unserved.push_back(rows);
      continue;
    }
    try {
      const ResolvedKernel part = resolve(one, exact_options, reader);
      exact.push_back(part.kernel);
      if (part.source == KernelSource::heuristic) plan.exact.push_back(planned_part(rows, *part.kernel));
    } catch (const Unsupported&) {
      exact.push_back(nullptr);
      plan_complete = false;
    }
  }
  std::vector<runtime::RowRange> ranges;
  for (std::size_t range = 0; range < ranges_wanted.size(); ++range) {
    const int64_t first_rows = runtime::any_rows_range_starts[range];
    const nlohmann::json& variant = ranges_wanted[range];
    // A range whose tile is the one below it adds nothing: that kernel goes on serving it. So
    // does one this device cannot build (the tile is chosen for sm_90's shared memory).
    const Kernel& below = ranges.empty() ? *resolved.kernel : *ranges.back().kernel;
    if (variant == below.variant_json()) continue;
    try {
      ranges.push_back({first_rows, runtime::build_cuda(desc, &variant, reader, cache_path)});
      plan.ranges.push_back(planned_part(first_rows, *ranges.back().kernel));
    } catch (const Unsupported&) {
    }
  }
  if (plan_complete && !cache_path.empty()) {
    cache::DecisionCache writer = cache::DecisionCache::open(cache_path, cache::OpenMode::read_write);
    writer.store_row_plan({to_string(desc), runtime::decision_fingerprint(desc, options),
                           runtime::decision_generator_version(desc, options), runtime::to_json(plan).dump(), ""});
  }
  resolved.kernel =
      std::make_shared<runtime::RowBucketKernel>(desc, std::move(exact), std::move(ranges), resolved.kernel);
  return remember(key, resolved);
}

}  // namespace

ResolvedKernel get_kernel(const OpDesc& desc, const GetOptions& options) {
  validate(desc);
  runtime::require_served(desc, options.isa);
  if (on_cuda(desc) && desc.m == 0) return resolve_row_buckets(desc, options);
  return resolve(desc, options);
}

}  // namespace lowbit
