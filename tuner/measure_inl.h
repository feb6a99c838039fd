// Template part of measure.h.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace lowbit::tuner {

template <class Callable>
Timing time_callable(Callable&& callable, int warmup, int minimum_repeats, double minimum_seconds,
                     int maximum_repeats) {
  for (int i = 0; i < warmup; ++i) callable(i);
  std::vector<double> microseconds;
  double total_seconds = 0;
  maximum_repeats = std::max(maximum_repeats, 1);
  for (int i = 0; i < maximum_repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    callable(warmup + i);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    microseconds.push_back(seconds * 1e6);
    total_seconds += seconds;
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

}  // namespace lowbit::tuner
