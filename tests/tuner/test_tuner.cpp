// The tuner: every verified candidate is checked against the reference and timed, the
// winner is the fastest of them, and descriptors no generator serves are refused with a
// reason. Shapes are small (n=64, k=256) so that one tune() takes well under a second.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tests/support/test_support.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tuner/tuner.h"

namespace lowbit::tuner {
namespace {

constexpr uint8_t poison = 0xff;  // NaN in every output dtype
constexpr int test_threads = 2;   // CI machines have 2 cores

TuneOptions small_options() {
  TuneOptions options;
  options.max_threads = test_threads;
  return options;
}

// Checks the invariants every TuneResult must hold; returns how many candidates were verified.
int expect_well_formed(const OpDesc& desc, const TuneResult& result) {
  const std::string where = "case: " + to_string(desc);
  EXPECT_NE(result.winner, nullptr) << where;
  if (!result.winner) return 0;
  EXPECT_LE(result.rel_err, tolerance(desc)) << where;
  EXPECT_TRUE(std::isfinite(result.rel_err)) << where;
  EXPECT_GT(result.median_us, 0) << where;
  EXPECT_GT(result.reference_us, 0) << where;
  EXPECT_EQ(result.winner->desc(), desc) << where;
  EXPECT_FALSE(result.ranked.empty()) << where;
  if (result.ranked.empty()) return 0;

  // The winner heads the ranked list, with the same figures.
  EXPECT_EQ(result.ranked.front().name, result.winner->name()) << where;
  EXPECT_TRUE(result.ranked.front().verified) << where;
  EXPECT_EQ(result.ranked.front().median_us, result.median_us) << where;
  EXPECT_EQ(result.ranked.front().rel_err, result.rel_err) << where;

  // Verified candidates first, fastest first; then the rejected ones, each with a reason.
  int verified = 0;
  bool seen_rejected = false;
  double previous_us = 0;
  std::set<std::string> names;
  for (const CandidateResult& candidate : result.ranked) {
    EXPECT_TRUE(names.insert(candidate.name).second) << where << ": candidate listed twice: " << candidate.name;
    if (candidate.verified) {
      EXPECT_FALSE(seen_rejected) << where << ": verified " << candidate.name << " after a rejected candidate";
      EXPECT_GT(candidate.median_us, 0) << where << ": " << candidate.name;
      EXPECT_GE(candidate.median_us, previous_us) << where << ": ranked list not sorted at " << candidate.name;
      EXPECT_LE(candidate.rel_err, tolerance(desc)) << where << ": " << candidate.name;
      EXPECT_TRUE(candidate.failure.empty()) << where << ": " << candidate.name;
      previous_us = candidate.median_us;
      ++verified;
    } else {
      seen_rejected = true;
      EXPECT_FALSE(candidate.failure.empty()) << where << ": rejected " << candidate.name << " without a reason";
    }
  }
  return verified;
}

// Runs kernel on a fresh problem (a seed the tuner did not use) with poisoned outputs and
// returns its error against the reference.
double error_on_fresh_problem(const Kernel& kernel, const OpDesc& desc, int64_t m) {
  const std::string case_name = "tuner winner " + to_string(desc) + " m=" + std::to_string(m);
  Problem problem = make_random_problem(desc, m, seed_for(case_name));
  std::vector<uint8_t> out(static_cast<std::size_t>(m * desc.n * dtype_bytes(desc.out)), poison);
  RunArgs args;
  args.x = problem.x.data();
  args.weights = view(problem.packed);
  args.bias = desc.bias ? problem.bias.data() : nullptr;
  args.y = out.data();
  args.m = m;
  kernel.run(args);
  std::vector<double> reference =
      reference_matmul(desc, m, problem.x.data(), problem.weights, desc.bias ? problem.bias.data() : nullptr, nullptr);
  return relative_error(out.data(), desc.out, reference);
}

TEST(Tuner, WinnerIsVerifiedAndRankedListIsSortedByTime) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=64,k=256,bits=4,group=128,zero=int,act=bf16,bias=1");
  std::vector<std::string> announced;
  int announced_count = -1;
  TuneOptions options = small_options();
  options.on_candidate = [&](int index, int count, const std::string& name) {
    EXPECT_EQ(index, static_cast<int>(announced.size())) << "candidates announced out of order";
    if (announced_count >= 0) {
      EXPECT_EQ(count, announced_count) << "the candidate count changed mid-tune";
    }
    announced_count = count;
    announced.push_back(name);
  };
  const TuneResult result = tune(desc, options);
  const int verified = expect_well_formed(desc, result);
  EXPECT_GE(verified, 1);
  EXPECT_EQ(result.rows, 1);

  // Every candidate was announced exactly once and appears in the ranked list.
  ASSERT_EQ(static_cast<int>(announced.size()), announced_count);
  ASSERT_EQ(announced.size(), result.ranked.size());
  std::multiset<std::string> ranked_names;
  for (const CandidateResult& candidate : result.ranked) ranked_names.insert(candidate.name);
  EXPECT_EQ(ranked_names, std::multiset<std::string>(announced.begin(), announced.end()));

  // The winner is right on inputs it was not tuned on, too.
  ASSERT_NE(result.winner, nullptr);
  EXPECT_LE(error_on_fresh_problem(*result.winner, desc, 1), tolerance(desc)) << "winner " << result.winner->name();
}

TEST(Tuner, AnyMDescriptorIsTunedAtTheDocumentedRowsAndServesOtherM) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  // m=0 (any M), fp32 in and out: the FMA flavour and the tightest tolerance.
  const OpDesc desc = parse_descriptor("m=0,n=80,k=256,bits=4,group=64,zero=float,act=fp32");
  const TuneResult result = tune(desc, small_options());
  EXPECT_GE(expect_well_formed(desc, result), 1);
  EXPECT_EQ(result.rows, any_m_rows);
  ASSERT_NE(result.winner, nullptr);
  for (int64_t m : {1, 3, 17})
    EXPECT_LE(error_on_fresh_problem(*result.winner, desc, m), tolerance(desc))
        << "winner " << result.winner->name() << " m=" << m;
}

