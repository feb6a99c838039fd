// The CUDA side of get_kernel and the cubin cache. Without a GPU: cubins compiled by NVRTC for
// sm_90a are stored and read back, their keys cover source, compiler, arch and options, and
// every CUDA get_kernel path refuses with the reason. On a GPU: tune, store, and a hit in a
// fresh cache connection that loads the stored cubin; the kernels are checked against the
// reference on the device.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cache/content_hash.h"
#include "cache/decision_cache.h"
#include "cache/sqlite.h"
#include "lowbit/errors.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "runtime/cuda_backend.h"
#include "runtime/decisions.h"
#include "tests/support/test_support.h"
#include "tuner/measure.h"

#if LOWBIT_WITH_CUDA
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/registry.h"
#include "tuner/cuda_measure.h"
#endif

namespace lowbit {
namespace {

namespace fs = std::filesystem;

// Odd N (not a multiple of 16 or 64) and K not a multiple of 128, with a partial last group.
constexpr const char* small_cuda = "m=3,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,device=cuda:0";

class CudaCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("LOWBIT_QUIET"); }

  testing::TempDirectory temp_{"lowbit_cuda_cache"};
  const fs::path& directory_ = temp_.path();
  testing::ScopedEnvironment cache_env_{"LOWBIT_CACHE", (directory_ / "default.sqlite").string()};

  fs::path file(const std::string& name = "cache.sqlite") const { return directory_ / name; }
  GetOptions options(const std::string& name = "cache.sqlite") const {
    GetOptions get;
    get.cache_path = file(name).string();
    return get;
  }
};

#if LOWBIT_WITH_CUDA

bool nvrtc_here() { return cuda::nvrtc().available; }
bool gpu_here() { return nvrtc_here() && cuda::driver().available; }

#define SKIP_WITHOUT_NVRTC() \
  if (!nvrtc_here()) GTEST_SKIP() << "NVRTC is not installed here: " << cuda::nvrtc().reason
#define SKIP_WITHOUT_GPU() \
  if (!gpu_here()) GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason

TEST_F(CudaCacheTest, CubinCompiledForSm90aReadsBackIdenticalFromAFreshCache) {
  SKIP_WITHOUT_NVRTC();
  const OpDesc desc = parse_descriptor(small_cuda);
  const cuda::CudaVariant variant = cuda::heuristic(desc, 9);
  const std::string source = cuda::emit(desc, variant);
  const std::string name = cuda::variant_name(desc, variant, "sm_90a");
  const std::vector<char> cubin = cuda::compile_to_cubin(source, name, "sm_90a");
  ASSERT_GT(cubin.size(), 64u);
  const cache::Artifact artifact{runtime::cubin_key(source, "sm_90a"), name, "nvrtc " + cuda::nvrtc_version(),
                                 "sm_90a", cubin, ""};
  {
    cache::DecisionCache writer = cache::DecisionCache::open(file().string(), cache::OpenMode::read_write);
    ASSERT_TRUE(writer.store_artifact(artifact));
  }
  cache::DecisionCache reader = cache::DecisionCache::open(file().string(), cache::OpenMode::read_only);
  auto stored = reader.lookup_artifact(artifact.key);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->bytes, cubin);
  EXPECT_EQ(stored->name, name);
  EXPECT_EQ(stored->arch, "sm_90a");
  // NVRTC is deterministic: compiling the same source again gives the bytes the key promises.
  EXPECT_EQ(cuda::compile_to_cubin(source, name, "sm_90a"), cubin);
}

TEST_F(CudaCacheTest, CubinKeyCoversSourceCompilerArchAndOptions) {
  SKIP_WITHOUT_NVRTC();
  const OpDesc desc = parse_descriptor(small_cuda);
  const std::string source = cuda::emit(desc, cuda::heuristic(desc, 9));
  const std::string key = runtime::cubin_key(source, "sm_90a");
  EXPECT_EQ(key, runtime::cubin_key(source, "sm_90a"));
  EXPECT_NE(key, runtime::cubin_key(source + "\n", "sm_90a"));
  EXPECT_NE(key, runtime::cubin_key(source, "sm_89"));
  // Another variant is another source.
  cuda::CudaVariant other = cuda::heuristic(desc, 9);
  other.unroll = other.unroll == 2 ? 4 : 2;
  EXPECT_NE(key, runtime::cubin_key(cuda::emit(desc, other), "sm_90a"));

  // The key is the documented hash; change one option, or the compiler version, and it moves.
  const auto hash_with = [&](const std::string& compiler, std::vector<std::string> options) {
    cache::ContentHash hash;
    hash.add("cubin").add(source).add(compiler).add("sm_90a");
    for (const std::string& option : options) hash.add(option);
    return hash.hex();
  };
  const std::vector<std::string> options = cuda::compile_options("sm_90a");
  EXPECT_EQ(key, hash_with("nvrtc " + cuda::nvrtc_version(), options));
  std::vector<std::string> changed = options;
  changed.back() += "x";
  EXPECT_NE(key, hash_with("nvrtc " + cuda::nvrtc_version(), changed));
  EXPECT_NE(key, hash_with("nvrtc 0.0", options));
}

