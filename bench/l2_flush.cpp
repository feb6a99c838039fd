#include "bench/l2_flush.h"

#include "bench/cuda_module.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace lowbit::bench {
namespace {

constexpr std::size_t flush_bytes = std::size_t{512} << 20;  // >= 10x the H100's 50 MiB L2
constexpr unsigned read_threads = 256;
constexpr unsigned blocks_per_sm = 8;
constexpr int warmup_calls = 3;
// rotate: the busy-wait's first length, a bound on the host's enqueue time of a run: 1 ms plus
// 20 us per enqueued operation (a launch or an event record takes 2-5 us on the host). The run
// checks it afterwards by the host's clock and doubles it when it did not hold.
constexpr int64_t wait_base_ns = 1'000'000;
constexpr int64_t wait_per_operation_ns = 20'000;
constexpr int wait_attempts = 4;

// l2_flush_read: every 16-byte word of `data` is loaded with the default cache policy
// (grid-stride, 4 loads in flight a lane); the sink is written only when a thread's XOR equals
// `key`, which the host makes (nearly) never true: the flush buffer holds one repeated byte, so
// every 16-byte word XORs to 0 and the key is never 0; over a call's random weights one thread in
// 2^32 may store one word, which changes no timing. The loads cannot be dropped.
// l2_flush_wait: one thread spins on the global nanosecond timer: the GPU stays busy while the
// host enqueues a rotated run behind it.
constexpr const char* kernel_source = R"(
extern "C" __global__ void l2_flush_read(const uint4* data, long long words, unsigned key, unsigned* sink) {
  unsigned value = 0;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < words; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long long at = i + u * stride;
      v[u] = at < words ? __ldg(data + at) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) value ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (value == key) atomicXor(sink, value);
}

extern "C" __global__ void l2_flush_wait(long long nanoseconds) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while ((long long)(now - start) < nanoseconds);
}
)";

// CUDA events created and destroyed together.
class EventList {
 public:
  explicit EventList(std::size_t count) : events_(count, nullptr) {
    for (CUevent& event : events_) cuda::check(cuda::driver().cuEventCreate(&event, CU_EVENT_DEFAULT), "cuEventCreate");
  }
  ~EventList() {
    for (CUevent event : events_)
      if (event != nullptr) cuda::driver().cuEventDestroy(event);
  }
  EventList(const EventList&) = delete;
  EventList& operator=(const EventList&) = delete;
  void record(std::size_t index) { cuda::check(cuda::driver().cuEventRecord(events_[index], nullptr), "cuEventRecord"); }
  // Microseconds from event `from` to event `to`, waiting for `to`.
  double microseconds(std::size_t from, std::size_t to) {
    cuda::check(cuda::driver().cuEventSynchronize(events_[to]), "cuEventSynchronize");
    float milliseconds = 0;
    cuda::check(cuda::driver().cuEventElapsedTime(&milliseconds, events_[from], events_[to]), "cuEventElapsedTime");
    return milliseconds * 1e3;
  }

 private:
  std::vector<CUevent> events_;
};

}  // namespace

const char* flush_mode_name(FlushMode mode) {
  switch (mode) {
    case FlushMode::read: return "read";
    case FlushMode::write: return "write";
    case FlushMode::rotate: return "rotate";
  }
  return "?";
}

const std::map<std::string, FlushMode>& flush_modes() {
  static const std::map<std::string, FlushMode> modes = {
      {"read", FlushMode::read}, {"write", FlushMode::write}, {"rotate", FlushMode::rotate}};
  return modes;
}

int rotation_copies(std::size_t call_bytes, std::size_t l2_bytes) {
  if (call_bytes == 0) throw std::invalid_argument("rotation_copies: a call of 0 bytes cannot be rotated");
  const std::size_t needed = (4 * l2_bytes + call_bytes - 1) / call_bytes;
  return static_cast<int>(std::max<std::size_t>(2, needed));
}

L2Flush::L2Flush(FlushMode mode)
    : mode_(mode), buffer_(mode == FlushMode::rotate ? 0 : flush_bytes), sink_(sizeof(unsigned)) {
  if (mode_ != FlushMode::rotate) buffer_.fill(0x5a);
  sink_.fill(0);
  const cuda::DeviceInfo& device = cuda::device_info(0);
  l2_bytes_ = static_cast<std::size_t>(device.l2_bytes);
  if (mode_ == FlushMode::rotate && l2_bytes_ == 0)
    throw std::runtime_error("--flush rotate: the device reports no L2 size (CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE is 0)");
  const std::vector<char> cubin = cuda::compile_to_cubin(kernel_source, "l2_flush", device.arch());
  cuda::check(cuda::driver().cuModuleLoadData(&module_, cubin.data()), "cuModuleLoadData (L2 flush)");
  cuda::check(cuda::driver().cuModuleGetFunction(&read_kernel_, module_, "l2_flush_read"), "l2_flush_read");
  cuda::check(cuda::driver().cuModuleGetFunction(&wait_kernel_, module_, "l2_flush_wait"), "l2_flush_wait");
  blocks_ = device.sm_count * static_cast<int>(blocks_per_sm);
}

