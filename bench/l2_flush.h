// How lowbit_cuda_bench empties L2 before each timed launch (docs/benchmarks.md, "the
// flush protocol"). Two ways, both leaving none of the timed kernel's inputs in L2 and the GPU
// busy when the start event is recorded (so the host's launch latency is not timed):
//   read  (the default): a kernel reads a 512 MiB buffer. L2 then holds clean lines of another
//         buffer, as in a decode loop after the previous layer's weights: evicting them costs
//         nothing, and the timed kernel's DRAM traffic is its own.
//   write: a 512 MiB memset, triton.testing.do_bench's way (cache.zero_()). L2 then holds
//         dirty lines that the timed kernel's misses write back to DRAM first: up to the L2's
//         50 MiB of write traffic on an H100 that the kernel did not cause (on the 62 MB M=1
//         rows, a pure read of the same bytes ran at 69 % of the floor flushed this way).
// Both tools of a comparison (this bench and bench/device/torch_baselines.py) take the same
// --flush, and bench/device/compare.py refuses to join rows measured under different ones.
#pragma once

#include <cstdint>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"

namespace lowbit::bench {

enum class FlushMode { read, write };

const char* flush_mode_name(FlushMode mode);

// Owns the flush buffer (and, for `read`, the read kernel, compiled with NVRTC for the current
// device). run() enqueues one flush on the null stream; it never synchronizes.
class L2Flush {
 public:
  explicit L2Flush(FlushMode mode);
  ~L2Flush();
  L2Flush(const L2Flush&) = delete;
  L2Flush& operator=(const L2Flush&) = delete;

  // `round` varies the memset's byte (write) or the kernel's never-matching key (read).
  void run(int round);
  FlushMode mode() const { return mode_; }

 private:
  FlushMode mode_;
  cuda::DeviceBuffer buffer_;
  cuda::DeviceBuffer sink_;  // read: a word the kernel writes only if the XOR of all words equals its key
  CUmodule module_ = nullptr;
  CUfunction read_kernel_ = nullptr;
  int blocks_ = 0;
};

}  // namespace lowbit::bench
