#include "runtime/kept_readers.h"

#include <sys/stat.h>

#include <map>
#include <memory>
#include <optional>
#include <utility>

namespace lowbit::runtime {
namespace {

struct KeptReader {
  std::mutex mutex;
  std::optional<cache::DecisionCache> reader;
  dev_t device = 0;  // the file the reader opened
  ino_t inode = 0;
};

KeptReader& kept_reader(const std::string& path, cache::OpenMode mode) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, cache::OpenMode>, std::unique_ptr<KeptReader>> readers;
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<KeptReader>& kept = readers[{path, mode}];
  if (!kept) kept = std::make_unique<KeptReader>();
  return *kept;
}

}  // namespace

ReaderLease lease_reader(const std::string& path, cache::OpenMode mode) {
  KeptReader& kept = kept_reader(path, mode);
  std::unique_lock<std::mutex> lock(kept.mutex);
  struct stat file {};
  if (::stat(path.c_str(), &file) != 0) {
    kept.reader.reset();
    return {std::move(lock), nullptr};
  }
  if (!kept.reader || kept.device != file.st_dev || kept.inode != file.st_ino) {
    kept.reader.emplace(cache::DecisionCache::open(path, mode));
    kept.device = file.st_dev;
    kept.inode = file.st_ino;
  }
  if (!kept.reader->usable()) {
    kept.reader.reset();
    return {std::move(lock), nullptr};
  }
  return {std::move(lock), &*kept.reader};
}

}  // namespace lowbit::runtime
