// The measurement protocol: time_callable's warm-up, repeat bounds and statistics,
// RotatedInputs' copies, and the read-bandwidth probe.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <vector>

#include "lowbit/cpu_info.h"
#include "lowbit/half.h"
#include "lowbit/problem.h"
#include "tuner/measure.h"
#include "tuner/memory_bandwidth.h"

namespace lowbit::tuner {
namespace {

// Spins (no sleep: the scheduler's wake-up latency would dwarf short waits) for at least
// `microseconds`.
void busy_wait_us(double microseconds) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() < microseconds) {
  }
}

TEST(TimeCallable, WarmsUpThenPassesConsecutiveRunIndices) {
  std::vector<int> calls;
  Timing timing = time_callable([&](int run) { calls.push_back(run); }, /*warmup=*/3, /*minimum_repeats=*/5,
                                /*minimum_seconds=*/0.0, /*maximum_repeats=*/100);
  // With no time floor the loop stops as soon as the minimum count is reached.
  EXPECT_EQ(timing.repeats, 5);
  EXPECT_EQ(calls, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(TimeCallable, MedianMinAndMaxComeFromTheTimedRunsOnly) {
  // Timed runs last 1..5 ms in a shuffled order; the warm-up run lasts 300 ms and must not
  // show up as the maximum.
  const std::vector<double> timed_us{3000, 1000, 5000, 2000, 4000};
  Timing timing = time_callable(
      [&](int run) { busy_wait_us(run == 0 ? 300000 : timed_us[static_cast<std::size_t>(run - 1)]); },
      /*warmup=*/1, /*minimum_repeats=*/5, /*minimum_seconds=*/0.0, /*maximum_repeats=*/5);
  ASSERT_EQ(timing.repeats, 5);
  EXPECT_LE(timing.min_us, timing.median_us);
  EXPECT_LE(timing.median_us, timing.max_us);
  // Lower bounds are exact (each run spins at least its duration). Upper bounds only grow when
  // the spinning thread is preempted (a loaded 2-core CI machine can take it away for tens of
  // milliseconds), so they are set far from the timed runs and far below the warm-up: the
  // median passes 50 ms only if three runs were each delayed by 45 ms or more.
  EXPECT_GE(timing.min_us, 1000);
  EXPECT_GE(timing.median_us, 3000);
  EXPECT_LT(timing.median_us, 50000);
  EXPECT_GE(timing.max_us, 5000);
  EXPECT_LT(timing.max_us, 300000) << "the warm-up run was timed";
}

TEST(TimeCallable, StopsAtTheMaximumRepeatsEvenBelowTheMinimum) {
  int calls = 0;
  Timing timing = time_callable([&](int) { ++calls; }, /*warmup=*/2, /*minimum_repeats=*/1000,
                                /*minimum_seconds=*/10.0, /*maximum_repeats=*/7);
  EXPECT_EQ(timing.repeats, 7);
  EXPECT_EQ(calls, 2 + 7);
}

TEST(TimeCallable, RunsUntilTheMinimumTimeHasPassed) {
  // Each run spins 1 ms, so 50 ms are reached after at most 50 runs; a single run lasting
  // 50 ms would need the machine to stall the spinning thread for 49 ms.
  int calls = 0;
  Timing timing = time_callable(
      [&](int) {
        ++calls;
        busy_wait_us(1000);
      },
      /*warmup=*/0, /*minimum_repeats=*/1, /*minimum_seconds=*/0.05, /*maximum_repeats=*/1000);
  EXPECT_GE(timing.repeats, 2);
  EXPECT_LE(timing.repeats, 50);
  EXPECT_EQ(calls, timing.repeats);
  EXPECT_GE(timing.min_us, 1000);
  EXPECT_LE(timing.min_us, timing.median_us);
  EXPECT_LE(timing.median_us, timing.max_us);
}

void expect_copies_equal_the_original(const OpDesc& desc) {
  const std::string case_name = "rotated inputs " + to_string(desc);
  const Problem problem = make_random_problem(desc, 2, seed_for(case_name));
  const RotatedInputs inputs(problem);
  SCOPED_TRACE(case_name);
  ASSERT_GE(inputs.copies(), 2);
  // The documented rule: copies together exceed 4x the last-level cache, up to a cap.
  const int64_t total = problem.packed.total_bytes();
  const int64_t rotate_bytes = 4 * std::max<int64_t>(cpu_info().l3_bytes, int64_t{32} << 20);
  EXPECT_TRUE(inputs.copies() * total >= rotate_bytes || inputs.copies() == 64)
      << inputs.copies() << " copies of " << total << " bytes";

  std::set<const void*> weights;
  std::set<const void*> outputs;
  const std::size_t out_bytes = static_cast<std::size_t>(problem.m * desc.n * dtype_bytes(desc.out));
  for (int copy = 0; copy < inputs.copies(); ++copy) {
    const RunArgs args = inputs.args(copy);
    const auto* base = static_cast<const uint8_t*>(args.weights.qweight);
    ASSERT_NE(base, nullptr);
    ASSERT_NE(base, problem.packed.storage.data()) << "copy " << copy << " is the original, not a copy";
    ASSERT_EQ(std::memcmp(base, problem.packed.storage.data(), static_cast<std::size_t>(total)), 0)
        << "copy " << copy << " differs from the packed weights";
    EXPECT_EQ(args.weights.scales, base + problem.packed.scales_offset) << "copy " << copy;
    if (problem.packed.zeros_offset < 0)
      EXPECT_EQ(args.weights.zeros, nullptr) << "copy " << copy;
    else
      EXPECT_EQ(args.weights.zeros, base + problem.packed.zeros_offset) << "copy " << copy;
    EXPECT_EQ(args.x, problem.x.data());
    EXPECT_EQ(args.bias, desc.bias ? problem.bias.data() : nullptr);
    EXPECT_EQ(args.m, problem.m);
    ASSERT_NE(args.y, nullptr);
    // Every output byte is writable (ASan would see an overrun) and copies do not overlap.
    std::memset(args.y, 0x5a, out_bytes);
    weights.insert(base);
    outputs.insert(args.y);
  }
  EXPECT_EQ(static_cast<int>(weights.size()), inputs.copies()) << "two copies share weights";
  EXPECT_EQ(static_cast<int>(outputs.size()), inputs.copies()) << "two copies share an output";
  // The copies' outputs do not alias the weights: the copies are still intact after the writes.
  for (int copy = 0; copy < inputs.copies(); ++copy)
    ASSERT_EQ(std::memcmp(inputs.args(copy).weights.qweight, problem.packed.storage.data(),
                          static_cast<std::size_t>(total)),
              0)
        << "copy " << copy << " was overwritten by an output";
}

TEST(RotatedInputs, CopiesHoldTheOriginalWeightBytes) {
  expect_copies_equal_the_original(parse_descriptor("n=64,k=256,bits=4,group=128,zero=int,act=bf16,bias=1"));
  expect_copies_equal_the_original(parse_descriptor("n=37,k=160,bits=4,group=32,zero=none,act=fp32"));
  // 2 MiB of codes: fewer, larger copies.
  expect_copies_equal_the_original(parse_descriptor("n=2048,k=2048,bits=4,group=128,zero=float,act=fp16"));
}

TEST(ReadBandwidth, IsPositiveOverABufferBeyondTheCaches) {
  if (!cpu_info().has("avx2")) GTEST_SKIP() << "this CPU lacks AVX2: the read probe cannot run";
  const ReadBandwidth all = measure_read_bandwidth();
  std::printf("read bandwidth: %.2f GB/s over %lld MiB, %d threads, %d repeats\n", all.gbps,
              static_cast<long long>(all.buffer_bytes >> 20), all.threads, all.repeats);
  EXPECT_GT(all.gbps, 0.5);
  EXPECT_GE(all.buffer_bytes, int64_t{256} << 20);
  EXPECT_GE(all.buffer_bytes, 8 * cpu_info().l3_bytes - 512 * all.threads);
  EXPECT_GE(all.threads, 1);
  EXPECT_GE(all.repeats, 1);

  const ReadBandwidth one = measure_read_bandwidth(1);
  EXPECT_EQ(one.threads, 1);
  EXPECT_GT(one.gbps, 0.5);
  EXPECT_GE(one.buffer_bytes, int64_t{256} << 20);
}

// One probe, readings at every thread count in turn (largest first, then 1, then all again):
// its one buffer serves each split, every reading covers at least the base buffer.
TEST(ReadBandwidth, OneProbeServesEveryThreadCount) {
  if (!cpu_info().has("avx2")) GTEST_SKIP() << "this CPU lacks AVX2: the read probe cannot run";
  ReadBandwidthProbe probe;
  const int pool_threads = measure_read_bandwidth().threads;
  for (int threads : {pool_threads, 1, 0}) {
    const ReadBandwidth reading = probe.measure(threads);
    EXPECT_EQ(reading.threads, threads > 0 ? threads : pool_threads);
    EXPECT_GT(reading.gbps, 0.5) << threads << " threads";
    EXPECT_GE(reading.buffer_bytes, int64_t{256} << 20) << threads << " threads";
    EXPECT_EQ(reading.buffer_bytes % (512 * int64_t{reading.threads}), 0) << threads << " threads";
  }
}

}  // namespace
}  // namespace lowbit::tuner
