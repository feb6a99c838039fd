// Tests of the decision cache and of the SQLite wrappers under it. Every test works in its own
// fresh directory, so the tests may run in any order and in parallel.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"
#include "cache/decision_cache.h"
#include "cache/sqlite.h"
#include "lowbit/errors.h"

namespace lowbit::cache {
namespace {

namespace fs = std::filesystem;

// Every field differs between calls and from its default, so a field that is not stored or
// not read back makes the comparison fail.
Decision sample_decision(int number) {
  Decision decision;
  decision.descriptor = "m=" + std::to_string(number) + ",n=4096,k=4096,bits=4,group=128";
  decision.fingerprint = "x86|avx512bf16|cores=16|number=" + std::to_string(number % 3);
  decision.generator_version = "x86:" + std::to_string(1 + number % 2);
  decision.variant_name = "x86_avx512bf16_w4g128_n4m1k2_t" + std::to_string(number);
  decision.variant_json = R"({"n_block":4,"threads":)" + std::to_string(number) + "}";
  decision.median_us = 12.5 + number;
  decision.rel_err = 1.0e-3 / (number + 1);
  decision.candidates = 7 + number;
  decision.protocol = "rotate-median:1";
  decision.source_json = R"({"lowbit":"0.1.0","soft":{"governor":"performance"}})";
  decision.created_at = "2024-05-01T12:34:" + std::to_string(10 + number % 50) + "Z";
  decision.artifact_key = std::string(63, 'a') + "0123456789abcdef"[number % 16];
  return decision;
}


std::vector<std::string> directory_entries(const fs::path& directory) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

using testing::count_warnings;
using testing::read_bytes;
using testing::write_bytes;

std::int64_t query_integer(const Database& database, const std::string& sql) {
  Statement statement(database, sql);
  EXPECT_EQ(statement.step(), StepResult::row) << sql;
  return statement.column_int64(0);
}

using testing::ScopedEnvironment;

class DecisionCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Several tests assert that a warning is printed; lowbit::warn reads LOWBIT_QUIET once,
    // at its first call, which comes after this.
    unsetenv("LOWBIT_QUIET");
    std::string pattern = (fs::path(::testing::TempDir()) / "lowbit_cache_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << "mkdtemp failed for " << pattern;
    directory_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }
  fs::path file(const std::string& name = "cache.sqlite") const { return directory_ / name; }

  // Opens the cache while capturing stderr; returns the cache and what was printed.
  static std::pair<DecisionCache, std::string> open_capturing(const fs::path& path, OpenMode mode) {
    ::testing::internal::CaptureStderr();
    DecisionCache cache = DecisionCache::open(path.string(), mode);
    return {std::move(cache), ::testing::internal::GetCapturedStderr()};
  }

  // Checks that opening `path` warns once, naming the path and `problem`, and leaves the
  // file's bytes and the directory's contents as they were. Judging a WAL-mode file needs
  // SQLite to read it, which creates its -wal and -shm files: `companions_allowed` says so.
  void expect_ignored_untouched(const fs::path& path, const std::string& problem,
                                bool companions_allowed = false) {
    const std::string bytes = read_bytes(path);
    const auto entries = directory_entries(path.parent_path());
    auto [cache, printed] = open_capturing(path, OpenMode::read_write);
    EXPECT_FALSE(cache.usable());
    EXPECT_EQ(count_warnings(printed), 1) << printed;
    EXPECT_NE(printed.find(path.string()), std::string::npos) << printed;
    EXPECT_NE(printed.find(problem), std::string::npos) << printed;

    const Decision decision = sample_decision(1);
    EXPECT_FALSE(
        cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version));
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(cache.store(decision));
    EXPECT_FALSE(cache.store(sample_decision(2)));
    EXPECT_EQ(count_warnings(::testing::internal::GetCapturedStderr()), 1);
    EXPECT_TRUE(cache.list().empty());

    EXPECT_EQ(read_bytes(path), bytes) << "the file was modified";
    if (!companions_allowed) {
      EXPECT_EQ(directory_entries(path.parent_path()), entries) << "companion files were created";
    }
  }

  fs::path directory_;
};

