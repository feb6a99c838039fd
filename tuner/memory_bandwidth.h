// This machine's streaming read bandwidth: the ceiling of a memory-bound kernel (M=1 GEMV
// streams its weights once). Measured with a generated load loop over every thread of the
// pool on a buffer much larger than the last-level cache.
#pragma once

#include <cstdint>
#include <memory>

namespace lowbit::tuner {

struct ReadBandwidth {
  double gbps = 0;            // median of the repeats, 1e9 bytes/s
  int64_t buffer_bytes = 0;
  int threads = 0;
  int repeats = 0;
};

// Takes readings without re-creating its buffer (at least 256 MiB and 8x the last-level cache:
// 2.4 GB on a 300 MiB-L3 Xeon, a second or more to allocate and back) or its generated read
// loop: a bench that reads the bandwidth before each row and round keeps one probe.
class ReadBandwidthProbe {
 public:
  ReadBandwidthProbe();
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;

  // threads: 0 = every thread of the pool.
  ReadBandwidth measure(int threads = 0);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// One reading with a probe of its own (allocated and freed here).
ReadBandwidth measure_read_bandwidth(int threads = 0);

}  // namespace lowbit::tuner
