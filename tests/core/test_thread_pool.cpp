#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/thread_pool.h"

namespace lowbit {
namespace {

TEST(ThreadPool, RunsEveryTaskOnceAcrossManyCalls) {
  // More workers than cores and task counts that change every call: a late worker of one call
  // must never claim a task of the next (a 16-core machine once ran a task twice).
  ThreadPool pool(8);
  for (int call = 0; call < 20000; ++call) {
    const int count = 1 + call % 13;
    std::vector<std::atomic<int>> hits(count);
    pool.run(count, [&](int task) { hits[task].fetch_add(1); });
    for (int task = 0; task < count; ++task) ASSERT_EQ(hits[task].load(), 1) << "call " << call;
  }
}

TEST(ThreadPool, RethrowsTaskErrors) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run(4, [](int task) {
    if (task == 2) throw std::runtime_error("task failed");
  }),
               std::runtime_error);
  std::atomic<int> sum{0};
  pool.run(4, [&](int task) { sum += task; });
  EXPECT_EQ(sum.load(), 6);
}

}  // namespace
}  // namespace lowbit
