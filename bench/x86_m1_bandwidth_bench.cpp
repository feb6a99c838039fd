// lowbit_x86_m1_bandwidth_bench: where an x86 M=1 kernel's time goes, memory or instructions.
// For each descriptor and thread count, in one process:
//   read:    the machine's streaming read bandwidth (tuner/memory_bandwidth.h, one stream per
//            thread), taken before the kernels;
//   pattern: a plain read of the weights in a kernel's own order (a thread's panels in blocks of
//            P panels, 32 bytes of each panel per step, the group's scales and zeros every group),
//            for P = 1, 2, 4, on weights rotated out of cache, and with software prefetch 2048 bytes
//            ahead (P = 1, 4): what the access pattern alone gets;
//   cold:    every candidate on weights rotated as the tuner's protocol does (from memory);
//   hot:     the same candidate on one copy again and again, weights from cache where they fit
//            (choose N*K for it, e.g. n=512,k=4096 int4: 1 MB over the threads' L2s).
// A kernel whose hot rate is near its cold rate is bound by its instructions; one whose hot rate
// is far above the read bandwidth while its cold rate is below it is bound by how it reads.
// Correctness is the tests' job (tests/x86).
// Cold timings interleave the candidates run by run (--rounds runs each, the median); --prefetch
// times each candidate at the given distances instead of the candidates' own; --hot 0 leaves the hot
// runs out (each takes at least 50 ms: on a sweep of many candidates they cost more than the cold ones).
// Usage: lowbit_x86_m1_bandwidth_bench --threads 1,2 --isa avx512 --filter n1m1 [--prefetch 0,512,4096]
//        [--rounds 41] [--hot 0] --desc D [--desc D ...]
#include <fmt/format.h>

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "codegen/x86/registry.h"
#include "core/thread_pool.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"
#include "lowbit/native_layout.h"
#include "lowbit/problem.h"
#include "tuner/measure.h"
#include "tuner/memory_bandwidth.h"

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

// Reads panels [panel_begin, panel_end) of one packed copy the way the M=1 float and int8
// kernels do (2/4/8-bit steps of 32 bytes; 3-bit reads its 96-byte step as three loads), and
// returns a value that depends on every load so that none is optimized away.
__attribute__((target("avx2"))) uint64_t read_in_kernel_order(const lowbit::OpDesc& desc, const lowbit::RunArgs& args,
                                                              int64_t panel_begin, int64_t panel_end, int panels,
                                                              int prefetch) {
  const lowbit::NativeGeometry geometry = lowbit::native_geometry(desc);
  const int64_t group_steps = std::max<int64_t>(1, desc.group_size() / geometry.k_per_block);
  const int64_t table_panel_bytes = geometry.groups * lowbit::native_panel_width * 2;
  const auto* qweight = static_cast<const uint8_t*>(args.weights.qweight);
  const auto* scales = static_cast<const uint8_t*>(args.weights.scales);
  const auto* zeros = static_cast<const uint8_t*>(args.weights.zeros);
  const int64_t loads_per_step = geometry.step_bytes / 32;
  __m256i folded = _mm256_setzero_si256();
  for (int64_t panel = panel_begin; panel < panel_end; panel += panels) {
    const int block = static_cast<int>(std::min<int64_t>(panels, panel_end - panel));
    const uint8_t* weights = qweight + panel * geometry.panel_bytes;
    for (int64_t first_step = 0; first_step < geometry.steps; first_step += group_steps) {
      const int64_t table = panel * table_panel_bytes + first_step / group_steps * 32;
      for (int p = 0; p < block; ++p) {
        const int64_t entry = table + p * table_panel_bytes;
        folded = _mm256_xor_si256(folded, _mm256_load_si256(reinterpret_cast<const __m256i*>(scales + entry)));
        if (zeros) folded = _mm256_xor_si256(folded, _mm256_load_si256(reinterpret_cast<const __m256i*>(zeros + entry)));
      }
      const int64_t last_step = std::min(geometry.steps, first_step + group_steps);
      for (int64_t step = first_step; step < last_step; ++step)
        for (int p = 0; p < block; ++p) {
          const uint8_t* address = weights + p * geometry.panel_bytes + step * geometry.step_bytes;
          if (prefetch > 0 && step % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(address + prefetch), _MM_HINT_T0);
          for (int64_t load = 0; load < loads_per_step; ++load)
            folded = _mm256_xor_si256(folded, _mm256_load_si256(reinterpret_cast<const __m256i*>(address + 32 * load)));
        }
    }
  }
  return static_cast<uint64_t>(_mm256_extract_epi64(folded, 0) ^ _mm256_extract_epi64(folded, 3));
}

