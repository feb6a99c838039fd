// What both tuners (x86: tuner.cpp, CUDA: cuda_tuner.cpp) do with their candidates' outcomes:
// keep the verified ones with their kernels, warn about the rejected ones, and rank them into a
// TuneResult.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "lowbit/descriptor.h"
#include "lowbit/kernel.h"
#include "tuner/tuner.h"

namespace lowbit::tuner {

class CandidateTally {
 public:
  explicit CandidateTally(const OpDesc& desc) : desc_(desc) {}

  // A candidate that did not build or did not pass verification: warned about, kept for the
  // ranking's tail.
  void reject(CandidateResult candidate);
  // A verified, timed candidate.
  void accept(CandidateResult candidate, std::shared_ptr<const Kernel> kernel);

  // Fills winner, median_us, rel_err and ranked (verified fastest first, then rejected).
  // Throws Unsupported, with the first rejection's reason, when no candidate was accepted.
  void rank_into(TuneResult& result);

 private:
  OpDesc desc_;
  std::vector<std::pair<CandidateResult, std::shared_ptr<const Kernel>>> verified_;
  std::vector<CandidateResult> rejected_;
};

}  // namespace lowbit::tuner
