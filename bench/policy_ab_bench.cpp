// lowbit_policy_ab_bench: the no-tune policy's kernel against the tuned winner, paired in one
// process (issue 3: "a heuristic default for the no-tune policy that is within 20 % of the tuned
// best on the benchmark shapes").
//
// Separate `lowbit bench` processes seconds apart cannot resolve 20 % on a shared machine: the
// same kernel's median moved 1.32x between two of them on the developer VM. Here both kernels
// run on the same random problem and the same rotated weight copies, in pairs of short
// timings taken milliseconds apart, the order alternating (tuned first, then heuristic first),
// so a phase of the machine's memory weighs on both sides of each pair. The ratio of a pair
// is heuristic / tuned; a row reports the median ratio over the pairs and its quartiles.
//
// Per descriptor: the tuned winner from --db (get_kernel with OnMiss::tune: a miss tunes and
// stores), the heuristic variant (OnMiss::heuristic, no cache), both checked against the
// reference (a kernel outside the descriptor's tolerance stops the bench: a fast wrong kernel
// has no ratio; compute=int8 kernels are compared with the float reference at the int8 bound:
// their exactness against their own twin is the tests' job). Where both are the same variant the ratio is the measurement's own spread.
//
// Usage: lowbit_policy_ab_bench --db TUNED.sqlite [--threads N] [--pairs 21] [--runs 5]
//        [--jsonl OUT.jsonl] --desc D [--desc D ...]   (or --shapes FILE, one descriptor a line)
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/shapes_file.h"
#include "codegen/x86/registry.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/descriptor.h"
#include "lowbit/errors.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "tuner/measure.h"

namespace {

constexpr double limit = 1.20;  // issue 3: the heuristic within 20 % of the tuned best

struct Options {
  std::string db;
  int threads = 0;
  int pairs = 21;
  int runs = 5;
  std::string jsonl;
  std::vector<std::string> descriptors;
  std::string shapes;
};

double quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5)];
}

// A kernel name without its backend and format: x86_amxbf16_w4g128_n2m16k1_t16 -> amxbf16 n2m16k1_t16.
std::string short_variant(const std::string& name) {
  const std::size_t family = name.find('_');
  const std::size_t format = family == std::string::npos ? family : name.find('_', family + 1);
  const std::size_t variant = format == std::string::npos ? format : name.find('_', format + 1);
  if (variant == std::string::npos) return name;
  return name.substr(family + 1, format - family - 1) + " " + name.substr(variant + 1);
}

void check_against_reference(const lowbit::Kernel& kernel, const lowbit::OpDesc& desc,
                             const lowbit::tuner::RotatedInputs& inputs, const std::vector<double>& reference) {
  const lowbit::RunArgs args = inputs.args(0);
  kernel.run(args);
  const double error = lowbit::relative_error(args.y, desc.out, reference);
  // The tuner's bound for this variant (looser where weights are rounded to bf16 first).
  const double allowed =
      lowbit::x86::verification_tolerance(desc, lowbit::x86::variant_from_json(kernel.variant_json()));
  if (!(error <= allowed))
    throw lowbit::Error(fmt::format("{} is wrong on {}: relative error {:.3g} over the tolerance {:.3g}",
                                    kernel.name(), lowbit::to_string(desc), error, allowed));
}

