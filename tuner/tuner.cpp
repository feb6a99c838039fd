#include "tuner/tuner.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "codegen/x86/registry.h"
#include "core/thread_pool.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "tuner/candidate_tally.h"
#include "tuner/measure.h"
#if LOWBIT_WITH_CUDA
#include "tuner/cuda_tuner.h"
#endif

namespace lowbit::tuner {
namespace {

constexpr uint8_t poison = 0xff;  // NaN in every output dtype

// Runs the kernel once on poisoned outputs and compares with the reference.
// The bound is the variant's (x86::verification_tolerance: looser for weights rounded to bf16).
CandidateResult verify(const Kernel& kernel, const x86::X86Variant& variant, const Problem& problem,
                       const std::vector<double>& reference) {
  CandidateResult result;
  result.name = kernel.name();
  std::vector<uint8_t> out(static_cast<std::size_t>(problem.m * problem.desc.n * dtype_bytes(problem.desc.out)),
                           poison);
  RunArgs args;
  args.x = problem.x.data();
  args.weights = view(problem.packed);
  args.bias = problem.desc.bias ? problem.bias.data() : nullptr;
  args.eq_scale = problem.desc.eqscale ? problem.eq_scale.data() : nullptr;
  args.y = out.data();
  args.m = problem.m;
  kernel.run(args);
  result.rel_err = relative_error(out.data(), problem.desc.out, reference);
  const double bound = x86::verification_tolerance(problem.desc, variant);
  result.verified = result.rel_err <= bound;
  if (!result.verified)
    result.failure = fmt::format("relative error {:.3g} exceeds the tolerance {:.3g}", result.rel_err, bound);
  return result;
}

}  // namespace

TuneResult tune(const OpDesc& desc, const TuneOptions& options) {
  validate(desc);
  if (desc.device.kind == DeviceKind::cuda) {
#if LOWBIT_WITH_CUDA
    return tune_cuda(desc, options);
#else
    throw Unsupported(fmt::format("cannot tune {}: this build of lowbit has no CUDA backend (no CUDA toolkit at "
                                  "build time)",
                                  to_string(desc)));
#endif
  }
  x86::Validity served = x86::supports(desc, options.isa);
  if (!served) throw Unsupported(fmt::format("cannot tune {}: {}", to_string(desc), served.reason));
  const int max_threads = options.max_threads > 0 ? options.max_threads : ThreadPool::instance().size();
  std::vector<x86::X86Variant> variants = x86::candidates(desc, max_threads, options.isa);
  if (variants.empty()) throw Unsupported(fmt::format("no x86 candidate serves {}", to_string(desc)));

  TuneResult result;
  result.rows = desc.m > 0 ? desc.m : any_m_rows;
  const Problem problem = make_random_problem(desc, result.rows, seed_for(to_string(desc)));
  auto reference_start = std::chrono::steady_clock::now();
  const std::vector<double> reference =
      reference_matmul(desc, result.rows, problem.x.data(), problem.weights,
                       desc.bias ? problem.bias.data() : nullptr, desc.eqscale ? problem.eq_scale.data() : nullptr);
  result.reference_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - reference_start).count();
  const RotatedInputs inputs(problem);

  CandidateTally tally(desc);
  for (std::size_t index = 0; index < variants.size(); ++index) {
    std::shared_ptr<const Kernel> kernel = x86::build(desc, variants[index], max_threads);
    if (options.on_candidate) options.on_candidate(static_cast<int>(index), static_cast<int>(variants.size()), kernel->name());
    CandidateResult candidate = verify(*kernel, variants[index], problem, reference);
    if (!candidate.verified) {
      tally.reject(std::move(candidate));
      continue;
    }
    candidate.median_us = time_kernel(*kernel, inputs).median_us;
    tally.accept(std::move(candidate), std::move(kernel));
  }
  tally.rank_into(result);
  return result;
}

nlohmann::json top_candidates_json(const TuneResult& result, int count) {
  nlohmann::json top = nlohmann::json::array();
  for (const CandidateResult& candidate : result.ranked) {
    if (static_cast<int>(top.size()) >= count || !candidate.verified) break;
    top.push_back({{"name", candidate.name}, {"median_us", candidate.median_us}, {"rel_err", candidate.rel_err}});
  }
  return top;
}

void tune_each(const std::vector<OpDesc>& descs, const TuneOptions& options,
               const std::function<void(std::size_t, int, int, const std::string&)>& on_candidate,
               const std::function<void(std::size_t, TuneResult)>& on_tuned) {
  std::size_t index = 0;
  while (index < descs.size()) {
    if (descs[index].device.kind != DeviceKind::cuda) {
      TuneOptions one = options;
      one.on_candidate = [&](int candidate, int count, const std::string& name) {
        if (on_candidate) on_candidate(index, candidate, count, name);
      };
      on_tuned(index, tune(descs[index], one));
      ++index;
      continue;
    }
    std::size_t end = index;
    while (end < descs.size() && descs[end].device.kind == DeviceKind::cuda) ++end;  // (each validated where tuned)
#if LOWBIT_WITH_CUDA
    const std::vector<OpDesc> batch(descs.begin() + static_cast<std::ptrdiff_t>(index),
                                    descs.begin() + static_cast<std::ptrdiff_t>(end));
    const std::size_t offset = index;
    tune_cuda_each(
        batch, options,
        [&](std::size_t row, int candidate, int count, const std::string& name) {
          if (on_candidate) on_candidate(offset + row, candidate, count, name);
        },
        [&](std::size_t row, TuneResult result) { on_tuned(offset + row, std::move(result)); });
#else
    tune(descs[index], options);  // throws the build's refusal
#endif
    index = end;
  }
}

}  // namespace lowbit::tuner