// The pattern read of every copy in turn, threads splitting the panels as X86Kernel::run does
// (whole blocks of P panels per thread); the median over copies, in GB/s of weight bytes.
double pattern_gbps(const lowbit::OpDesc& desc, const lowbit::tuner::RotatedInputs& inputs, int threads, int panels,
                    int prefetch) {
  const int64_t total_panels = lowbit::native_geometry(desc).panels;
  const int64_t blocks = (total_panels + panels - 1) / panels;
  const int tasks = static_cast<int>(std::min<int64_t>(threads, blocks));
  lowbit::ThreadPool& pool = lowbit::ThreadPool::instance();
  std::vector<uint64_t> folded(static_cast<std::size_t>(tasks));
  auto run = [&](int copy) {
    const lowbit::RunArgs args = inputs.args(copy % inputs.copies());
    pool.run(tasks, [&](int task) {
      const int64_t begin = blocks * task / tasks * panels;
      const int64_t end = std::min(total_panels, blocks * (task + 1) / tasks * panels);
      folded[static_cast<std::size_t>(task)] += read_in_kernel_order(desc, args, begin, end, panels, prefetch);
    });
  };
  const lowbit::tuner::Timing timing = lowbit::tuner::time_callable(run, 2, 10, 0.05, 200);
  uint64_t sink = 0;
  for (uint64_t value : folded) sink ^= value;
  if (sink == 0x5a5a5a5a5a5a5a5aULL) fmt::print("#");  // keeps the loads observable
  return static_cast<double>(lowbit::native_weight_bytes(desc)) / timing.median_us / 1e3;
}

