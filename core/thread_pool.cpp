#include "core/thread_pool.h"

#include <chrono>
#include <stdexcept>

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
    const uint64_t claim = claims_.fetch_add(1);
    const uint32_t index = static_cast<uint32_t>(claim);
    const uint32_t count = static_cast<uint32_t>(claim >> 32);
    // Past the count: this call's tasks are all claimed (or this is a late claim on a call
    // that has ended). Below it: a task of the running call, which cannot end before it does.
    if (index >= count) return;
    try {
      (*task_.load())(static_cast<int>(index));
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
  if (count > max_tasks) throw std::invalid_argument("ThreadPool::run: more than max_tasks tasks");
  task_ = &task;
  error_ = nullptr;
  pending_.store(count);
  claims_.store(static_cast<uint64_t>(count) << 32);
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  execute_tasks();
  while (pending_.load(std::memory_order_acquire) != 0) {
  }
  if (error_) std::rethrow_exception(error_);
}

}  // namespace lowbit
