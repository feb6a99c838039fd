// A persistent pool of worker threads: kernels split their work over it without creating
// threads per call. One multi-task call runs at a time (callers from several threads are
// serialised; a single-task call runs on its caller and never waits);
// workers spin briefly after a call before sleeping, so back-to-back kernel calls (a decode
// loop) pay no wake-up latency.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lowbit {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The process-wide pool, one thread per usable physical core.
  static ThreadPool& instance();

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(i) for i in [0, count) on min(count, size()) threads, the caller taking part;
  // returns when every task has finished. An exception from a task is rethrown here.
  // count is at most max_tasks.
  static constexpr int max_tasks = 1 << 20;
  void run(int count, const std::function<void(int)>& task);

 private:
  void worker_loop(int worker_index);
  void execute_tasks();

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one run() at a time
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  // Task claims: [task count | next index 32 bits]. One fetch_add returns the count and the
  // index together, so a worker that claims late (after its call ended and the next began)
  // compares with its own call's count, never the next one's: a separate index and count
  // could pair an old index with a new count and run a task twice (seen with 16 threads).
  std::atomic<uint64_t> claims_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<const std::function<void(int)>*> task_{nullptr};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace lowbit
