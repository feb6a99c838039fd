// m=0 on CUDA: RowBucketKernel's dispatch (without a GPU, over kernels that only record their
// calls), and on a GPU get_kernel's m=0 kernel at row counts on both sides of every bucket's edge,
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
#include "cache/decision_cache.h"
#include "runtime/cuda_backend.h"
#include "tests/cuda/device_check.h"
#include "tests/support/test_support.h"
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

// Exact kernels for m = 1..16 but 3 (tag m), the any-M kernel (tag 100), ranges from 33 rows
// (tag 200) and from 65 (tag 300).
struct Buckets {
  std::vector<std::shared_ptr<RecordingKernel>> exact;
  std::shared_ptr<RecordingKernel> any = std::make_shared<RecordingKernel>(0, 100);
  std::shared_ptr<RecordingKernel> from_33 = std::make_shared<RecordingKernel>(0, 200);
  std::shared_ptr<RecordingKernel> from_65 = std::make_shared<RecordingKernel>(0, 300);
  std::unique_ptr<RowBucketKernel> kernel;

  Buckets() {
    std::vector<std::shared_ptr<const Kernel>> parts;
    for (int64_t m = 1; m <= runtime::exact_bucket_rows; ++m) {
      exact.push_back(m == 3 ? nullptr : std::make_shared<RecordingKernel>(m, static_cast<int>(m)));
      parts.push_back(exact.back());
    }
    kernel = std::make_unique<RowBucketKernel>(any->desc(), parts,
                                               std::vector<runtime::RowRange>{{33, from_33}, {65, from_65}}, any);
  }
};

std::vector<int64_t> counts(int64_t first, int64_t last) {
  std::vector<int64_t> rows;
  for (int64_t m = first; m <= last; ++m) rows.push_back(m);
  return rows;
}

TEST(RowBuckets, EachRowCountRunsOnItsKernel) {
  Buckets buckets;
  RunArgs args;
  for (int64_t m = 1; m <= 300; ++m) {
    args.m = m;
    buckets.kernel->run(args);
  }
  for (int64_t m = 1; m <= runtime::exact_bucket_rows; ++m) {
    if (m != 3) {
      EXPECT_EQ(buckets.exact[m - 1]->calls, std::vector<int64_t>{m}) << "m=" << m;
    }
  }
  // m=3 has no exact kernel: the any-M kernel takes it, and the counts from 17 to the first range.
  std::vector<int64_t> any_rows = counts(17, 32);
  any_rows.insert(any_rows.begin(), 3);
  EXPECT_EQ(buckets.any->calls, any_rows);
  EXPECT_EQ(buckets.from_33->calls, counts(33, 64));
  EXPECT_EQ(buckets.from_65->calls, counts(65, 300));
  // Kernel::kernel_for_rows names the same kernels (what the tuner's check and the CLI look at).
  const Kernel& generic = *buckets.kernel;
  EXPECT_EQ(&generic.kernel_for_rows(5), buckets.exact[4].get());
  EXPECT_EQ(&generic.kernel_for_rows(3), buckets.any.get());
  EXPECT_EQ(&generic.kernel_for_rows(64), buckets.from_33.get());
  EXPECT_EQ(&buckets.any->kernel_for_rows(64), buckets.any.get());  // any other kernel: itself
}

TEST(RowBuckets, WorkspaceIsTheKernelOfTheRows) {
  Buckets buckets;
  EXPECT_EQ(buckets.kernel->workspace_bytes(1), 1001u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(16), 16016u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(3), 100003u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(17), 100017u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(64), 200064u);
  EXPECT_EQ(buckets.kernel->workspace_bytes(1000), 301000u);
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
  EXPECT_EQ(buckets.kernel->name(), "recording_100+exact_m1-16+2_ranges");
  const nlohmann::json json = buckets.kernel->variant_json();
  EXPECT_EQ(json["any_rows"]["tag"], 100);
  ASSERT_EQ(json["exact_rows"].size(), 16u);
  EXPECT_EQ(json["exact_rows"][0]["variant"], "recording_1");
  EXPECT_EQ(json["exact_rows"][2]["variant"], "recording_100");  // m=3: the any-M kernel
  EXPECT_EQ(json["exact_rows"][15]["m"], 16);
  ASSERT_EQ(json["row_ranges"].size(), 2u);
  EXPECT_EQ(json["row_ranges"][1]["first_rows"], 65);
  EXPECT_EQ(json["row_ranges"][1]["variant"], "recording_300");
}