TEST_F(CudaCacheTest, WithoutAGpuEveryCudaPathRefusesWithTheReason) {
  if (gpu_here()) GTEST_SKIP() << "a GPU is here: the refusal paths cannot be reached";
  const OpDesc desc = parse_descriptor(small_cuda);
  for (OnMiss on_miss : {OnMiss::tune, OnMiss::heuristic}) {
    GetOptions get = options();
    get.on_miss = on_miss;
    try {
      get_kernel(desc, get);
      FAIL() << "get_kernel served a CUDA descriptor without a GPU";
    } catch (const Unsupported& error) {
      const std::string text = error.what();
      EXPECT_NE(text.find("cuda:0"), std::string::npos) << text;
      EXPECT_TRUE(text.find("driver") != std::string::npos || text.find("NVRTC") != std::string::npos ||
                  text.find("device") != std::string::npos)
          << text;
    }
  }
  EXPECT_FALSE(fs::exists(file()));
}

// Checks a CUDA kernel against the reference on the device (poisoned output, guard bytes).
void expect_correct(const Kernel& kernel) {
  const OpDesc& desc = kernel.desc();
  const Problem problem = make_random_problem(desc, desc.m, seed_for("cuda cache " + kernel.name()));
  const std::vector<double> reference =
      reference_matmul(desc, desc.m, problem.x.data(), problem.weights, desc.bias ? problem.bias.data() : nullptr,
                       nullptr);
  tuner::DeviceInputs inputs(problem);
  const tuner::CandidateResult result = tuner::verify_cuda(kernel, inputs, reference);
  EXPECT_TRUE(result.verified) << kernel.name() << ": " << result.failure << " (seed from 'cuda cache "
                               << kernel.name() << "')";
}

TEST_F(CudaCacheTest, TuneStoresDecisionAndCubinThenAFreshCacheHitLoadsIt) {
  SKIP_WITHOUT_GPU();
  const OpDesc desc = parse_descriptor(small_cuda);
  const ResolvedKernel tuned = get_kernel(desc, options());
  EXPECT_EQ(tuned.source, KernelSource::tuned);
  expect_correct(*tuned.kernel);

  cache::DecisionCache reader = cache::DecisionCache::open(file().string(), cache::OpenMode::read_only);
  auto decision = reader.lookup(to_string(desc), runtime::cuda_fingerprint(desc), runtime::cuda_generator_version());
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->variant_name, tuned.kernel->name());
  EXPECT_EQ(decision->protocol, std::string(tuner::cuda_protocol_id));
  EXPECT_EQ(nlohmann::json::parse(decision->source_json).at("search").get<std::string>(),
            "preferred family + sentinels")
      << "get_kernel's tune takes the default search";
  const cuda::CudaVariant winner = cuda::variant_from_json(nlohmann::json::parse(decision->variant_json));
  const std::string arch = cuda::device_info(0).arch();
  const std::string content_key = runtime::cubin_key(cuda::emit(desc, winner), arch);
  auto artifact = reader.lookup_artifact(content_key);
  ASSERT_TRUE(artifact) << "the winner's cubin was not stored";
  EXPECT_EQ(decision->artifact_key, content_key) << "the decision does not name the cubin it timed";

  // Another path (as another process would open it; the process map is keyed by path) hits.
  fs::copy_file(file(), file("copy.sqlite"));
  const ResolvedKernel hit = get_kernel(desc, options("copy.sqlite"));
  EXPECT_EQ(hit.source, KernelSource::cache);
  EXPECT_EQ(hit.kernel->name(), tuned.kernel->name());
  EXPECT_NE(hit.kernel.get(), tuned.kernel.get());
  expect_correct(*hit.kernel);
}

// Tunes small_cuda into file(), then rewrites the decision's artifact_key in a copy to
// `named_key` (moving the winner's cubin there when move_cubin): what a hit does with the
// decision's key shows in what the copy holds afterwards.
struct RekeyedCopy {
  std::string content_key;  // the winner's cubin's content key
  ResolvedKernel tuned;
};

