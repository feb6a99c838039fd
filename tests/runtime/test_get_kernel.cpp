// get_kernel(): the policy joining cache, tuner and generators. Every test works in its own
// mkdtemp directory and points LOWBIT_CACHE there, so no test touches the user's cache and
// the process-wide kernel map (keyed by cache path) never leaks one test's kernel into
// another when the binary runs all tests in one process. Descriptors differ between tests
// for the same reason where no cache path separates them (use_cache=false).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cache/decision_cache.h"
#include "codegen/x86/registry.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "runtime/decisions.h"
#include "tests/support/test_support.h"
#include "tuner/measure.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

std::optional<cache::Decision> stored_decision(const fs::path& path, const OpDesc& desc) {
  if (!fs::exists(path)) return std::nullopt;  // read_only would warn about the missing file
  cache::DecisionCache decisions = cache::DecisionCache::open(path.string(), cache::OpenMode::read_only);
  if (!decisions.usable()) return std::nullopt;
  return decisions.lookup(to_string(desc), cpu_info().fingerprint(), x86::generator_version());
}

// A decision as get_kernel would look it up on this machine, for a hand-picked variant.
cache::Decision hand_made_decision(const OpDesc& desc, const std::string& variant_name,
                                   const std::string& variant_json, double median_us) {
  cache::Decision decision;
  decision.descriptor = to_string(desc);
  decision.fingerprint = cpu_info().fingerprint();
  decision.generator_version = x86::generator_version();
  decision.variant_name = variant_name;
  decision.variant_json = variant_json;
  decision.median_us = median_us;
  decision.rel_err = 1e-3;
  decision.candidates = 1;
  decision.protocol = std::string(tuner::protocol_id);
  decision.source_json = R"({"test":"hand-made"})";
  return decision;
}

void store_by_hand(const fs::path& path, const cache::Decision& decision) {
  cache::DecisionCache decisions = cache::DecisionCache::open(path.string(), cache::OpenMode::read_write);
  ASSERT_TRUE(decisions.usable()) << path;
  ASSERT_TRUE(decisions.store(decision)) << path;
}

std::string check_against_reference(const Kernel& kernel, int64_t m) {
  return testing::check_against_reference(
      kernel, m, "get_kernel " + to_string(kernel.desc()) + " " + kernel.name() + " m=" + std::to_string(m));
}

using testing::count_warnings;
using testing::read_bytes;
using testing::write_bytes;

class GetKernelTest : public ::testing::Test {
 protected:
  // Several tests expect a warning; lowbit::warn reads LOWBIT_QUIET once, at its first call.
  void SetUp() override { unsetenv("LOWBIT_QUIET"); }

  testing::TempDirectory temp_{"lowbit_runtime"};
  const fs::path& directory_ = temp_.path();
  // Whatever a test leaves to the default goes here, never to the user's cache.
  testing::ScopedEnvironment cache_env_{"LOWBIT_CACHE", (directory_ / "default.sqlite").string()};

  fs::path file(const std::string& name = "cache.sqlite") const { return directory_ / name; }
  fs::path default_file() const { return directory_ / "default.sqlite"; }

  GetOptions options(const std::string& name = "cache.sqlite") const {
    GetOptions get;
    get.cache_path = file(name).string();
    return get;
  }

};

