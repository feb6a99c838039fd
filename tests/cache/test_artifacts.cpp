// Tests of the artifacts table (schema version 2), the content hash that keys it, and the
// upgrade of version 1 files. The CUDA side (cubins compiled by NVRTC, keys from generated
// source) is tested in tests/runtime/test_cuda_cache.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tests/support/test_support.h"
#include "cache/content_hash.h"
#include "cache/decision_cache.h"
#include "cache/sqlite.h"
#include "lowbit/errors.h"

namespace lowbit::cache {
namespace {

namespace fs = std::filesystem;
using testing::count_warnings;
using testing::read_bytes;
using testing::write_bytes;

// Bytes from a seed (never zeros), so a byte lost or reordered on the way shows.
std::vector<char> random_bytes(std::size_t size, std::uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<char> bytes(size);
  for (char& byte : bytes) byte = static_cast<char>(generator() & 0xff);
  return bytes;
}

Artifact sample_artifact(int number) {
  Artifact artifact;
  artifact.key = ContentHash().add("source " + std::to_string(number)).add("sm_90a").hex();
  artifact.name = "cuda_sm90a_gemv_w4g128_m1_w4u" + std::to_string(number);
  artifact.compiler = "nvrtc 13.0";
  artifact.arch = "sm_90a";
  artifact.bytes = random_bytes(40000 + 17 * static_cast<std::size_t>(number), 1234u + static_cast<std::uint32_t>(number));
  artifact.created_at = "2026-11-22T10:00:0" + std::to_string(number % 10) + "Z";
  return artifact;
}

Decision sample_decision() {
  Decision decision;
  decision.descriptor = "m=1,n=4096,k=4096,bits=4,group=128,device=cuda:0";
  decision.fingerprint = "cuda;sm_90;sms=132;name=NVIDIA H100 80GB HBM3";
  decision.generator_version = "cuda_gemv@1;nvrtc=13.0";
  decision.variant_name = "cuda_sm90a_gemv_w4g128_m1_w8u4";
  decision.variant_json = R"({"family":"gemv","warps":8,"unroll":4})";
  decision.median_us = 7.5;
  decision.rel_err = 1e-3;
  decision.candidates = 12;
  decision.protocol = "cuda-rotate-median:1";
  decision.source_json = R"({"driver":13000})";
  decision.created_at = "2026-11-22T10:00:00Z";
  return decision;
}

std::int64_t user_version(const fs::path& path) {
  Database database(path.string(), SQLITE_OPEN_READONLY);
  Statement statement(database, "PRAGMA user_version");
  EXPECT_EQ(statement.step(), StepResult::row);
  return statement.column_int64(0);
}

class ArtifactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("LOWBIT_QUIET");
    std::string pattern = (fs::path(::testing::TempDir()) / "lowbit_artifacts_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << "mkdtemp failed for " << pattern;
    directory_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }
  fs::path file() const { return directory_ / "cache.sqlite"; }

  // A version 1 file as lowbit 0.1 wrote it: the decisions table alone, user_version 1.
  void write_version_1_file() {
    {
      DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
      ASSERT_TRUE(cache.store(sample_decision()));
    }
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec("DROP TABLE artifacts; PRAGMA user_version = 1;");
  }

  fs::path directory_;
};

TEST(ContentHashTest, Sha256OfKnownVectors) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ContentHashTest, PartsAreLengthPrefixedAndEveryPartCounts) {
  const std::string base = ContentHash().add("source").add("nvrtc 13.0").add("sm_90a").add("--std=c++17").hex();
  EXPECT_EQ(base.size(), 64u);
  EXPECT_EQ(base, ContentHash().add("source").add("nvrtc 13.0").add("sm_90a").add("--std=c++17").hex());
  EXPECT_NE(base, ContentHash().add("source ").add("nvrtc 13.0").add("sm_90a").add("--std=c++17").hex());
  EXPECT_NE(base, ContentHash().add("source").add("nvrtc 13.1").add("sm_90a").add("--std=c++17").hex());
  EXPECT_NE(base, ContentHash().add("source").add("nvrtc 13.0").add("sm_89").add("--std=c++17").hex());
  EXPECT_NE(base, ContentHash().add("source").add("nvrtc 13.0").add("sm_90a").add("--std=c++20").hex());
  // Moving bytes between parts changes the digest.
  EXPECT_NE(ContentHash().add("ab").add("c").hex(), ContentHash().add("a").add("bc").hex());
}