int run(int argc, char** argv) {
  std::vector<int> threads{0};
  std::string isa = "avx512";
  std::string filter;
  std::vector<std::string> descriptors;
  int cold_rounds = 41;
  std::vector<int> prefetches;
  bool hot_runs = true;
  for (int index = 1; index + 1 < argc; index += 2) {
    const std::string option = argv[index];
    const std::string value = argv[index + 1];
    if (option == "--threads") {
      threads.clear();
      for (const std::string& part : split(value)) threads.push_back(std::stoi(part));
    } else if (option == "--isa") {
      isa = value;
    } else if (option == "--filter") {
      filter = value;
    } else if (option == "--prefetch") {
      for (const std::string& part : split(value)) prefetches.push_back(std::stoi(part));
    } else if (option == "--rounds") {
      cold_rounds = std::stoi(value);
    } else if (option == "--hot") {
      hot_runs = value != "0";
    } else if (option == "--desc") {
      descriptors.push_back(value);
    } else {
      fmt::print(stderr, "unknown option {}; usage: --threads 1,2 --isa avx512 --filter TEXT --prefetch 0,1024 --rounds 41 --hot 0 --desc D ...\n", option);
      return 2;
    }
  }
  fmt::print("# {} ({} cores); protocol {}\n", lowbit::cpu_info().brand, lowbit::cpu_info().physical_cores,
             lowbit::tuner::protocol_id);
  lowbit::tuner::ReadBandwidthProbe probe;
  for (const std::string& text : descriptors) {
    const lowbit::OpDesc desc = lowbit::parse_descriptor(text);
    const lowbit::Problem problem = lowbit::make_random_problem(desc, desc.m, lowbit::seed_for("m1 bandwidth " + text));
    const lowbit::tuner::RotatedInputs inputs(problem);
    const double weight_bytes = static_cast<double>(lowbit::native_weight_bytes(desc));
    for (int thread_count : threads) {
      const double read = probe.measure(thread_count).gbps;
      fmt::print("{} threads={} read {:.1f} GB/s; pattern P=1 {:.1f}, P=2 {:.1f}, P=4 {:.1f} GB/s; with prefetch 2048: "
                 "P=1 {:.1f}, P=4 {:.1f} GB/s\n",
                 text, thread_count, read, pattern_gbps(desc, inputs, thread_count, 1, 0),
                 pattern_gbps(desc, inputs, thread_count, 2, 0), pattern_gbps(desc, inputs, thread_count, 4, 0),
                 pattern_gbps(desc, inputs, thread_count, 1, 2048), pattern_gbps(desc, inputs, thread_count, 4, 2048));
      // Cold runs interleave the candidates run by run (a, b, c, a, b, c, ...), so that a phase of
      // the machine's memory (seconds long on a shared VM) weighs on every candidate alike.
      std::vector<std::shared_ptr<const lowbit::Kernel>> kernels;
      for (lowbit::x86::X86Variant variant : lowbit::x86::candidates(desc, thread_count, isa)) {
        // --prefetch replaces the candidates' own distances: each prefetch=0 candidate at each given one.
        std::vector<int> distances{variant.prefetch};
        if (!prefetches.empty()) {
          if (variant.prefetch != 0) continue;
          distances = prefetches;
        }
        for (int distance : distances) {
          variant.prefetch = distance;
          auto kernel = lowbit::x86::build(desc, variant, thread_count);
          if (filter.empty() || kernel->name().find(filter) != std::string::npos) kernels.push_back(kernel);
        }
      }
      std::vector<std::vector<double>> cold(kernels.size());
      for (int round = 0; round < cold_rounds + 2; ++round)
        for (std::size_t index = 0; index < kernels.size(); ++index) {
          const lowbit::RunArgs args = inputs.args((round * static_cast<int>(kernels.size()) + static_cast<int>(index)) %
                                                   inputs.copies());
          const auto start = std::chrono::steady_clock::now();
          kernels[index]->run(args);
          const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
          if (round >= 2) cold[index].push_back(us);  // two warm-up rounds
        }
      fmt::print("  {:<44} {:>9} {:>9} {:>9} {:>9}\n", "candidate", "cold us", "cold GB/s", "hot us", "hot GB/s");
      for (std::size_t index = 0; index < kernels.size(); ++index) {
        std::sort(cold[index].begin(), cold[index].end());
        const double cold_us = cold[index][cold[index].size() / 2];
        if (!hot_runs) {
          fmt::print("  {:<44} {:>9.1f} {:>9.1f} {:>9} {:>9}\n", kernels[index]->name(), cold_us,
                     weight_bytes / cold_us / 1e3, "-", "-");
          continue;
        }
        const lowbit::RunArgs one_copy = inputs.args(0);
        const lowbit::tuner::Timing hot =
            lowbit::tuner::time_callable([&](int) { kernels[index]->run(one_copy); }, 2, 10, 0.05, 200);
        fmt::print("  {:<44} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n", kernels[index]->name(), cold_us,
                   weight_bytes / cold_us / 1e3, hot.median_us, weight_bytes / hot.median_us / 1e3);
      }
      fmt::print("  read after the kernels: {:.1f} GB/s\n", probe.measure(thread_count).gbps);
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
    fmt::print(stderr, "lowbit_x86_m1_bandwidth_bench: {}\n", error.what());
    return 1;
  }
}
