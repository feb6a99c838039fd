#include "core/thread_pool.h"

#include <chrono>

#include "lowbit/cpu_info.h"

namespace lowbit {
namespace {
constexpr auto spin_before_sleep = std::chrono::microseconds(200);
}

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stopping_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool(std::max(1, cpu_info().physical_cores));
  return pool;
}

void ThreadPool::execute_tasks() {
  for (;;) {
    int index = next_task_.fetch_add(1);
    if (index >= task_count_) return;
    try {
      (*task_.load())(index);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    auto spin_until = std::chrono::steady_clock::now() + spin_before_sleep;
    while (generation_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until) {
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(wake_mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stopping_) return;
    execute_tasks();
  }
}

void ThreadPool::run(int count, const std::function<void(int)>& task) {
  if (count <= 0) return;
  // One task runs on the caller without the pool: concurrent single-threaded callers overlap.
  if (count == 1) {
    task(0);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  if (workers_.empty()) {
    for (int i = 0; i < count; ++i) task(i);
    return;
  }
  task_ = &task;
  task_count_ = count;
  error_ = nullptr;
  pending_.store(count, std::memory_order_relaxed);
  next_task_.store(0);
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  execute_tasks();
  while (pending_.load(std::memory_order_acquire) != 0) {
  }
  next_task_.store(idle_task_index);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace lowbit
