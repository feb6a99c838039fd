#include "tuner/cuda_tuner.h"

#include <fmt/format.h>

#include <chrono>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/registry.h"
#include "lowbit/errors.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "tuner/candidate_tally.h"
#include "tuner/cuda_measure.h"

namespace lowbit::tuner {

TuneResult tune_cuda(const OpDesc& desc, const TuneOptions& options) {
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  const std::vector<cuda::CudaVariant> variants = cuda::candidates(desc, device.major, device.sm_count);
  if (variants.empty())
    throw Unsupported(fmt::format("no CUDA candidate serves {}: {}", to_string(desc),
                                  cuda::supports(desc, device.major, device.sm_count).reason));

  TuneResult result;
  result.rows = desc.m > 0 ? desc.m : any_m_rows;  // m=0 (the mma family only) is timed at 16 rows
  const Problem problem = make_random_problem(desc, result.rows, seed_for(to_string(desc)));
  auto reference_start = std::chrono::steady_clock::now();
  const std::vector<double> reference =
      reference_matmul(desc, result.rows, problem.x.data(), problem.weights,
                       desc.bias ? problem.bias.data() : nullptr, desc.eqscale ? problem.eq_scale.data() : nullptr);
  result.reference_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - reference_start).count();
  DeviceInputs inputs(problem);

  const auto compile_start = std::chrono::steady_clock::now();
  std::vector<cuda::CompiledCandidate> compiled = cuda::compile_candidates(desc, variants, device.arch());
  result.compile_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - compile_start).count();
  CandidateTally tally(desc);
  for (std::size_t index = 0; index < variants.size(); ++index) {
    const std::string name = cuda::variant_name(desc, variants[index], device.arch());
    if (options.on_candidate) options.on_candidate(static_cast<int>(index), static_cast<int>(variants.size()), name);
    std::shared_ptr<const Kernel> kernel;
    try {
      if (compiled[index].cubin.empty()) throw Error(compiled[index].error);
      kernel = cuda::load(desc, variants[index], std::move(compiled[index].cubin));
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
  tally.rank_into(result);
  return result;
}

}  // namespace lowbit::tuner
