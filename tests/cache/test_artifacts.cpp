// Tests of the artifacts table (schema version 2), the content hash that keys it, the
// decisions' artifact_key (version 3), m=0's row plans (version 4), and the upgrade of version 1,
// 2 and 3 files. The CUDA side (cubins compiled by NVRTC, keys from generated
// source) is tested in tests/runtime/test_cuda_cache.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
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
  decision.generator_version = "cuda_gemv@1";
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

RowPlan sample_row_plan(int number = 1) {
  RowPlan plan;
  plan.descriptor = "m=0,n=" + std::to_string(1000 + number) + ",k=4160,bits=4,group=64,zero=int,device=cuda:0";
  plan.fingerprint = "cuda;sm_90;sms=132;name=NVIDIA H100 80GB HBM3";
  plan.generator_version = "cuda_gemv@4+cuda_mma@3;templates=0123456789abcdef";
  plan.plan_json = R"({"exact_rows":[{"m":1,"artifact_key":")" + sample_artifact(number).key +
                   R"(","variant":{"family":"gemv_mma"}}],"unserved_rows":[],"ranges":[]})";
  plan.created_at = "2026-11-24T03:00:0" + std::to_string(number % 10) + "Z";
  return plan;
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

  // A version 1 file as lowbit 0.1 wrote it: the decisions table of eleven columns (no
  // artifact_key) alone, holding sample_decision(), user_version 1.
  void write_version_1_file() {
    Database database(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    database.exec("PRAGMA application_id = " + std::to_string(application_id) + "; PRAGMA user_version = 1;");
    database.exec(
        "CREATE TABLE decisions (descriptor TEXT NOT NULL, fingerprint TEXT NOT NULL, "
        "generator_version TEXT NOT NULL, variant_name TEXT NOT NULL, variant_json TEXT NOT NULL, "
        "median_us REAL NOT NULL, rel_err REAL NOT NULL, candidates INTEGER NOT NULL, protocol TEXT NOT NULL, "
        "source_json TEXT NOT NULL, created_at TEXT NOT NULL, "
        "PRIMARY KEY (descriptor, fingerprint, generator_version))");
    const Decision decision = sample_decision();
    Statement insert(database, "INSERT INTO decisions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    insert.bind_text(1, decision.descriptor);
    insert.bind_text(2, decision.fingerprint);
    insert.bind_text(3, decision.generator_version);
    insert.bind_text(4, decision.variant_name);
    insert.bind_text(5, decision.variant_json);
    insert.bind_double(6, decision.median_us);
    insert.bind_double(7, decision.rel_err);
    insert.bind_int64(8, decision.candidates);
    insert.bind_text(9, decision.protocol);
    insert.bind_text(10, decision.source_json);
    insert.bind_text(11, decision.created_at);
    ASSERT_EQ(insert.step(), StepResult::done);
  }

  // A version 2 file as lowbit wrote it before artifact_key: version 1's table, the artifacts
  // table holding sample_artifact(3), user_version 2.
  void write_version_2_file() {
    write_version_1_file();
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec(
        "CREATE TABLE artifacts (key TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, compiler TEXT NOT NULL, "
        "arch TEXT NOT NULL, bytes BLOB NOT NULL, bytes_sha256 TEXT NOT NULL, created_at TEXT NOT NULL);"
        "PRAGMA user_version = 2;");
    const Artifact artifact = sample_artifact(3);
    Statement insert(database, "INSERT INTO artifacts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    insert.bind_text(1, artifact.key);
    insert.bind_text(2, artifact.name);
    insert.bind_text(3, artifact.compiler);
    insert.bind_text(4, artifact.arch);
    insert.bind_blob(5, artifact.bytes);
    insert.bind_text(6, sha256_hex(std::string_view(artifact.bytes.data(), artifact.bytes.size())));
    insert.bind_text(7, artifact.created_at);
    ASSERT_EQ(insert.step(), StepResult::done);
  }

  // A version 3 file as lowbit wrote it before row plans: version 2's tables with the decisions'
  // artifact_key column (the sample decision's empty), user_version 3.
  void write_version_3_file() {
    write_version_2_file();
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec(
        "ALTER TABLE decisions ADD COLUMN artifact_key TEXT NOT NULL DEFAULT '';"
        "PRAGMA user_version = 3;");
  }

  // A reader of the file (schema `version`, holding sample_decision() and from version 2
  // sample_artifact(3)) finds the decision with an empty artifact_key, the artifact where the
  // file has the table (a version 1 file's lookup is a quiet miss), no row plan (a quiet miss
  // before version 4), warns of nothing and leaves the file byte for byte as it was.
  void expect_read_as_is(int version) {
    ASSERT_EQ(user_version(file()), version);
    const std::string bytes = read_bytes(file());
    const Decision decision = sample_decision();
    ::testing::internal::CaptureStderr();
    {
      DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
      ASSERT_TRUE(cache.usable());
      auto found = cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
      ASSERT_TRUE(found);
      EXPECT_EQ(*found, decision);
      EXPECT_TRUE(found->artifact_key.empty());
      EXPECT_EQ(cache.list().size(), 1u);
      auto stored = cache.lookup_artifact(sample_artifact(3).key);
      EXPECT_EQ(stored.has_value(), version >= 2);
      if (stored) {
        EXPECT_EQ(*stored, sample_artifact(3));
      }
      EXPECT_FALSE(cache.lookup_row_plan(sample_row_plan().descriptor, sample_row_plan().fingerprint,
                                         sample_row_plan().generator_version));
      EXPECT_TRUE(cache.list_row_plans().empty());
    }
    EXPECT_EQ(count_warnings(::testing::internal::GetCapturedStderr()), 0);
    EXPECT_EQ(user_version(file()), version);
    EXPECT_EQ(read_bytes(file()), bytes) << "a reader modified a version " << version << " file";
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

TEST_F(ArtifactTest, RowPlanRoundTripsAndIsReplacedByItsKey) {
  RowPlan plan = sample_row_plan(1);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    EXPECT_FALSE(cache.lookup_row_plan(plan.descriptor, plan.fingerprint, plan.generator_version));
    ASSERT_TRUE(cache.store_row_plan(plan));
    ASSERT_TRUE(cache.store_row_plan(sample_row_plan(2)));
    plan.plan_json = R"({"exact_rows":[],"unserved_rows":[1,2],"ranges":[]})";
    ASSERT_TRUE(cache.store_row_plan(plan));  // the same key: replaces the first
  }
  for (OpenMode mode : {OpenMode::read_only, OpenMode::immutable}) {
    DecisionCache cache = DecisionCache::open(file().string(), mode);
    auto found = cache.lookup_row_plan(plan.descriptor, plan.fingerprint, plan.generator_version);
    ASSERT_TRUE(found);
    EXPECT_EQ(*found, plan);
    EXPECT_FALSE(cache.lookup_row_plan(plan.descriptor, plan.fingerprint, "cuda_gemv@5"));
    EXPECT_FALSE(cache.lookup_row_plan(plan.descriptor, "cuda;sm_80;sms=108;name=A100", plan.generator_version));
    const std::vector<RowPlan> plans = cache.list_row_plans();
    ASSERT_EQ(plans.size(), 2u);
    EXPECT_EQ(plans[0], plan);  // n=1001 sorts before n=1002
    EXPECT_EQ(plans[1], sample_row_plan(2));
    EXPECT_TRUE(cache.list().empty()) << "a row plan is not a decision";
  }
}

TEST_F(ArtifactTest, RowPlanFillsItsCreationTime) {
  RowPlan plan = sample_row_plan(3);
  plan.created_at.clear();
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  ASSERT_TRUE(cache.store_row_plan(plan));
  auto found = cache.lookup_row_plan(plan.descriptor, plan.fingerprint, plan.generator_version);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->created_at.size(), std::string("2026-11-24T03:00:00Z").size()) << found->created_at;
  EXPECT_EQ(found->created_at.back(), 'Z');
}

TEST_F(ArtifactTest, MalformedRowPlanIsRefusedByName) {
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  auto refused_field = [&](const RowPlan& plan) -> std::string {
    try {
      cache.store_row_plan(plan);
    } catch (const InvalidArgument& error) {
      return error.field();
    }
    return "(accepted)";
  };
  RowPlan plan = sample_row_plan();
  plan.descriptor.clear();
  EXPECT_EQ(refused_field(plan), "descriptor");
  plan = sample_row_plan();
  plan.fingerprint.clear();
  EXPECT_EQ(refused_field(plan), "fingerprint");
  plan = sample_row_plan();
  plan.generator_version.clear();
  EXPECT_EQ(refused_field(plan), "generator_version");
  plan = sample_row_plan();
  plan.plan_json = "[1, 2]";
  EXPECT_EQ(refused_field(plan), "plan_json");
  plan.plan_json = "{not json";
  EXPECT_EQ(refused_field(plan), "plan_json");
  EXPECT_TRUE(cache.list_row_plans().empty());
}

TEST_F(ArtifactTest, ReadOnlyCacheRefusesToStoreARowPlan) {
  { DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write); }
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(cache.store_row_plan(sample_row_plan(1)));
  EXPECT_FALSE(cache.store_row_plan(sample_row_plan(2)));
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_warnings(printed), 1) << printed;
  EXPECT_NE(printed.find("row plans are not stored"), std::string::npos) << printed;
}

