// What loading many cubins costs the driver, and whether threads share the cost: every cubin of a
// cache file (an m=0 descriptor's row parts load ~21 of them) loaded with cuModuleLoadData one
// after another, then split over 2, 4 and 8 threads (each with the device's primary context
// current), each round's modules unloaded before the next. Median wall time of --repeats rounds
// (the first round apart: the driver's first use). Needs a GPU.
// Usage: lowbit_module_load_bench --db FILE [--repeats N]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cache/decision_cache.h"
#include "codegen/cuda/cuda_api.h"
#include "lowbit/errors.h"

namespace {

namespace cuda = lowbit::cuda;
using Clock = std::chrono::steady_clock;

// Loads `cubins` over `threads` threads (cubin i on thread i % threads), returns the wall
// milliseconds, and unloads every module afterwards (not timed).
double load_all(const std::vector<std::vector<char>>& cubins, int threads) {
  std::vector<CUmodule> modules(cubins.size(), nullptr);
  auto load_share = [&](int thread) {
    cuda::make_current(0);
    for (std::size_t index = static_cast<std::size_t>(thread); index < cubins.size(); index += static_cast<std::size_t>(threads))
      cuda::check(cuda::driver().cuModuleLoadData(&modules[index], cubins[index].data()), "cuModuleLoadData");
  };
  const Clock::time_point start = Clock::now();
  if (threads == 1) {
    load_share(0);
  } else {
    std::vector<std::thread> workers;
    for (int thread = 0; thread < threads; ++thread) workers.emplace_back(load_share, thread);
    for (std::thread& worker : workers) worker.join();
  }
  const double milliseconds = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  for (CUmodule module : modules)
    if (module != nullptr) cuda::driver().cuModuleUnload(module);
  return milliseconds;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db;
  int repeats = 7;
  CLI::App app{"lowbit_module_load_bench: the driver's cost of loading a cache file's cubins, alone and threaded"};
  app.add_option("--db", db, "cache file")->required();
  app.add_option("--repeats", repeats, "rounds of each way")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  try {
    const lowbit::cache::DecisionCache reader = lowbit::cache::DecisionCache::open(db, lowbit::cache::OpenMode::read_only);
    if (!reader.usable()) throw lowbit::InvalidArgument("db", "cannot read " + db);
    cuda::make_current(0);
    const std::string arch = cuda::device_info(0).arch();
    std::vector<std::vector<char>> cubins;
    std::size_t bytes = 0;
    for (const std::string& key : reader.artifact_keys())
      if (auto artifact = reader.lookup_artifact(key); artifact && artifact->arch == arch) {
        bytes += artifact->bytes.size();
        cubins.push_back(std::move(artifact->bytes));
      }
    if (cubins.empty()) throw lowbit::InvalidArgument("db", db + " holds no cubin for " + arch);
    std::printf("%zu cubins for %s, %zu KiB; first round (the driver's first use): %.3f ms\n", cubins.size(),
                arch.c_str(), bytes >> 10, load_all(cubins, 1));
    for (int threads : {1, 2, 4, 8}) {
      std::vector<double> rounds;
      for (int round = 0; round < repeats; ++round) rounds.push_back(load_all(cubins, threads));
      std::sort(rounds.begin(), rounds.end());
      std::printf("threads %d: median %.3f ms (min %.3f, max %.3f), %.3f ms a cubin\n", threads,
                  rounds[rounds.size() / 2], rounds.front(), rounds.back(),
                  rounds[rounds.size() / 2] / static_cast<double>(cubins.size()));
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_module_load_bench: %s\n", error.what());
    return 1;
  }
}