TEST_F(GetKernelTest, MissTunesAndStoresTheWinner) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=64,k=256,bits=4,group=128,zero=int,act=bf16");
  ASSERT_FALSE(fs::exists(file()));
  const ResolvedKernel resolved = get_kernel(desc, options());
  ASSERT_NE(resolved.kernel, nullptr);
  EXPECT_EQ(resolved.source, KernelSource::tuned);
  EXPECT_EQ(to_string(resolved.source), "tuned");
  EXPECT_GT(resolved.median_us, 0);
  EXPECT_EQ(resolved.kernel->desc(), desc);

  const std::optional<cache::Decision> decision = stored_decision(file(), desc);
  ASSERT_TRUE(decision.has_value()) << "no decision stored in " << file();
  EXPECT_EQ(decision->variant_name, resolved.kernel->name());
  EXPECT_EQ(nlohmann::json::parse(decision->variant_json), resolved.kernel->variant_json());
  EXPECT_EQ(decision->median_us, resolved.median_us);
  EXPECT_LE(decision->rel_err, tolerance(desc));
  EXPECT_GE(decision->candidates, 1);
  EXPECT_EQ(decision->protocol, tuner::protocol_id);
  EXPECT_FALSE(decision->created_at.empty());
  const nlohmann::json source = nlohmann::json::parse(decision->source_json);
  ASSERT_TRUE(source.contains("top")) << decision->source_json;
  ASSERT_FALSE(source["top"].empty()) << decision->source_json;
  EXPECT_EQ(source["top"][0].at("name").get<std::string>(), resolved.kernel->name());
  EXPECT_EQ(source.at("cpu").at("fingerprint").get<std::string>(), cpu_info().fingerprint());
  EXPECT_EQ(source.at("search").get<std::string>(), "exhaustive") << "x86 tunes time every candidate";

  // Exactly one row, and nothing written to the default cache.
  cache::DecisionCache decisions = cache::DecisionCache::open(file().string(), cache::OpenMode::read_only);
  EXPECT_EQ(decisions.list().size(), 1u);
  EXPECT_FALSE(fs::exists(default_file()));
}

TEST_F(GetKernelTest, SecondCallInTheProcessReturnsTheSameKernelObject) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=96,k=256,bits=4,group=64,zero=int,act=bf16");
  const ResolvedKernel first = get_kernel(desc, options());
  ASSERT_NE(first.kernel, nullptr);
  // The second call must not touch the file: with it gone, it neither re-tunes (which would
  // store a new file) nor reads.
  ASSERT_TRUE(fs::remove(file()));
  const ResolvedKernel second = get_kernel(desc, options());
  EXPECT_EQ(second.kernel.get(), first.kernel.get());
  EXPECT_EQ(second.source, first.source);
  EXPECT_EQ(second.median_us, first.median_us);
  EXPECT_FALSE(fs::exists(file())) << "the second call re-resolved and stored again";
}

TEST_F(GetKernelTest, NewCachePathWithAStoredDecisionIsACacheHit) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=112,k=256,bits=4,group=128,zero=int,act=bf16");
  const ResolvedKernel tuned = get_kernel(desc, options("first.sqlite"));
  ASSERT_EQ(tuned.source, KernelSource::tuned);
  // Another path holding the same file: the process map does not answer (its key has the
  // path), the file does.
  fs::copy_file(file("first.sqlite"), file("second.sqlite"));
  const ResolvedKernel hit = get_kernel(desc, options("second.sqlite"));
  ASSERT_NE(hit.kernel, nullptr);
  EXPECT_EQ(hit.source, KernelSource::cache);
  EXPECT_EQ(hit.kernel->name(), tuned.kernel->name());
  EXPECT_EQ(hit.median_us, tuned.median_us);
  EXPECT_EQ(hit.kernel->variant_json(), tuned.kernel->variant_json());
  EXPECT_EQ(check_against_reference(*hit.kernel, 1), "");
}

TEST_F(GetKernelTest, HandStoredDecisionIsBuiltWithoutTiming) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=64,k=256,bits=4,group=128,zero=int,act=bf16,bias=1");
  // The FMA flavour with a 3-panel block: the tuner never times it for bf16 activations on a
  // CPU with AVX512_BF16, so getting it back proves the stored row was used.
  const x86::X86Variant variant{x86::X86Isa::avx512_fma, 3, 1, 1, 1};
  const std::string name = x86::variant_name(desc, variant);
  store_by_hand(file(), hand_made_decision(desc, name, x86::to_json(variant).dump(), 12.5));
  const ResolvedKernel hit = get_kernel(desc, options());
  ASSERT_NE(hit.kernel, nullptr);
  EXPECT_EQ(hit.source, KernelSource::cache);
  EXPECT_EQ(to_string(hit.source), "cache");
  EXPECT_EQ(hit.kernel->name(), name);
  EXPECT_EQ(hit.median_us, 12.5);  // the stored figure, not a new timing
  EXPECT_EQ(hit.kernel->variant_json(), x86::to_json(variant));
  EXPECT_EQ(check_against_reference(*hit.kernel, 1), "");
}

