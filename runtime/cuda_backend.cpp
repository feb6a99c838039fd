#include "runtime/cuda_backend.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "lowbit/errors.h"

#if LOWBIT_WITH_CUDA
#include "codegen/cuda/cublaslt_api.h"
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

namespace {

// "sm_90a" -> 9; throws InvalidArgument naming --arch otherwise.
int arch_major(const std::string& arch) {
  int major = 0;
  int minor = 0;
  char suffix = 0;
  const int fields = std::sscanf(arch.c_str(), "sm_%1d%1d%c", &major, &minor, &suffix);
  if (fields < 2 || (fields == 3 && suffix != 'a') || major < 5)
    throw InvalidArgument("arch", "arch '" + arch + "' is not a CUDA architecture; expected sm_XY or sm_XYa, e.g. sm_80, sm_89, sm_90a");
  return major;
}

}  // namespace

CompiledCuda compile_cuda(const OpDesc& desc, const std::string& arch) {
  const int major = arch_major(arch);
  if (!cuda::nvrtc().available) throw Unsupported("cannot compile CUDA: " + cuda::nvrtc().reason);
  cuda::GemvGenerator generator;
  const cuda::CudaVariant variant = generator.heuristic(desc);
  cuda::Validity validity = generator.is_valid(desc, variant, major);
  if (!validity) throw Unsupported("no CUDA kernel serves " + to_string(desc) + " on " + arch + ": " + validity.reason);
  CompiledCuda compiled;
  compiled.variant_name = cuda::variant_name(desc, variant, arch);
  compiled.cubin = cuda::compile_to_cubin(generator.emit(desc, variant), compiled.variant_name, arch);
  return compiled;
}

nlohmann::json cuda_status() {
  nlohmann::json status = {{"available", false}, {"nvrtc", cuda::nvrtc_version()}};
  // cuBLASLt serves only the dequant_gemm fallback: its absence is reported, not fatal.
  status["cublaslt"] = cuda::cublaslt().available
                           ? cuda::cublaslt_version() + " (" + cuda::cublaslt().library + ")"
                           : "unavailable: " + cuda::cublaslt().reason;
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

CompiledCuda compile_cuda(const OpDesc& desc, const std::string&) { throw Unsupported(cuda_refusal(desc)); }

nlohmann::json cuda_status() { return {{"available", false}, {"reason", cuda_refusal(OpDesc{})}}; }

#endif

}  // namespace lowbit::runtime
