// The fixed, versioned measurement protocol every timing in lowbit uses (tuner, CLI bench).
//
// "rotate-median:1": the packed weights are copied until the copies together exceed
// 4x the last-level cache (at least 2 copies), and consecutive runs use consecutive copies,
// so every run streams its weights from memory as a decode step does. 2 warm-up runs, then
// runs are timed one by one (steady clock around the call: the x86 call is synchronous)
// until at least 10 runs and 50 ms have passed, or 200 runs; the median is reported.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "lowbit/aligned_buffer.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"

namespace lowbit::tuner {

constexpr std::string_view protocol_id = "rotate-median:1";
// The CUDA protocol, described in tuner/cuda_measure.h (built only with the CUDA backend).
constexpr std::string_view cuda_protocol_id = "cuda-rotate-median:1";

struct Timing {
  double median_us = 0;
  double min_us = 0;
  double max_us = 0;
  int repeats = 0;
};

// Copies of one problem's weights and outputs to rotate through.
class RotatedInputs {
 public:
  explicit RotatedInputs(const Problem& problem);
  int copies() const { return static_cast<int>(weights_.size()); }
  RunArgs args(int copy) const;

 private:
  const Problem* problem_;
  std::vector<AlignedBuffer> weights_;
  mutable std::vector<AlignedBuffer> outputs_;  // written by runs; the inputs stay const
};

Timing time_kernel(const Kernel& kernel, const RotatedInputs& inputs);

// The repeat rule every timing follows: `warmup` untimed runs, then timed runs until at least
// minimum_repeats runs and minimum_seconds of measured time, or maximum_repeats runs; the median.
// timed_run(i) runs once (run i: warm-ups are 0..warmup-1) and returns its microseconds, however
// it measures them (steady_clock on the CPU, CUDA events on a GPU).
template <class TimedRun>
Timing time_runs(TimedRun&& timed_run, int warmup, int minimum_repeats, double minimum_seconds, int maximum_repeats);

// Times a callable once per repeat under the same warm-up/median rule (for baselines).
template <class Callable>
Timing time_callable(Callable&& callable, int warmup, int minimum_repeats, double minimum_seconds,
                     int maximum_repeats);

}  // namespace lowbit::tuner

#include "tuner/measure_inl.h"
