#include "tuner/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include <xbyak/xbyak_util.h>

#include "codegen/x86/jit_generator.h"
#include "core/thread_pool.h"
#include "lowbit/aligned_buffer.h"
#include "lowbit/cpu_info.h"

namespace lowbit::tuner {
namespace {

constexpr int repeats = 7;
constexpr int64_t minimum_buffer_bytes = int64_t{256} << 20;

// void read(const uint8_t* begin, uint64_t bytes): loads every byte, 512 bytes per iteration
// (8 independent loads keep enough misses in flight). bytes is a multiple of 512.
class StreamReadProgram : public x86::JitGenerator {
 public:
  explicit StreamReadProgram(bool avx512) : JitGenerator(avx512 ? "stream_read_avx512" : "stream_read_avx2", 4096) {
    Xbyak::util::StackFrame frame(this, 2, 0, 0, false);  // closed explicitly before finalize()
    const Xbyak::Reg64& cursor = frame.p[0];
    const Xbyak::Reg64& bytes = frame.p[1];
    Xbyak::Label loop;
    Xbyak::Label done;
    test(bytes, bytes);
    jz(done, T_NEAR);
    L(loop);
    for (int i = 0; i < 8; ++i) {
      if (avx512) {
        vmovdqa64(Xbyak::Zmm(i), ptr[cursor + 64 * i]);
      } else {
        vmovdqa(Xbyak::Ymm(i), ptr[cursor + 32 * (2 * i)]);
        vmovdqa(Xbyak::Ymm(8 + i), ptr[cursor + 32 * (2 * i + 1)]);
      }
    }
    add(cursor, 512);
    sub(bytes, 512);
    jnz(loop, T_NEAR);
    L(done);
    vzeroupper();
    frame.close();
    finalize();
  }
  using Function = void (*)(const uint8_t*, uint64_t);
  Function function() const { return function_at<Function>(0); }
};

int64_t base_buffer_bytes() { return std::max<int64_t>(minimum_buffer_bytes, 8 * cpu_info().l3_bytes); }

}  // namespace

struct ReadBandwidthProbe::State {
  // Each thread's chunk is the base split rounded up to 512 bytes: the buffer holds the base
  // plus 512 bytes a thread, for any thread count of the pool.
  AlignedBuffer buffer{static_cast<std::size_t>(base_buffer_bytes() + 512 * int64_t{ThreadPool::instance().size()})};
  StreamReadProgram program{cpu_info().has("avx512f")};
};

ReadBandwidthProbe::ReadBandwidthProbe() : state_(std::make_unique<State>()) {}
ReadBandwidthProbe::~ReadBandwidthProbe() = default;

ReadBandwidth ReadBandwidthProbe::measure(int threads) {
  ThreadPool& pool = ThreadPool::instance();
  ReadBandwidth result;
  result.threads = threads > 0 ? std::min(threads, pool.size()) : pool.size();
  const int64_t chunk = (base_buffer_bytes() / result.threads + 511) / 512 * 512;  // round up: never below the base
  result.buffer_bytes = chunk * result.threads;
  uint8_t* data = state_->buffer.data();  // zero-filled at allocation: every page is backed
  auto read = state_->program.function();
  std::vector<double> seconds;
  for (int repeat = 0; repeat < repeats + 1; ++repeat) {
    auto start = std::chrono::steady_clock::now();
    pool.run(result.threads, [&](int task) { read(data + task * chunk, static_cast<uint64_t>(chunk)); });
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (repeat > 0) seconds.push_back(elapsed);  // the first pass warms TLBs and wakes the pool
  }
  std::sort(seconds.begin(), seconds.end());
  result.repeats = repeats;
  // The median, the statistic kernel times use too: on a shared virtual machine the rate
  // moves in phases of seconds (seen here: 2 threads at 33-37 or 61-66 GB/s), and the best
  // pass would compare a kernel's typical run with the machine's luckiest moment.
  result.gbps = static_cast<double>(result.buffer_bytes) / seconds[seconds.size() / 2] / 1e9;
  return result;
}

ReadBandwidth measure_read_bandwidth(int threads) { return ReadBandwidthProbe().measure(threads); }

}  // namespace lowbit::tuner