TEST_F(ArtifactTest, ArtifactKeysListsEveryKeyInOrder) {
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  EXPECT_TRUE(cache.artifact_keys().empty());
  std::vector<std::string> keys;
  for (int number : {4, 1, 7}) {
    ASSERT_TRUE(cache.store_artifact(sample_artifact(number)));
    keys.push_back(sample_artifact(number).key);
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(cache.artifact_keys(), keys);
}

// export_to writes one self-contained file with everything (what a WAL still held included, a
// reader being kept open meanwhile), out of WAL mode; it never overwrites a file.
TEST_F(ArtifactTest, ExportWritesEverythingToANewSelfContainedFile) {
  const Decision decision = sample_decision();
  const Artifact artifact = sample_artifact(5);
  const RowPlan plan = sample_row_plan(5);
  { DecisionCache created = DecisionCache::open(file().string(), OpenMode::read_write); }
  DecisionCache kept = DecisionCache::open(file().string(), OpenMode::read_only);
  {
    DecisionCache writer = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(writer.store(decision));
    ASSERT_TRUE(writer.store_artifact(artifact));
    ASSERT_TRUE(writer.store_row_plan(plan));
  }
  const fs::path out = directory_ / "shipped.sqlite";
  kept.export_to(out.string());
  EXPECT_FALSE(fs::exists(out.string() + "-wal"));
  DecisionCache shipped = DecisionCache::open(out.string(), OpenMode::immutable);
  ASSERT_TRUE(shipped.usable());
  EXPECT_EQ(shipped.lookup(decision.descriptor, decision.fingerprint, decision.generator_version), decision);
  EXPECT_EQ(shipped.lookup_artifact(artifact.key), artifact);
  EXPECT_EQ(shipped.lookup_row_plan(plan.descriptor, plan.fingerprint, plan.generator_version), plan);
  EXPECT_EQ(user_version(out), schema_version);
  {
    Database database(out.string(), SQLITE_OPEN_READONLY);
    Statement mode(database, "PRAGMA journal_mode");
    ASSERT_EQ(mode.step(), StepResult::row);
    EXPECT_EQ(mode.column_text(0), "delete");
    Statement id(database, "PRAGMA application_id");
    ASSERT_EQ(id.step(), StepResult::row);
    EXPECT_EQ(id.column_int64(0), application_id);
  }
  const std::string bytes = read_bytes(out);
  try {
    kept.export_to(out.string());
    ADD_FAILURE() << "export_to overwrote " << out;
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.field(), "out");
    EXPECT_NE(std::string(error.what()).find("exists"), std::string::npos) << error.what();
  }
  EXPECT_EQ(read_bytes(out), bytes);
}

