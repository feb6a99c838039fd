// lowbit_cuda_bench: times lowbit's CUDA kernels on this GPU (CUDA events; L2 kept free of the
// timed call's operands by bench/l2_flush.h's protocol, --flush read (default), write or rotate;
// median of repeats) for every shape x M of a shape file, trying every candidate variant of every
// registered family (codegen/cuda/registry.h: compiled in parallel, each checked on the first
// rows against the reference at its family's tolerance, failures reported), and prints JSON
// lines: the best variant's time, the heuristic's time, the bytes a call must move, the flush
// protocol (and under rotate the copies of the operands), and the pure-read reference: the
// read kernel of l2_flush over the call's weight buffer, timed the same way (read_us,
// read_bytes), and over one 256-byte line of it (launch_us: what a call costs with almost no
// bytes); under rotate also each run's mean without per-call events (variants_run_mean,
// best_run_mean_us, read_run_mean_us; bench/l2_flush.h's Timing). bench/device/compare.py joins them with the torch baselines measured in the same
// call under the same protocol. Workspaces (dequant_gemm) are allocated here, one per copy; that
// family also reports its dequantization pass alone, per variant ("dequant": name -> us) and for
// its fastest variant end to end (dequant_us, dequant_gbps: bytes read + written over time).
// Usage: lowbit_cuda_bench SHAPES_FILE [--repeats N] [--check-rows R] [--family NAME[,NAME...]] [--variant NAME[,NAME...]] [--flush read|write|rotate] [--overlap]
// --check-rows R compares only the first R rows (default 8) with the double reference, which at
// M in the thousands on the large shapes would otherwise take minutes. --family NAME times only
// that family's candidates (gemv, gemv_mma, dequant_gemm, mma, wgmma; several comma-separated),
// e.g. to skip the mma family's compile at large M. --variant NAME times only the candidate of that full name (e.g.
// cuda_sm90a_wgmma_w4g128_m256_n128m256k64_s4), so a profiler sees its launches alone; several
// comma-separated names time those (a schedule against its twin, side by side in one process).
// Under rotate every copy holds the same bytes (the same problem uploaded again), and the check
// runs on copy 0 as under the other protocols.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/l2_flush.h"
#include "bench/shapes_file.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/dequant_gemm_kernel.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/registry.h"
#include "lowbit/fields.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"

