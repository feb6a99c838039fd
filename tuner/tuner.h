// Tuner v0: enumerate a backend's candidates for a descriptor, verify each against the
// reference on random inputs, time the verified ones with the measurement protocol, and
// report the winner with the runners-up.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/descriptor.h"
#include "lowbit/kernel.h"

namespace lowbit::tuner {

struct CandidateResult {
  std::string name;
  double median_us = 0;
  double rel_err = 0;
  bool verified = false;
  std::string failure;  // why it was rejected, when not verified
};

struct TuneResult {
  std::shared_ptr<const Kernel> winner;
  double median_us = 0;
  double rel_err = 0;
  double reference_us = 0;              // one run of the reference on the same inputs
  // CUDA: wall clock from the first compile's start to the last one's end (the compiles run
  // beside the reference and the timings); x86: 0 (each candidate is generated in the loop).
  double compile_us = 0;
  // CUDA: wall clock from the first compile's start to the last candidate timed (descriptors
  // tuned together overlap: tune_each); x86: 0.
  double wall_us = 0;
  std::vector<CandidateResult> ranked;  // verified candidates fastest first, then rejected ones
  int64_t rows = 0;                     // M the candidates were timed at
  std::string search = "exhaustive";    // which candidates were timed: "exhaustive", or (CUDA by
                                        // default) "preferred family + sentinels"
};

struct TuneOptions {
  int max_threads = 0;
  std::string isa;  // x86 ISA family, as GetOptions.isa (empty: $LOWBIT_ISA, else the best)
  // CUDA: time every candidate of every family (else the preferred family's and one heuristic
  // sentinel of each other family: cuda::tuning_candidates). x86 tunes are always exhaustive.
  bool exhaustive = false;
  // Called before each candidate with (index, count, candidate name).
  std::function<void(int, int, const std::string&)> on_candidate;
};

// Throws Unsupported when no candidate exists or none passes verification.
TuneResult tune(const OpDesc& desc, const TuneOptions& options = {});

// tune() of each descriptor, in order, calling on_tuned(index, result) as each is done and
// on_candidate(index, candidate, count, name) before each candidate (options.on_candidate is not
// called). Consecutive CUDA descriptors are tuned together through one compile queue
// (tune_cuda_each: the compiles of the next start beside the last ones of the one before), so
// their results may come slightly out of order. Throws as tune() does, at the first descriptor
// that fails, after on_tuned of those done before it.
void tune_each(const std::vector<OpDesc>& descs, const TuneOptions& options,
               const std::function<void(std::size_t, int, int, const std::string&)>& on_candidate,
               const std::function<void(std::size_t, TuneResult)>& on_tuned);

// The top `count` ranked candidates as JSON (name, median_us, rel_err).
nlohmann::json top_candidates_json(const TuneResult& result, int count);

}  // namespace lowbit::tuner
