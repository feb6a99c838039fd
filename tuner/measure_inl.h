// Template part of measure.h.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace lowbit::tuner {

template <class TimedRun>
Timing time_runs(TimedRun&& timed_run, int warmup, int minimum_repeats, double minimum_seconds, int maximum_repeats) {
  for (int i = 0; i < warmup; ++i) timed_run(i);
  std::vector<double> microseconds;
  double total_seconds = 0;
  maximum_repeats = std::max(maximum_repeats, 1);
  for (int i = 0; i < maximum_repeats; ++i) {
    microseconds.push_back(timed_run(warmup + i));
    total_seconds += microseconds.back() * 1e-6;
    if (i + 1 >= minimum_repeats && total_seconds >= minimum_seconds) break;
  }
  std::sort(microseconds.begin(), microseconds.end());
  Timing timing;
  timing.repeats = static_cast<int>(microseconds.size());
  timing.median_us = microseconds[microseconds.size() / 2];
  timing.min_us = microseconds.front();
  timing.max_us = microseconds.back();
  return timing;
}

template <class Callable>
Timing time_callable(Callable&& callable, int warmup, int minimum_repeats, double minimum_seconds,
                     int maximum_repeats) {
  return time_runs(
      [&](int run) {
        const auto start = std::chrono::steady_clock::now();
        callable(run);
        return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
      },
      warmup, minimum_repeats, minimum_seconds, maximum_repeats);
}

}  // namespace lowbit::tuner
