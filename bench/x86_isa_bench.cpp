// lowbit_x86_isa_bench: the x86 ISA families side by side on one machine, in one run. For each
// descriptor (exact M) and each thread count, every candidate of each family is timed with the
// tuner's protocol (tuner/measure.h, rotate-median:1) and the fastest per family is printed:
// the AMX-vs-AVX-512 table and the thread-scaling rows of docs/benchmarks.md come from here.
// Correctness is the tests' job (tests/x86); no reference is computed (it takes minutes at
// M=256 on the large shapes).
// Usage: lowbit_x86_isa_bench [--every] --threads 1,2,16 --isa amx,avx512 --desc D [--desc D ...]
// (--every, before the options with values: also one line per candidate; --only S1,S2: time only
// the candidates whose name ends with one of these, e.g. n2m32k1_t16_kb1024,n2m32k1_t16_kb1024_sd)
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "codegen/x86/registry.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"
#include "lowbit/errors.h"
#include "lowbit/problem.h"
#include "tuner/measure.h"

namespace {

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = text.find(',', start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return parts;
}

int run(int argc, char** argv) {
  std::vector<int> threads{0};
  std::vector<std::string> isas{"amx", "avx512"};
  bool every = false;
  std::vector<std::string> descriptors;
  std::vector<std::string> only;  // name suffixes; empty: every candidate
  for (int index = 1; index + 1 < argc; index += 2) {
    const std::string option = argv[index];
    if (option == "--every") {  // a flag: one line per candidate, not only the fastest
      every = true;
      --index;
      continue;
    }
    const std::string value = argv[index + 1];
    if (option == "--threads") {
      threads.clear();
      for (const std::string& part : split(value)) threads.push_back(std::stoi(part));
    } else if (option == "--isa") {
      isas = split(value);
    } else if (option == "--desc") {
      descriptors.push_back(value);
    } else if (option == "--only") {
      only = split(value);
    } else {
      fmt::print(stderr, "unknown option {}; usage: --threads 1,2,16 --isa amx,avx512 --desc D ...\n", option);
      return 2;
    }
  }
  fmt::print("# {} ({} cores); protocol {}\n", lowbit::cpu_info().brand, lowbit::cpu_info().physical_cores,
             lowbit::tuner::protocol_id);
  fmt::print("{:<34} {:>3} {:<7} {:<36} {:>10} {:>9} {:>10}\n", "shape", "thr", "isa", "fastest candidate",
             "median us", "min us", "GMAC/s");
  for (const std::string& text : descriptors) {
    const lowbit::OpDesc desc = lowbit::parse_descriptor(text);
    const lowbit::Problem problem = lowbit::make_random_problem(desc, desc.m, lowbit::seed_for("isa bench " + text));
    const lowbit::tuner::RotatedInputs inputs(problem);
    const double multiply_adds = static_cast<double>(desc.m) * desc.n * desc.k;
    for (int thread_count : threads)
      for (const std::string& isa : isas) {
        const lowbit::x86::Validity served = lowbit::x86::supports(desc, isa);
        if (!served) {
          fmt::print("m={},n={},k={} {:>3} {:<7} not served: {}\n", desc.m, desc.n, desc.k, thread_count, isa,
                     served.reason);
          continue;
        }
        std::string best_name;
        lowbit::tuner::Timing best;
        for (const lowbit::x86::X86Variant& variant : lowbit::x86::candidates(desc, thread_count, isa)) {
          const std::string name = lowbit::x86::variant_name(desc, variant);
          auto ends_with = [&](const std::string& suffix) {
            return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
          };
          if (!only.empty() && std::none_of(only.begin(), only.end(), ends_with)) continue;
          const auto kernel = lowbit::x86::build(desc, variant, thread_count);
          const lowbit::tuner::Timing timing = lowbit::tuner::time_kernel(*kernel, inputs);
          if (every)
            fmt::print("  {:<52} {:>10.1f} {:>9.1f}\n", kernel->name(), timing.median_us, timing.min_us);
          if (best_name.empty() || timing.median_us < best.median_us) {
            best = timing;
            best_name = kernel->name();
          }
        }
        fmt::print("m={},n={},k={} {:>3} {:<7} {:<36} {:>10.1f} {:>9.1f} {:>10.1f}\n", desc.m, desc.n, desc.k,
                   thread_count, isa, best_name, best.median_us, best.min_us, multiply_adds / best.median_us / 1e3);
        std::fflush(stdout);
      }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    fmt::print(stderr, "lowbit_x86_isa_bench: {}\n", error.what());
    return 1;
  }
}