RekeyedCopy tune_then_rekey(const OpDesc& desc, const GetOptions& tuning, const fs::path& copy,
                            const std::string& named_key, bool move_cubin) {
  RekeyedCopy result;
  result.tuned = get_kernel(desc, tuning);
  fs::copy_file(tuning.cache_path, copy);
  cache::DecisionCache writer = cache::DecisionCache::open(copy.string(), cache::OpenMode::read_write);
  cache::Decision decision =
      *writer.lookup(to_string(desc), runtime::cuda_fingerprint(desc), runtime::cuda_generator_version());
  result.content_key = decision.artifact_key;
  if (move_cubin) {
    cache::Artifact artifact = *writer.lookup_artifact(result.content_key);
    artifact.key = named_key;
    EXPECT_TRUE(writer.store_artifact(artifact));
    cache::Database database(copy.string(), SQLITE_OPEN_READWRITE);
    cache::Statement erase(database, "DELETE FROM artifacts WHERE key = ?1");
    erase.bind_text(1, result.content_key);
    erase.step();
  }
  decision.artifact_key = named_key;
  EXPECT_TRUE(writer.store(decision));
  return result;
}

TEST_F(CudaCacheTest, AHitLoadsTheCubinItsDecisionNamesWithoutGeneratingTheSource) {
  SKIP_WITHOUT_GPU();
  const OpDesc desc = parse_descriptor(small_cuda);
  const std::string moved_key = cache::ContentHash().add("moved cubin").hex();
  const RekeyedCopy copy = tune_then_rekey(desc, options(), file("moved.sqlite"), moved_key, true);
  const ResolvedKernel hit = get_kernel(desc, options("moved.sqlite"));
  EXPECT_EQ(hit.source, KernelSource::cache);
  EXPECT_EQ(hit.kernel->name(), copy.tuned.kernel->name());
  expect_correct(*hit.kernel);
  // Had the hit looked under the content key, it would have missed, compiled and stored there.
  cache::DecisionCache reader = cache::DecisionCache::open(file("moved.sqlite").string(), cache::OpenMode::read_only);
  EXPECT_FALSE(reader.has_artifact(copy.content_key)) << "the hit compiled instead of loading the named cubin";
}

TEST_F(CudaCacheTest, ADecisionWhoseCubinIsGoneCompilesItAgain) {
  SKIP_WITHOUT_GPU();
  const OpDesc desc = parse_descriptor(small_cuda);
  const std::string missing_key = cache::ContentHash().add("no such cubin").hex();
  {
    // The decision names a key nothing is stored under, and the winner's own cubin is removed.
    tune_then_rekey(desc, options(), file("gone.sqlite"), missing_key, true);
    cache::Database database(file("gone.sqlite").string(), SQLITE_OPEN_READWRITE);
    cache::Statement erase(database, "DELETE FROM artifacts WHERE key = ?1");
    erase.bind_text(1, missing_key);
    erase.step();
  }
  const ResolvedKernel hit = get_kernel(desc, options("gone.sqlite"));
  EXPECT_EQ(hit.source, KernelSource::cache);
  expect_correct(*hit.kernel);
  cache::DecisionCache reader = cache::DecisionCache::open(file("gone.sqlite").string(), cache::OpenMode::read_only);
  const cuda::CudaVariant variant = cuda::variant_from_json(hit.kernel->variant_json());
  EXPECT_TRUE(reader.has_artifact(runtime::cubin_key(cuda::emit(desc, variant), cuda::device_info(0).arch())))
      << "the recompiled cubin was not stored under its content key";
}

TEST_F(CudaCacheTest, HeuristicMissCompilesOnceAndStoresTheCubin) {
  SKIP_WITHOUT_GPU();
  const OpDesc desc = parse_descriptor("m=1,n=520,k=4096,bits=4,group=128,zero=none,act=fp16,device=cuda:0");
  GetOptions get = options();
  get.on_miss = OnMiss::heuristic;
  const ResolvedKernel first = get_kernel(desc, get);
  EXPECT_EQ(first.source, KernelSource::heuristic);
  expect_correct(*first.kernel);
  const std::string arch = cuda::device_info(0).arch();
  const std::string key = runtime::cubin_key(cuda::emit(desc, cuda::heuristic(desc, cuda::device_info(0).major)), arch);
  cache::DecisionCache reader = cache::DecisionCache::open(file().string(), cache::OpenMode::read_only);
  EXPECT_TRUE(reader.lookup_artifact(key)) << "the heuristic's cubin was not stored";
  // No decision: a heuristic answer is not a measurement.
  EXPECT_FALSE(reader.lookup(to_string(desc), runtime::cuda_fingerprint(desc), runtime::cuda_generator_version()));
}

#else

TEST_F(CudaCacheTest, BuildWithoutCudaRefusesCudaDescriptors) {
  const OpDesc desc = parse_descriptor(small_cuda);
  EXPECT_THROW(get_kernel(desc, options()), Unsupported);
}

#endif

}  // namespace
}  // namespace lowbit