TEST_F(ArtifactTest, StoredArtifactReadsBackIdenticalInAFreshCache) {
  const Artifact first = sample_artifact(1);
  const Artifact second = sample_artifact(2);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.store_artifact(first));
    ASSERT_TRUE(cache.store_artifact(second));
  }
  for (OpenMode mode : {OpenMode::read_only, OpenMode::read_write}) {
    DecisionCache cache = DecisionCache::open(file().string(), mode);
    auto found = cache.lookup_artifact(first.key);
    ASSERT_TRUE(found);
    EXPECT_EQ(*found, first);
    found = cache.lookup_artifact(second.key);
    ASSERT_TRUE(found);
    EXPECT_EQ(*found, second);
    EXPECT_FALSE(cache.lookup_artifact(sample_artifact(3).key));
  }
}

TEST_F(ArtifactTest, StoreReplacesTheRowOfItsKeyAndFillsCreatedAt) {
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  Artifact artifact = sample_artifact(4);
  ASSERT_TRUE(cache.store_artifact(artifact));
  artifact.bytes = random_bytes(1000, 99);
  artifact.created_at.clear();
  ASSERT_TRUE(cache.store_artifact(artifact));
  auto found = cache.lookup_artifact(artifact.key);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->bytes, artifact.bytes);
  EXPECT_EQ(found->created_at.size(), 20u) << found->created_at;  // "2026-11-22T10:00:00Z"
}

TEST_F(ArtifactTest, MalformedArtifactIsInvalidArgumentNamingTheField) {
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  auto expect_refused = [&](Artifact artifact, const std::string& field) {
    try {
      cache.store_artifact(artifact);
      FAIL() << "accepted an artifact with a bad " << field;
    } catch (const InvalidArgument& error) {
      EXPECT_NE(std::string(error.what()).find(field), std::string::npos) << error.what();
    }
  };
  Artifact artifact = sample_artifact(5);
  artifact.key = "not-a-hash";
  expect_refused(artifact, "key");
  artifact = sample_artifact(5);
  artifact.key[3] = 'G';
  expect_refused(artifact, "key");
  artifact = sample_artifact(5);
  artifact.bytes.clear();
  expect_refused(artifact, "bytes");
  artifact = sample_artifact(5);
  artifact.arch.clear();
  expect_refused(artifact, "arch");
}

TEST_F(ArtifactTest, DamagedBytesAreAWarningAndAMiss) {
  const Artifact artifact = sample_artifact(6);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.store_artifact(artifact));
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    // Flip one byte inside the BLOB, leaving its stored SHA-256 as it was.
    database.exec("UPDATE artifacts SET bytes = substr(bytes, 1, 100) || x'00' || substr(bytes, 102)");
  }
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(cache.lookup_artifact(artifact.key));
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_warnings(printed), 1) << printed;
  EXPECT_NE(printed.find("damaged"), std::string::npos) << printed;
}

