#include "tuner/cuda_tuner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/registry.h"
#include "lowbit/errors.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "tuner/cuda_measure.h"

namespace lowbit::tuner {

TuneResult tune_cuda(const OpDesc& desc, const TuneOptions& options) {
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  const std::vector<cuda::CudaVariant> variants = cuda::candidates(desc, device.major);
  if (variants.empty())
    throw Unsupported(fmt::format("no CUDA candidate serves {}: {}", to_string(desc),
                                  cuda::supports(desc, device.major).reason));

  TuneResult result;
  result.rows = desc.m;  // the CUDA families serve exact M only (m=0 is refused by is_valid)
  const Problem problem = make_random_problem(desc, result.rows, seed_for(to_string(desc)));
  auto reference_start = std::chrono::steady_clock::now();
  const std::vector<double> reference =
      reference_matmul(desc, result.rows, problem.x.data(), problem.weights,
                       desc.bias ? problem.bias.data() : nullptr, desc.eqscale ? problem.eq_scale.data() : nullptr);
  result.reference_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - reference_start).count();
  DeviceInputs inputs(problem);

  std::vector<cuda::CompiledCandidate> compiled = cuda::compile_candidates(desc, variants, device.arch());
  std::vector<std::pair<CandidateResult, std::shared_ptr<const Kernel>>> verified;
  std::vector<CandidateResult> rejected;
  for (std::size_t index = 0; index < variants.size(); ++index) {
    const std::string name = cuda::variant_name(desc, variants[index], device.arch());
    if (options.on_candidate) options.on_candidate(static_cast<int>(index), static_cast<int>(variants.size()), name);
    std::shared_ptr<const Kernel> kernel;
    try {
      if (compiled[index].cubin.empty()) throw Error(compiled[index].error);
      kernel = cuda::load(desc, variants[index], std::move(compiled[index].cubin));
    } catch (const Error& error) {
      // A candidate that does not compile or load is a generator bug; the others may still win.
      rejected.push_back(CandidateResult{name, 0, 0, false, error.what()});
      warn(fmt::format("tuning {}: candidate {} rejected: {}", to_string(desc), name, error.what()));
      continue;
    }
    CandidateResult candidate = verify_cuda(*kernel, inputs, reference);
    if (!candidate.verified) {
      warn(fmt::format("tuning {}: candidate {} rejected: {}", to_string(desc), candidate.name, candidate.failure));
      rejected.push_back(candidate);
      continue;
    }
    candidate.median_us = time_cuda_kernel(*kernel, inputs).median_us;
    verified.emplace_back(candidate, std::move(kernel));
  }
  if (verified.empty())
    throw Unsupported(fmt::format("tuning {}: every one of {} candidates failed verification (first: {}: {})",
                                  to_string(desc), rejected.size(), rejected.front().name, rejected.front().failure));
  std::stable_sort(verified.begin(), verified.end(),
                   [](const auto& a, const auto& b) { return a.first.median_us < b.first.median_us; });
  result.winner = verified.front().second;
  result.median_us = verified.front().first.median_us;
  result.rel_err = verified.front().first.rel_err;
  for (auto& [candidate, kernel] : verified) result.ranked.push_back(candidate);
  for (auto& candidate : rejected) result.ranked.push_back(candidate);
  return result;
}

}  // namespace lowbit::tuner
