// NVRTC compiles on worker threads, handed back as each finishes, so that a caller can load,
// verify and time one program on the GPU while the CPU still compiles the next ones (a tune:
// tuner/cuda_tuner.cpp), or compile the programs of several descriptors at once (m=0's row
// buckets: runtime/get_kernel.cpp). NVRTC is thread-safe; each compile takes most of a second
// for the template-heavy families, loading one takes a fraction of a millisecond.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "codegen/cuda/cuda_variant.h"
#include "lowbit/descriptor.h"

namespace lowbit::cuda {

// One program's cubin, or why it did not compile.
struct CompiledCandidate {
  std::vector<char> cubin;
  std::string error;  // when cubin is empty
  std::chrono::steady_clock::time_point started, finished;  // the compile's span on its worker
};

struct CompileJob {
  OpDesc desc;
  CudaVariant variant;
};

// One job a variant of desc.
std::vector<CompileJob> compile_jobs(const OpDesc& desc, const std::vector<CudaVariant>& variants);

class CompileQueue {
 public:
  // Starts `workers` threads (0: one per hardware thread; never more than the jobs) that take
  // the jobs in order and compile each for arch. Never throws for one job's failure: its error
  // is kept.
  CompileQueue(std::vector<CompileJob> jobs, std::string arch, int workers = 0);
  // Hands out no further job and waits for the compiles under way.
  ~CompileQueue();
  CompileQueue(const CompileQueue&) = delete;
  CompileQueue& operator=(const CompileQueue&) = delete;

  // Blocks until a job has finished, then returns its index in the jobs and its result, in the
  // order they finish; nullopt once every job has been returned.
  std::optional<std::pair<std::size_t, CompiledCandidate>> next();

  std::size_t size() const { return jobs_.size(); }
  // Seconds from the queue's start to the end of its last compile (read once next() has
  // returned nullopt).
  double compile_seconds() const;

 private:
  void work();
  void stop_and_join();

  const std::vector<CompileJob> jobs_;
  const std::string arch_;
  mutable std::mutex mutex_;
  std::condition_variable finished_;
  std::size_t handed_out_ = 0;  // jobs taken by a worker (guarded by mutex_)
  std::size_t returned_ = 0;    // results returned by next()
  bool stopping_ = false;
  std::deque<std::pair<std::size_t, CompiledCandidate>> done_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_finished_;  // guarded by mutex_
  std::vector<std::thread> workers_;
};

// The default worker count for a caller that times on the GPU while the queue compiles: every
// hardware thread but one, which the caller's timing thread keeps (a launch that waits for a
// core between its two events would count the wait as kernel time).
int compile_workers_beside_timing();

}  // namespace lowbit::cuda