TEST_F(GetKernelTest, HeuristicOnMissStoresNothing) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=4,n=64,k=256,bits=4,group=128,zero=int,act=bf16");
  // An existing, empty cache file: the heuristic path must not add a row to it.
  { cache::DecisionCache created = cache::DecisionCache::open(file().string(), cache::OpenMode::read_write); }
  ASSERT_TRUE(fs::exists(file()));
  GetOptions get = options();
  get.on_miss = OnMiss::heuristic;
  const ResolvedKernel resolved = get_kernel(desc, get);
  ASSERT_NE(resolved.kernel, nullptr);
  EXPECT_EQ(resolved.source, KernelSource::heuristic);
  EXPECT_EQ(to_string(resolved.source), "heuristic");
  EXPECT_EQ(resolved.median_us, 0);
  EXPECT_EQ(resolved.kernel->name(), x86::variant_name(desc, x86::heuristic(desc, runtime::thread_budget(GetOptions{}))));
  EXPECT_EQ(check_against_reference(*resolved.kernel, 4), "");
  cache::DecisionCache decisions = cache::DecisionCache::open(file().string(), cache::OpenMode::read_only);
  EXPECT_TRUE(decisions.list().empty());

  // With no file at all, none is created.
  GetOptions elsewhere = options("absent.sqlite");
  elsewhere.on_miss = OnMiss::heuristic;
  EXPECT_EQ(get_kernel(desc, elsewhere).source, KernelSource::heuristic);
  EXPECT_FALSE(fs::exists(file("absent.sqlite")));
  EXPECT_FALSE(fs::exists(default_file()));
}

TEST_F(GetKernelTest, HeuristicOnMissStillTakesAStoredDecision) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=48,k=256,bits=4,group=128,zero=int,act=bf16");
  const x86::X86Variant variant{x86::X86Isa::avx512_fma, 2, 1, 2, 1};
  store_by_hand(file(), hand_made_decision(desc, x86::variant_name(desc, variant), x86::to_json(variant).dump(), 3));
  GetOptions get = options();
  get.on_miss = OnMiss::heuristic;
  const ResolvedKernel resolved = get_kernel(desc, get);
  EXPECT_EQ(resolved.source, KernelSource::cache);
  EXPECT_EQ(resolved.kernel->name(), x86::variant_name(desc, variant));
}

// A shipped cache (GetOptions.shipped_caches): hits are served from it, read immutable (no
// companion file appears beside it, its bytes never change), and a miss tunes into the user's
// cache, which is layered on top.
TEST_F(GetKernelTest, ShippedCacheServesHitsAndNewResultsGoToTheUserCache) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc shipped_shape = parse_descriptor("m=1,n=80,k=256,bits=4,group=128,zero=int,act=bf16");
  const OpDesc new_shape = parse_descriptor("m=1,n=80,k=512,bits=4,group=128,zero=int,act=bf16");
  const x86::X86Variant variant{x86::X86Isa::avx512_fma, 3, 1, 1, 1};  // never a tuning winner here
  const std::string name = x86::variant_name(shipped_shape, variant);
  const fs::path shipped_directory = directory_ / "shipped";
  fs::create_directory(shipped_directory);
  const fs::path shipped = shipped_directory / "model.lowbit.sqlite";
  store_by_hand(shipped, hand_made_decision(shipped_shape, name, x86::to_json(variant).dump(), 7.5));
  fs::remove(shipped.string() + "-wal");
  fs::remove(shipped.string() + "-shm");
  const std::string bytes = read_bytes(shipped);

  GetOptions get = options("user.sqlite");
  get.shipped_caches = {shipped.string()};
  const ResolvedKernel hit = get_kernel(shipped_shape, get);
  EXPECT_EQ(hit.source, KernelSource::cache);
  EXPECT_EQ(hit.kernel->name(), name);
  EXPECT_EQ(hit.median_us, 7.5);
  EXPECT_EQ(check_against_reference(*hit.kernel, 1), "");
  EXPECT_FALSE(fs::exists(file("user.sqlite"))) << "a hit wrote the user's cache";

  const ResolvedKernel tuned = get_kernel(new_shape, get);
  EXPECT_EQ(tuned.source, KernelSource::tuned);
  EXPECT_TRUE(stored_decision(file("user.sqlite"), new_shape)) << "the new result did not go to the user's cache";
  EXPECT_EQ(read_bytes(shipped), bytes) << "the shipped cache was written";
  std::vector<std::string> beside;
  for (const auto& entry : fs::directory_iterator(shipped_directory)) beside.push_back(entry.path().filename());
  EXPECT_EQ(beside, std::vector<std::string>{"model.lowbit.sqlite"}) << "an immutable read left companion files";
}