nlohmann::json compare(const lowbit::OpDesc& desc, const Options& options) {
  if (desc.device.kind != lowbit::DeviceKind::cpu)
    throw lowbit::InvalidArgument("--desc", fmt::format("{}: this bench compares CPU kernels (device=cpu); "
                                                        "lowbit_cuda_bench reports CUDA's heuristic beside the tuned winner",
                                                        to_string(desc)));
  lowbit::GetOptions tuned_options;
  tuned_options.cache_path = options.db;
  tuned_options.max_threads = options.threads;
  lowbit::GetOptions heuristic_options = tuned_options;
  heuristic_options.on_miss = lowbit::OnMiss::heuristic;
  heuristic_options.use_cache = false;
  const lowbit::ResolvedKernel tuned = lowbit::get_kernel(desc, tuned_options);
  const lowbit::ResolvedKernel heuristic = lowbit::get_kernel(desc, heuristic_options);

  const int64_t m = desc.m > 0 ? desc.m : 16;
  const lowbit::Problem problem = lowbit::make_random_problem(desc, m, lowbit::seed_for("policy ab " + to_string(desc)));
  const std::vector<double> reference =
      lowbit::reference_matmul(desc, m, problem.x.data(), problem.weights, desc.bias ? problem.bias.data() : nullptr,
                               desc.eqscale ? problem.eq_scale.data() : nullptr);
  const lowbit::tuner::RotatedInputs inputs(problem);
  check_against_reference(*tuned.kernel, desc, inputs, reference);
  check_against_reference(*heuristic.kernel, desc, inputs, reference);

  // One rotation for both kernels: consecutive runs, whichever kernel, read consecutive copies.
  int next_copy = 0;
  auto time_side = [&](const lowbit::Kernel& kernel) {
    return lowbit::tuner::time_callable([&](int) { kernel.run(inputs.args(next_copy++ % inputs.copies())); }, 1,
                                        options.runs, 0.0, options.runs)
        .median_us;
  };
  std::vector<double> tuned_us, heuristic_us, ratios;
  for (int pair = 0; pair < options.pairs; ++pair) {
    double tuned_time = 0, heuristic_time = 0;
    if (pair % 2 == 0) {
      tuned_time = time_side(*tuned.kernel);
      heuristic_time = time_side(*heuristic.kernel);
    } else {
      heuristic_time = time_side(*heuristic.kernel);
      tuned_time = time_side(*tuned.kernel);
    }
    tuned_us.push_back(tuned_time);
    heuristic_us.push_back(heuristic_time);
    ratios.push_back(heuristic_time / tuned_time);
  }
  return {{"descriptor", to_string(desc)},
          {"m", m},
          {"tuned_variant", tuned.kernel->name()},
          {"tuned_source", std::string(lowbit::to_string(tuned.source))},
          {"tuned_us_at_tuning", tuned.median_us},
          {"heuristic_variant", heuristic.kernel->name()},
          {"same_variant", tuned.kernel->name() == heuristic.kernel->name()},
          {"tuned_us", quantile(tuned_us, 0.5)},
          {"heuristic_us", quantile(heuristic_us, 0.5)},
          {"ratio_median", quantile(ratios, 0.5)},
          {"ratio_q1", quantile(ratios, 0.25)},
          {"ratio_q3", quantile(ratios, 0.75)},
          {"pairs", options.pairs},
          {"runs_per_side", options.runs},
          {"protocol", fmt::format("paired rotate-median, {} pairs x {} runs a side", options.pairs, options.runs)}};
}

void print_row(const nlohmann::json& row) {
  const lowbit::OpDesc desc = lowbit::parse_descriptor(row["descriptor"].get<std::string>());
  const double ratio = row["ratio_median"].get<double>();
  fmt::print("| {} | {}×{} | {} | {} | {}{} | {:.1f} | {:.1f} | {:.2f} ({:.2f}–{:.2f}){} |\n", row["m"].get<int64_t>(),
             desc.n, desc.k, to_string(desc.compute), short_variant(row["tuned_variant"].get<std::string>()),
             short_variant(row["heuristic_variant"].get<std::string>()), row["same_variant"].get<bool>() ? " (same)" : "",
             row["tuned_us"].get<double>(), row["heuristic_us"].get<double>(), ratio, row["ratio_q1"].get<double>(),
             row["ratio_q3"].get<double>(), ratio > limit ? " **over**" : "");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"lowbit_policy_ab_bench: the no-tune kernel against the tuned winner, paired in one process"};
  app.add_option("--db", options.db, "the tuned cache (a miss tunes into it)")->required();
  app.add_option("--threads", options.threads, "threads for both kernels (0: every usable core)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--pairs", options.pairs, "pairs of timings per descriptor")->check(CLI::Range(1, 1000));
  app.add_option("--runs", options.runs, "runs per side of a pair (their median)")->check(CLI::Range(1, 1000));
  app.add_option("--jsonl", options.jsonl, "also write one JSON object per descriptor here");
  app.add_option("--desc", options.descriptors, "a descriptor (repeatable)");
  app.add_option("--shapes", options.shapes, "a file of descriptors, one a line")->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  try {
    if (!options.shapes.empty())
      for (std::string& line : lowbit::bench::read_shapes_file(options.shapes)) options.descriptors.push_back(std::move(line));
    if (options.descriptors.empty()) throw lowbit::InvalidArgument("--desc", "give at least one --desc or --shapes");
    std::ofstream jsonl;
    if (!options.jsonl.empty()) jsonl.open(options.jsonl);
    fmt::print("| M | N×K | compute | tuned variant | heuristic variant | tuned µs | heuristic µs | "
               "heuristic / tuned, median (quartiles) |\n| ---: | --- | --- | --- | --- | ---: | ---: | ---: |\n");
    double worst = 0;
    for (const std::string& text : options.descriptors) {
      const nlohmann::json row = compare(lowbit::parse_descriptor(text), options);
      print_row(row);
      if (jsonl.is_open()) jsonl << row.dump() << "\n" << std::flush;
      worst = std::max(worst, row["ratio_median"].get<double>());
    }
    fmt::print("\nworst median heuristic / tuned: {:.2f} (limit {:.2f})\n", worst, limit);
    return 0;
  } catch (const std::exception& error) {
    fmt::print(stderr, "lowbit_policy_ab_bench: {}\n", error.what());
    return 1;
  }
}
