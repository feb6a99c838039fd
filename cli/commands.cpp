#include "cli/commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <optional>
#include <nlohmann/json.hpp>

#include "cache/decision_cache.h"
#include "codegen/x86/registry.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/kernel.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "runtime/cuda_backend.h"
#include "runtime/decisions.h"
#include "runtime/row_plan.h"
#include "tuner/measure.h"
#include "tuner/memory_bandwidth.h"
#include "tuner/tuner.h"
#if LOWBIT_WITH_CUDA
#include "tuner/cuda_measure.h"
#endif

namespace lowbit::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Parses every --desc and checks that this machine serves it, before any slow work.
std::vector<OpDesc> parse_all(const Options& options) {
  std::vector<OpDesc> descs;
  for (const std::string& text : options.descriptors) descs.push_back(parse_descriptor(text));
  for (const OpDesc& desc : descs) runtime::require_served(desc, options.isa);
  return descs;
}

GetOptions get_options(const Options& options) {
  GetOptions get;
  get.cache_path = options.db;
  get.shipped_caches = options.shipped_dbs;
  get.max_threads = options.threads;
  get.on_miss = options.no_tune ? OnMiss::heuristic : OnMiss::tune;
  get.isa = options.isa;
  get.progress = isatty(STDERR_FILENO) != 0;
  return get;
}

bool on_cuda(const OpDesc& desc) { return desc.device.kind == DeviceKind::cuda; }

// A measured figure, or null where there is none (JSON has no NaN).
nlohmann::json optional_number(double value) {
  return std::isfinite(value) && value > 0 ? nlohmann::json(value) : nlohmann::json(nullptr);
}

void print_json(const nlohmann::json& json) { std::printf("%s\n", json.dump(2).c_str()); }

std::string short_shape(const OpDesc& desc) {
  return fmt::format("m={} {}x{} w{}g{} {}", desc.m, desc.n, desc.k, desc.bits, desc.group, to_string(desc.act));
}

// Bytes one call must read: the packed weights once (x and y are small beside them at the
// M of a decode step; they are left out so the figure compares with read bandwidth).
// The median as the timing protocol takes it (the upper middle of an even count).
double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double weight_gbps(const OpDesc& desc, double microseconds) {
  return static_cast<double>(native_weight_bytes(desc)) / (microseconds * 1e-6) / 1e9;
}

// A progress line per candidate on a terminal, one line per descriptor otherwise.
class Progress {
 public:
  Progress(int total) : total_(total), terminal_(isatty(STDERR_FILENO) != 0) {}
  void candidate(int index, const OpDesc& desc, int candidate, int count, const std::string& name) {
    if (!terminal_) return;
    const int width = 24;
    int filled = count > 0 ? width * (candidate + 1) / count : width;
    std::fprintf(stderr, "\r[%d/%d] %-40s [%s%s] %2d/%-2d %-36s", index + 1, total_, short_shape(desc).c_str(),
                 std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), candidate + 1, count,
                 name.c_str());
    std::fflush(stderr);
  }
  void done(int index, const OpDesc& desc, double seconds, const std::string& winner) {
    if (terminal_) std::fprintf(stderr, "\r%*s\r", 140, "");
    std::fprintf(stderr, "[%d/%d] %s: %s (%.1f s)\n", index + 1, total_, short_shape(desc).c_str(), winner.c_str(),
                 seconds);
  }

 private:
  int total_;
  bool terminal_;
};

}  // namespace