TEST_F(DecisionCacheTest, RoundTripKeepsEveryField) {
  const Decision decision = sample_decision(5);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.usable());
    ASSERT_TRUE(cache.store(decision));
  }
  // A second connection reads what the first wrote and closed.
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  const auto found =
      cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, decision);
  EXPECT_EQ(found->variant_json, decision.variant_json);
  EXPECT_DOUBLE_EQ(found->median_us, 17.5);
  EXPECT_EQ(found->candidates, 12);
}

TEST_F(DecisionCacheTest, StoreFillsCreatedAtWithUtcTime) {
  Decision decision = sample_decision(1);
  decision.created_at.clear();
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  ASSERT_TRUE(cache.store(decision));
  const auto found =
      cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(std::regex_match(
      found->created_at,
      std::regex(R"(20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z)")))
      << found->created_at;
}

TEST_F(DecisionCacheTest, MissesOnAnyOtherKeyField) {
  const Decision decision = sample_decision(3);
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  ASSERT_TRUE(cache.store(decision));
  EXPECT_TRUE(cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version));
  EXPECT_FALSE(
      cache.lookup(decision.descriptor, decision.fingerprint + "x", decision.generator_version));
  EXPECT_FALSE(cache.lookup(decision.descriptor, decision.fingerprint, "x86:99"));
  EXPECT_FALSE(
      cache.lookup(decision.descriptor + ",m=2", decision.fingerprint, decision.generator_version));
}

TEST_F(DecisionCacheTest, StoreReplacesTheRowOfTheSameKey) {
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  Decision first = sample_decision(4);
  ASSERT_TRUE(cache.store(first));
  Decision second = first;
  second.variant_name = "x86_avx2_w4g128_n8m1k1_t4";
  second.variant_json = R"({"n_block":8})";
  second.median_us = 3.25;
  second.candidates = 40;
  ASSERT_TRUE(cache.store(second));
  const auto found = cache.lookup(first.descriptor, first.fingerprint, first.generator_version);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, second);
  EXPECT_EQ(cache.list().size(), 1u);
}

TEST_F(DecisionCacheTest, ListIsOrderedByDescriptor) {
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  for (const std::string prefix : {"c", "a", "b"}) {
    Decision decision = sample_decision(1);
    decision.descriptor = prefix + ",n=1";
    ASSERT_TRUE(cache.store(decision));
  }
  const auto rows = cache.list();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].descriptor, "a,n=1");
  EXPECT_EQ(rows[1].descriptor, "b,n=1");
  EXPECT_EQ(rows[2].descriptor, "c,n=1");
}

