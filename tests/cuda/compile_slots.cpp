#include "tests/cuda/compile_slots.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "codegen/cuda/cuda_api.h"
#include "lowbit/errors.h"

namespace lowbit::cuda::testing {
namespace {

constexpr unsigned most_slots = 4096;

// The lock on slot file `index`: its descriptor once locked; with `wait` false, -1 at once when
// another descriptor holds it.
int take_slot(const std::string& directory, unsigned index, bool wait) {
  const std::string path = fmt::format("{}/slot-{}", directory, index);
  const int file = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (file < 0)
    throw Error(fmt::format("cannot open the compile slot {}: {} (LOWBIT_TEST_COMPILE_SLOT_DIR names the directory)",
                            path, std::strerror(errno)));
  int status = 0;
  do {
    status = ::flock(file, wait ? LOCK_EX : LOCK_EX | LOCK_NB);
  } while (status != 0 && errno == EINTR);
  if (status == 0) return file;
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
  // Each request starts its pass at its own slot (from the process and a count of its requests),
  // so that compiles arriving together try different files first and waiters spread over the
  // slots instead of all sleeping on slot 0.
  static std::atomic<unsigned> requests{0};
  const unsigned first = (static_cast<unsigned>(::getpid()) * 7919u + requests++) % count;
  for (unsigned step = 0; step < count; ++step) {
    file_ = take_slot(directory, (first + step) % count, /*wait=*/false);
    if (file_ >= 0) return;
  }
  // Every slot taken: sleep in flock on the first one tried. Not a poll over all of them: in the
  // device call of 2026-11-23 that polled every 10 ms (16 test processes of up to 16 compile
  // threads each, a pass the open, flock and close of 16 files) system time took 5-10 % of the
  // 16 cores throughout, time the compiles and checks needed. A waiter may sleep on while another
  // slot comes free, but with more waiters than slots every slot has some, and a compile that
  // starts later takes any free slot in its first pass.
  file_ = take_slot(directory, first, /*wait=*/true);
}

CompileSlot::~CompileSlot() { ::close(file_); }  // closing the descriptor releases its lock

std::vector<char> compile_in_slot(const std::string& source, const std::string& name, const std::string& arch) {
  const CompileSlot slot;
  return compile_to_cubin(source, name, arch);
}

}  // namespace lowbit::cuda::testing