int run_info(const Options& options) {
  const CpuInfo& cpu = cpu_info();
  OpDesc probe = parse_descriptor("m=1,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  x86::Validity x86_status = x86::supports(probe);
  nlohmann::json backends = {
      {"x86", {{"available", x86_status.ok}, {"reason", x86_status.ok ? "" : x86_status.reason},
               {"generator_version", x86::generator_version()}}},
      {"cuda", runtime::cuda_status()}};
  if (options.json) {
    print_json({{"cpu", cpu.to_json()}, {"backends", backends}, {"lowbit_version", LOWBIT_VERSION},
                {"default_cache", cache::default_cache_path()}});
    return 0;
  }
  fmt::print("lowbit {}\n", LOWBIT_VERSION);
  fmt::print("cpu          {} ({} family {} model {} stepping {})\n", cpu.brand, cpu.vendor, cpu.family, cpu.model,
             cpu.stepping);
  fmt::print("cores        {} physical, {} logical (usable by this process)\n", cpu.physical_cores, cpu.logical_cpus);
  fmt::print("caches       L1d {} KiB, L2 {} KiB, L3 {} MiB\n", cpu.l1d_bytes >> 10, cpu.l2_bytes >> 10,
             cpu.l3_bytes >> 20);
  fmt::print("isa          {}\n", fmt::join(cpu.isa, " "));
  fmt::print("fingerprint  {}\n", cpu.fingerprint());
  const nlohmann::json& cuda = backends["cuda"];
  fmt::print("backends     x86: {}\n",
             x86_status.ok ? "available (" + x86::generator_version() + ")" : "unavailable (" + x86_status.reason + ")");
  fmt::print("             cuda: {}\n", cuda["available"].get<bool>()
                                            ? fmt::format("available ({}, {}; compiler: {})", cuda["device"].get<std::string>(),
                                                          cuda["arch"].get<std::string>(), cuda["compiler"].get<std::string>())
                                            : "unavailable (" + cuda["reason"].get<std::string>() + ")");
  fmt::print("cache        {}\n", cache::default_cache_path());
  return 0;
}

// An m=0 CUDA descriptor runs each call on the kernel of its row count (docs/architecture.md,
// get_kernel's step 5). Resolving it once here compiles every part's cubin and stores its row
// plan, so the cache file holds all a later process (or a deployment that ships the file) loads.
void prepare_row_parts(const OpDesc& desc, const GetOptions& get, nlohmann::json& row) {
  GetOptions parts = get;
  parts.on_miss = OnMiss::heuristic;
  parts.progress = false;
  const auto start = Clock::now();
  row["row_parts"] = get_kernel(desc, parts).kernel->name();
  row["row_parts_s"] = std::chrono::duration<double>(Clock::now() - start).count();
}

int run_tune(const Options& options) {
  std::vector<OpDesc> descs = parse_all(options);
  GetOptions get = get_options(options);
  cache::DecisionCache decisions = cache::DecisionCache::open(runtime::cache_path(get), cache::OpenMode::read_write);
  Progress progress(static_cast<int>(descs.size()));
  nlohmann::json rows = nlohmann::json::array();
  for (std::size_t index = 0; index < descs.size(); ++index) rows.push_back(nullptr);  // filled as each is tuned
  std::optional<tuner::ReadBandwidthProbe> probe;  // made at the first CPU row, kept for the rest
  tuner::TuneOptions tune_options;
  tune_options.max_threads = options.threads;
  tune_options.isa = options.isa;
  tune_options.exhaustive = options.exhaustive;
  // Stores a tuned descriptor's decision and fills its row.
  auto record = [&](std::size_t index, const tuner::TuneResult& result, double seconds,
                    const tuner::ReadBandwidth& bandwidth) {
    const OpDesc& desc = descs[index];
    const bool stored = runtime::store_decision(decisions, desc, get, result);
    progress.done(static_cast<int>(index), desc, seconds, result.winner->name());
    const double gbps = weight_gbps(desc, result.median_us);
    nlohmann::json row = {{"descriptor", to_string(desc)},
                          {"variant", result.winner->name()},
                          {"time_us", result.median_us},
                          {"weight_gbps", gbps},
                          {"mem_read_gbps", optional_number(bandwidth.gbps)},
                          {"read_bandwidth_fraction", optional_number(gbps / bandwidth.gbps)},
                          {"reference_us", result.reference_us},
                          {"speedup_vs_reference", result.reference_us / result.median_us},
                          {"rel_err", result.rel_err},
                          {"candidates", std::count_if(result.ranked.begin(), result.ranked.end(),
                                                       [](const auto& candidate) { return candidate.verified; })},
                          {"tuned_rows", result.rows},
                          {"tune_s", seconds},
                          {"top", tuner::top_candidates_json(result, options.top)},
                          {"stored", stored}};
    if (on_cuda(desc)) row["compile_s"] = result.compile_us * 1e-6;
    if (on_cuda(desc) && desc.m == 0 && stored) prepare_row_parts(desc, get, row);
    rows[index] = std::move(row);
  };
  std::size_t index = 0;
  while (index < descs.size()) {
    const std::size_t first = index;
    if (!on_cuda(descs[first])) {
      // Measured next to this descriptor's timings: a shared machine's bandwidth moves in phases.
      // (The host's read bandwidth says nothing of a GPU's: CUDA rows leave it out.)
      tune_options.on_candidate = [&](int candidate, int count, const std::string& name) {
        progress.candidate(static_cast<int>(first), descs[first], candidate, count, name);
      };
      const auto start = Clock::now();
      const tuner::ReadBandwidth bandwidth = (probe ? *probe : probe.emplace()).measure(options.threads);
      const tuner::TuneResult result = tuner::tune(descs[first], tune_options);
      record(first, result, std::chrono::duration<double>(Clock::now() - start).count(), bandwidth);
      ++index;
      continue;
    }
    // Consecutive CUDA descriptors share one compile queue (tuner::tune_each); tune_s is then
    // each one's span from its first compile to its last timing, and the spans overlap.
    while (index < descs.size() && on_cuda(descs[index])) ++index;
    const std::vector<OpDesc> batch(descs.begin() + static_cast<std::ptrdiff_t>(first),
                                    descs.begin() + static_cast<std::ptrdiff_t>(index));
    tuner::tune_each(
        batch, tune_options,
        [&](std::size_t row, int candidate, int count, const std::string& name) {
          progress.candidate(static_cast<int>(first + row), descs[first + row], candidate, count, name);
        },
        [&](std::size_t row, tuner::TuneResult result) {
          record(first + row, result, result.wall_us * 1e-6, tuner::ReadBandwidth{});
        });
  }
  if (options.json) {
    print_json({{"db", decisions.path()}, {"results", rows}});
    return 0;
  }
  fmt::print("{:<30} {:<34} {:>9} {:>11} {:>9} {:>9} {:>8}\n", "shape", "variant", "time us", "weight GB/s",
             "read GB/s", "% read bw", "vs ref");
  for (std::size_t index = 0; index < descs.size(); ++index) {
    const nlohmann::json& row = rows[index];
    const bool has_bandwidth = row["mem_read_gbps"].is_number();
    fmt::print("{:<30} {:<34} {:>9.1f} {:>11.1f} {:>9} {:>9} {:>7.0f}x\n", short_shape(descs[index]),
               row["variant"].get<std::string>(), row["time_us"].get<double>(), row["weight_gbps"].get<double>(),
               has_bandwidth ? fmt::format("{:.1f}", row["mem_read_gbps"].get<double>()) : "-",
               has_bandwidth ? fmt::format("{:.0f}%", 100 * row["read_bandwidth_fraction"].get<double>()) : "-",
               row["speedup_vs_reference"].get<double>());
  }
  fmt::print("stored in {}\n", decisions.path());
  return 0;
}

int run_get(const Options& options) {
  std::vector<OpDesc> descs = parse_all(options);
  GetOptions get = get_options(options);
  nlohmann::json rows = nlohmann::json::array();
  for (const OpDesc& desc : descs) {
    // An engine has its CUDA context before it asks for a kernel; creating it here keeps the
    // context's cost (a good part of a second) out of get_kernel_ms and reports it apart.
    double context_milliseconds = 0;
    if (on_cuda(desc)) {
      auto context_start = Clock::now();
      runtime::prepare_cuda_context(desc);
      context_milliseconds = std::chrono::duration<double, std::milli>(Clock::now() - context_start).count();
    }
    auto start = Clock::now();
    ResolvedKernel resolved = get_kernel(desc, get);
    double milliseconds = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    rows.push_back({{"descriptor", to_string(desc)},
                    {"source", std::string(to_string(resolved.source))},
                    {"variant", resolved.kernel->name()},
                    {"variant_params", resolved.kernel->variant_json()},
                    {"median_us", resolved.median_us},
                    {"get_kernel_ms", milliseconds}});
    if (on_cuda(desc)) {
      rows.back()["cuda_context_ms"] = context_milliseconds;
      rows.back()["nvrtc_loaded"] = runtime::cuda_compiler_loaded();  // by this process, so far
    }
  }
  if (options.json) {
    print_json(rows.size() == 1 ? rows[0] : rows);
    return 0;
  }
  for (const auto& row : rows)
    fmt::print("{:<28} {:<34} source={:<9} get_kernel_ms={:.3f}\n", short_shape(parse_descriptor(row["descriptor"].get<std::string>())),
               row["variant"].get<std::string>(), row["source"].get<std::string>(), row["get_kernel_ms"].get<double>());
  return 0;
}

// One descriptor's bench row for a CPU kernel: host buffers, rotate-median:1, in `rounds` rounds
// of (streaming read bandwidth reading, kernel timing). A shared machine's memory moves between
// phases (on the developer VM 31-41 GB/s, then 52-64), so each timing is set against the reading
// taken just before it: read_fraction is the median over rounds of weight GB/s / read GB/s, and
// time_us and mem_read_gbps are the medians of the rounds' figures.
nlohmann::json bench_cpu(const OpDesc& desc, const ResolvedKernel& resolved, const Problem& problem,
                         const std::vector<double>& reference, int rounds, int threads,
                         tuner::ReadBandwidthProbe& probe) {
  tuner::RotatedInputs inputs(problem);
  std::vector<double> times_us, readings_gbps, fractions;
  double min_us = 0;
  int repeats = 0;
  for (int round = 0; round < rounds; ++round) {
    readings_gbps.push_back(probe.measure(threads).gbps);
    const tuner::Timing timing = tuner::time_kernel(*resolved.kernel, inputs);
    times_us.push_back(timing.median_us);
    fractions.push_back(weight_gbps(desc, timing.median_us) / readings_gbps.back());
    min_us = round == 0 ? timing.min_us : std::min(min_us, timing.min_us);
    repeats += timing.repeats;
  }
  RunArgs args = inputs.args(0);
  resolved.kernel->run(args);
  return {{"time_us", median(times_us)},
          {"time_min_us", min_us},
          {"repeats", repeats},
          {"rounds", rounds},
          {"mem_read_gbps", median(readings_gbps)},
          {"read_fraction", median(fractions)},
          {"rel_err", relative_error(args.y, desc.out, reference)},
          {"protocol", std::string(tuner::protocol_id)}};
}

#if LOWBIT_WITH_CUDA
// The same for a CUDA kernel: device buffers, verified (guards, poison) then cuda-rotate-median:1.
nlohmann::json bench_cuda(const ResolvedKernel& resolved, const Problem& problem, const std::vector<double>& reference) {
  tuner::DeviceInputs inputs(problem);
  const tuner::CandidateResult check = tuner::verify_cuda(*resolved.kernel, inputs, reference);
  if (!check.verified) throw Error(fmt::format("{} is wrong on this GPU: {}", check.name, check.failure));
  tuner::Timing timing = tuner::time_cuda_kernel(*resolved.kernel, inputs);
  return {{"time_us", timing.median_us},
          {"time_min_us", timing.min_us},
          {"repeats", timing.repeats},
          {"rel_err", check.rel_err},
          {"protocol", std::string(tuner::cuda_protocol_id)}};
}
#else
nlohmann::json bench_cuda(const ResolvedKernel&, const Problem& problem, const std::vector<double>&) {
  throw Unsupported(runtime::cuda_refusal(problem.desc));
}
#endif

int run_bench(const Options& options) {
  std::vector<OpDesc> descs = parse_all(options);
  GetOptions get = get_options(options);
  nlohmann::json rows = nlohmann::json::array();
  std::optional<tuner::ReadBandwidthProbe> probe;  // made at the first CPU row, kept for the rest
  for (const OpDesc& desc : descs) {
    if (desc.m > 0 && options.rows > 0 && options.rows != desc.m)
      throw InvalidArgument("rows", fmt::format("--rows {} applies to m=0 descriptors; {} runs its own m={}",
                                                options.rows, to_string(desc), desc.m));
    ResolvedKernel resolved = get_kernel(desc, get);
    const int64_t m = desc.m > 0 ? desc.m : options.rows > 0 ? options.rows : any_m_rows;
    Problem problem = make_random_problem(desc, m, seed_for("bench " + to_string(desc)));
    auto reference_start = Clock::now();
    std::vector<double> reference =
        reference_matmul(desc, m, problem.x.data(), problem.weights, desc.bias ? problem.bias.data() : nullptr,
                         desc.eqscale ? problem.eq_scale.data() : nullptr);
    double reference_us = std::chrono::duration<double, std::micro>(Clock::now() - reference_start).count();
    nlohmann::json row = on_cuda(desc) ? bench_cuda(resolved, problem, reference)
                                       : bench_cpu(desc, resolved, problem, reference, options.rounds, options.threads,
                                                   probe ? *probe : probe.emplace());
    row.update({{"descriptor", to_string(desc)},
                {"variant", resolved.kernel->kernel_for_rows(m).name()},
                {"source", std::string(to_string(resolved.source))},
                {"m", m},
                {"weight_bytes", native_weight_bytes(desc)},
                {"weight_gbps", weight_gbps(desc, row["time_us"].get<double>())},
                {"ref_time_us", reference_us}});
    if (on_cuda(desc)) row["mem_read_gbps"] = nullptr;
    rows.push_back(row);
  }
  if (options.json) {
    print_json(rows.size() == 1 ? rows[0] : rows);
    return 0;
  }
  for (const auto& row : rows)
    fmt::print("{}\n  {}  {:.1f} us  weights {:.1f} GB/s{}  reference {:.0f} us  rel_err {:.2e}\n",
               row["descriptor"].get<std::string>(), row["variant"].get<std::string>(), row["time_us"].get<double>(),
               row["weight_gbps"].get<double>(),
               row["mem_read_gbps"].is_number()
                   ? fmt::format(" ({:.0f} % of {:.1f} GB/s read)", 100 * row["read_fraction"].get<double>(),
                                 row["mem_read_gbps"].get<double>())
                   : std::string(),
               row["ref_time_us"].get<double>(), row["rel_err"].get<double>());
  return 0;
}

int run_show(const Options& options) {
  GetOptions get = get_options(options);
  cache::DecisionCache decisions = cache::DecisionCache::open(runtime::cache_path(get), cache::OpenMode::read_only);
  if (!decisions.usable()) throw InvalidArgument("db", fmt::format("cannot read the cache file '{}'", decisions.path()));
  nlohmann::json rows = nlohmann::json::array();
  for (const cache::Decision& decision : decisions.list())
    rows.push_back({{"descriptor", decision.descriptor},
                    {"fingerprint", decision.fingerprint},
                    {"generator_version", decision.generator_version},
                    {"variant", decision.variant_name},
                    {"variant_params", nlohmann::json::parse(decision.variant_json)},
                    {"median_us", decision.median_us},
                    {"rel_err", decision.rel_err},
                    {"candidates", decision.candidates},
                    {"protocol", decision.protocol},
                    {"created_at", decision.created_at}});
  // m=0's row plans (docs/cache.md): the parts of an any-M CUDA kernel no decision names.
  nlohmann::json plans = nlohmann::json::array();
  for (const cache::RowPlan& plan : decisions.list_row_plans()) {
    nlohmann::json parts = nlohmann::json::parse(plan.plan_json, nullptr, false);
    plans.push_back({{"descriptor", plan.descriptor},
                     {"fingerprint", plan.fingerprint},
                     {"generator_version", plan.generator_version},
                     {"plan", parts.is_discarded() ? nlohmann::json(plan.plan_json) : parts},
                     {"created_at", plan.created_at}});
  }
  if (options.json) {
    print_json({{"db", decisions.path()}, {"decisions", rows}, {"row_plans", plans}});
    return 0;
  }
  fmt::print("{} decisions in {}\n", rows.size(), decisions.path());
  for (const auto& row : rows)
    fmt::print("{}\n  {}  {:.1f} us  {}  {}\n", row["descriptor"].get<std::string>(), row["variant"].get<std::string>(),
               row["median_us"].get<double>(), row["generator_version"].get<std::string>(),
               row["created_at"].get<std::string>());
  if (!plans.empty()) fmt::print("{} row plans (m=0 parts no decision names)\n", plans.size());
  for (const auto& plan : plans) {
    std::string summary;
    try {
      const runtime::RowPlanParts parts = runtime::row_plan_from_json(plan["plan"]);
      summary = fmt::format("{} exact rows, {} ranges{}", parts.exact.size(), parts.ranges.size(),
                            parts.any_rows ? ", the any-M kernel" : "");
    } catch (const Error& error) {
      summary = fmt::format("unusable ({})", error.what());  // get_kernel warns and ignores it
    }
    fmt::print("{}\n  {}  {}  {}\n", plan["descriptor"].get<std::string>(), summary,
               plan["generator_version"].get<std::string>(), plan["created_at"].get<std::string>());
  }
  return 0;
}

// What a cache file holds, counted: {"decisions", "artifacts", "row_plans"}.
nlohmann::json cache_contents(const cache::DecisionCache& cache) {
  return {{"decisions", cache.list().size()},
          {"artifacts", cache.artifact_keys().size()},
          {"row_plans", cache.list_row_plans().size()}};
}

int run_export(const Options& options) {
  GetOptions get = get_options(options);
  const cache::DecisionCache source = cache::DecisionCache::open(runtime::cache_path(get), cache::OpenMode::read_only);
  if (!source.usable()) throw InvalidArgument("db", fmt::format("cannot read the cache file '{}'", source.path()));
  source.export_to(options.out);
  const cache::DecisionCache written = cache::DecisionCache::open(options.out, cache::OpenMode::immutable);
  nlohmann::json row = cache_contents(written);
  row["db"] = source.path();
  row["out"] = options.out;
  row["bytes"] = std::filesystem::file_size(options.out);
  if (options.json) {
    print_json(row);
    return 0;
  }
  fmt::print("exported {} to {}: {} decisions, {} cubins, {} row plans, {} bytes\n", source.path(), options.out,
             row["decisions"].get<std::size_t>(), row["artifacts"].get<std::size_t>(), row["row_plans"].get<std::size_t>(),
             row["bytes"].get<std::uintmax_t>());
  return 0;
}

int run_merge(const Options& options) {
  GetOptions get = get_options(options);
  const cache::ConflictRule rule = options.on_conflict == "newer"  ? cache::ConflictRule::newer
                                   : options.on_conflict == "keep" ? cache::ConflictRule::keep
                                                                   : cache::ConflictRule::faster;
  const std::string target_path = runtime::cache_path(get);
  // Every source is opened and judged before the target is opened (which creates it): a refused
  // merge leaves no file behind. merge_from then reads the sources as opened here.
  std::vector<cache::DecisionCache> sources;
  for (const std::string& source : options.from) {
    if (cache::same_file(source, target_path))
      throw InvalidArgument("from", fmt::format("'{}' is the target cache itself", source));
    sources.push_back(cache::DecisionCache::open(source, cache::OpenMode::read_only));
    if (!sources.back().usable())
      throw InvalidArgument("from", fmt::format("cache '{}' cannot be read (the warning above says why)", source));
  }
  cache::DecisionCache target = cache::DecisionCache::open(target_path, cache::OpenMode::read_write);
  if (!target.usable()) throw InvalidArgument("db", fmt::format("cannot write the cache file '{}'", target.path()));
  nlohmann::json merged = nlohmann::json::array();
  for (const cache::DecisionCache& source : sources) {
    const cache::MergeCounts counts = target.merge_from(source, rule);
    merged.push_back({{"from", source.path()},
                      {"decisions_added", counts.decisions_added},
                      {"decisions_replaced", counts.decisions_replaced},
                      {"decisions_kept", counts.decisions_kept},
                      {"artifacts_added", counts.artifacts_added},
                      {"artifacts_damaged", counts.artifacts_damaged},
                      {"row_plans_added", counts.row_plans_added},
                      {"row_plans_replaced", counts.row_plans_replaced},
                      {"row_plans_kept", counts.row_plans_kept}});
  }
  nlohmann::json result = {{"db", target.path()}, {"on_conflict", options.on_conflict}, {"merged", merged}};
  result["now"] = cache_contents(target);
  if (options.json) {
    print_json(result);
    return 0;
  }
  for (const nlohmann::json& row : merged)
    fmt::print("{}: decisions {} added, {} replaced, {} kept; cubins {} added{}; row plans {} added, {} replaced, {} kept\n",
               row["from"].get<std::string>(), row["decisions_added"].get<int>(), row["decisions_replaced"].get<int>(),
               row["decisions_kept"].get<int>(), row["artifacts_added"].get<int>(),
               row["artifacts_damaged"].get<int>() > 0 ? fmt::format(" ({} damaged, left out)", row["artifacts_damaged"].get<int>()) : "",
               row["row_plans_added"].get<int>(), row["row_plans_replaced"].get<int>(), row["row_plans_kept"].get<int>());
  fmt::print("{} now holds {} decisions, {} cubins, {} row plans (on conflict: {})\n", target.path(),
             result["now"]["decisions"].get<std::size_t>(), result["now"]["artifacts"].get<std::size_t>(),
             result["now"]["row_plans"].get<std::size_t>(), options.on_conflict);
  return 0;
}

int run_compile(const Options& options) {
  if (options.descriptors.size() != 1) throw InvalidArgument("desc", "lowbit compile takes exactly one --desc");
  const OpDesc desc = parse_descriptor(options.descriptors.front());
  if (desc.device.kind != DeviceKind::cuda)
    throw InvalidArgument("device", "lowbit compile writes CUDA cubins: the descriptor needs device=cuda:N");
  const runtime::CompiledCuda compiled = runtime::compile_cuda(desc, options.arch, options.variant);
  std::FILE* file = std::fopen(options.out.c_str(), "wb");
  if (file == nullptr) throw InvalidArgument("out", fmt::format("cannot write '{}'", options.out));
  const bool written = std::fwrite(compiled.cubin.data(), 1, compiled.cubin.size(), file) == compiled.cubin.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) throw Error(fmt::format("writing '{}' failed", options.out));
  if (options.json) {
    print_json({{"descriptor", to_string(desc)}, {"variant", compiled.variant_name}, {"arch", options.arch},
                {"out", options.out}, {"bytes", compiled.cubin.size()}});
  } else {
    fmt::print("{} ({} bytes, {}) -> {}\n", compiled.variant_name, compiled.cubin.size(), options.arch, options.out);
  }
  return 0;
}

}  // namespace lowbit::cli