TEST_F(DecisionCacheTest, FileCarriesApplicationIdVersionAndSchema) {
  { DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write); }
  Database database(file().string(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(query_integer(database, "PRAGMA application_id"), 0x4C4F5742);
  EXPECT_EQ(query_integer(database, "PRAGMA user_version"), 4);

  Statement mode(database, "PRAGMA journal_mode");
  ASSERT_EQ(mode.step(), StepResult::row);
  EXPECT_EQ(mode.column_text(0), "wal");

  // PRAGMA table_info: column 1 is the name, 2 the type, 3 "not null", 5 the key position.
  Statement columns(database, "PRAGMA table_info(decisions)");
  std::vector<std::string> described;
  while (columns.step() == StepResult::row) {
    described.push_back(columns.column_text(1) + " " + columns.column_text(2) + " " +
                        std::to_string(columns.column_int64(3)) + " " +
                        std::to_string(columns.column_int64(5)));
  }
  const std::vector<std::string> expected = {
      "descriptor TEXT 1 1",   "fingerprint TEXT 1 2",   "generator_version TEXT 1 3",
      "variant_name TEXT 1 0", "variant_json TEXT 1 0",  "median_us REAL 1 0",
      "rel_err REAL 1 0",      "candidates INTEGER 1 0", "protocol TEXT 1 0",
      "source_json TEXT 1 0",  "created_at TEXT 1 0",   "artifact_key TEXT 1 0"};
  EXPECT_EQ(described, expected);
}

TEST_F(DecisionCacheTest, CreatesMissingParentDirectories) {
  const fs::path nested = directory_ / "one" / "two" / "cache.sqlite";
  DecisionCache cache = DecisionCache::open(nested.string(), OpenMode::read_write);
  ASSERT_TRUE(cache.usable());
  EXPECT_TRUE(cache.store(sample_decision(1)));
  EXPECT_TRUE(fs::exists(nested));
  EXPECT_EQ(cache.path(), nested.string());
}

TEST_F(DecisionCacheTest, EmptyFileIsInitialised) {
  write_bytes(file(), "");
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  ASSERT_TRUE(cache.usable());
  EXPECT_TRUE(cache.store(sample_decision(1)));
  Database database(file().string(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(query_integer(database, "PRAGMA application_id"), 0x4C4F5742);
}

TEST_F(DecisionCacheTest, FreshSqliteFileWithoutTablesIsInitialised) {
  {
    Database database(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    database.exec("CREATE TABLE scratch (x); DROP TABLE scratch;");
  }
  ASSERT_GT(fs::file_size(file()), 0u);
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  ASSERT_TRUE(cache.usable());
  EXPECT_TRUE(cache.store(sample_decision(1)));
  EXPECT_EQ(cache.list().size(), 1u);
}

TEST_F(DecisionCacheTest, GarbageFileIsIgnoredAndUnchanged) {
  std::mt19937 generator(20240501);
  std::string bytes(8192, '\0');
  for (char& byte : bytes) byte = static_cast<char>(generator() & 0xff);
  write_bytes(file(), bytes);
  expect_ignored_untouched(file(), "is not an SQLite database");
}

TEST_F(DecisionCacheTest, ShortGarbageFileIsIgnoredAndUnchanged) {
  write_bytes(file(), "not a db\n");
  expect_ignored_untouched(file(), "is not an SQLite database");
}

TEST_F(DecisionCacheTest, ForeignApplicationIdIsIgnoredAndUnchanged) {
  {
    Database database(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    database.exec(
        "PRAGMA application_id = 305419896; CREATE TABLE notes (text); "
        "INSERT INTO notes VALUES ('theirs');");
  }
  expect_ignored_untouched(file(), "another program (application_id 0x12345678");
}

TEST_F(DecisionCacheTest, ForeignDatabaseWithoutApplicationIdIsIgnoredAndUnchanged) {
  {
    Database database(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    database.exec("CREATE TABLE decisions (x); INSERT INTO decisions VALUES (1);");
  }
  expect_ignored_untouched(file(), "another program (no lowbit application_id)");
}

TEST_F(DecisionCacheTest, NewerSchemaVersionIsIgnored) {
  const Decision decision = sample_decision(2);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.store(decision));
  }
  {
    Database database(file().string(), SQLITE_OPEN_READWRITE);
    database.exec("PRAGMA user_version = 5");
  }
  expect_ignored_untouched(file(), "newer lowbit (schema version 5");
  // The row is there, yet the cache refuses to read a format it does not know.
  auto [cache, printed] = open_capturing(file(), OpenMode::read_only);
  EXPECT_FALSE(cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version));
}

TEST_F(DecisionCacheTest, DamagedFileIsIgnoredAndUnchanged) {
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    for (int number = 0; number < 200; ++number) ASSERT_TRUE(cache.store(sample_decision(number)));
  }
  // Closing the last connection checkpoints the WAL, so the rows now live in the main file.
  ASSERT_FALSE(fs::exists(file().string() + "-wal"));
  std::int64_t page_size = 0;
  {
    Database database(file().string(), SQLITE_OPEN_READONLY);
    page_size = query_integer(database, "PRAGMA page_size");
  }
  // Page 2 is the root of the decisions table; overwrite its b-tree page header.
  std::string bytes = read_bytes(file());
  ASSERT_GT(static_cast<std::int64_t>(bytes.size()), 2 * page_size);
  for (std::int64_t offset = page_size; offset < page_size + 64; ++offset) bytes[offset] = '\x5a';
  write_bytes(file(), bytes);
  expect_ignored_untouched(file(), "", /*companions_allowed=*/true);
  // A reader skips quick_check; the damage shows when the lookup reads the page: a warning
  // and a miss, and the file stays as it was.
  auto [reader, opened] = open_capturing(file(), OpenMode::read_only);
  const Decision decision = sample_decision(3);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(reader.lookup(decision.descriptor, decision.fingerprint, decision.generator_version));
  EXPECT_GE(count_warnings(opened + ::testing::internal::GetCapturedStderr()), 1);
  EXPECT_EQ(read_bytes(file()), bytes);
}

TEST_F(DecisionCacheTest, ReadOnlyMissingFileIsNotCreated) {
  const fs::path missing = directory_ / "absent" / "cache.sqlite";
  auto [cache, printed] = open_capturing(missing, OpenMode::read_only);
  EXPECT_FALSE(cache.usable());
  EXPECT_EQ(count_warnings(printed), 1) << printed;
  EXPECT_NE(printed.find("does not exist"), std::string::npos) << printed;
  EXPECT_FALSE(cache.lookup("m=1", "fingerprint", "x86:1"));
  EXPECT_FALSE(fs::exists(missing.parent_path()));
  EXPECT_TRUE(directory_entries(directory_).empty());
}

class ReaderModeTest : public DecisionCacheTest, public ::testing::WithParamInterface<OpenMode> {};

TEST_P(ReaderModeTest, ReadsButNeverStores) {
  const Decision decision = sample_decision(6);
  {
    DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(cache.store(decision));
  }
  const std::string bytes = read_bytes(file());
  const auto entries = directory_entries(directory_);
  {
    DecisionCache cache = DecisionCache::open(file().string(), GetParam());
    ASSERT_TRUE(cache.usable());
    EXPECT_EQ(cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version),
              decision);
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(cache.store(sample_decision(7)));
    EXPECT_FALSE(cache.store(sample_decision(8)));
    const std::string printed = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(count_warnings(printed), 1) << printed;
    EXPECT_NE(printed.find("read-only"), std::string::npos) << printed;
  }
  EXPECT_EQ(read_bytes(file()), bytes);
  // An immutable reader takes no locks and keeps no WAL index: no -wal or -shm file appears.
  if (GetParam() == OpenMode::immutable) {
    EXPECT_EQ(directory_entries(directory_), entries);
  }
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  EXPECT_EQ(cache.list().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Modes, ReaderModeTest, ::testing::Values(OpenMode::read_only, OpenMode::immutable),
                         [](const ::testing::TestParamInfo<OpenMode>& info) {
                           return info.param == OpenMode::read_only ? std::string("ReadOnly") : std::string("Immutable");
                         });

// A reader kept open (get_kernel keeps one per file) stops SQLite's checkpoint at the writer's
// close, the last connection's; the writer then copies its commits into the main file itself, so
// a copy of that file alone, read immutable as a deployment does (a WAL is ignored), has them.
TEST_F(DecisionCacheTest, AWritersCommitsReachTheMainFileWhileAReaderStaysOpen) {
  { DecisionCache created = DecisionCache::open(file().string(), OpenMode::read_write); }
  DecisionCache kept = DecisionCache::open(file().string(), OpenMode::read_only);
  ASSERT_TRUE(kept.usable());
  const Decision decision = sample_decision(10);
  EXPECT_FALSE(kept.lookup(decision.descriptor, decision.fingerprint, decision.generator_version));
  {
    DecisionCache writer = DecisionCache::open(file().string(), OpenMode::read_write);
    ASSERT_TRUE(writer.store(decision));
  }
  const fs::path copy = directory_ / "copy.sqlite";
  fs::copy_file(file(), copy);
  DecisionCache shipped = DecisionCache::open(copy.string(), OpenMode::immutable);
  ASSERT_TRUE(shipped.usable());
  EXPECT_EQ(shipped.lookup(decision.descriptor, decision.fingerprint, decision.generator_version), decision);
  EXPECT_EQ(kept.lookup(decision.descriptor, decision.fingerprint, decision.generator_version), decision);
}

TEST_F(DecisionCacheTest, ImmutableReadsAPathThatNeedsEscapingInAUri) {
  const fs::path odd = directory_ / "a?b#c%20d.sqlite";
  const Decision decision = sample_decision(9);
  {
    DecisionCache cache = DecisionCache::open(odd.string(), OpenMode::read_write);
    ASSERT_TRUE(cache.store(decision));
  }
  DecisionCache cache = DecisionCache::open(odd.string(), OpenMode::immutable);
  ASSERT_TRUE(cache.usable());
  EXPECT_EQ(cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version), decision);
}

TEST_F(DecisionCacheTest, ReadOnlyEmptyFileIsUnusable) {
  write_bytes(file(), "");
  auto [cache, printed] = open_capturing(file(), OpenMode::read_only);
  EXPECT_FALSE(cache.usable());
  EXPECT_EQ(count_warnings(printed), 1) << printed;
  EXPECT_EQ(fs::file_size(file()), 0u);
}

TEST_F(DecisionCacheTest, StoreRejectsMalformedDecisions) {
  DecisionCache cache = DecisionCache::open(file().string(), OpenMode::read_write);
  auto rejected_field = [&](Decision decision) -> std::string {
    try {
      cache.store(decision);
    } catch (const InvalidArgument& error) {
      return error.field();
    }
    return "(accepted)";
  };
  Decision decision = sample_decision(1);
  decision.fingerprint.clear();
  EXPECT_EQ(rejected_field(decision), "fingerprint");
  decision = sample_decision(1);
  decision.variant_json = "[1, 2]";
  EXPECT_EQ(rejected_field(decision), "variant_json");
  decision = sample_decision(1);
  decision.source_json = "{not json";
  EXPECT_EQ(rejected_field(decision), "source_json");
  decision = sample_decision(1);
  decision.median_us = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(rejected_field(decision), "median_us");
  decision = sample_decision(1);
  decision.candidates = -1;
  EXPECT_EQ(rejected_field(decision), "candidates");
  decision = sample_decision(1);
  decision.artifact_key = "not-a-sha256";
  EXPECT_EQ(rejected_field(decision), "artifact_key");
  decision.artifact_key = std::string(64, 'A');  // upper case: keys are lowercase hex
  EXPECT_EQ(rejected_field(decision), "artifact_key");
  EXPECT_TRUE(cache.list().empty());
  decision.artifact_key.clear();  // no artifact (an x86 decision): accepted
  EXPECT_TRUE(cache.store(decision));
}

TEST_F(DecisionCacheTest, MovedCacheKeepsItsConnection) {
  DecisionCache first = DecisionCache::open(file().string(), OpenMode::read_write);
  DecisionCache second = std::move(first);
  ASSERT_TRUE(second.usable());
  EXPECT_TRUE(second.store(sample_decision(1)));
  DecisionCache third = DecisionCache::open(file("other.sqlite").string(), OpenMode::read_write);
  third = std::move(second);
  EXPECT_EQ(third.path(), file().string());
  EXPECT_EQ(third.list().size(), 1u);
}

constexpr int writer_count = 4;
constexpr int stores_per_writer = 50;

void expect_all_rows_present(const fs::path& path) {
  DecisionCache cache = DecisionCache::open(path.string(), OpenMode::read_only);
  ASSERT_TRUE(cache.usable());
  EXPECT_EQ(cache.list().size(), static_cast<std::size_t>(writer_count * stores_per_writer));
  for (int writer = 0; writer < writer_count; ++writer) {
    for (int index = 0; index < stores_per_writer; ++index) {
      const Decision decision = sample_decision(writer * 1000 + index);
      EXPECT_EQ(cache.lookup(decision.descriptor, decision.fingerprint, decision.generator_version),
                decision)
          << "writer " << writer << " store " << index;
    }
  }
}

// Each writer opens the file itself, so the first stores also race to create the schema.
bool write_share(const fs::path& path, int writer) {
  DecisionCache cache = DecisionCache::open(path.string(), OpenMode::read_write);
  bool all_stored = cache.usable();
  for (int index = 0; index < stores_per_writer; ++index) {
    all_stored = cache.store(sample_decision(writer * 1000 + index)) && all_stored;
  }
  return all_stored;
}

TEST_F(DecisionCacheTest, ConcurrentProcessesLoseNoRows) {
  // The children wait on a pipe until all exist, so their opens and stores overlap.
  int start[2];
  ASSERT_EQ(pipe(start), 0);
  std::vector<pid_t> children;
  for (int writer = 0; writer < writer_count; ++writer) {
    const pid_t child = fork();
    ASSERT_GE(child, 0) << "fork failed";
    if (child == 0) {
      close(start[1]);
      char byte = 0;
      [[maybe_unused]] const auto ignored = read(start[0], &byte, 1);  // returns at EOF
      // _exit: the child must not run the parent's gtest teardown or atexit handlers.
      _exit(write_share(file(), writer) ? 0 : 1);
    }
    children.push_back(child);
  }
  close(start[0]);
  close(start[1]);
  for (const pid_t child : children) {
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "writer process failed: " << status;
  }
  expect_all_rows_present(file());
}

TEST_F(DecisionCacheTest, ConcurrentThreadsWithOwnConnectionsLoseNoRows) {
  std::vector<std::thread> threads;
  std::vector<char> succeeded(writer_count, 0);
  for (int writer = 0; writer < writer_count; ++writer) {
    threads.emplace_back([&, writer] { succeeded[writer] = write_share(file(), writer) ? 1 : 0; });
  }
  for (auto& thread : threads) thread.join();
  for (int writer = 0; writer < writer_count; ++writer) EXPECT_TRUE(succeeded[writer]) << writer;
  expect_all_rows_present(file());
}

TEST(DefaultCachePath, HonoursEnvironment) {
  {
    ScopedEnvironment cache("LOWBIT_CACHE", "/tmp/chosen/lowbit.sqlite");
    ScopedEnvironment xdg("XDG_CACHE_HOME", "/xdg/cache");
    EXPECT_EQ(default_cache_path(), "/tmp/chosen/lowbit.sqlite");
  }
  ScopedEnvironment cache("LOWBIT_CACHE", std::nullopt);
  {
    ScopedEnvironment xdg("XDG_CACHE_HOME", "/xdg/cache");
    EXPECT_EQ(default_cache_path(), "/xdg/cache/lowbit/cache.sqlite");
  }
  ScopedEnvironment home("HOME", "/home/tester");
  {
    ScopedEnvironment xdg("XDG_CACHE_HOME", std::nullopt);
    EXPECT_EQ(default_cache_path(), "/home/tester/.cache/lowbit/cache.sqlite");
  }
  {
    // A relative XDG_CACHE_HOME is invalid by the XDG specification and is skipped.
    ScopedEnvironment xdg("XDG_CACHE_HOME", "relative/cache");
    EXPECT_EQ(default_cache_path(), "/home/tester/.cache/lowbit/cache.sqlite");
  }
}

class SqliteWrapperTest : public DecisionCacheTest {};

TEST_F(SqliteWrapperTest, TransactionRollsBackUnlessCommitted) {
  Database database(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  database.exec("CREATE TABLE numbers (value INTEGER)");
  {
    Transaction transaction(database);
    database.exec("INSERT INTO numbers VALUES (1)");
    EXPECT_EQ(query_integer(database, "SELECT count(*) FROM numbers"), 1);
  }
  EXPECT_EQ(query_integer(database, "SELECT count(*) FROM numbers"), 0);
  {
    Transaction transaction(database);
    database.exec("INSERT INTO numbers VALUES (2)");
    transaction.commit();
  }
  EXPECT_EQ(query_integer(database, "SELECT sum(value) FROM numbers"), 2);
}

TEST_F(SqliteWrapperTest, StatementBindsAndReadsEachType) {
  Database database(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  Statement statement(database, "SELECT ?1, ?2, ?3, ?4");
  const std::string text("with\0nul", 8);
  statement.bind_int64(1, std::int64_t{1} << 40);
  statement.bind_double(2, -2.5);
  statement.bind_text(3, text);
  statement.bind_null(4);
  ASSERT_EQ(statement.step(), StepResult::row);
  EXPECT_EQ(statement.column_int64(0), std::int64_t{1} << 40);
  EXPECT_EQ(statement.column_double(1), -2.5);
  EXPECT_EQ(statement.column_text(2), text);
  EXPECT_TRUE(statement.column_is_null(3));
  EXPECT_FALSE(statement.column_is_null(0));
  EXPECT_EQ(statement.step(), StepResult::done);

  statement.reset();
  statement.bind_int64(1, 7);
  ASSERT_EQ(statement.step(), StepResult::row);
  EXPECT_EQ(statement.column_int64(0), 7);
  EXPECT_EQ(statement.column_double(1), -2.5);  // reset keeps the other bindings
}

TEST_F(SqliteWrapperTest, ErrorsCarryPathAndSqliteMessage) {
  Database database(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  try {
    Statement statement(database, "SELEKT 1");
    FAIL() << "a syntax error was accepted";
  } catch (const CacheError& error) {
    EXPECT_EQ(error.path(), file().string());
    EXPECT_EQ(error.code(), SQLITE_ERROR);
    EXPECT_NE(error.sqlite_message().find("syntax error"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(file().string()), std::string::npos) << error.what();
  }
  EXPECT_THROW(Database((directory_ / "absent.sqlite").string(), SQLITE_OPEN_READONLY), CacheError);
  EXPECT_THROW(database.exec("INSERT INTO missing VALUES (1)"), Error);
}

}  // namespace
}  // namespace lowbit::cache
