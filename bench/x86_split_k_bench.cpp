// lowbit_x86_split_k_bench: split-K against no split on this machine, in one run, per shape.
// For each descriptor (a line of the shapes file): the heuristic's register block with
// split_k = 1 (the baseline column), then the same block with split_k in {2, 3, 4, 8} where
// valid, each with the threads its work items allow (capped by --threads), timed by the tuner's
// protocol (tuner/measure.h: weights rotated beyond the last-level cache, median of repeats).
// The heuristic's split at --threads and at 16 threads (a 16-core host) is printed beside.
// Usage: lowbit_x86_split_k_bench SHAPES_FILE [--threads N] [--json]
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/shapes_file.h"
#include "codegen/x86/block_program.h"
#include "codegen/x86/registry.h"
#include "codegen/x86/x86_kernel.h"
#include "lowbit/cpu_info.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "tuner/measure.h"

int main(int argc, char** argv) {
  using namespace lowbit;
  if (argc < 2) {
    fmt::print(stderr, "usage: lowbit_x86_split_k_bench SHAPES_FILE [--threads N] [--json]\n");
    return 2;
  }
  int threads = std::max(1, cpu_info().physical_cores);
  bool json_output = false;
  for (int i = 2; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
    else if (argument == "--json") json_output = true;
    else {
      fmt::print(stderr, "unknown argument '{}'\n", argument);
      return 2;
    }
  }
  nlohmann::json rows = nlohmann::json::array();
  if (!json_output)
    fmt::print("{:<58} {:<40} {:>9} {:>8} {:>8}\n", "shape", "variant", "time us", "GB/s", "vs s1");
  for (const std::string& shape : lowbit::bench::read_shapes_file(argv[1])) {
    const OpDesc desc = parse_descriptor(shape);
    const Problem problem = make_random_problem(desc, desc.m, seed_for(shape));
    const tuner::RotatedInputs inputs(problem);
    x86::X86Variant base = x86::heuristic(desc, threads);
    const int heuristic_split = base.split_k;
    const int xeon_split = x86::heuristic(desc, 16).split_k;
    base.split_k = 1;
    double baseline_us = 0;
    for (int split_k : {1, 2, 3, 4, 8}) {
      x86::X86Variant variant = base;
      variant.split_k = split_k;
      variant.threads = x86::split_threads(desc, variant, threads);
      if (!x86::is_valid(desc, variant)) continue;
      const x86::X86Kernel kernel(desc, variant, threads);
      const tuner::Timing timing = tuner::time_kernel(kernel, inputs);
      if (split_k == 1) baseline_us = timing.median_us;
      const double gigabytes_per_second = native_weight_bytes(desc) / (timing.median_us * 1e3);
      const double speedup = baseline_us / timing.median_us;
      rows.push_back({{"descriptor", shape},
                      {"variant", kernel.name()},
                      {"split_k", split_k},
                      {"median_us", timing.median_us},
                      {"weight_gb_per_s", gigabytes_per_second},
                      {"speedup_vs_split_1", speedup},
                      {"heuristic_split_here", heuristic_split},
                      {"heuristic_split_16_threads", xeon_split}});
      if (!json_output)
        fmt::print("{:<58} {:<40} {:>9.1f} {:>8.1f} {:>7.2f}x\n", shape, kernel.name(), timing.median_us,
                   gigabytes_per_second, speedup);
    }
    if (!json_output)
      fmt::print("  heuristic split_k: {} at {} threads, {} at 16 threads\n", heuristic_split, threads, xeon_split);
  }
  if (json_output)
    fmt::print("{}\n", nlohmann::json{{"threads", threads}, {"protocol", tuner::protocol_id}, {"rows", rows}}.dump(2));
  return 0;
}
