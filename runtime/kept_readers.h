// One read-only connection per cache file, kept for the life of the process and shared by
// get_kernel's calls. A new connection costs 0.2-0.7 ms before its first answer (SQLite reads
// the schema and maps the WAL index), as much as the rest of a cache hit; a kept one answers
// the next lookup in tens of microseconds, and still sees what other processes commit.
#pragma once

#include <mutex>
#include <string>

#include "cache/decision_cache.h"

namespace lowbit::runtime {

// The process's reader of one file, held by one thread at a time (a DecisionCache is not to be
// used by two threads at once): other threads asking for the same file wait until it is dropped.
class ReaderLease {
 public:
  ReaderLease(std::unique_lock<std::mutex> lock, const cache::DecisionCache* reader)
      : lock_(std::move(lock)), reader_(reader) {}
  // The connection, or null when the file does not exist or cannot be used (its warning was
  // printed when it was opened).
  const cache::DecisionCache* get() const { return reader_; }

 private:
  std::unique_lock<std::mutex> lock_;
  const cache::DecisionCache* reader_;
};

// Locks and returns the process's reader of path, opened in `mode` (read_only, or immutable
// for a shipped cache; one reader per path and mode). It is opened when first asked for, and
// opened again when the file at path is no longer the one it opened (another inode: a
// deployment replaced the cache). A file that does not exist, or cannot be used, is not kept:
// the next call looks again (it may have been created since, or finished being written).
ReaderLease lease_reader(const std::string& path, cache::OpenMode mode = cache::OpenMode::read_only);

}  // namespace lowbit::runtime
