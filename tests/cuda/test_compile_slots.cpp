// The tests' machine-wide cap on NVRTC compiles (compile_slots.h): never more holders than
// slots, within a process and across processes, and a bad slot or thread count refused. Needs no GPU
// and no NVRTC: a slot is only a lock.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/errors.h"
#include "tests/cuda/compile_cases.h"
#include "tests/cuda/compile_slots.h"

namespace lowbit::cuda {
namespace {

// Points the slots at a fresh directory of this test with `count` slots; restores both
// variables when it goes.
class SlotSettings {
 public:
  explicit SlotSettings(const char* count) {
    directory_ = std::filesystem::temp_directory_path() /
                 ("lowbit-slot-test-" + std::to_string(::getpid()) + "-" + std::to_string(serial_++));
    std::filesystem::remove_all(directory_);
    ::setenv("LOWBIT_TEST_COMPILE_SLOT_DIR", directory_.c_str(), 1);
    ::setenv("LOWBIT_TEST_COMPILE_SLOTS", count, 1);
  }
  ~SlotSettings() {
    ::unsetenv("LOWBIT_TEST_COMPILE_SLOT_DIR");
    ::unsetenv("LOWBIT_TEST_COMPILE_SLOTS");
    std::filesystem::remove_all(directory_);
  }

 private:
  static inline int serial_ = 0;
  std::filesystem::path directory_;
};

TEST(CudaCompileSlots, NeverMoreHoldersThanSlots) {
  const SlotSettings settings("3");
  EXPECT_EQ(testing::compile_slot_count(), 3u);
  std::atomic<int> holders{0};
  std::atomic<int> most{0};
  std::atomic<int> done{0};
  {
    std::vector<std::jthread> threads;
    for (int thread = 0; thread < 12; ++thread)
      threads.emplace_back([&] {
        for (int turn = 0; turn < 4; ++turn) {
          const testing::CompileSlot slot;
          const int now = ++holders;
          int seen = most.load();
          while (now > seen && !most.compare_exchange_weak(seen, now)) {
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          --holders;
          ++done;
        }
      });
  }
  EXPECT_EQ(done.load(), 12 * 4);
  EXPECT_EQ(most.load(), 3);  // every slot used, never a fourth holder
}

TEST(CudaCompileSlots, AnotherProcessHoldingTheOnlySlotMakesUsWait) {
  const SlotSettings settings("1");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const testing::CompileSlot slot;
    const char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) std::_Exit(2);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    std::_Exit(0);  // the slot goes with the process
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);  // the child holds the slot now
  const auto start = std::chrono::steady_clock::now();
  {
    const testing::CompileSlot slot;
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_GE(waited, std::chrono::milliseconds(250)) << "took the slot another process held";
}

TEST(CudaCompileSlots, BadCountIsRefusedNamingTheVariable) {
  for (const char* count : {"0", "-2", "many", "8x", "5000"}) {
    const SlotSettings settings(count);
    try {
      testing::compile_slot_count();
      ADD_FAILURE() << "LOWBIT_TEST_COMPILE_SLOTS=" << count << " was taken";
    } catch (const InvalidArgument& error) {
      EXPECT_EQ(error.field(), "LOWBIT_TEST_COMPILE_SLOTS");
      EXPECT_NE(std::string(error.what()).find("an integer from 1 to 4096"), std::string::npos) << error.what();
    }
  }
}

TEST(CudaCompileSlots, BadThreadCountIsRefusedNamingTheVariable) {
  for (const char* count : {"0", "-1", "four", "3 ", "9999"}) {
    ::setenv("LOWBIT_TEST_COMPILE_THREADS", count, 1);
    try {
      testing::compile_threads();
      ADD_FAILURE() << "LOWBIT_TEST_COMPILE_THREADS=" << count << " was taken";
    } catch (const InvalidArgument& error) {
      EXPECT_EQ(error.field(), "LOWBIT_TEST_COMPILE_THREADS");
    }
  }
  ::setenv("LOWBIT_TEST_COMPILE_THREADS", "3", 1);
  EXPECT_EQ(testing::compile_threads(), 3u);
  ::unsetenv("LOWBIT_TEST_COMPILE_THREADS");
  EXPECT_GE(testing::compile_threads(), 1u);
}

}  // namespace
}  // namespace lowbit::cuda
