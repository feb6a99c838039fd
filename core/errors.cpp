#include "lowbit/errors.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace lowbit {

void warn(std::string_view message) {
  static const bool quiet = [] {
    const char* value = std::getenv("LOWBIT_QUIET");
    return value != nullptr && value[0] == '1';
  }();
  if (quiet) return;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "lowbit: warning: %.*s\n", static_cast<int>(message.size()), message.data());
}

}  // namespace lowbit
