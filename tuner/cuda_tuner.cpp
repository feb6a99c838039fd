#include "tuner/cuda_tuner.h"

#include <fmt/format.h>

#include <chrono>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/registry.h"
#include "lowbit/errors.h"
#include "lowbit/problem.h"
#include "tuner/candidate_tally.h"
#include "tuner/cuda_measure.h"
#include "tuner/device_reference.h"

namespace lowbit::tuner {

// The candidates compile on every core but one while this thread computes the reference (on the
// GPU: tuner/device_reference.h), then loads, verifies and times each on the GPU as it finishes
// (in finishing order: the ranking is by time, not by order), so the GPU work of a tune hides
// under its compiles.
TuneResult tune_cuda(const OpDesc& desc, const TuneOptions& options) {
  if (!cuda::nvrtc().available)
    throw Unsupported(fmt::format("cannot tune {}: tuning compiles its candidates with NVRTC, which is unavailable ({})",
                                  to_string(desc), cuda::nvrtc().reason));
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  const std::vector<cuda::CudaVariant> variants =
      cuda::tuning_candidates(desc, device.major, device.sm_count, options.exhaustive);
  if (variants.empty())
    throw Unsupported(fmt::format("no CUDA candidate serves {}: {}", to_string(desc),
                                  cuda::supports(desc, device.major, device.sm_count).reason));
  cuda::CompileQueue compiles(cuda::compile_jobs(desc, variants), device.arch(), cuda::compile_workers_beside_timing());

  TuneResult result;
  result.rows = desc.m > 0 ? desc.m : any_m_rows;  // m=0 (the mma family only) is timed at 16 rows
  result.search = options.exhaustive ? "exhaustive" : "preferred family + sentinels";
  const Problem problem = make_random_problem(desc, result.rows, seed_for(to_string(desc)));
  auto reference_start = std::chrono::steady_clock::now();
  const std::vector<double> reference = device_reference_matmul(problem);
  result.reference_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - reference_start).count();
  DeviceInputs inputs(problem);

  CandidateTally tally(desc);
  int processed = 0;
  while (auto compiled = compiles.next()) {
    const cuda::CudaVariant& variant = variants[compiled->first];
    const std::string name = cuda::variant_name(desc, variant, device.arch());
    if (options.on_candidate) options.on_candidate(processed, static_cast<int>(variants.size()), name);
    ++processed;
    std::shared_ptr<const Kernel> kernel;
    try {
      if (compiled->second.cubin.empty()) throw Error(compiled->second.error);
      kernel = cuda::load(desc, variant, std::move(compiled->second.cubin));
    } catch (const Error& error) {
      // A candidate that does not compile or load is a generator bug; the others may still win.
      tally.reject(CandidateResult{name, 0, 0, false, error.what()});
      continue;
    }
    CandidateResult candidate = verify_cuda(*kernel, inputs, reference);
    if (!candidate.verified) {
      tally.reject(std::move(candidate));
      continue;
    }
    candidate.median_us = time_cuda_kernel(*kernel, inputs).median_us;
    tally.accept(std::move(candidate), std::move(kernel));
  }
  result.compile_us = compiles.compile_seconds() * 1e6;
  tally.rank_into(result);
  return result;
}

}  // namespace lowbit::tuner