TEST_F(ArtifactTest, ExportOfAnUnusableCacheIsRefused) {
  write_bytes(file(), "not a database at all, just text");
  ::testing::internal::CaptureStderr();
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  ::testing::internal::GetCapturedStderr();
  const fs::path out = directory_ / "out.sqlite";
  EXPECT_THROW(cache.export_to(out.string()), InvalidArgument);
  EXPECT_FALSE(fs::exists(out));
}

// Two files for merge_from: the target holds decision A (7.5 us, created at 10:00), the row plan
// of sample_row_plan(1) (created 03:00:01) and artifact 1; the source holds A again, faster
// (3.0 us) but older (09:00), decision B, artifacts 1 and 2, and plan 1 again, later (03:00:09).
struct MergeFiles {
  fs::path target;
  fs::path source;
};

MergeFiles write_merge_files(const fs::path& directory) {
  MergeFiles files{directory / "target.sqlite", directory / "source.sqlite"};
  {
    DecisionCache target = DecisionCache::open(files.target.string(), OpenMode::read_write);
    EXPECT_TRUE(target.store(sample_decision()));
    EXPECT_TRUE(target.store_row_plan(sample_row_plan(1)));
    EXPECT_TRUE(target.store_artifact(sample_artifact(1)));
  }
  DecisionCache source = DecisionCache::open(files.source.string(), OpenMode::read_write);
  Decision faster = sample_decision();
  faster.median_us = 3.0;
  faster.variant_name = "cuda_sm90a_gemv_w4g128_m1_w16u2";
  faster.created_at = "2026-11-22T09:00:00Z";
  faster.artifact_key = sample_artifact(2).key;
  EXPECT_TRUE(source.store(faster));
  Decision other = sample_decision();
  other.descriptor = "m=4,n=4096,k=4096,bits=4,group=128,device=cuda:0";
  EXPECT_TRUE(source.store(other));
  EXPECT_TRUE(source.store_artifact(sample_artifact(1)));
  EXPECT_TRUE(source.store_artifact(sample_artifact(2)));
  RowPlan later = sample_row_plan(1);
  later.plan_json = R"({"any_rows":null,"exact_rows":[],"unserved_rows":[],"ranges":[]})";
  later.created_at = "2026-11-24T03:00:09Z";
  EXPECT_TRUE(source.store_row_plan(later));
  return files;
}