namespace {

using lowbit::cuda::check;
using lowbit::cuda::driver;

struct Inputs {
  lowbit::cuda::DeviceBuffer x;
  lowbit::cuda::DeviceBuffer weights;
  lowbit::cuda::DeviceBuffer y;
  lowbit::RunArgs args;
};

Inputs upload(const lowbit::Problem& problem) {
  const lowbit::OpDesc& desc = problem.desc;
  Inputs inputs{lowbit::cuda::DeviceBuffer(problem.x.size()), lowbit::cuda::DeviceBuffer(problem.packed.storage.size()),
                lowbit::cuda::DeviceBuffer(static_cast<std::size_t>(desc.m * desc.n * lowbit::dtype_bytes(desc.out))),
                {}};
  inputs.x.upload(problem.x.data(), problem.x.size());
  inputs.weights.upload(problem.packed.storage.data(), problem.packed.storage.size());
  inputs.args.x = inputs.x.data();
  inputs.args.weights = lowbit::view_at(problem.packed, inputs.weights.data());
  inputs.args.y = inputs.y.data();
  inputs.args.m = desc.m;
  return inputs;
}

// The operands of one call, `copies` times over (bench/l2_flush.h: 1 under read and write, R
// under rotate), each holding the same bytes.
std::vector<Inputs> upload_copies(const lowbit::Problem& problem, int copies) {
  std::vector<Inputs> inputs;
  for (int copy = 0; copy < copies; ++copy) inputs.push_back(upload(problem));
  return inputs;
}

// Gives every copy a workspace of at least `bytes` (none when 0): the calls of a rotated run must
// not share the scratch they write.
void provide_workspaces(std::vector<Inputs>& copies, std::vector<std::unique_ptr<lowbit::cuda::DeviceBuffer>>& workspaces,
                        std::size_t bytes) {
  workspaces.resize(copies.size());
  for (std::size_t copy = 0; copy < copies.size(); ++copy) {
    std::unique_ptr<lowbit::cuda::DeviceBuffer>& workspace = workspaces[copy];
    if (bytes > 0 && (!workspace || workspace->size() < bytes)) {
      workspace.reset();  // frees the smaller one first
      workspace = std::make_unique<lowbit::cuda::DeviceBuffer>(bytes);
    }
    copies[copy].args.workspace = workspace ? workspace->data() : nullptr;
    copies[copy].args.workspace_size = workspace ? workspace->size() : 0;
  }
}

lowbit::bench::Timing time_kernel(const lowbit::Kernel& kernel, const std::vector<Inputs>& copies,
                                  lowbit::bench::L2Flush& flush, int repeats) {
  return flush.time([&](int copy) { kernel.run(copies[static_cast<std::size_t>(copy)].args); },
                         static_cast<int>(copies.size()), repeats);
}

// Runs once on poisoned outputs; the error of the first reference rows against the reference
// (infinite if any is NaN).
double check_error(const lowbit::Kernel& kernel, const lowbit::Problem& problem, const std::vector<double>& reference,
                   Inputs& inputs) {
  inputs.y.fill(0xff);
  kernel.run(inputs.args);
  check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  std::vector<uint8_t> out = inputs.y.download();
  return lowbit::relative_error(out.data(), problem.desc.out, reference);
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes;
  int repeats = 50;
  int64_t check_rows = 8;
  std::vector<std::string> families;  // empty: every family
  std::vector<std::string> only;  // empty: every variant
  std::string flush_name = "read";
  CLI::App app{"lowbit_cuda_bench: every CUDA candidate of each shape, timed and checked"};
  app.add_option("shapes", shapes, "a file of descriptors, one a line")->required()->check(CLI::ExistingFile);
  app.add_option("--repeats", repeats, "timed runs per variant (their median)")->check(CLI::Range(1, 100000));
  app.add_option("--check-rows", check_rows, "rows compared with the reference")->check(CLI::Range(1, 1 << 20));
  app.add_option("--family", families, "only these families' candidates (comma-separated)")
      ->delimiter(',')
      ->check(CLI::IsMember(lowbit::EnumNames<lowbit::cuda::CudaFamily>::names));
  app.add_option("--variant", only, "only the candidates of these full names (comma-separated)")->delimiter(',');
  bool overlap = false;
  app.add_flag("--overlap", overlap,
               "calls set RunArgs::overlap_previous (gemv_mma on sm_90 may then start while the previous call "
               "finishes; meaningful with --flush rotate's run mean, which has no events between calls)");
  const std::map<std::string, lowbit::bench::FlushMode>& flush_modes = lowbit::bench::flush_modes();
  app.add_option("--flush", flush_name, "how the timed calls' operands are kept out of L2 (bench/l2_flush.h)")
      ->check(CLI::IsMember(flush_modes));
  CLI11_PARSE(app, argc, argv);
  try {
    const lowbit::cuda::DeviceInfo& device = lowbit::cuda::device_info(0);
    lowbit::cuda::make_current(0);
    lowbit::bench::L2Flush flush(flush_modes.at(flush_name));
    for (const std::string& line : lowbit::bench::read_shapes_file(shapes)) {
      lowbit::OpDesc desc = lowbit::parse_descriptor(line);
      lowbit::Problem problem = lowbit::make_random_problem(desc, desc.m, lowbit::seed_for("cuda bench " + line));
      const int64_t call_bytes = lowbit::native_weight_bytes(desc) + static_cast<int64_t>(problem.x.size()) +
                                 desc.m * desc.n * lowbit::dtype_bytes(desc.out);
      const int copy_count = flush.copies_for(static_cast<std::size_t>(call_bytes));
      std::vector<Inputs> copies = upload_copies(problem, copy_count);
      for (Inputs& copy : copies) copy.args.overlap_previous = overlap;
      Inputs& inputs = copies.front();  // the checked copy
      // The first rows of y are the first rows of the reference: relative_error reads as many as it gets.
      const int64_t reference_rows = std::min<int64_t>(check_rows, desc.m);
      const std::vector<double> reference =
          lowbit::reference_matmul(desc, reference_rows, problem.x.data(), problem.weights, nullptr, nullptr);
      nlohmann::json row = {{"descriptor", lowbit::to_string(desc)}, {"device", device.name},
                            {"flush", lowbit::bench::flush_mode_name(flush.mode())},
                            {"bytes", call_bytes}, {"copies", copy_count}, {"overlap_previous", overlap}};
      // The pure-read reference: the call's weight buffer (qweight, scales, zeros: all but x and
      // y) read by l2_flush's read kernel under the same protocol.
      const std::size_t read_bytes = problem.packed.storage.size() / 16 * 16;
      row["read_bytes"] = read_bytes;
      const lowbit::bench::Timing read = flush.time(
          [&](int copy) { flush.read(copies[static_cast<std::size_t>(copy)].weights.data(), read_bytes, copy); },
          copy_count, repeats);
      row["read_us"] = read.median_us;
      if (flush.mode() == lowbit::bench::FlushMode::rotate) row["read_run_mean_us"] = read.run_mean_us;
      // What a call costs with (almost) no bytes under the same protocol: the same read kernel
      // over one 256-byte line of the weights (its grid launched, nearly every block idle).
      row["launch_us"] = flush
                             .time([&](int copy) { flush.read(copies[static_cast<std::size_t>(copy)].weights.data(), 256, copy); },
                                   copy_count, repeats)
                             .median_us;
      double best = 1e30;
      std::string best_name;
      double worst_error = 0;
      std::vector<lowbit::cuda::CudaVariant> variants = lowbit::cuda::candidates(desc, device.major, device.sm_count);
      if (!families.empty())
        std::erase_if(variants, [&](const lowbit::cuda::CudaVariant& variant) {
          return std::ranges::find(families, lowbit::cuda::to_string(variant.family)) == families.end();
        });
      if (!only.empty())
        std::erase_if(variants, [&](const lowbit::cuda::CudaVariant& variant) {
          return std::ranges::find(only, lowbit::cuda::variant_name(desc, variant, device.arch())) == only.end();
        });
      const lowbit::cuda::CudaVariant heuristic = lowbit::cuda::heuristic(desc, device.major, device.sm_count);
      std::vector<lowbit::cuda::CompiledCandidate> compiled =
          lowbit::cuda::compile_candidates(desc, variants, device.arch());
      std::vector<std::unique_ptr<lowbit::cuda::DeviceBuffer>> workspaces;  // one per copy
      double best_dequant_gemm = 1e30;  // the fastest dequant_gemm variant end to end: its pass is reported
      for (std::size_t index = 0; index < variants.size(); ++index) {
        const lowbit::cuda::CudaVariant& variant = variants[index];
        if (compiled[index].cubin.empty()) {
          row["failures"][lowbit::cuda::variant_name(desc, variant, device.arch())] = compiled[index].error;
          continue;
        }
        const auto kernel = lowbit::cuda::load(desc, variant, std::move(compiled[index].cubin));
        provide_workspaces(copies, workspaces, kernel->workspace_bytes(desc.m));
        const double error = check_error(*kernel, problem, reference, inputs);
        const double bound = lowbit::cuda::verification_tolerance(desc, variant);
        if (!(error <= bound)) {
          row["failures"][kernel->name()] = fmt::format("relative error {:.3g} exceeds {:.3g}", error, bound);
          continue;
        }
        lowbit::bench::Timing timing;
        try {
          timing = time_kernel(*kernel, copies, flush, repeats);
        } catch (const std::runtime_error& refusal) {  // rotate: the host could not stay ahead of the GPU
          row["failures"][kernel->name()] = fmt::format("not timed: {}", refusal.what());
          continue;
        }
        worst_error = std::max(worst_error, error);
        const double microseconds = timing.median_us;
        row["variants"][kernel->name()] = microseconds;
        // rotate: the whole run's mean beside the per-call median (l2_flush.h's Timing says why)
        if (flush.mode() == lowbit::bench::FlushMode::rotate) row["variants_run_mean"][kernel->name()] = timing.run_mean_us;
        if (variant == heuristic) row["heuristic_us"] = microseconds;
        if (microseconds < best) {
          best = microseconds;
          best_name = kernel->name();
          if (flush.mode() == lowbit::bench::FlushMode::rotate) row["best_run_mean_us"] = timing.run_mean_us;
        }
        // The fallback's dequantization pass alone: bytes read + written over its time.
        if (const auto* dequant = dynamic_cast<const lowbit::cuda::DequantGemmKernel*>(kernel.get())) {
          const double dequant_us = flush.time(
              [&](int copy) {
                const lowbit::RunArgs& args = copies[static_cast<std::size_t>(copy)].args;
                dequant->dequantize(args, args.workspace);
              },
              copy_count, repeats).median_us;
          const double dequant_bytes = static_cast<double>(lowbit::native_weight_bytes(desc) + desc.n * desc.k * 2);
          row["dequant"][kernel->name()] = dequant_us;
          if (microseconds < best_dequant_gemm) {
            best_dequant_gemm = microseconds;
            row["dequant_us"] = dequant_us;
            row["dequant_gbps"] = dequant_bytes / (dequant_us * 1e-6) / 1e9;
          }
        }
      }
      row["heuristic_variant"] = lowbit::cuda::variant_name(desc, heuristic, device.arch());
      row["best_us"] = best;
      row["best_variant"] = best_name;
      row["max_rel_err"] = worst_error;
      std::printf("%s\n", row.dump().c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_cuda_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
