// tune_cuda_each on the GPU: several descriptors through one compile queue, each tuned as tune()
// would (every candidate verified, the winner right on a fresh problem with poisoned outputs), its
// compile span and wall span reported. Needs a GPU (skips with the reason otherwise).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/registry.h"
#include "tests/cuda/device_check.h"
#include "tuner/cuda_tuner.h"

namespace lowbit::tuner {
namespace {

TEST(CudaTuneEach, EveryDescriptorThroughOneQueueGetsItsVerifiedWinner) {
  if (!cuda::nvrtc().available || !cuda::driver().available)
    GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason;
  // Odd shapes: gemv_mma (1 row), wgmma below and above the default search's 128 rows.
  const std::vector<OpDesc> descs{
      parse_descriptor("m=1,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0"),
      parse_descriptor("m=64,n=520,k=2112,bits=4,group=64,zero=none,act=fp16,device=cuda:0"),
      parse_descriptor("m=200,n=1000,k=1024,bits=4,group=128,zero=int,act=bf16,device=cuda:0")};
  std::vector<int> reported(descs.size(), 0);
  tune_cuda_each(descs, TuneOptions{}, nullptr, [&](std::size_t index, TuneResult result) {
    ASSERT_LT(index, descs.size());
    ++reported[index];
    ASSERT_NE(result.winner, nullptr);
    EXPECT_EQ(result.winner->desc(), descs[index]);
    EXPECT_FALSE(result.ranked.empty());
    EXPECT_TRUE(result.ranked.front().verified);
    EXPECT_GT(result.compile_us, 0);
    EXPECT_GE(result.wall_us, result.compile_us);
    EXPECT_GT(result.reference_us, 0);
    const double bound = cuda::verification_tolerance(descs[index], cuda::variant_from_json(result.winner->variant_json()));
    const std::string failure = cuda::testing::check_on_device(*result.winner, bound);
    EXPECT_TRUE(failure.empty()) << result.winner->name() << ": " << failure;
  });
  EXPECT_EQ(reported, (std::vector<int>{1, 1, 1}));
}

}  // namespace
}  // namespace lowbit::tuner