TEST_F(ArtifactTest, MergeAddsWhatTheTargetLacksAndSettlesConflictsByTheRule) {
  struct Case {
    ConflictRule rule;
    double median_us;         // the target's decision A afterwards
    bool plan_replaced;
  };
  for (const Case& expected : {Case{ConflictRule::faster, 3.0, true}, Case{ConflictRule::newer, 7.5, true},
                               Case{ConflictRule::keep, 7.5, false}}) {
    SCOPED_TRACE(static_cast<int>(expected.rule));
    const fs::path directory = directory_ / std::to_string(static_cast<int>(expected.rule));
    fs::create_directories(directory);
    const MergeFiles files = write_merge_files(directory);
    const std::string source_bytes = read_bytes(files.source);
    DecisionCache target = DecisionCache::open(files.target.string(), OpenMode::read_write);
    const MergeCounts counts = target.merge_from(files.source.string(), expected.rule);
    EXPECT_EQ(counts.decisions_added, 1);
    EXPECT_EQ(counts.decisions_replaced, expected.median_us == 3.0 ? 1 : 0);
    EXPECT_EQ(counts.decisions_kept, expected.median_us == 3.0 ? 0 : 1);
    EXPECT_EQ(counts.artifacts_added, 1);  // artifact 1 is the same bytes under the same key
    EXPECT_EQ(counts.artifacts_damaged, 0);
    EXPECT_EQ(counts.row_plans_added, 0);
    EXPECT_EQ(counts.row_plans_replaced, expected.plan_replaced ? 1 : 0);
    EXPECT_EQ(counts.row_plans_kept, expected.plan_replaced ? 0 : 1);
    const Decision decision = sample_decision();
    const auto settled = target.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
    ASSERT_TRUE(settled);
    EXPECT_EQ(settled->median_us, expected.median_us);
    EXPECT_EQ(target.list().size(), 2u);
    EXPECT_EQ(target.artifact_keys().size(), 2u);
    EXPECT_EQ(target.lookup_artifact(sample_artifact(2).key), sample_artifact(2));
    const RowPlan plan = sample_row_plan(1);
    const auto stored_plan = target.lookup_row_plan(plan.descriptor, plan.fingerprint, plan.generator_version);
    ASSERT_TRUE(stored_plan);
    EXPECT_EQ(stored_plan->created_at, expected.plan_replaced ? "2026-11-24T03:00:09Z" : plan.created_at);
    EXPECT_EQ(read_bytes(files.source), source_bytes) << "merge wrote to its source";
    // Merging the same file again changes nothing.
    const MergeCounts again = target.merge_from(files.source.string(), expected.rule);
    EXPECT_EQ(again.decisions_added + again.decisions_replaced + again.artifacts_added + again.row_plans_added +
                  again.row_plans_replaced,
              0);
  }
}

TEST_F(ArtifactTest, MergeReadsAnOlderFileAsItIs) {
  write_version_1_file();
  const fs::path target_path = directory_ / "target.sqlite";
  DecisionCache target = DecisionCache::open(target_path.string(), OpenMode::read_write);
  const MergeCounts counts = target.merge_from(file().string(), ConflictRule::faster);
  EXPECT_EQ(counts.decisions_added, 1);
  EXPECT_EQ(counts.artifacts_added, 0);
  const Decision decision = sample_decision();
  EXPECT_EQ(target.lookup(decision.descriptor, decision.fingerprint, decision.generator_version), decision);
  EXPECT_EQ(user_version(file()), 1) << "merge upgraded its source";
}

