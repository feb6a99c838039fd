#include "runtime/cuda_backend.h"

#include <nlohmann/json.hpp>

#include "lowbit/errors.h"

#if LOWBIT_WITH_CUDA
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/gemv_generator.h"
#endif

namespace lowbit::runtime {

#if LOWBIT_WITH_CUDA

std::string cuda_refusal(const OpDesc& desc) {
  if (!cuda::nvrtc().available) return cuda::nvrtc().reason;
  try {
    const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
    cuda::GemvGenerator generator;
    cuda::Validity validity = generator.is_valid(desc, generator.heuristic(desc), device.major);
    return validity ? std::string() : validity.reason;
  } catch (const Error& error) {
    return error.what();
  }
}

std::shared_ptr<const Kernel> build_cuda_heuristic(const OpDesc& desc) {
  return std::make_shared<cuda::CudaKernel>(desc, cuda::GemvGenerator().heuristic(desc));
}

nlohmann::json cuda_status() {
  nlohmann::json status = {{"available", false}, {"nvrtc", cuda::nvrtc_version()}};
  if (!cuda::nvrtc().available) {
    status["reason"] = cuda::nvrtc().reason;
    return status;
  }
  try {
    const cuda::DeviceInfo& device = cuda::device_info(0);
    status["available"] = true;
    status["device"] = device.name;
    status["arch"] = device.arch();
    status["fingerprint"] = device.fingerprint();
  } catch (const Error& error) {
    status["reason"] = error.what();
  }
  return status;
}

#else

std::string cuda_refusal(const OpDesc&) { return "this build of lowbit has no CUDA backend (no CUDA toolkit at build time)"; }

std::shared_ptr<const Kernel> build_cuda_heuristic(const OpDesc& desc) {
  throw Unsupported(cuda_refusal(desc));
}

nlohmann::json cuda_status() { return {{"available", false}, {"reason", cuda_refusal(OpDesc{})}}; }

#endif

}  // namespace lowbit::runtime
