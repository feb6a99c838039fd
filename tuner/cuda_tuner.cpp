#include "tuner/cuda_tuner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include "codegen/cuda/compile_queue.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/registry.h"
#include "lowbit/errors.h"
#include "lowbit/problem.h"
#include "tuner/candidate_tally.h"
#include "tuner/cuda_measure.h"
#include "tuner/device_reference.h"

namespace lowbit::tuner {
namespace {

using Clock = std::chrono::steady_clock;

// One descriptor of a batch: its candidates (jobs first_job .. first_job + size of the queue),
// and, from its first finished compile until its last candidate is timed, its problem, reference
// and device inputs.
struct DescriptorTune {
  OpDesc desc;
  std::vector<cuda::CudaVariant> variants;
  std::size_t first_job = 0;
  int processed = 0;
  TuneResult result;
  std::optional<Problem> problem;
  std::vector<double> reference;
  std::unique_ptr<DeviceInputs> inputs;
  std::optional<CandidateTally> tally;
  Clock::time_point compile_start = Clock::time_point::max(), compile_end = Clock::time_point::min();

  // The problem, its reference (on the GPU: tuner/device_reference.h) and the device inputs,
  // made when the first candidate arrives.
  void prepare() {
    if (problem) return;
    result.rows = desc.m > 0 ? desc.m : any_m_rows;  // m=0 (the mma family only) is timed at 16 rows
    problem.emplace(make_random_problem(desc, result.rows, seed_for(to_string(desc))));
    const auto start = Clock::now();
    reference = device_reference_matmul(*problem);
    result.reference_us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    inputs = std::make_unique<DeviceInputs>(*problem);
    tally.emplace(desc);
  }
};

// desc's candidates for the search options asks for; throws Unsupported when there are none.
std::vector<cuda::CudaVariant> search_candidates(const OpDesc& desc, const TuneOptions& options) {
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  std::vector<cuda::CudaVariant> variants =
      cuda::tuning_candidates(desc, device.major, device.sm_count, options.exhaustive);
  if (variants.empty())
    throw Unsupported(fmt::format("no CUDA candidate serves {}: {}", to_string(desc),
                                  cuda::supports(desc, device.major, device.sm_count).reason));
  return variants;
}

// Loads, verifies and times one finished compile of `tune`, keeping the outcome in its tally.
void time_candidate(DescriptorTune& tune, const cuda::CudaVariant& variant, cuda::CompiledCandidate compiled,
                    const std::string& name) {
  tune.prepare();
  std::shared_ptr<const Kernel> kernel;
  try {
    if (compiled.cubin.empty()) throw Error(compiled.error);
    kernel = cuda::load(tune.desc, variant, std::move(compiled.cubin));
  } catch (const Error& error) {
    // A candidate that does not compile or load is a generator bug; the others may still win.
    tune.tally->reject(CandidateResult{name, 0, 0, false, error.what()});
    return;
  }
  CandidateResult candidate = verify_cuda(*kernel, *tune.inputs, tune.reference);
  if (!candidate.verified) {
    tune.tally->reject(std::move(candidate));
    return;
  }
  candidate.median_us = time_cuda_kernel(*kernel, *tune.inputs).median_us;
  tune.tally->accept(std::move(candidate), std::move(kernel));
}

}  // namespace

// The candidates compile on every core but one while this thread computes each descriptor's
// reference (on the GPU), then loads, verifies and times each on the GPU as it finishes (in
// finishing order: the ranking is by time, not by order), so the GPU work of a tune hides under
// its compiles.
void tune_cuda_each(const std::vector<OpDesc>& descs, const TuneOptions& options,
                    const std::function<void(std::size_t, int, int, const std::string&)>& on_candidate,
                    const std::function<void(std::size_t, TuneResult)>& on_tuned) {
  if (descs.empty()) return;
  if (!cuda::nvrtc().available)
    throw Unsupported(fmt::format("cannot tune {}: tuning compiles its candidates with NVRTC, which is unavailable ({})",
                                  to_string(descs.front()), cuda::nvrtc().reason));
  std::vector<DescriptorTune> tunes(descs.size());
  std::vector<cuda::CompileJob> jobs;
  std::vector<std::size_t> job_owner;  // job index -> descriptor index
  for (std::size_t index = 0; index < descs.size(); ++index) {
    DescriptorTune& tune = tunes[index];
    validate(descs[index]);
    tune.desc = descs[index];
    tune.variants = search_candidates(tune.desc, options);
    tune.first_job = jobs.size();
    tune.result.search = options.exhaustive ? "exhaustive" : "preferred family + sentinels";
    for (const cuda::CudaVariant& variant : tune.variants) {
      jobs.push_back({tune.desc, variant});
      job_owner.push_back(index);
    }
  }
  const std::string arch = cuda::device_info(descs.front().device.index).arch();
  cuda::CompileQueue compiles(std::move(jobs), arch, cuda::compile_workers_beside_timing());
  while (auto compiled = compiles.next()) {
    const std::size_t index = job_owner[compiled->first];
    DescriptorTune& tune = tunes[index];
    const cuda::CudaVariant& variant = tune.variants[compiled->first - tune.first_job];
    const std::string name = cuda::variant_name(tune.desc, variant, arch);
    const int count = static_cast<int>(tune.variants.size());
    if (on_candidate) on_candidate(index, tune.processed, count, name);
    tune.compile_start = std::min(tune.compile_start, compiled->second.started);
    tune.compile_end = std::max(tune.compile_end, compiled->second.finished);
    time_candidate(tune, variant, std::move(compiled->second), name);
    if (++tune.processed < count) continue;
    tune.result.compile_us = std::chrono::duration<double, std::micro>(tune.compile_end - tune.compile_start).count();
    tune.result.wall_us = std::chrono::duration<double, std::micro>(Clock::now() - tune.compile_start).count();
    tune.tally->rank_into(tune.result);
    tune.inputs.reset();  // the device buffers of a finished descriptor go back at once
    tune.problem.reset();
    tune.reference = {};
    on_tuned(index, std::move(tune.result));
  }
}

TuneResult tune_cuda(const OpDesc& desc, const TuneOptions& options) {
  TuneResult tuned;
  tune_cuda_each(
      {desc}, options,
      [&](std::size_t, int candidate, int count, const std::string& name) {
        if (options.on_candidate) options.on_candidate(candidate, count, name);
      },
      [&](std::size_t, TuneResult result) { tuned = std::move(result); });
  return tuned;
}

}  // namespace lowbit::tuner
