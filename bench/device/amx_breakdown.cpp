// amx_breakdown: where the AMX-BF16 kernels' time goes on a machine with AMX (device Xeon).
// Built by bench/device/amx_block.sh (LOWBIT_AMX_BREAKDOWN=1) against build-device's libraries.
//   1. the ceiling: tdpbf16ps on four independent C tiles from registers (no loads), 1 thread and
//      every thread of the pool: the large-M floor is multiply-adds / this rate;
//   2. per variant and M, the median time (tuner/measure.h's protocol) at the pool's threads and
//      the thread CPU time of one run at 1 thread (robust to time slicing on a shared host), so
//      that T(M) = decode + M * per-row cost can be read off across M.
// Usage: amx_breakdown N K M1,M2,... VARIANT... with VARIANT = isa:panels:rows:k_block:scaled
// (e.g. amx:2:16:1024:1, avx512:4:6:2048:1); int4 g128 zero=int, act=bf16.
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/jit_generator.h"
#include "codegen/x86/registry.h"
#include "core/amx_permission.h"
#include "core/thread_pool.h"
#include "lowbit/descriptor.h"
#include "lowbit/problem.h"
#include "tuner/measure.h"

namespace {

// tdpbf16ps C(i) += A(i/2) . B(i%2) on tmm0..3, A in tmm4..5, B in tmm6..7: four independent
// chains of 16x16x32 multiply-adds each per iteration.
class TilePeak : public lowbit::x86::JitGenerator {
 public:
  TilePeak() : JitGenerator("peak_tdpbf16ps", 4096) {
    Xbyak::util::StackFrame frame(this, 2, 0, 0, false);  // (iterations, 64-byte config + 1 KB zero tile)
    ldtilecfg(ptr[frame.p[1]]);
    mov(rax, 64);
    for (int t = 0; t < 4; ++t) tilezero(Xbyak::Tmm(t));
    for (int t = 4; t < 8; ++t) tileloadd(Xbyak::Tmm(t), ptr[frame.p[1] + rax + 64]);
    Xbyak::Label loop;
    L(loop);
    for (int c = 0; c < 4; ++c) tdpbf16ps(Xbyak::Tmm(c), Xbyak::Tmm(4 + c / 2), Xbyak::Tmm(6 + c % 2));
    dec(frame.p[0]);
    jnz(loop, T_NEAR);
    tilerelease();
    frame.close();
    finalize();
  }
  using Function = void (*)(uint64_t, const uint8_t*);
  Function function() const { return function_at<Function>(0); }
};

double tile_peak_gmacs(int threads) {
  alignas(64) static uint8_t config[64 + 1024] = {};
  config[0] = 1;
  for (int t = 0; t < 8; ++t) {
    config[16 + 2 * t] = 64;
    config[48 + t] = 16;
  }
  TilePeak program;
  auto run = program.function();
  const uint64_t iterations = 200'000;
  std::vector<double> rates;
  for (int repeat = 0; repeat < 6; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    lowbit::ThreadPool::instance().run(threads, [&](int) { run(iterations, config); });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (repeat > 0) rates.push_back(4.0 * 16 * 16 * 32 * static_cast<double>(iterations) * threads / seconds / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

double thread_cpu_us() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e6 + static_cast<double>(now.tv_nsec) / 1e3;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t end; (end = text.find(separator, start)) != std::string::npos; start = end + 1)
    parts.push_back(text.substr(start, end - start));
  parts.push_back(text.substr(start));
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    fmt::print(stderr, "usage: amx_breakdown N K M1,M2,... isa:panels:rows:k_block:scaled ...\n");
    return 2;
  }
  const int threads = lowbit::ThreadPool::instance().size();
  const bool amx = lowbit::request_amx_permission().granted;
  if (amx)
    fmt::print("tdpbf16ps peak: 1 thread {:.0f} GMAC/s, {} threads {:.0f} GMAC/s\n", tile_peak_gmacs(1), threads,
               tile_peak_gmacs(threads));
  else
    fmt::print("no AMX permission: {}\n", lowbit::request_amx_permission().reason);
  const std::string shape = fmt::format("n={},k={},bits=4,group=128,zero=int,act=bf16", argv[1], argv[2]);
  fmt::print("{:<44} {:>5} {:>12} {:>10} {:>14} {:>10}\n", "kernel", "M", "median us", "GMAC/s", "1-thread cpu us",
             "GMAC/s");
  for (int v = 4; v < argc; ++v) {
    const std::vector<std::string> spec = split(argv[v], ':');
    lowbit::x86::X86Variant variant;
    variant.isa = spec[0] == "amx" ? lowbit::x86::X86Isa::amx_bf16 : lowbit::x86::X86Isa::avx512_bf16;
    if (spec[0] == "amx" && !amx) continue;
    variant.n_panels = std::stoi(spec[1]);
    variant.m_rows = std::stoi(spec[2]);
    variant.k_block = std::stoi(spec[3]);
    variant.scaled_decode = std::stoi(spec[4]);
    for (const std::string& m : split(argv[3], ',')) {
      const lowbit::OpDesc desc = lowbit::parse_descriptor("m=" + m + "," + shape);
      const lowbit::Problem problem = lowbit::make_random_problem(desc, desc.m, lowbit::seed_for("breakdown"));
      const lowbit::tuner::RotatedInputs inputs(problem);
      const double macs = static_cast<double>(desc.m) * desc.n * desc.k;
      variant.threads = threads;
      const auto kernel = lowbit::x86::build(desc, variant, threads);
      const lowbit::tuner::Timing timing = lowbit::tuner::time_kernel(*kernel, inputs);
      variant.threads = 1;
      const auto single = lowbit::x86::build(desc, variant, 1);
      double best_cpu = 1e30;
      for (int repeat = 0; repeat < 4; ++repeat) {
        const lowbit::RunArgs args = inputs.args(repeat % inputs.copies());
        const double start = thread_cpu_us();
        single->run(args);
        if (repeat > 0) best_cpu = std::min(best_cpu, thread_cpu_us() - start);
      }
      fmt::print("{:<44} {:>5} {:>12.1f} {:>10.1f} {:>14.1f} {:>10.1f}\n", kernel->name(), desc.m, timing.median_us,
                 macs / timing.median_us / 1e3, best_cpu, macs / best_cpu / 1e3);
      std::fflush(stdout);
    }
  }
  return 0;
}
