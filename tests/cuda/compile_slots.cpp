#include "tests/cuda/compile_slots.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "codegen/cuda/cuda_api.h"
#include "lowbit/errors.h"

namespace lowbit::cuda::testing {
namespace {

// How long a waiter sleeps between two passes over the slots when all are taken. Polling rather
// than a blocking flock on one chosen file: a waiter blocked on one slot sleeps on while another
// slot comes free, leaving a core idle for a whole compile; a 10-ms pass costs at most 10 ms of a
// compile that takes 0.3 s (gemv) to several seconds (wgmma).
constexpr auto poll_interval = std::chrono::milliseconds(10);

constexpr unsigned most_slots = 4096;

// The lock on slot file `index`, without waiting: its descriptor, or -1 when another holds it.
int try_slot(const std::string& directory, unsigned index) {
  const std::string path = fmt::format("{}/slot-{}", directory, index);
  const int file = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (file < 0)
    throw Error(fmt::format("cannot open the compile slot {}: {} (LOWBIT_TEST_COMPILE_SLOT_DIR names the directory)",
                            path, std::strerror(errno)));
  if (::flock(file, LOCK_EX | LOCK_NB) == 0) return file;
  const int error = errno;
  ::close(file);
  if (error != EWOULDBLOCK)
    throw Error(fmt::format("cannot lock the compile slot {}: {}", path, std::strerror(error)));
  return -1;
}

}  // namespace

unsigned compile_slot_count() {
  const char* text = std::getenv("LOWBIT_TEST_COMPILE_SLOTS");
  if (text == nullptr || *text == '\0') return std::max(1u, std::thread::hardware_concurrency());
  char* end = nullptr;
  errno = 0;
  const long count = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || count < 1 || count > long{most_slots})
    throw InvalidArgument("LOWBIT_TEST_COMPILE_SLOTS",
                          fmt::format("LOWBIT_TEST_COMPILE_SLOTS={} is not allowed: it is how many NVRTC compiles the "
                                      "CUDA tests run at once on this machine, an integer from 1 to {}",
                                      text, most_slots));
  return static_cast<unsigned>(count);
}

std::string compile_slot_directory() {
  const char* named = std::getenv("LOWBIT_TEST_COMPILE_SLOT_DIR");
  const std::string directory = named != nullptr && *named != '\0'
                                    ? std::string(named)
                                    : fmt::format("/tmp/lowbit-compile-slots-{}", static_cast<unsigned>(::getuid()));
  if (::mkdir(directory.c_str(), 0777) != 0 && errno != EEXIST)
    throw Error(fmt::format("cannot make the compile slot directory {}: {} (LOWBIT_TEST_COMPILE_SLOT_DIR names it)",
                            directory, std::strerror(errno)));
  return directory;
}

CompileSlot::CompileSlot() {
  const unsigned count = compile_slot_count();
  const std::string directory = compile_slot_directory();
  // Each wait starts its passes at its own slot (the process and a count of this process's
  // waits), so that compiles arriving together try different files first, not all slot 0.
  static std::atomic<unsigned> waits{0};
  const unsigned first = (static_cast<unsigned>(::getpid()) * 7919u + waits++) % count;
  for (;;) {
    for (unsigned step = 0; step < count; ++step) {
      file_ = try_slot(directory, (first + step) % count);
      if (file_ >= 0) return;
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

CompileSlot::~CompileSlot() { ::close(file_); }  // closing the descriptor releases its lock

std::vector<char> compile_in_slot(const std::string& source, const std::string& name, const std::string& arch) {
  const CompileSlot slot;
  return compile_to_cubin(source, name, arch);
}

}  // namespace lowbit::cuda::testing
