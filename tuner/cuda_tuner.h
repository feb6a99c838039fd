// Tuning CUDA descriptors (built only with the CUDA backend); tuner::tune() sends
// device=cuda:N descriptors here.
#pragma once

#include "tuner/tuner.h"

namespace lowbit::tuner {

// Every registered CUDA generator's candidates for desc on its device: compiled with NVRTC
// (several at once), each verified against the reference on the GPU (poisoned output, guard
// bytes), the verified ones timed under cuda-rotate-median:1. Throws Unsupported when no
// candidate exists or none passes verification.
TuneResult tune_cuda(const OpDesc& desc, const TuneOptions& options);

}  // namespace lowbit::tuner