TEST_F(GetKernelTest, TheUserCacheIsLayeredOverTheShippedOnes) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=80,k=256,bits=4,group=64,zero=int,act=bf16");
  const x86::X86Variant shipped_variant{x86::X86Isa::avx512_fma, 3, 1, 1, 1};
  const x86::X86Variant user_variant{x86::X86Isa::avx512_fma, 2, 1, 1, 1};
  const x86::X86Variant second_variant{x86::X86Isa::avx512_fma, 1, 1, 1, 1};
  store_by_hand(file("first.sqlite"), hand_made_decision(desc, x86::variant_name(desc, shipped_variant),
                                                         x86::to_json(shipped_variant).dump(), 5));
  store_by_hand(file("second.sqlite"), hand_made_decision(desc, x86::variant_name(desc, second_variant),
                                                          x86::to_json(second_variant).dump(), 6));
  GetOptions shipped_only = options("empty_user.sqlite");
  shipped_only.shipped_caches = {file("first.sqlite").string(), file("second.sqlite").string()};
  EXPECT_EQ(get_kernel(desc, shipped_only).kernel->name(), x86::variant_name(desc, shipped_variant))
      << "shipped caches are read in their order";

  store_by_hand(file("user.sqlite"), hand_made_decision(desc, x86::variant_name(desc, user_variant),
                                                        x86::to_json(user_variant).dump(), 4));
  GetOptions layered = options("user.sqlite");
  layered.shipped_caches = shipped_only.shipped_caches;
  const ResolvedKernel resolved = get_kernel(desc, layered);
  EXPECT_EQ(resolved.source, KernelSource::cache);
  EXPECT_EQ(resolved.kernel->name(), x86::variant_name(desc, user_variant)) << "the user's decision must win";
}

TEST_F(GetKernelTest, AMissingShippedCacheIsAWarningOnceAndAMiss) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc first = parse_descriptor("m=2,n=80,k=256,bits=4,group=128,zero=int,act=bf16");
  const OpDesc second = parse_descriptor("m=3,n=80,k=256,bits=4,group=128,zero=int,act=bf16");
  GetOptions get = options();
  get.on_miss = OnMiss::heuristic;
  get.shipped_caches = {file("not_shipped.sqlite").string()};
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(get_kernel(first, get).source, KernelSource::heuristic);
  EXPECT_EQ(get_kernel(second, get).source, KernelSource::heuristic);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_warnings(printed), 1) << printed;
  EXPECT_NE(printed.find("shipped cache '" + file("not_shipped.sqlite").string() + "' does not exist"),
            std::string::npos)
      << printed;
  EXPECT_FALSE(fs::exists(file("not_shipped.sqlite")));
}

TEST(ShippedCachePaths, OptionsElseTheEnvironmentSplitAtColons) {
  {
    testing::ScopedEnvironment listed("LOWBIT_SHIPPED_CACHE", "/srv/a.sqlite::/srv/b c.sqlite:");
    EXPECT_EQ(runtime::shipped_cache_paths(GetOptions{}),
              (std::vector<std::string>{"/srv/a.sqlite", "/srv/b c.sqlite"}));
    GetOptions given;
    given.shipped_caches = {"/opt/x.sqlite"};
    EXPECT_EQ(runtime::shipped_cache_paths(given), given.shipped_caches) << "options win over the environment";
  }
  testing::ScopedEnvironment unset("LOWBIT_SHIPPED_CACHE", std::nullopt);
  EXPECT_TRUE(runtime::shipped_cache_paths(GetOptions{}).empty());
}

