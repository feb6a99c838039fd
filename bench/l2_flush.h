// How lowbit_cuda_bench keeps a timed call's operands out of L2 (docs/benchmarks.md, "the
// flush protocol"). Three ways, all leaving none of the timed call's inputs in L2 and never
// timing the host's launch latency:
//   read  (the default): before each timed call a kernel reads a 512 MiB buffer; events around
//         that one call. L2 then holds clean lines of another buffer, as in a decode loop after
//         the previous layer's weights: evicting them costs nothing, and the timed kernel's DRAM
//         traffic is its own. But the call runs alone: its launch ramp and its tail (the last
//         blocks draining while the SMs idle) are all timed, which no decode loop pays in full.
//   write: the same with a 512 MiB memset, triton.testing.do_bench's way (cache.zero_()). L2 then
//         holds dirty lines that the timed kernel's misses write back to DRAM first: up to the
//         L2's 50 MiB of write traffic on an H100 that the kernel did not cause (on the 62 MB M=1
//         rows, a pure read of the same bytes ran at 69 % of the floor flushed this way).
//   rotate: issue 4's "buffers rotated". R copies of every operand a call reads and writes (R
//         from rotation_copies: the copies together >= 4x L2, so a copy's lines are gone when its
//         turn comes again); the calls run back to back, round-robin over the copies, with an
//         event before each and after the last; a call's time is the interval to the next event,
//         so it holds the gap to the next kernel, as a decode loop of layers pays it; a second
//         run without those events gives the run's mean (Timing::run_mean_us). Each run starts
//         behind a GPU busy-wait long enough that the host has enqueued every call before the
//         GPU needs it (checked after each run by the host's clock, see run_rotated), so no
//         interval holds host launch latency. L2 holds the previous calls' lines: clean weight lines and the
//         small dirty outputs, as in the decode loop.
// Both tools of a comparison (this bench and bench/device/torch_baselines.py) take the same
// --flush, and bench/device/compare.py refuses to join rows measured under different ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"

namespace lowbit::bench {

enum class FlushMode { read, write, rotate };

const char* flush_mode_name(FlushMode mode);
// Every mode by its --flush name (the CLI's choices).
const std::map<std::string, FlushMode>& flush_modes();

// rotate: how many copies of a call's operands (call_bytes each) the rotation needs so that the
// copies together hold at least 4x l2_bytes; at least 2, so no call reads the bytes the call
// before it just left in L2. Throws std::invalid_argument for call_bytes 0. Pure arithmetic
// (no GPU): tests/cuda/test_l2_flush.cpp.
int rotation_copies(std::size_t call_bytes, std::size_t l2_bytes);

// What L2Flush::time measures, microseconds.
struct Timing {
  double median_us = 0;  // the protocol's figure: the median over the calls
  // rotate only (0 otherwise): the same run again with events only before the first call and after
  // the last, its time over the calls. An event between two kernels holds the next one back until
  // the previous one has drained and the timestamp is written (so it appears: not profiled), and
  // the per-call intervals miss the overlap of one call's tail with the next one's launch that a
  // decode loop (no events) gets: 0.9-1.6 us a call on issue 4's floor shapes (docs/benchmarks.md,
  // "the rotate protocol"). This mean has it, but is a mean: one slow call moves it.
  double run_mean_us = 0;
};

// Owns the flush buffer (read, write), and the read and busy-wait kernels (compiled with NVRTC
// for the current device). Everything is enqueued on the null stream.
class L2Flush {
 public:
  explicit L2Flush(FlushMode mode);
  ~L2Flush();
  L2Flush(const L2Flush&) = delete;
  L2Flush& operator=(const L2Flush&) = delete;

  FlushMode mode() const { return mode_; }
  // The copies a call of call_bytes needs under this protocol: rotation_copies with this GPU's
  // L2 under rotate, 1 otherwise.
  int copies_for(std::size_t call_bytes) const;

  // Times `repeats` calls of launch(copy), copy in [0, copies): under read and write one flush
  // before each call and events around it (every call on copy 0); under rotate the back-to-back
  // run above. Warm-up calls first in both.
  Timing time(const std::function<void(int copy)>& launch, int copies, int repeats);

  // Enqueues the read kernel over `bytes` (a multiple of 16) at `data`: the flush itself, and the
  // pure-read reference of the tables (what a read of a call's bytes gets under the protocol).
  void read(const void* data, std::size_t bytes, int round);

 private:
  void flush(int round);
  void busy_wait(int64_t nanoseconds);
  double time_flushed(const std::function<void(int copy)>& launch, int repeats);
  Timing time_rotated(const std::function<void(int copy)>& launch, int copies, int repeats);
  std::vector<double> run_rotated(const std::function<void(int copy)>& launch, int copies, int repeats,
                                  bool event_per_call);

  FlushMode mode_;
  std::size_t l2_bytes_ = 0;
  cuda::DeviceBuffer buffer_;  // read, write: the 512 MiB flushed through L2 (rotate: unused, 1 byte)
  cuda::DeviceBuffer sink_;    // a word the read kernel writes only if the XOR of its words equals its key
  CUmodule module_ = nullptr;
  CUfunction read_kernel_ = nullptr;
  CUfunction wait_kernel_ = nullptr;
  int blocks_ = 0;
};

}  // namespace lowbit::bench
