// The process's kept read-only connections (runtime/kept_readers.h): kept across calls, yet
// seeing new commits, a replaced file and a file created after the first call.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "cache/decision_cache.h"
#include "runtime/kept_readers.h"
#include "tests/support/test_support.h"

namespace lowbit::runtime {
namespace {

namespace fs = std::filesystem;

cache::Decision decision_named(const std::string& descriptor) {
  cache::Decision decision;
  decision.descriptor = descriptor;
  decision.fingerprint = "cpu;test";
  decision.generator_version = "test@1";
  decision.variant_name = "variant_of_" + descriptor;
  decision.variant_json = R"({"n_block":4})";
  decision.median_us = 3.5;
  decision.rel_err = 1e-4;
  decision.candidates = 2;
  decision.protocol = "rotate-median:1";
  decision.source_json = "{}";
  return decision;
}

void store(const fs::path& file, const std::string& descriptor) {
  cache::DecisionCache writer = cache::DecisionCache::open(file.string(), cache::OpenMode::read_write);
  ASSERT_TRUE(writer.store(decision_named(descriptor)));
}

// Whether the process's reader of file finds the decision stored under descriptor.
bool kept_reader_finds(const fs::path& file, const std::string& descriptor) {
  const ReaderLease lease = lease_reader(file.string());
  return lease.get() != nullptr && lease.get()->lookup(descriptor, "cpu;test", "test@1").has_value();
}

class KeptReaders : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("LOWBIT_QUIET"); }

  testing::TempDirectory temp_{"lowbit_kept_readers"};
  fs::path file_ = temp_.path() / "cache.sqlite";
};

TEST_F(KeptReaders, OneConnectionServesEveryCallAndSeesNewCommits) {
  store(file_, "first");
  const cache::DecisionCache* kept = nullptr;
  {
    const ReaderLease lease = lease_reader(file_.string());
    ASSERT_NE(lease.get(), nullptr);
    kept = lease.get();
  }
  store(file_, "second");  // another connection's commit, as another process's would be
  const ReaderLease again = lease_reader(file_.string());
  EXPECT_EQ(again.get(), kept) << "the connection was not kept";
  EXPECT_TRUE(again.get()->lookup("first", "cpu;test", "test@1"));
  EXPECT_TRUE(again.get()->lookup("second", "cpu;test", "test@1")) << "a kept reader missed a later commit";
}

TEST_F(KeptReaders, AFileCreatedAfterTheFirstCallIsOpened) {
  EXPECT_EQ(lease_reader(file_.string()).get(), nullptr);
  EXPECT_FALSE(fs::exists(file_)) << "a reader created the file";
  store(file_, "late");
  EXPECT_TRUE(kept_reader_finds(file_, "late"));
}

TEST_F(KeptReaders, AReplacedFileIsReopened) {
  store(file_, "old");
  ASSERT_TRUE(kept_reader_finds(file_, "old"));
  // A deployment ships a new cache by renaming it over the old one (a new inode).
  const fs::path replacement = temp_.path() / "replacement.sqlite";
  store(replacement, "new");
  fs::rename(replacement, file_);
  EXPECT_TRUE(kept_reader_finds(file_, "new"));
  EXPECT_FALSE(kept_reader_finds(file_, "old"));
}

TEST_F(KeptReaders, ARemovedFileIsNoLongerRead) {
  store(file_, "gone");
  ASSERT_TRUE(kept_reader_finds(file_, "gone"));
  fs::remove(file_);
  EXPECT_EQ(lease_reader(file_.string()).get(), nullptr);
}

TEST_F(KeptReaders, AnUnusableFileIsNotKept) {
  testing::write_bytes(file_, "not a database, long enough to be judged by its header: " + std::string(100, 'x'));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(lease_reader(file_.string()).get(), nullptr);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("is not an SQLite database"), std::string::npos) << printed;
  // An unusable file is looked at again at every call: replaced by a cache, it is read.
  fs::remove(file_);
  store(file_, "fixed");
  EXPECT_TRUE(kept_reader_finds(file_, "fixed"));
}

}  // namespace
}  // namespace lowbit::runtime