// BUG (reported): the process map's key leaves out on_miss, so a heuristic answer given to one
// caller is returned to a later caller that asked for tuning, which is never tuned or stored.
TEST_F(GetKernelTest, TuneRequestAfterAHeuristicAnswerStillTunesAndStores) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=64,k=512,bits=4,group=128,zero=int,act=bf16");
  GetOptions heuristic = options();
  heuristic.on_miss = OnMiss::heuristic;
  ASSERT_EQ(get_kernel(desc, heuristic).source, KernelSource::heuristic);
  const ResolvedKernel tuned = get_kernel(desc, options());
  EXPECT_EQ(tuned.source, KernelSource::tuned) << "got " << to_string(tuned.source);
  EXPECT_TRUE(stored_decision(file(), desc).has_value()) << "on_miss=tune stored nothing";
}

TEST_F(GetKernelTest, UseCacheFalseReadsAndStoresNothing) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=64,k=256,bits=4,group=32,zero=none,act=bf16");
  // A stored decision that use_cache=false must not read.
  const x86::X86Variant variant{x86::X86Isa::avx512_fma, 1, 1, 1, 1};
  store_by_hand(file(), hand_made_decision(desc, x86::variant_name(desc, variant), x86::to_json(variant).dump(), 7));
  setenv("LOWBIT_CACHE", file().c_str(), 1);  // also where an unset path would lead
  const std::string before = read_bytes(file());
  GetOptions get = options();
  get.use_cache = false;
  const ResolvedKernel resolved = get_kernel(desc, get);
  ASSERT_NE(resolved.kernel, nullptr);
  EXPECT_EQ(resolved.source, KernelSource::tuned);
  EXPECT_GT(resolved.median_us, 0);
  EXPECT_EQ(read_bytes(file()), before) << "use_cache=false changed the cache file";
  cache::DecisionCache decisions = cache::DecisionCache::open(file().string(), cache::OpenMode::read_only);
  ASSERT_EQ(decisions.list().size(), 1u);
  EXPECT_EQ(decisions.list()[0].variant_name, x86::variant_name(desc, variant));
  EXPECT_FALSE(fs::exists(default_file()));
  EXPECT_EQ(check_against_reference(*resolved.kernel, 1), "");
}

TEST_F(GetKernelTest, InvalidDescriptorIsInvalidArgumentNamingTheField) {
  OpDesc desc;
  desc.n = 64;
  desc.k = 100;  // group=128 does not divide k
  try {
    get_kernel(desc, options());
    FAIL() << "get_kernel accepted k=100 with group=128";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.field(), "group") << error.what();
  }
  desc.k = 256;
  desc.n = 0;
  try {
    get_kernel(desc, options());
    FAIL() << "get_kernel accepted n=0";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.field(), "n") << error.what();
  }
  EXPECT_FALSE(fs::exists(file()));
  EXPECT_FALSE(fs::exists(default_file()));
}

