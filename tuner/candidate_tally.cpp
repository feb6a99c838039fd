#include "tuner/candidate_tally.h"

#include <fmt/format.h>

#include <algorithm>

#include "lowbit/errors.h"

namespace lowbit::tuner {

void CandidateTally::reject(CandidateResult candidate) {
  warn(fmt::format("tuning {}: candidate {} rejected: {}", to_string(desc_), candidate.name, candidate.failure));
  rejected_.push_back(std::move(candidate));
}

void CandidateTally::accept(CandidateResult candidate, std::shared_ptr<const Kernel> kernel) {
  verified_.emplace_back(std::move(candidate), std::move(kernel));
}

void CandidateTally::rank_into(TuneResult& result) {
  if (verified_.empty()) {
    if (rejected_.empty()) throw Unsupported(fmt::format("tuning {}: no candidate was tried", to_string(desc_)));
    throw Unsupported(fmt::format("tuning {}: every one of {} candidates failed verification (first: {}: {})",
                                  to_string(desc_), rejected_.size(), rejected_.front().name,
                                  rejected_.front().failure));
  }
  std::stable_sort(verified_.begin(), verified_.end(),
                   [](const auto& a, const auto& b) { return a.first.median_us < b.first.median_us; });
  result.winner = verified_.front().second;
  result.median_us = verified_.front().first.median_us;
  result.rel_err = verified_.front().first.rel_err;
  result.ranked.clear();
  for (const auto& [candidate, kernel] : verified_) result.ranked.push_back(candidate);
  for (const CandidateResult& candidate : rejected_) result.ranked.push_back(candidate);
}

}  // namespace lowbit::tuner
