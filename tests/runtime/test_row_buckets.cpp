// m=0 on CUDA: RowBucketKernel's dispatch (without a GPU, over kernels that only record their
// calls), and on a GPU get_kernel's m=0 kernel at row counts on both sides of the exact range,
// each checked against the reference (poisoned outputs, guard bytes) at its own kernel's bound.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/errors.h"
#include "lowbit/kernel.h"
#include "runtime/row_buckets.h"

#if LOWBIT_WITH_CUDA
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/registry.h"
#include "tests/cuda/device_check.h"
#endif

namespace lowbit {
namespace {

using runtime::RowBucketKernel;

// A kernel that records the rows of its calls; workspace_bytes is 1000 times its tag plus m, so a
// figure names the kernel that gave it.
class RecordingKernel final : public Kernel {
 public:
  RecordingKernel(int64_t m, int tag) : tag_(tag), name_("recording_" + std::to_string(tag)) {
    desc_ = parse_descriptor("n=64,k=128,device=cuda:0");
    desc_.m = m;
  }
  const OpDesc& desc() const override { return desc_; }
  const std::string& name() const override { return name_; }
  nlohmann::json variant_json() const override { return {{"tag", tag_}}; }
  void run(const RunArgs& args) const override { calls.push_back(args.m); }
  std::size_t workspace_bytes(int64_t m) const override { return static_cast<std::size_t>(1000 * tag_ + m); }

  mutable std::vector<int64_t> calls;

 private:
  OpDesc desc_;
  int tag_;
  std::string name_;
};

struct Buckets {
  std::vector<std::shared_ptr<RecordingKernel>> exact;  // exact[i]: m = i + 1, tag i + 1; null at m=3
  std::shared_ptr<RecordingKernel> any = std::make_shared<RecordingKernel>(0, 100);
  std::unique_ptr<RowBucketKernel> kernel;

  Buckets() {
    std::vector<std::shared_ptr<const Kernel>> parts;
    for (int64_t m = 1; m <= runtime::exact_bucket_rows; ++m) {
      exact.push_back(m == 3 ? nullptr : std::make_shared<RecordingKernel>(m, static_cast<int>(m)));
      parts.push_back(exact.back());
    }
    kernel = std::make_unique<RowBucketKernel>(any->desc(), parts, any);
  }
};

TEST(RowBuckets, EachRowCountRunsOnItsKernel) {
  Buckets buckets;
  RunArgs args;
  for (int64_t m = 1; m <= 40; ++m) {
    args.m = m;
    buckets.kernel->run(args);
  }
  for (int64_t m = 1; m <= runtime::exact_bucket_rows; ++m) {
    if (m != 3) {
      EXPECT_EQ(buckets.exact[m - 1]->calls, std::vector<int64_t>{m}) << "m=" << m;
    }
  }
  // m=3 has no exact kernel: the any-M kernel takes it, and every count past the exact range.
  std::vector<int64_t> any_rows{3};
  for (int64_t m = runtime::exact_bucket_rows + 1; m <= 40; ++m) any_rows.push_back(m);
  EXPECT_EQ(buckets.any->calls, any_rows);
}

TEST(RowBuckets, WorkspaceIsTheKernelOfTheRows) {
  Buckets buckets;
  EXPECT_EQ(buckets.kernel->workspace_bytes(1), 1001u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(16), 16016u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(3), 100003u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(17), 100017u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(0), 100000u);  // no call runs at 0 rows
}

TEST(RowBuckets, RowsBelowOneAreRefused) {
  Buckets buckets;
  RunArgs args;
  for (int64_t m : {0, -1}) {
    args.m = m;
    EXPECT_THROW(buckets.kernel->run(args), InvalidArgument) << "m=" << m;
  }
  EXPECT_TRUE(buckets.any->calls.empty());
}

TEST(RowBuckets, NameAndVariantListEveryPart) {
  Buckets buckets;
  EXPECT_EQ(buckets.kernel->name(), "recording_100+exact_m1-16");
  const nlohmann::json json = buckets.kernel->variant_json();
  EXPECT_EQ(json["any_rows"]["tag"], 100);
  ASSERT_EQ(json["exact_rows"].size(), 16u);
  EXPECT_EQ(json["exact_rows"][0]["variant"], "recording_1");
  EXPECT_EQ(json["exact_rows"][2]["variant"], "recording_100");  // m=3: the any-M kernel
  EXPECT_EQ(json["exact_rows"][15]["m"], 16);
}

TEST(RowBuckets, PartsForOtherRowsAreRefused) {
  auto any = std::make_shared<RecordingKernel>(0, 100);
  auto two = std::make_shared<RecordingKernel>(2, 2);
  // An exact kernel in another row's place, an exact kernel as the any-M one, no any-M kernel.
  EXPECT_THROW(RowBucketKernel(any->desc(), {two}, any), Error);
  EXPECT_THROW(RowBucketKernel(any->desc(), {}, two), Error);
  EXPECT_THROW(RowBucketKernel(any->desc(), {}, nullptr), Error);
}

#if LOWBIT_WITH_CUDA

TEST(RowBuckets, CudaAnyMKernelMatchesTheReferenceAtEveryRowCount) {
  if (!cuda::nvrtc().available || !cuda::driver().available)
    GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason;
  GetOptions options;
  options.on_miss = OnMiss::heuristic;
  options.use_cache = false;
  // Odd N and K (a partial last group), bias, the zero kinds, both activation dtypes, 3 bits with
  // eqscale: each row count on its own kernel (gemv_mma, the GEMV and wgmma where the exact-M
  // heuristic takes them, mma above 16 rows).
  for (const char* text : {"m=0,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0",
                           "m=0,n=4099,k=1024,bits=4,group=128,zero=none,act=fp16,out=fp32,device=cuda:0",
                           "m=0,n=520,k=2112,bits=3,group=-1,zero=float,act=bf16,eqscale=1,device=cuda:0"}) {
    const OpDesc desc = parse_descriptor(text);
    const ResolvedKernel resolved = get_kernel(desc, options);
    const auto* buckets = dynamic_cast<const RowBucketKernel*>(resolved.kernel.get());
    ASSERT_NE(buckets, nullptr) << text << ": " << resolved.kernel->name();
    for (int64_t rows : {1, 2, 3, 5, 8, 9, 12, 16, 17, 31, 100}) {
      const Kernel& part = buckets->kernel_for(rows);
      EXPECT_EQ(part.desc().m, rows <= runtime::exact_bucket_rows ? rows : 0) << text << " rows=" << rows;
      const double bound = cuda::verification_tolerance(part.desc(), cuda::variant_from_json(part.variant_json()));
      const std::string failure = cuda::testing::check_on_device(*buckets, bound, 0, rows);
      EXPECT_TRUE(failure.empty()) << part.name() << ": " << failure;
    }
  }
}

#endif

}  // namespace
}  // namespace lowbit
