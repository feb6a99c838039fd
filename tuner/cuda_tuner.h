// Tuning CUDA descriptors (built only with the CUDA backend); tuner::tune() and tune_each() send
// device=cuda:N descriptors here.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "tuner/tuner.h"

namespace lowbit::tuner {

// Every registered CUDA generator's candidates for desc on its device: compiled with NVRTC
// (several at once), each verified against the reference on the GPU (poisoned output, guard
// bytes), the verified ones timed under cuda-rotate-median:1. Throws Unsupported when no
// candidate exists or none passes verification.
TuneResult tune_cuda(const OpDesc& desc, const TuneOptions& options);

// tune_cuda of each of descs (all CUDA, one device) through one compile queue, so that the cores
// compiling a descriptor's last, slowest programs are not left idle: the next descriptor's
// compiles start beside them (a full tune of 32 rows kept 72 % of the cores busy one descriptor
// at a time: docs/benchmarks.md, session 21). Candidates are timed as they finish, on this
// thread, whichever descriptor they belong to. on_tuned(index, result) is called as each
// descriptor's last candidate has been timed (mostly in order; result.wall_us its span);
// on_candidate(index, candidate, count, name) before each candidate. Throws as tune_cuda does,
// for the first descriptor that fails, after on_tuned of those finished before it.
void tune_cuda_each(const std::vector<OpDesc>& descs, const TuneOptions& options,
                    const std::function<void(std::size_t, int, int, const std::string&)>& on_candidate,
                    const std::function<void(std::size_t, TuneResult)>& on_tuned);

}  // namespace lowbit::tuner