// has_artifact answers from the key alone: a damaged row still counts as stored (lookup_artifact,
// which the build that follows calls, treats it as a miss).
TEST_F(ArtifactTest, HasArtifactAnswersFromTheKeyWithoutReadingTheBytes) {
  const Artifact artifact = sample_artifact(8);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    EXPECT_FALSE(cache.has_artifact(artifact.key));
    ASSERT_TRUE(cache.store_artifact(artifact));
    EXPECT_TRUE(cache.has_artifact(artifact.key));
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec("UPDATE artifacts SET bytes = substr(bytes, 1, 100) || x'00' || substr(bytes, 102)");
  }
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  EXPECT_TRUE(cache.has_artifact(artifact.key));
  EXPECT_FALSE(cache.has_artifact(sample_artifact(9).key));
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(cache.lookup_artifact(artifact.key));
  EXPECT_EQ(count_warnings(::testing::internal::GetCapturedStderr()), 1);

  write_bytes(directory_ / "garbage.sqlite", std::string(4096, 'x'));
  ::testing::internal::CaptureStderr();
  DecisionCache garbage = DecisionCache::open((directory_ / "garbage.sqlite").string(), OpenMode::read_only);
  EXPECT_FALSE(garbage.has_artifact(artifact.key));
  ::testing::internal::GetCapturedStderr();
}

TEST_F(ArtifactTest, ForeignOrGarbageFileIsAWarningAndAMiss) {
  write_bytes(file(), std::string(4096, 'x'));
  ::testing::internal::CaptureStderr();
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  EXPECT_FALSE(cache.lookup_artifact(sample_artifact(7).key));
  EXPECT_FALSE(cache.store_artifact(sample_artifact(7)));
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_warnings(printed), 2) << printed;  // the open, then the refused store
  EXPECT_EQ(read_bytes(file()), std::string(4096, 'x'));

  const fs::path foreign = directory_ / "foreign.sqlite";
  {
    Database database(foreign.string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    database.exec("PRAGMA application_id = 1234; CREATE TABLE artifacts (key TEXT);");
  }
  ::testing::internal::CaptureStderr();
  DecisionCache other = DecisionCache::open(foreign.string(), OpenMode::read_only);
  EXPECT_FALSE(other.usable());
  EXPECT_FALSE(other.lookup_artifact(sample_artifact(7).key));
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("another program"), std::string::npos);
}

TEST_F(ArtifactTest, ReadOnlyCacheRefusesToStoreOnce) {
  { DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write); }
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(cache.store_artifact(sample_artifact(8)));
  EXPECT_FALSE(cache.store_artifact(sample_artifact(9)));
  EXPECT_EQ(count_warnings(::testing::internal::GetCapturedStderr()), 1);
}

TEST_F(ArtifactTest, Version1FileIsReadAsIsByAReader) {
  write_version_1_file();
  ASSERT_EQ(user_version(file()), 1);
  const std::string bytes = read_bytes(file());
  const Decision decision = sample_decision();
  ::testing::internal::CaptureStderr();
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
    ASSERT_TRUE(cache.usable());
    auto found = cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
    ASSERT_TRUE(found);
    EXPECT_EQ(*found, decision);
    EXPECT_FALSE(cache.lookup_artifact(sample_artifact(1).key));  // no table: a quiet miss
  }
  EXPECT_EQ(count_warnings(::testing::internal::GetCapturedStderr()), 0);
  EXPECT_EQ(user_version(file()), 1);
  EXPECT_EQ(read_bytes(file()), bytes) << "a reader modified a version 1 file";
}

TEST_F(ArtifactTest, Version1FileIsUpgradedInPlaceByAWriter) {
  write_version_1_file();
  const Decision decision = sample_decision();
  const Artifact artifact = sample_artifact(10);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.usable());
    EXPECT_FALSE(cache.lookup_artifact(artifact.key));
    ASSERT_TRUE(cache.store_artifact(artifact));
  }
  EXPECT_EQ(user_version(file()), 2);
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  auto found = cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, decision);
  auto stored = cache.lookup_artifact(artifact.key);
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, artifact);
}

TEST_F(ArtifactTest, Version2FileWithoutTheArtifactsTableIsIgnored) {
  write_version_1_file();
  {
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec("PRAGMA user_version = 2");
  }
  ::testing::internal::CaptureStderr();
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(cache.usable());
  EXPECT_NE(printed.find("lacks the artifacts table"), std::string::npos) << printed;
}

}  // namespace
}  // namespace lowbit::cache