// tune_each: one on_tuned a descriptor, in order for x86 ones, each result what tune() makes of
// it; candidates announced with their descriptor's index; a descriptor that cannot be tuned
// stops it after the results of those before it.
TEST(Tuner, TuneEachReportsEveryDescriptorOnceInOrder) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const std::vector<OpDesc> descs{parse_descriptor("m=1,n=64,k=256,bits=4,group=128,zero=int,act=bf16"),
                                  parse_descriptor("m=3,n=80,k=256,bits=8,group=64,zero=none,act=fp32")};
  std::vector<std::size_t> tuned;
  std::vector<std::set<std::size_t>> announced(descs.size());
  tune_each(
      descs, small_options(),
      [&](std::size_t index, int candidate, int count, const std::string&) {
        ASSERT_LT(index, descs.size());
        EXPECT_LT(candidate, count);
        announced[index].insert(static_cast<std::size_t>(candidate));
      },
      [&](std::size_t index, TuneResult result) {
        tuned.push_back(index);
        ASSERT_LT(index, descs.size());
        EXPECT_GE(expect_well_formed(descs[index], result), 1);
        EXPECT_EQ(announced[index].size(), result.ranked.size()) << "descriptor " << index;
      });
  EXPECT_EQ(tuned, (std::vector<std::size_t>{0, 1}));

  // A CUDA descriptor on a device no machine has (cuda:99): refused after the first one's result.
  tuned.clear();
  try {
    tune_each(
        {descs[0], parse_descriptor("m=1,n=64,k=256,bits=4,group=128,act=bf16,device=cuda:99")}, small_options(),
        nullptr, [&](std::size_t index, TuneResult) { tuned.push_back(index); });
    ADD_FAILURE() << "a descriptor on a missing device was tuned";
  } catch (const Unsupported& error) {
    EXPECT_NE(std::string(error.what()).find("cuda"), std::string::npos) << error.what();
  }
  EXPECT_EQ(tuned, (std::vector<std::size_t>{0}));
}

TEST(Tuner, TopCandidatesJsonListsTheFastestVerifiedInOrder) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=2,n=64,k=256,bits=4,group=32,zero=none,act=fp16");
  const TuneResult result = tune(desc, small_options());
  const int verified = expect_well_formed(desc, result);
  for (int count : {1, 3, 1000}) {
    const nlohmann::json top = top_candidates_json(result, count);
    ASSERT_TRUE(top.is_array());
    ASSERT_EQ(static_cast<int>(top.size()), std::min(count, verified)) << "count=" << count;
    for (std::size_t i = 0; i < top.size(); ++i) {
      EXPECT_EQ(top[i].at("name").get<std::string>(), result.ranked[i].name);
      EXPECT_EQ(top[i].at("median_us").get<double>(), result.ranked[i].median_us);
      EXPECT_EQ(top[i].at("rel_err").get<double>(), result.ranked[i].rel_err);
    }
  }
  EXPECT_TRUE(top_candidates_json(result, 0).empty());
}

// These need no AVX-512: the descriptor is refused before any CPU feature is asked about.
struct RefusedCase {
  std::string name;
  std::string descriptor;
  std::string reason;  // text the Unsupported message must contain
  std::string isa;     // TuneOptions.isa (compute=float has no avx512_vnni path)
};

// Names the case in test listings (ctest shows the printed parameter).
void PrintTo(const RefusedCase& refused, std::ostream* stream) { *stream << refused.descriptor; }

class TunerRefuses : public ::testing::TestWithParam<RefusedCase> {};

TEST_P(TunerRefuses, WithAnUnsupportedErrorThatSaysWhy) {
  const OpDesc desc = parse_descriptor(GetParam().descriptor);
  bool announced = false;
  TuneOptions options = small_options();
  options.on_candidate = [&](int, int, const std::string&) { announced = true; };
  options.isa = GetParam().isa;
  try {
    tune(desc, options);
    FAIL() << "tune(" << GetParam().descriptor << ") returned instead of throwing Unsupported";
  } catch (const Unsupported& error) {
    EXPECT_NE(std::string(error.what()).find(GetParam().reason), std::string::npos)
        << "message: " << error.what();
  }
  EXPECT_FALSE(announced) << "a candidate was built for a refused descriptor";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TunerRefuses,
    ::testing::Values(RefusedCase{"ComputeFloatOnVnni", "m=1,n=64,k=256,bits=4,group=128", "compute=float", "avx512_vnni"},
                      // No CUDA family computes int8: refused for that where a GPU is, for the missing driver where not.
                      RefusedCase{"CudaInt8", "m=1,n=64,k=256,bits=4,group=128,compute=int8,device=cuda:0", "CUDA", ""}),
    [](const ::testing::TestParamInfo<RefusedCase>& info) { return info.param.name; });

TEST(Tuner, InvalidDescriptorIsAnInvalidArgumentNamingTheField) {
  OpDesc desc;
  desc.n = 64;
  desc.k = 100;  // group=128 does not divide k
  try {
    tune(desc, small_options());
    FAIL() << "tune accepted k=100 with group=128";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.field(), "group") << error.what();
  }
}

}  // namespace
}  // namespace lowbit::tuner