TEST_F(GetKernelTest, CudaDescriptorNoCudaKernelServesIsUnsupported) {
  // m=0 (any M) on CUDA is served by the families that take M at run time (mma, and wgmma's
  // tiled grid for its row ranges), which need bf16 or fp16 activations: fp32 activations at
  // m=0 are refused on every machine, GPU or not, naming the device.
  OpDesc desc = parse_descriptor("m=0,n=64,k=256,bits=8,group=128,act=fp32,device=cuda:0");
  try {
    get_kernel(desc, options());
    FAIL() << "get_kernel served m=0 act=fp32 on device=cuda:0";
  } catch (const Unsupported& error) {
    EXPECT_NE(std::string(error.what()).find("cuda:0"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(file()));
}

TEST_F(GetKernelTest, FormatNoGeneratorServesIsUnsupported) {
  GetOptions avx2 = options();
  avx2.isa = "avx512_vnni";  // compute=float has no avx512_vnni path (an int8 family)
  for (const char* text : {"m=1,n=64,k=256,bits=4", "m=1,n=64,k=256,bits=8"}) {
    EXPECT_THROW(get_kernel(parse_descriptor(text), avx2), Unsupported) << text;
  }
  EXPECT_FALSE(fs::exists(file()));
}

// GetOptions.isa forces the x86 family (here the AVX2 fallback on an AVX-512 machine) and
// names itself in the error when it is not a family.
TEST_F(GetKernelTest, IsaOptionForcesTheFamily) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=2,n=48,k=256,bits=8,group=64,zero=float,act=fp16");
  GetOptions forced = options();
  forced.on_miss = OnMiss::heuristic;
  forced.isa = "avx2";
  const ResolvedKernel resolved = get_kernel(desc, forced);
  EXPECT_EQ(resolved.kernel->name().rfind("x86_avx2fma_w8g64_", 0), 0u) << resolved.kernel->name();
  EXPECT_EQ(check_against_reference(*resolved.kernel, 2), "");
  forced.isa = "avx512";
  EXPECT_EQ(get_kernel(desc, forced).kernel->name().rfind("x86_avx512", 0), 0u);
  forced.isa = "sse4";
  try {
    get_kernel(desc, forced);
    FAIL() << "GetOptions.isa=sse4 was accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.field(), "isa") << error.what();
  }
}

TEST_F(GetKernelTest, StoredVariantThatCannotBeBuiltWarnsAndRetunes) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  struct Case {
    std::string descriptor;
    std::string variant_json;
  };
  const std::vector<Case> cases{
      {"m=1,n=64,k=256,bits=4,group=64,zero=float,act=bf16", R"({"isa":"nope"})"},
      // Well-formed, but a register block that cannot fit: emit refuses it.
      {"m=1,n=64,k=256,bits=4,group=64,zero=float,act=fp32",
       R"({"isa":"avx512_fma","n_panels":50,"m_rows":1,"k_unroll":1,"threads":1})"}};
  for (const Case& test_case : cases) {
    SCOPED_TRACE(test_case.descriptor + " " + test_case.variant_json);
    const OpDesc desc = parse_descriptor(test_case.descriptor);
    store_by_hand(file(), hand_made_decision(desc, "x86_broken", test_case.variant_json, 1));
    ::testing::internal::CaptureStderr();
    const ResolvedKernel resolved = get_kernel(desc, options());
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_GE(count_warnings(err), 1) << "stderr: " << err;
    EXPECT_NE(err.find(to_string(desc)), std::string::npos) << "the warning does not name the descriptor: " << err;
    ASSERT_NE(resolved.kernel, nullptr);
    EXPECT_EQ(resolved.source, KernelSource::tuned);
    EXPECT_EQ(check_against_reference(*resolved.kernel, 1), "");
    // The broken row was replaced by the new winner.
    const std::optional<cache::Decision> decision = stored_decision(file(), desc);
    ASSERT_TRUE(decision.has_value());
    EXPECT_EQ(decision->variant_name, resolved.kernel->name());
    EXPECT_EQ(nlohmann::json::parse(decision->variant_json), resolved.kernel->variant_json());
  }
}

TEST_F(GetKernelTest, GarbageCacheFileWarnsAndStillGivesAWorkingKernel) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=2,n=64,k=256,bits=4,group=128,zero=int,act=fp16,bias=1");
  std::string garbage;
  for (int i = 0; i < 200; ++i) garbage += "this is not an SQLite database " + std::to_string(i) + "\n";
  write_bytes(file(), garbage);
  ::testing::internal::CaptureStderr();
  const ResolvedKernel resolved = get_kernel(desc, options());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_GE(count_warnings(err), 1) << "stderr: " << err;
  EXPECT_NE(err.find(file().string()), std::string::npos) << "the warning does not name the file: " << err;
  ASSERT_NE(resolved.kernel, nullptr);
  EXPECT_EQ(resolved.source, KernelSource::tuned);
  EXPECT_EQ(check_against_reference(*resolved.kernel, 2), "");
  EXPECT_EQ(read_bytes(file()), garbage) << "a foreign file was modified (docs/cache.md: unusable, untouched)";
}

