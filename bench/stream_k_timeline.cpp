// lowbit_stream_k_timeline: a per-block timeline of one stream-K wgmma variant (diagnostic, not a
// benchmark). Compiles its own copy of the variant with LOWBIT_STREAM_K_TIMELINE defined
// (templates/wgmma_gemm.cuh: consumer thread 0 of each block stamps %globaltimer and %clock64 at
// its segments' starts and main loops' ends, deposits, waits and reads), so no cached or tuned
// kernel carries the stamps. Runs it after a 512 MiB read each time (the read flush of
// bench/l2_flush.h), checks the first rows against the reference, and prints every entry of
// the last `--runs` launches as CSV: run, block, kind, argument, global_ns, clock (the stamps as
// read: bench/stream_k_timeline.py summarizes them).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/l2_flush.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/registry.h"
#include "codegen/cuda/wgmma_generator.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"

namespace {

using lowbit::cuda::check;
using lowbit::cuda::driver;

// The template's TimelineEntry and TIMELINE_ENTRIES (templates/wgmma_gemm.cuh).
struct TimelineEntry {
  uint64_t global_ns;
  uint64_t clock;
  uint32_t kind;
  uint32_t argument;
  uint64_t unused;
};
static_assert(sizeof(TimelineEntry) == 32);
constexpr int timeline_entries = 64;

}  // namespace

int main(int argc, char** argv) {
  std::string descriptor;
  std::string name;
  int runs = 3;
  int64_t check_rows = 4;
  CLI::App app{"lowbit_stream_k_timeline: per-block stamps of one stream-K wgmma variant, as CSV"};
  app.add_option("--desc", descriptor, "the descriptor")->required();
  app.add_option("--variant", name, "the stream-K candidate's full name")->required();
  app.add_option("--runs", runs, "launches printed (after 3 unprinted warm-up launches)")->check(CLI::Range(1, 100));
  app.add_option("--check-rows", check_rows, "rows compared with the reference")->check(CLI::Range(1, 1 << 20));
  CLI11_PARSE(app, argc, argv);
  try {
    const lowbit::cuda::DeviceInfo& device = lowbit::cuda::device_info(0);
    lowbit::cuda::make_current(0);
    const lowbit::OpDesc desc = lowbit::parse_descriptor(descriptor);
    const lowbit::cuda::CudaVariant variant =
        lowbit::cuda::candidate_named(desc, name, device.arch(), device.major, device.sm_count);
    if (variant.family != lowbit::cuda::CudaFamily::wgmma || variant.stream_k == 0)
      throw std::runtime_error(fmt::format("{}: only stream-K wgmma variants carry the timeline", name));
    const std::string source = "#define LOWBIT_STREAM_K_TIMELINE 1\n" + lowbit::cuda::emit(desc, variant);
    lowbit::cuda::CudaKernel kernel(desc, variant, lowbit::cuda::compile_to_cubin(source, name, device.arch()));

    lowbit::Problem problem = lowbit::make_random_problem(desc, desc.m, lowbit::seed_for("stream-k timeline " + descriptor));
    lowbit::cuda::DeviceBuffer x(problem.x.size());
    lowbit::cuda::DeviceBuffer weights(problem.packed.storage.size());
    lowbit::cuda::DeviceBuffer y(static_cast<std::size_t>(desc.m * desc.n * lowbit::dtype_bytes(desc.out)));
    x.upload(problem.x.data(), problem.x.size());
    weights.upload(problem.packed.storage.data(), problem.packed.storage.size());
    // The kernel's own part, whether or not this grid cuts a tile (a grid of whole tiles reports
    // no workspace, but its logs still lie past the flags and partial slots of the layout).
    const std::size_t workspace_bytes = lowbit::cuda::WgmmaGenerator::stream_k_layout_bytes(variant);
    const std::size_t timeline_bytes = static_cast<std::size_t>(variant.stream_k) * timeline_entries * sizeof(TimelineEntry);
    lowbit::cuda::DeviceBuffer workspace(workspace_bytes + timeline_bytes);
    workspace.fill(0);
    lowbit::RunArgs args;
    args.x = x.data();
    args.weights = lowbit::view_at(problem.packed, weights.data());
    args.y = y.data();
    args.m = desc.m;
    args.workspace = workspace.data();
    args.workspace_size = workspace_bytes;  // the kernel's own part; the logs lie past it

    const int64_t rows = std::min<int64_t>(check_rows, desc.m);
    const std::vector<double> reference =
        lowbit::reference_matmul(desc, rows, problem.x.data(), problem.weights, nullptr, nullptr);
    y.fill(0xff);
    kernel.run(args);
    check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
    const std::vector<uint8_t> out = y.download();
    const double error = lowbit::relative_error(out.data(), desc.out, reference);
    const double bound = lowbit::cuda::verification_tolerance(desc, variant);
    std::fprintf(stderr, "%s: relative error %.3g (bound %.3g)\n", name.c_str(), error, bound);
    if (!(error <= bound)) throw std::runtime_error(fmt::format("{}: relative error {:.3g} exceeds {:.3g}", name, error, bound));

    // The read protocol's flush by hand (L2Flush::time would run warm-up calls into the logs): a
    // read of 512 MiB right before each launch, so the weights come from DRAM as in the tables.
    lowbit::bench::L2Flush flush(lowbit::bench::FlushMode::read);
    lowbit::cuda::DeviceBuffer flushed(std::size_t{512} << 20);
    std::printf("run,block,kind,argument,global_ns,clock\n");
    for (int run = -3; run < runs; ++run) {
      // Zeroes the logs (entry 0 counts), leaving the flags and partials to the kernel.
      check(driver().cuMemsetD8(reinterpret_cast<CUdeviceptr>(workspace.data()) + workspace_bytes, 0, timeline_bytes),
            "cuMemsetD8");
      flush.read(flushed.data(), flushed.size(), 0);
      kernel.run(args);
      check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
      if (run < 0) continue;
      const std::vector<uint8_t> bytes = workspace.download();
      std::vector<TimelineEntry> entries(static_cast<std::size_t>(variant.stream_k) * timeline_entries);
      std::memcpy(entries.data(), bytes.data() + workspace_bytes, timeline_bytes);
      for (int block = 0; block < variant.stream_k; ++block) {
        const TimelineEntry* log = entries.data() + static_cast<std::size_t>(block) * timeline_entries;
        for (uint32_t entry = 1; entry <= log[0].kind && entry < timeline_entries; ++entry)
          std::printf("%d,%d,%u,%u,%llu,%llu\n", run, block, log[entry].kind, log[entry].argument,
                      static_cast<unsigned long long>(log[entry].global_ns),
                      static_cast<unsigned long long>(log[entry].clock));
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_stream_k_timeline: %s\n", error.what());
    return 1;
  }
  return 0;
}