TEST(RowBuckets, PartsForOtherRowsAreRefused) {
  auto any = std::make_shared<RecordingKernel>(0, 100);
  auto two = std::make_shared<RecordingKernel>(2, 2);
  auto wide = std::make_shared<RecordingKernel>(0, 200);
  using Ranges = std::vector<runtime::RowRange>;
  // An exact kernel in another row's place, an exact kernel as the any-M one, no any-M kernel.
  EXPECT_THROW(RowBucketKernel(any->desc(), {two}, {}, any), Error);
  EXPECT_THROW(RowBucketKernel(any->desc(), {}, {}, two), Error);
  EXPECT_THROW(RowBucketKernel(any->desc(), {}, {}, nullptr), Error);
  // A range inside the exact rows, ranges out of order, an exact-M or missing range kernel.
  EXPECT_THROW(RowBucketKernel(any->desc(), {nullptr, nullptr}, Ranges{{2, wide}}, any), Error);
  EXPECT_THROW(RowBucketKernel(any->desc(), {}, Ranges{{65, wide}, {33, wide}}, any), Error);
  EXPECT_THROW(RowBucketKernel(any->desc(), {}, Ranges{{33, two}}, any), Error);
  EXPECT_THROW(RowBucketKernel(any->desc(), {}, Ranges{{33, nullptr}}, any), Error);
  EXPECT_NO_THROW(RowBucketKernel(any->desc(), {nullptr, nullptr}, Ranges{{3, wide}, {65, wide}}, any));
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
    for (int64_t rows : {1, 2, 3, 5, 8, 9, 12, 16, 17, 31, 33, 64, 65, 100, 129, 300}) {
      const Kernel& part = buckets->kernel_for_rows(rows);
      EXPECT_EQ(part.desc().m, rows <= runtime::exact_bucket_rows ? rows : 0) << text << " rows=" << rows;
      const double bound = cuda::verification_tolerance(part.desc(), cuda::variant_from_json(part.variant_json()));
      const std::string failure = cuda::testing::check_on_device(*buckets, bound, 0, rows);
      EXPECT_TRUE(failure.empty()) << part.name() << ": " << failure;
    }
  }
}

// A cold m=0 resolution through a cache file: the parts' cubins compile at once
// (runtime::precompile_cuda) and every part's cubin is then in the file, so the next process
// loads them all without NVRTC; the parts still match the reference.
TEST(RowBuckets, CudaColdStartStoresEveryPartsCubin) {
  if (!cuda::nvrtc().available || !cuda::driver().available)
    GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason;
  testing::TempDirectory directory("row_buckets_cold");
  GetOptions options;
  options.on_miss = OnMiss::heuristic;
  options.cache_path = (directory.path() / "cache.sqlite").string();
  const OpDesc desc = parse_descriptor("m=0,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0");
  const ResolvedKernel resolved = get_kernel(desc, options);
  const auto* buckets = dynamic_cast<const RowBucketKernel*>(resolved.kernel.get());
  ASSERT_NE(buckets, nullptr) << resolved.kernel->name();
  const cache::DecisionCache stored = cache::DecisionCache::open(options.cache_path, cache::OpenMode::read_only);
  const std::string arch = cuda::device_info(0).arch();
  int parts = 0;
  for (int64_t rows : {1, 2, 5, 8, 9, 16, 17, 33, 65, 129, 700}) {
    const Kernel& part = buckets->kernel_for_rows(rows);
    const std::string key = runtime::cubin_key(cuda::emit(part.desc(), cuda::variant_from_json(part.variant_json())), arch);
    EXPECT_TRUE(stored.lookup_artifact(key).has_value()) << part.name() << " (rows " << rows << ") has no cubin in the cache";
    const double bound = cuda::verification_tolerance(part.desc(), cuda::variant_from_json(part.variant_json()));
    const std::string failure = cuda::testing::check_on_device(*buckets, bound, 0, rows);
    EXPECT_TRUE(failure.empty()) << part.name() << ": " << failure;
    ++parts;
  }
  EXPECT_EQ(parts, 11);
}

#endif

}  // namespace
}  // namespace lowbit