TEST_F(GetKernelTest, ResolvedKernelsMatchTheReference) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  // Tuned, fixed M, bf16 with bias.
  const OpDesc fixed = parse_descriptor("m=3,n=72,k=384,bits=4,group=128,zero=int,act=bf16,bias=1");
  const ResolvedKernel tuned = get_kernel(fixed, options());
  ASSERT_EQ(tuned.source, KernelSource::tuned);
  EXPECT_EQ(check_against_reference(*tuned.kernel, 3), "");
  // A wrong M is refused for a fixed-M descriptor.
  Problem problem = make_random_problem(fixed, 3, seed_for("wrong m"));
  std::vector<uint8_t> out(static_cast<std::size_t>(4 * fixed.n * 2), testing::poison);
  RunArgs args;
  args.x = problem.x.data();
  args.weights = view(problem.packed);
  args.bias = problem.bias.data();
  args.y = out.data();
  args.m = 2;
  EXPECT_THROW(tuned.kernel->run(args), InvalidArgument);

  // Any M (m=0) through the heuristic, fp32 in and out, served at M around its block height.
  const OpDesc any_m = parse_descriptor("m=0,n=50,k=320,bits=4,group=64,zero=float,act=fp32");
  GetOptions get = options();
  get.on_miss = OnMiss::heuristic;
  const ResolvedKernel heuristic = get_kernel(any_m, get);
  ASSERT_EQ(heuristic.source, KernelSource::heuristic);
  for (int64_t m : {1, 2, 3, 4, 5, 17}) EXPECT_EQ(check_against_reference(*heuristic.kernel, m), "");
}

// BUG (reported): two threads that miss at once each tune and each get their own kernel,
// while the process map keeps only the first; the second caller's object is never handed out
// again, so "the same descriptor gets the same object" fails for concurrent first calls.
TEST_F(GetKernelTest, ConcurrentFirstCallsShareOneKernel) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=64,k=256,bits=4,group=128,zero=none,act=bf16,bias=1");
  std::shared_ptr<const Kernel> kernels[2];
  std::thread threads[2];
  std::latch start(2);  // both threads ask at once, before either has finished tuning
  for (int i = 0; i < 2; ++i)
    threads[i] = std::thread([&, i] {
      start.arrive_and_wait();
      kernels[i] = get_kernel(desc, options()).kernel;
    });
  for (std::thread& thread : threads) thread.join();
  const ResolvedKernel later = get_kernel(desc, options());
  ASSERT_NE(kernels[0], nullptr);
  ASSERT_NE(kernels[1], nullptr);
  EXPECT_EQ(kernels[0].get(), later.kernel.get());
  EXPECT_EQ(kernels[1].get(), later.kernel.get());
}

TEST_F(GetKernelTest, ThreadCapIsPartOfTheDecisionKey) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  if (cpu_info().physical_cores < 2) GTEST_SKIP() << "one core: a thread cap of 1 changes nothing to key";
  const OpDesc desc = parse_descriptor("m=1,n=96,k=256,bits=4,group=128,zero=int,act=bf16");
  GetOptions capped = options();
  capped.max_threads = 1;
  EXPECT_EQ(get_kernel(desc, capped).source, KernelSource::tuned);
  EXPECT_FALSE(stored_decision(file(), desc).has_value()) << "a 1-thread decision was stored under the uncapped key";
  EXPECT_NE(runtime::decision_fingerprint(desc, capped), cpu_info().fingerprint());
  // An uncapped caller must not be served the 1-thread measurement.
  EXPECT_EQ(get_kernel(desc, options()).source, KernelSource::tuned);
  EXPECT_TRUE(stored_decision(file(), desc).has_value());
}

}  // namespace
}  // namespace lowbit
