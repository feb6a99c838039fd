// This machine's streaming read bandwidth: the ceiling of a memory-bound kernel (M=1 GEMV
// streams its weights once). Measured with a generated load loop over every thread of the
// pool on a buffer much larger than the last-level cache.
#pragma once

#include <cstdint>

namespace lowbit::tuner {

struct ReadBandwidth {
  double gbps = 0;            // median of the repeats, 1e9 bytes/s
  int64_t buffer_bytes = 0;
  int threads = 0;
  int repeats = 0;
};

// threads: 0 = every thread of the pool.
ReadBandwidth measure_read_bandwidth(int threads = 0);

}  // namespace lowbit::tuner
