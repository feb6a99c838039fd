#include "codegen/cuda/compile_queue.h"

#include <algorithm>
#include <exception>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/registry.h"

namespace lowbit::cuda {

std::vector<CompileJob> compile_jobs(const OpDesc& desc, const std::vector<CudaVariant>& variants) {
  std::vector<CompileJob> jobs;
  for (const CudaVariant& variant : variants) jobs.push_back({desc, variant});
  return jobs;
}

CompileQueue::CompileQueue(std::vector<CompileJob> jobs, std::string arch, int workers)
    : jobs_(std::move(jobs)), arch_(std::move(arch)) {
  const std::size_t wanted =
      workers > 0 ? static_cast<std::size_t>(workers) : std::max(1u, std::thread::hardware_concurrency());
  const std::size_t count = std::min(wanted, jobs_.size());
  try {
    for (std::size_t worker = 0; worker < count; ++worker) workers_.emplace_back([this] { work(); });
  } catch (...) {
    stop_and_join();  // a thread the system refused: the destructor will not run
    throw;
  }
}

CompileQueue::~CompileQueue() { stop_and_join(); }

void CompileQueue::stop_and_join() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

void CompileQueue::work() {
  for (;;) {
    std::size_t index = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ || handed_out_ == jobs_.size()) return;
      index = handed_out_++;
    }
    CompiledCandidate result;
    result.started = std::chrono::steady_clock::now();
    const CompileJob& job = jobs_[index];
    try {
      result.cubin = compile_to_cubin(emit(job.desc, job.variant), variant_name(job.desc, job.variant, arch_), arch_);
    } catch (const std::exception& error) {
      result.error = error.what();
    }
    result.finished = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_finished_ = result.finished;
      done_.emplace_back(index, std::move(result));
    }
    finished_.notify_one();
  }
}

std::optional<std::pair<std::size_t, CompiledCandidate>> CompileQueue::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (returned_ == jobs_.size()) return std::nullopt;
  finished_.wait(lock, [this] { return !done_.empty(); });
  std::pair<std::size_t, CompiledCandidate> result = std::move(done_.front());
  done_.pop_front();
  ++returned_;
  return result;
}

double CompileQueue::compile_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::chrono::duration<double>(last_finished_ - start_).count();
}

int compile_workers_beside_timing() {
  const unsigned cores = std::thread::hardware_concurrency();  // 0 when unknown
  return cores > 1 ? static_cast<int>(cores - 1) : 1;
}

}  // namespace lowbit::cuda
