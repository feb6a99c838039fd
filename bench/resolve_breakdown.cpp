// Where a CUDA cache hit's time goes: for each descriptor, the steps get_kernel takes to build
// a kernel from a cache file, each timed on its own, in this order and in one process (so the
// first descriptor pays SQLite's and the driver's first-use costs, as a new engine process
// would): the read-only open, the decision lookup, parsing the variant, the cubin's lookup under
// the key its decision names, and loading the module (cuModuleLoadData and its functions;
// "modload": cuModuleLoadData of the same bytes alone, just before, not part of the total). A
// descriptor with no stored decision, or one naming no cubin (a file before schema version 3),
// takes get_kernel's other path: generating the source and hashing it for the content key (the
// emit and key columns, else "-"); a cubin stored under neither is compiled (and says so). Then each step again,
// --repeats times, warm. Prints a table (ms). Needs a GPU.
// Usage: lowbit_resolve_breakdown --db FILE --desc D [--desc D ...] [--repeats N]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cache/decision_cache.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/registry.h"
#include "lowbit/errors.h"
#include "runtime/cuda_backend.h"
#include "runtime/decisions.h"

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Milliseconds of each step of one cache hit of desc, in get_kernel's order.
struct Steps {
  double open = 0, decision = 0, parse = 0, emit = 0, key = 0, artifact = 0, load = 0;
  bool decision_stored = false, cubin_stored = false;
  bool content_keyed = false;  // the cubin was looked up by its content key (emit and key ran)
  std::size_t cubin_bytes = 0;
  double module = 0;  // cuModuleLoadData alone (a separate load, not part of total)
  double total() const { return open + decision + parse + emit + key + artifact + load; }
};

Steps time_steps(const lowbit::OpDesc& desc, const std::string& db) {
  namespace cuda = lowbit::cuda;
  Steps steps;
  lowbit::GetOptions options;
  options.cache_path = db;
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);

  Clock::time_point start = Clock::now();
  const lowbit::cache::DecisionCache reader = lowbit::cache::DecisionCache::open(db, lowbit::cache::OpenMode::read_only);
  steps.open = milliseconds_since(start);

  start = Clock::now();
  const auto decision = reader.lookup(lowbit::to_string(desc), lowbit::runtime::decision_fingerprint(desc, options),
                                      lowbit::runtime::decision_generator_version(desc, options));
  steps.decision = milliseconds_since(start);
  steps.decision_stored = decision.has_value();

  start = Clock::now();
  const cuda::CudaVariant variant = decision ? cuda::variant_from_json(nlohmann::json::parse(decision->variant_json))
                                             : cuda::heuristic(desc, device.major, device.sm_count);
  steps.parse = milliseconds_since(start);

  std::optional<lowbit::cache::Artifact> artifact;
  if (decision && !decision->artifact_key.empty()) {
    start = Clock::now();
    artifact = reader.lookup_artifact(decision->artifact_key);
    steps.artifact = milliseconds_since(start);
  }
  std::string source;
  if (!artifact) {
    steps.content_keyed = true;
    start = Clock::now();
    source = cuda::emit(desc, variant);
    steps.emit = milliseconds_since(start);

    start = Clock::now();
    const std::string key = lowbit::runtime::cubin_key(source, device.arch());
    steps.key = milliseconds_since(start);

    start = Clock::now();
    artifact = reader.lookup_artifact(key);
    steps.artifact += milliseconds_since(start);
  }
  steps.cubin_stored = artifact.has_value();
  std::vector<char> cubin = artifact ? std::move(artifact->bytes)
                                     : cuda::compile_to_cubin(source, cuda::variant_name(desc, variant, device.arch()),
                                                              device.arch());

  steps.cubin_bytes = cubin.size();
  // The driver's share of the load: cuModuleLoadData of the same bytes alone, then unloaded.
  CUmodule module = nullptr;
  start = Clock::now();
  cuda::check(cuda::driver().cuModuleLoadData(&module, cubin.data()), "cuModuleLoadData");
  steps.module = milliseconds_since(start);
  cuda::driver().cuModuleUnload(module);
  start = Clock::now();
  const auto kernel = cuda::load(desc, variant, std::move(cubin));
  steps.load = milliseconds_since(start);
  return steps;
}

std::string cell(bool ran, double milliseconds) { return ran ? fmt::format("{:6.3f}", milliseconds) : "     -"; }

void print_row(const std::string& label, const Steps& steps) {
  std::printf("%-58s %6.3f %6.3f %6.3f %s %s %6.3f %6.3f %7.3f %5zu %7.3f  %s%s\n", label.c_str(), steps.open,
              steps.decision, steps.parse, cell(steps.content_keyed, steps.emit).c_str(),
              cell(steps.content_keyed, steps.key).c_str(), steps.artifact, steps.load, steps.total(),
              steps.cubin_bytes >> 10, steps.module,
              steps.decision_stored ? (steps.content_keyed ? "decision, content key" : "decision names the cubin")
                                    : "heuristic",
              steps.cubin_stored ? "" : ", cubin compiled");
}

}  // namespace

int main(int argc, char** argv) {
  std::string db;
  std::vector<std::string> descs;
  int repeats = 5;
  CLI::App app{"lowbit_resolve_breakdown: the steps of a CUDA cache hit, timed"};
  app.add_option("--db", db, "cache file")->required();
  app.add_option("--desc", descs, "descriptors (device=cuda:N, m > 0)")->required();
  app.add_option("--repeats", repeats, "warm repeats of each descriptor's steps")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  try {
    std::vector<lowbit::OpDesc> parsed;
    for (const std::string& text : descs) {
      parsed.push_back(lowbit::parse_descriptor(text));
      lowbit::validate(parsed.back());
      if (parsed.back().device.kind != lowbit::DeviceKind::cuda || parsed.back().m == 0)
        throw lowbit::InvalidArgument("desc", text + ": expected device=cuda:N and m > 0");
    }
    Clock::time_point start = Clock::now();
    lowbit::cuda::make_current(parsed.front().device.index);
    std::printf("CUDA context: %.1f ms (not part of any row)\n", milliseconds_since(start));
    std::printf("%-58s %6s %6s %6s %6s %6s %6s %6s %7s %5s %7s\n", "descriptor (ms)", "open", "decisn", "parse", "emit",
                "key", "cubin", "load", "total", "KiB", "modload");
    for (const lowbit::OpDesc& desc : parsed) print_row(lowbit::to_string(desc).substr(0, 58) + " (1st)", time_steps(desc, db));
    for (const lowbit::OpDesc& desc : parsed) {
      std::vector<Steps> runs;
      for (int repeat = 0; repeat < repeats; ++repeat) runs.push_back(time_steps(desc, db));
      std::sort(runs.begin(), runs.end(), [](const Steps& a, const Steps& b) { return a.total() < b.total(); });
      print_row(lowbit::to_string(desc).substr(0, 58) + " (median)", runs[runs.size() / 2]);
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_resolve_breakdown: %s\n", error.what());
    return 1;
  }
}