TEST_F(ArtifactTest, MergeIsAllOrNothing) {
  const MergeFiles files = write_merge_files(directory_);
  {
    // A row no lowbit writes: a negative median, past store()'s validation.
    Database database(files.source.string(), SQLITE_OPEN_READWRITE);
    database.exec("UPDATE decisions SET median_us = -1 WHERE descriptor LIKE 'm=4,%'");
  }
  const std::string target_bytes = read_bytes(files.target);
  DecisionCache target = DecisionCache::open(files.target.string(), OpenMode::read_write);
  EXPECT_THROW(target.merge_from(files.source.string(), ConflictRule::faster), InvalidArgument);
  EXPECT_EQ(target.list().size(), 1u);
  EXPECT_EQ(target.artifact_keys().size(), 1u);
}

TEST_F(ArtifactTest, MergeLeavesADamagedArtifactOutWithAWarning) {
  const MergeFiles files = write_merge_files(directory_);
  {
    Database database(files.source.string(), SQLITE_OPEN_READWRITE);
    Statement damage(database, "UPDATE artifacts SET bytes_sha256 = ?1 WHERE key = ?2");
    damage.bind_text(1, std::string(64, '0'));
    damage.bind_text(2, sample_artifact(2).key);
    ASSERT_EQ(damage.step(), StepResult::done);
  }
  DecisionCache target = DecisionCache::open(files.target.string(), OpenMode::read_write);
  ::testing::internal::CaptureStderr();
  const MergeCounts counts = target.merge_from(files.source.string(), ConflictRule::faster);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(counts.artifacts_damaged, 1);
  EXPECT_EQ(counts.artifacts_added, 0);
  EXPECT_NE(printed.find("damaged"), std::string::npos) << printed;
  EXPECT_FALSE(target.has_artifact(sample_artifact(2).key));
}

TEST_F(ArtifactTest, SameFileKnowsOneFileByEveryPathAndMissingFilesByTheirNames) {
  write_bytes(file(), "x");
  EXPECT_TRUE(same_file(file().string(), (directory_ / "." / "cache.sqlite").string()));
  fs::create_symlink(file(), directory_ / "link.sqlite");
  EXPECT_TRUE(same_file(file().string(), (directory_ / "link.sqlite").string()));
  EXPECT_TRUE(same_file((directory_ / "new.sqlite").string(), (directory_ / "sub" / ".." / "new.sqlite").string()));
  EXPECT_FALSE(same_file((directory_ / "new.sqlite").string(), file().string()));
  EXPECT_FALSE(same_file((directory_ / "a.sqlite").string(), (directory_ / "b.sqlite").string()));
}

TEST_F(ArtifactTest, MergeRefusesAReadOnlyTargetAnUnusableSourceAndItself) {
  const MergeFiles files = write_merge_files(directory_);
  auto refused_field = [](auto&& merge) -> std::string {
    try {
      merge();
    } catch (const InvalidArgument& error) {
      return error.field();
    }
    return "(merged)";
  };
  DecisionCache reader = DecisionCache::open(files.target.string(), OpenMode::read_only);
  EXPECT_EQ(refused_field([&] { reader.merge_from(files.source.string(), ConflictRule::faster); }), "db");
  DecisionCache target = DecisionCache::open(files.target.string(), OpenMode::read_write);
  EXPECT_EQ(refused_field([&] { target.merge_from(files.target.string(), ConflictRule::faster); }), "from");
  write_bytes(directory_ / "text.sqlite", "this is not a cache");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(refused_field([&] { target.merge_from((directory_ / "text.sqlite").string(), ConflictRule::faster); }),
            "from");
  EXPECT_EQ(refused_field([&] { target.merge_from((directory_ / "missing.sqlite").string(), ConflictRule::faster); }),
            "from");
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(target.list().size(), 1u);
}

TEST_F(ArtifactTest, Version1FileIsReadAsIsByAReader) {
  write_version_1_file();
  expect_read_as_is(1);
}