L2Flush::~L2Flush() {
  if (module_ != nullptr) cuda::driver().cuModuleUnload(module_);
}

int L2Flush::copies_for(std::size_t call_bytes) const {
  return mode_ == FlushMode::rotate ? rotation_copies(call_bytes, l2_bytes_) : 1;
}

Timing L2Flush::time(const std::function<void(int copy)>& launch, int copies, int repeats) {
  if (copies < 1 || repeats < 1) throw std::invalid_argument("L2Flush::time: copies and repeats must be >= 1");
  return mode_ == FlushMode::rotate ? time_rotated(launch, copies, repeats) : Timing{time_flushed(launch, repeats), 0};
}

void L2Flush::read(const void* data, std::size_t bytes, int round) {
  long long words = static_cast<long long>(bytes / 16);
  unsigned key = 0x01000000u | static_cast<unsigned>(round & 0xffff);  // never 0
  void* sink = sink_.data();
  std::array<void*, 4> args = {&data, &words, &key, &sink};
  cuda::check(cuda::driver().cuLaunchKernel(read_kernel_, static_cast<unsigned>(blocks_), 1, 1, read_threads, 1, 1, 0,
                                            nullptr, args.data(), nullptr),
              "cuLaunchKernel (L2 flush read)");
}

void L2Flush::flush(int round) {
  if (mode_ == FlushMode::write)
    buffer_.fill(static_cast<uint8_t>(round));
  else
    read(buffer_.data(), flush_bytes, round);
}

void L2Flush::busy_wait(int64_t nanoseconds) {
  long long length = nanoseconds;
  std::array<void*, 1> args = {&length};
  cuda::check(cuda::driver().cuLaunchKernel(wait_kernel_, 1, 1, 1, 1, 1, 1, 0, nullptr, args.data(), nullptr),
              "cuLaunchKernel (busy-wait)");
}

double L2Flush::time_flushed(const std::function<void(int copy)>& launch, int repeats) {
  for (int i = 0; i < warmup_calls; ++i) launch(0);
  EventList events(2);
  std::vector<double> microseconds;
  for (int i = 0; i < repeats; ++i) {
    flush(i);
    events.record(0);
    launch(0);
    events.record(1);
    microseconds.push_back(events.microseconds(0, 1));
  }
  return median(microseconds);
}

// The GPU ends the busy-wait no earlier than `wait` after the host launched it, so a run whose
// enqueue (from before that launch to after the last event record) took less than `wait` on the
// host's clock had every call queued before the GPU reached it. A run that took longer is
// discarded and repeated behind a longer wait; one that never fits (a launch that blocks the host,
// or a queue too deep for --repeats) is refused. Returns the intervals between consecutive events:
// one per call with event_per_call, else one over the whole run.
std::vector<double> L2Flush::run_rotated(const std::function<void(int copy)>& launch, int copies, int repeats,
                                         bool event_per_call) {
  const int event_count = event_per_call ? repeats + 1 : 2;
  EventList events(static_cast<std::size_t>(event_count));
  int64_t wait_ns = wait_base_ns + wait_per_operation_ns * (warmup_calls + repeats + event_count);
  int64_t enqueue_ns = 0;
  for (int attempt = 0; attempt < wait_attempts; ++attempt) {
    const auto begin = std::chrono::steady_clock::now();
    busy_wait(wait_ns);
    for (int i = 0; i < warmup_calls; ++i) launch(i % copies);  // the timed calls follow other calls
    for (int i = 0; i < repeats; ++i) {
      if (event_per_call || i == 0) events.record(event_per_call ? static_cast<std::size_t>(i) : 0);
      launch((warmup_calls + i) % copies);
    }
    events.record(static_cast<std::size_t>(event_count - 1));
    enqueue_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - begin).count();
    cuda::check(cuda::driver().cuCtxSynchronize(), "cuCtxSynchronize");
    if (enqueue_ns < wait_ns) {
      std::vector<double> intervals;
      for (int i = 0; i + 1 < event_count; ++i)
        intervals.push_back(events.microseconds(static_cast<std::size_t>(i), static_cast<std::size_t>(i) + 1));
      return intervals;
    }
    wait_ns = 2 * enqueue_ns;
  }
  throw std::runtime_error("--flush rotate: the host took " + std::to_string(enqueue_ns / 1000) +
                           " us to enqueue a run of " + std::to_string(repeats) +
                           " calls, longer than the GPU's busy-wait ahead of it, " + std::to_string(wait_attempts) +
                           " times: a launch blocks the host, or --repeats is too large for the launch queue");
}

Timing L2Flush::time_rotated(const std::function<void(int copy)>& launch, int copies, int repeats) {
  for (int i = 0; i < warmup_calls; ++i) launch(i % copies);  // first launches, outside the runs
  cuda::check(cuda::driver().cuCtxSynchronize(), "cuCtxSynchronize");
  Timing timing;
  timing.median_us = median(run_rotated(launch, copies, repeats, true));
  timing.run_mean_us = run_rotated(launch, copies, repeats, false).front() / repeats;
  return timing;
}

}  // namespace lowbit::bench
