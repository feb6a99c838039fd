// m=0 on CUDA: RowBucketKernel's dispatch (without a GPU, over kernels that only record their
// calls), and on a GPU get_kernel's m=0 kernel at row counts on both sides of every bucket's edge,
// each checked against the reference (poisoned outputs, guard bytes) at its own kernel's bound.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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
#include "runtime/decisions.h"
#include "runtime/row_plan.h"
#include "cache/sqlite.h"
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

// Each bounded range takes its tile for the row count before the next range's first; the open
// last one for 1024 rows (the large-M tile), above its first.
TEST(RowBuckets, RangeTopsAreTheRowsBeforeTheNextRange) {
  std::vector<int64_t> tops;
  for (std::size_t range = 0; range < runtime::any_rows_range_count; ++range) {
    tops.push_back(runtime::any_rows_range_top(range));
    EXPECT_EQ(runtime::any_rows_range_is_open(range), range + 1 == runtime::any_rows_range_count) << range;
  }
  EXPECT_EQ(tops, (std::vector<int64_t>{32, 64, 128, 256, 384, 512, 768, 1024}));
  for (std::size_t range = 0; range < runtime::any_rows_range_count; ++range)
    EXPECT_GT(runtime::any_rows_range_top(range), runtime::any_rows_range_starts[range]) << range;
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
// Options that take the heuristic on a miss, with the cache file `name` in `directory`.
GetOptions heuristic_options(const testing::TempDirectory& directory, const char* name) {
  GetOptions options;
  options.on_miss = OnMiss::heuristic;
  options.cache_path = (directory.path() / name).string();
  return options;
}

TEST(RowBuckets, CudaColdStartStoresEveryPartsCubin) {
  if (!cuda::nvrtc().available || !cuda::driver().available)
    GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason;
  testing::TempDirectory directory("row_buckets_cold");
  const GetOptions options = heuristic_options(directory, "cache.sqlite");
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

// desc's row plan in the cache file of options (read-only), parsed; fails the test when absent.
std::optional<runtime::RowPlanParts> stored_row_plan(const OpDesc& desc, const GetOptions& options) {
  const cache::DecisionCache stored = cache::DecisionCache::open(options.cache_path, cache::OpenMode::read_only);
  const auto plan = stored.lookup_row_plan(to_string(desc), runtime::decision_fingerprint(desc, options),
                                           runtime::decision_generator_version(desc, options));
  if (!plan) return std::nullopt;
  return runtime::row_plan_from_json(nlohmann::json::parse(plan->plan_json));
}

// Every row count's part of `buckets` matches the reference at its own kernel's bound.
void expect_parts_match_the_reference(const RowBucketKernel& buckets) {
  for (int64_t rows : {1, 2, 5, 8, 9, 16, 17, 33, 65, 129, 300}) {
    const Kernel& part = buckets.kernel_for_rows(rows);
    const double bound = cuda::verification_tolerance(part.desc(), cuda::variant_from_json(part.variant_json()));
    const std::string failure = cuda::testing::check_on_device(buckets, bound, 0, rows);
    EXPECT_TRUE(failure.empty()) << part.name() << " (rows " << rows << "): " << failure;
  }
}

// The long way records the row plan (every part no decision names, with its cubin's key, all in
// the file); a process with an empty user cache and that file shipped then loads every part by
// the plan: the same kernels, nothing compiled (the user cache is never even created), and they
// match the reference.
TEST(RowBuckets, CudaRowPlanLoadsEveryPartFromAShippedCacheWithoutCompiling) {
  if (!cuda::nvrtc().available || !cuda::driver().available)
    GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason;
  testing::TempDirectory directory("row_plan_shipped");
  const GetOptions options = heuristic_options(directory, "operator.sqlite");
  const OpDesc desc = parse_descriptor("m=0,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0");
  const ResolvedKernel first = get_kernel(desc, options);
  const auto plan = stored_row_plan(desc, options);
  ASSERT_TRUE(plan.has_value()) << "no row plan stored in " << options.cache_path;
  // No decision anywhere: the any-M kernel and every served row count ran their heuristic.
  ASSERT_TRUE(plan->any_rows.has_value());
  EXPECT_EQ(plan->exact.size() + plan->unserved.size(), static_cast<std::size_t>(runtime::exact_bucket_rows));
  EXPECT_FALSE(plan->ranges.empty());
  {
    const cache::DecisionCache stored = cache::DecisionCache::open(options.cache_path, cache::OpenMode::read_only);
    std::vector<runtime::PlannedPart> parts = plan->exact;
    parts.insert(parts.end(), plan->ranges.begin(), plan->ranges.end());
    parts.push_back(*plan->any_rows);
    for (const runtime::PlannedPart& part : parts)
      EXPECT_TRUE(stored.has_artifact(part.artifact_key)) << part.variant.dump() << " has no cubin in the file";
  }

  GetOptions deployed = heuristic_options(directory, "user.sqlite");
  deployed.shipped_caches = {(directory.path() / "shipped.sqlite").string()};
  // Shipped as a deployment ships it: exported, while this process keeps its reader of the file
  // open (get_kernel's kept connection) and so, possibly, some commits in its WAL.
  cache::DecisionCache::open(options.cache_path, cache::OpenMode::read_only).export_to(deployed.shipped_caches.front());
  const ResolvedKernel loaded = get_kernel(desc, deployed);
  EXPECT_EQ(loaded.kernel->name(), first.kernel->name());
  EXPECT_EQ(loaded.kernel->variant_json(), first.kernel->variant_json());
  EXPECT_FALSE(std::filesystem::exists(deployed.cache_path)) << "the plan's load wrote to the user cache";
  const auto* buckets = dynamic_cast<const RowBucketKernel*>(loaded.kernel.get());
  ASSERT_NE(buckets, nullptr) << loaded.kernel->name();
  expect_parts_match_the_reference(*buckets);
}

// A plan part whose cubin is gone is compiled again (and stored), the others load by the plan; a
// plan that does not parse is a warning, the long way, and a new plan in its place.
TEST(RowBuckets, CudaRowPlanRecoversFromALostCubinAndFromADamagedPlan) {
  if (!cuda::nvrtc().available || !cuda::driver().available)
    GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason;
  unsetenv("LOWBIT_QUIET");  // the damaged plan's warning is asserted
  testing::TempDirectory directory("row_plan_recovers");
  const GetOptions options = heuristic_options(directory, "cache.sqlite");
  const OpDesc desc = parse_descriptor("m=0,n=4099,k=1024,bits=4,group=128,zero=none,act=fp16,out=fp32,device=cuda:0");
  const ResolvedKernel first = get_kernel(desc, options);
  const auto plan = stored_row_plan(desc, options);
  ASSERT_TRUE(plan.has_value() && !plan->exact.empty());
  const std::string lost = plan->exact.front().artifact_key;
  {
    cache::Database database(options.cache_path, SQLITE_OPEN_READWRITE);
    cache::Statement remove(database, "DELETE FROM artifacts WHERE key = ?1");
    remove.bind_text(1, lost);
    ASSERT_EQ(remove.step(), cache::StepResult::done);
  }
  // (Another thread cap is another process key: get_kernel resolves again rather than remember.)
  GetOptions again = options;
  again.max_threads = 3;
  const ResolvedKernel recovered = get_kernel(desc, again);
  EXPECT_EQ(recovered.kernel->variant_json(), first.kernel->variant_json());
  EXPECT_TRUE(cache::DecisionCache::open(options.cache_path, cache::OpenMode::read_only).has_artifact(lost))
      << "the lost cubin was not compiled and stored again";
  const auto* buckets = dynamic_cast<const RowBucketKernel*>(recovered.kernel.get());
  ASSERT_NE(buckets, nullptr);
  expect_parts_match_the_reference(*buckets);

  {
    cache::DecisionCache writer = cache::DecisionCache::open(options.cache_path, cache::OpenMode::read_write);
    ASSERT_TRUE(writer.store_row_plan({to_string(desc), runtime::decision_fingerprint(desc, options),
                                       runtime::decision_generator_version(desc, options), R"({"exact_rows":[]})", ""}));
  }
  GetOptions third = options;
  third.max_threads = 5;
  ::testing::internal::CaptureStderr();
  const ResolvedKernel rebuilt = get_kernel(desc, third);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("row plan of " + to_string(desc) + " is unusable"), std::string::npos) << printed;
  EXPECT_EQ(rebuilt.kernel->variant_json(), first.kernel->variant_json());
  const auto replaced = stored_row_plan(desc, options);
  ASSERT_TRUE(replaced.has_value()) << "the damaged plan was not replaced";
  EXPECT_EQ(*replaced, *plan);

  // A plan made for other ranges (session 29's four, here with none built) is outdated: passed
  // over without a warning, and a plan for today's ranges recorded in its place.
  runtime::RowPlanParts outdated = *plan;
  outdated.range_starts = {17, 33, 65, 129};
  outdated.ranges.clear();
  {
    cache::DecisionCache writer = cache::DecisionCache::open(options.cache_path, cache::OpenMode::read_write);
    ASSERT_TRUE(writer.store_row_plan({to_string(desc), runtime::decision_fingerprint(desc, options),
                                       runtime::decision_generator_version(desc, options),
                                       runtime::to_json(outdated).dump(), ""}));
  }
  GetOptions fourth = options;
  fourth.max_threads = 7;
  ::testing::internal::CaptureStderr();
  const ResolvedKernel renewed = get_kernel(desc, fourth);
  const std::string quiet = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(quiet.find("row plan"), std::string::npos) << quiet;
  ASSERT_FALSE(plan->ranges.empty());
  EXPECT_EQ(renewed.kernel->variant_json(), first.kernel->variant_json())
      << "the outdated plan (no ranges built) was used";
  const auto renewed_plan = stored_row_plan(desc, options);
  ASSERT_TRUE(renewed_plan.has_value());
  EXPECT_EQ(*renewed_plan, *plan);
}

#endif

}  // namespace
}  // namespace lowbit
