// The CUDA backend as get_kernel and the CLI see it. Builds without the CUDA toolkit too:
// then every CUDA request is Unsupported with that reason.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/kernel.h"

namespace lowbit::runtime {

// Empty when a CUDA kernel can serve desc here; else why not (no toolkit at build time, no
// driver, no device, or the generator's own reason).
std::string cuda_refusal(const OpDesc& desc);

// The heuristic CUDA variant for desc, compiled with NVRTC for this device and loaded.
// (Tuning CUDA candidates is bench/cuda_bench.cpp's for now; get_kernel does not time them.)
std::shared_ptr<const Kernel> build_cuda_heuristic(const OpDesc& desc);

struct CompiledCuda {
  std::string variant_name;
  std::vector<char> cubin;
};
// Compiles desc's heuristic CUDA variant for arch ("sm_80", "sm_89", "sm_90a", ...) with NVRTC;
// needs no GPU. Throws InvalidArgument for a malformed arch, Unsupported when NVRTC is missing
// or no CUDA family serves desc on that arch.
CompiledCuda compile_cuda(const OpDesc& desc, const std::string& arch);

// {"available", "reason", "device", "arch", "nvrtc"} for `lowbit info`.
nlohmann::json cuda_status();

}  // namespace lowbit::runtime
