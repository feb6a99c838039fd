// bench/l2_flush.h: the rotate protocol's copy count and the --flush names (no GPU needed), and on
// a GPU the rotated run's two promises: a number from a run the host stayed ahead of, and a
// refusal when it cannot (a launch that blocks the host).
#include "bench/l2_flush.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

namespace lowbit::bench {
namespace {

using cuda::driver;

constexpr std::size_t h100_l2 = std::size_t{50} << 20;

TEST(L2FlushRotation, CopiesHoldAtLeastFourTimesTheL2) {
  EXPECT_EQ(rotation_copies(62'400'000, h100_l2), 4);  // M=1 28672x4096 int4: 3.36 copies -> 4
  EXPECT_EQ(rotation_copies(31'200'000, h100_l2), 7);  // M=1 4096x14336: 6.72 -> 7
  EXPECT_EQ(rotation_copies(h100_l2, h100_l2), 4);     // exactly 4x: no extra copy
  EXPECT_EQ(rotation_copies(h100_l2 + 1, h100_l2), 4);
  EXPECT_EQ(rotation_copies(h100_l2 - 1, h100_l2), 5);
  for (std::size_t bytes : {std::size_t{1}, std::size_t{4096}, std::size_t{9'000'000}, std::size_t{123'456'789}}) {
    const auto copies = static_cast<std::size_t>(rotation_copies(bytes, h100_l2));
    EXPECT_GE(copies * bytes, 4 * h100_l2) << bytes;
    if (copies > 2) {
      EXPECT_LT((copies - 1) * bytes, 4 * h100_l2) << bytes << ": one copy too many";
    }
  }
}

TEST(L2FlushRotation, AtLeastTwoCopiesAndNoneForAnEmptyCall) {
  EXPECT_EQ(rotation_copies(std::size_t{1} << 30, h100_l2), 2);  // larger than 4x L2 alone
  EXPECT_EQ(rotation_copies(1, 0), 2);                           // no L2: still never the same copy twice
  EXPECT_THROW(rotation_copies(0, h100_l2), std::invalid_argument);
}

TEST(L2FlushModes, EveryNameRoundTrips) {
  const auto& modes = flush_modes();
  ASSERT_EQ(modes.size(), 3u);
  for (const char* name : {"read", "write", "rotate"}) {
    ASSERT_TRUE(modes.contains(name)) << name;
    EXPECT_STREQ(flush_mode_name(modes.at(name)), name);
  }
}

TEST(L2FlushRotation, TimesABackToBackReadAndRefusesABlockingLaunch) {
  if (!driver().available) GTEST_SKIP() << "no usable CUDA device: " << driver().reason;
  cuda::make_current(0);
  L2Flush flush(FlushMode::rotate);
  const std::size_t bytes = std::size_t{16} << 20;
  const int copies = flush.copies_for(bytes);
  EXPECT_EQ(copies, rotation_copies(bytes, static_cast<std::size_t>(cuda::device_info(0).l2_bytes)));
  cuda::DeviceBuffer buffers(bytes * static_cast<std::size_t>(copies));
  buffers.fill(0x5a);
  auto* base = static_cast<uint8_t*>(buffers.data());
  const Timing timing =
      flush.time([&](int copy) { flush.read(base + bytes * static_cast<std::size_t>(copy), bytes, copy); }, copies, 9);
  // 16 MiB at most a few TB/s: above 1 us, and far under the seconds a stalled run would show.
  for (double microseconds : {timing.median_us, timing.run_mean_us}) {
    EXPECT_GT(microseconds, 1.0);
    EXPECT_LT(microseconds, 10'000.0);
  }
  // A launch that waits for the GPU: the host can never stay ahead of the busy-wait.
  const auto blocking = [&](int copy) {
    flush.read(base, bytes, copy);
    cuda::check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  };
  EXPECT_THROW(flush.time(blocking, copies, 5), std::runtime_error);
  EXPECT_THROW(flush.time(blocking, 0, 5), std::invalid_argument);
}

}  // namespace
}  // namespace lowbit::bench
