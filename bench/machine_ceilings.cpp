// lowbit_ceilings: this machine's two ceilings for the x86 kernels, measured the same way each
// run: streaming read bandwidth (the M=1 floor: bytes / bandwidth) and the peak rate of the
// two multiply instructions the kernels use (the large-M floor: multiply-adds / peak).
// Usage: lowbit_ceilings [--json]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>
#include <xbyak/xbyak_util.h>

#include "codegen/x86/jit_generator.h"
#include "core/thread_pool.h"
#include "lowbit/cpu_info.h"
#include "tuner/memory_bandwidth.h"

namespace {

// A loop of `iterations` x 24 independent multiply-adds on zmm0..23 (enough chains to hide
// latency): vdpbf16ps (32 multiply-adds each) or vfmadd231ps (16 each).
class PeakProgram : public lowbit::x86::JitGenerator {
 public:
  explicit PeakProgram(bool bf16) : JitGenerator(bf16 ? "peak_vdpbf16ps" : "peak_vfmadd231ps", 4096) {
    Xbyak::util::StackFrame frame(this, 1, 0, 0, false);
    Xbyak::Label loop;
    for (int i = 0; i < 26; ++i) vpxord(Xbyak::Zmm(i), Xbyak::Zmm(i), Xbyak::Zmm(i));
    L(loop);
    for (int i = 0; i < 24; ++i) {
      if (bf16)
        vdpbf16ps(Xbyak::Zmm(i), Xbyak::Zmm(24), Xbyak::Zmm(25));
      else
        vfmadd231ps(Xbyak::Zmm(i), Xbyak::Zmm(24), Xbyak::Zmm(25));
    }
    dec(frame.p[0]);
    jnz(loop, T_NEAR);
    vzeroupper();
    frame.close();
    finalize();
  }
  using Function = void (*)(uint64_t);
  Function function() const { return function_at<Function>(0); }
};

// Multiply-adds per second over `threads` threads, median of 5 runs of ~50 ms.
double peak_rate(bool bf16, int threads) {
  PeakProgram program(bf16);
  auto run = program.function();
  const uint64_t iterations = 2'000'000;
  const double per_iteration = 24.0 * (bf16 ? 32 : 16);
  std::vector<double> rates;
  for (int repeat = 0; repeat < 6; ++repeat) {
    auto start = std::chrono::steady_clock::now();
    lowbit::ThreadPool::instance().run(threads, [&](int) { run(iterations); });
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (repeat > 0) rates.push_back(per_iteration * static_cast<double>(iterations) * threads / seconds);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  const lowbit::CpuInfo& cpu = lowbit::cpu_info();
  const int threads = lowbit::ThreadPool::instance().size();
  nlohmann::json result = {{"cpu", cpu.brand}, {"threads", threads}};
  result["read_gbps_1_thread"] = lowbit::tuner::measure_read_bandwidth(1).gbps;
  result["read_gbps_all_threads"] = lowbit::tuner::measure_read_bandwidth(threads).gbps;
  if (cpu.has("avx512f")) {
    result["fma_gmacs_all_threads"] = peak_rate(false, threads) / 1e9;
    if (cpu.has("avx512_bf16")) result["bf16_gmacs_all_threads"] = peak_rate(true, threads) / 1e9;
  }
  if (json) {
    fmt::print("{}\n", result.dump(2));
    return 0;
  }
  for (auto& [key, value] : result.items()) fmt::print("{:<24} {}\n", key, value.dump());
  return 0;
}
