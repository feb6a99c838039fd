// m=0 on CUDA: what the row buckets (runtime/row_buckets.h) buy. For each descriptor (m=0) of a
// shapes file and each row count: the kernel a call of that many rows now runs on; the any-M
// kernel that ran every m=0 call before (desc's own m=0 kernel); and the kernel an exact
// descriptor of that m gets. Each is verified against the reference first, then timed by the
// tuner's protocol (cuda-rotate-median:1). get_kernel takes the heuristic on a miss and uses no
// cache, so the figures are the no-tune ones. Prints a table, and one JSON line per (shape, rows)
// on stderr. Needs a GPU.
// Usage: lowbit_row_buckets_bench SHAPES_FILE [--rows R[,R...]]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/shapes_file.h"
#include "lowbit/errors.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "runtime/row_buckets.h"
#include "tuner/cuda_measure.h"

namespace {

// The kernel verified on the problem, then its median time (µs); throws when it is wrong.
double verified_time_us(const lowbit::Kernel& kernel, lowbit::tuner::DeviceInputs& inputs,
                        const std::vector<double>& reference) {
  const lowbit::tuner::CandidateResult check = lowbit::tuner::verify_cuda(kernel, inputs, reference);
  if (!check.verified) throw lowbit::Error(fmt::format("{} is wrong: {}", check.name, check.failure));
  return lowbit::tuner::time_cuda_kernel(kernel, inputs).median_us;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes;
  std::vector<int64_t> row_counts{1, 4, 16, 17, 32, 33, 64, 65, 128, 129, 256};
  CLI::App app{"lowbit_row_buckets_bench: an m=0 CUDA kernel's row buckets against its any-M kernel"};
  app.add_option("shapes", shapes, "shapes file (descriptors; m is replaced by 0)")->required();
  app.add_option("--rows", row_counts, "row counts timed")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  try {
    lowbit::GetOptions options;
    options.on_miss = lowbit::OnMiss::heuristic;
    options.use_cache = false;
    std::printf("%-26s %5s %-58s %8s %9s %9s %7s %8s\n", "shape", "rows", "kernel of the rows", "us", "any-M us",
                "exact us", "gain", "/ exact");
    for (const std::string& line : lowbit::bench::read_shapes_file(shapes)) {
      lowbit::OpDesc desc = lowbit::parse_descriptor(line);
      desc.m = 0;
      const lowbit::ResolvedKernel resolved = lowbit::get_kernel(desc, options);
      const auto* buckets = dynamic_cast<const lowbit::runtime::RowBucketKernel*>(resolved.kernel.get());
      if (buckets == nullptr) throw lowbit::Error(fmt::format("{}: not a row-bucket kernel", resolved.kernel->name()));
      for (int64_t rows : row_counts) {
        const lowbit::Problem problem = lowbit::make_random_problem(desc, rows, lowbit::seed_for("row buckets"));
        const std::vector<double> reference =
            lowbit::reference_matmul(desc, rows, problem.x.data(), problem.weights, desc.bias ? problem.bias.data() : nullptr,
                                     desc.eqscale ? problem.eq_scale.data() : nullptr);
        lowbit::tuner::DeviceInputs inputs(problem);
        const lowbit::Kernel& part = buckets->kernel_for_rows(rows);
        const double part_us = verified_time_us(part, inputs, reference);
        const double any_us = &part == &buckets->any_rows() ? part_us : verified_time_us(buckets->any_rows(), inputs, reference);
        lowbit::OpDesc exact_desc = desc;
        exact_desc.m = rows;
        const lowbit::ResolvedKernel exact = lowbit::get_kernel(exact_desc, options);
        const double exact_us = exact.kernel.get() == &part ? part_us : verified_time_us(*exact.kernel, inputs, reference);
        const std::string shape = fmt::format("n={},k={},{}", desc.n, desc.k, lowbit::to_string(desc.act));
        std::printf("%-26s %5lld %-58s %8.1f %9.1f %9.1f %6.2fx %7.2fx\n", shape.c_str(), static_cast<long long>(rows),
                    part.name().c_str(), part_us, any_us, exact_us, any_us / part_us, part_us / exact_us);
        std::fflush(stdout);
        std::fprintf(stderr, "%s\n",
                     nlohmann::json{{"descriptor", lowbit::to_string(desc)}, {"rows", rows}, {"kernel", part.name()},
                                    {"us", part_us}, {"any_rows_kernel", buckets->any_rows().name()}, {"any_rows_us", any_us},
                                    {"exact_kernel", exact.kernel->name()}, {"exact_us", exact_us}}
                         .dump()
                         .c_str());
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_row_buckets_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