TEST_F(ArtifactTest, Version1FileIsUpgradedInPlaceByAWriter) {
  write_version_1_file();
  const Decision decision = sample_decision();
  const Artifact artifact = sample_artifact(10);
  Decision keyed = sample_decision();
  keyed.descriptor = "m=2,n=4096,k=4096,bits=4,group=128,device=cuda:0";
  keyed.artifact_key = artifact.key;
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.usable());
    EXPECT_FALSE(cache.lookup_artifact(artifact.key));
    ASSERT_TRUE(cache.store_artifact(artifact));
    ASSERT_TRUE(cache.store(keyed));
  }
  EXPECT_EQ(user_version(file()), schema_version);
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  auto found = cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, decision);  // the old row's artifact_key reads empty
  auto found_keyed = cache.lookup(keyed.descriptor, keyed.fingerprint, keyed.generator_version);
  ASSERT_TRUE(found_keyed);
  EXPECT_EQ(*found_keyed, keyed);
  auto stored = cache.lookup_artifact(artifact.key);
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, artifact);
}

TEST_F(ArtifactTest, Version2FileIsReadAsIsByAReader) {
  write_version_2_file();
  expect_read_as_is(2);
}

TEST_F(ArtifactTest, Version2FileIsUpgradedInPlaceByAWriter) {
  write_version_2_file();
  Decision keyed = sample_decision();  // the same key: it replaces the old row
  keyed.artifact_key = sample_artifact(3).key;
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.usable());
    const auto old = cache.lookup(keyed.descriptor, keyed.fingerprint, keyed.generator_version);
    ASSERT_TRUE(old);
    EXPECT_EQ(*old, sample_decision());
    ASSERT_TRUE(cache.store(keyed));
  }
  EXPECT_EQ(user_version(file()), schema_version);
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  auto found = cache.lookup(keyed.descriptor, keyed.fingerprint, keyed.generator_version);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, keyed);
  auto stored = cache.lookup_artifact(keyed.artifact_key);
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, sample_artifact(3));
}

TEST_F(ArtifactTest, Version3FileIsReadAsIsByAReader) {
  write_version_3_file();
  expect_read_as_is(3);
}

TEST_F(ArtifactTest, Version3FileIsUpgradedInPlaceByAWriter) {
  write_version_3_file();
  const RowPlan plan = sample_row_plan();
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.usable());
    EXPECT_FALSE(cache.lookup_row_plan(plan.descriptor, plan.fingerprint, plan.generator_version));
    ASSERT_TRUE(cache.store_row_plan(plan));
  }
  EXPECT_EQ(user_version(file()), schema_version);
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_only);
  auto found = cache.lookup_row_plan(plan.descriptor, plan.fingerprint, plan.generator_version);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, plan);
  const Decision decision = sample_decision();
  auto old = cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
  ASSERT_TRUE(old);
  EXPECT_EQ(*old, decision);
  EXPECT_TRUE(cache.lookup_artifact(sample_artifact(3).key));
}

TEST_F(ArtifactTest, Version4FileWithoutTheArtifactKeyColumnIsIgnored) {
  write_version_2_file();
  {
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec(
        "CREATE TABLE row_plans (descriptor TEXT NOT NULL, fingerprint TEXT NOT NULL, generator_version TEXT NOT "
        "NULL, plan_json TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (descriptor, fingerprint, "
        "generator_version));"
        "PRAGMA user_version = 4;");
  }
  const std::string bytes = read_bytes(file());
  // A writer inspects the file and leaves it alone.
  ::testing::internal::CaptureStderr();
  DecisionCache writer = DecisionCache::open(file().string(), OpenMode::read_write);
  std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(writer.usable());
  EXPECT_NE(printed.find("lacks the decisions table of schema version 4"), std::string::npos) << printed;
  EXPECT_NE(printed.find("artifact_key"), std::string::npos) << printed;
  EXPECT_EQ(read_bytes(file()), bytes);
  // A reader trusts a current header (a cache hit's open stays short); its lookup then fails,
  // which is a warning and a miss.
  ::testing::internal::CaptureStderr();
  DecisionCache reader = DecisionCache::open(file().string(), OpenMode::read_only);
  const Decision decision = sample_decision();
  EXPECT_FALSE(reader.lookup(decision.descriptor, decision.fingerprint, decision.generator_version));
  printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_warnings(printed), 1) << printed;
  EXPECT_NE(printed.find("artifact_key"), std::string::npos) << printed;
}

TEST_F(ArtifactTest, Version4FileWithoutTheRowPlansTableIsIgnored) {
  write_version_3_file();
  {
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec("PRAGMA user_version = 4");
  }
  const std::string bytes = read_bytes(file());
  ::testing::internal::CaptureStderr();
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(cache.usable());
  EXPECT_NE(printed.find("lacks the row_plans table of schema version 4"), std::string::npos) << printed;
  EXPECT_EQ(read_bytes(file()), bytes);
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
