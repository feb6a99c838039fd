// A CUDA kernel of one (descriptor, variant): NVRTC-compiled cubin, loaded module, launch.
#pragma once

#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_variant.h"
#include "lowbit/kernel.h"

namespace lowbit::cuda {

class CudaKernel final : public Kernel {
 public:
  // Compiles (NVRTC, for the device's exact arch) and loads. Throws Unsupported without a
  // usable device, Error with the NVRTC log when compilation fails.
  CudaKernel(const OpDesc& desc, const CudaVariant& variant);
  ~CudaKernel() override;
  CudaKernel(const CudaKernel&) = delete;
  CudaKernel& operator=(const CudaKernel&) = delete;

  const OpDesc& desc() const override { return desc_; }
  const std::string& name() const override { return name_; }
  nlohmann::json variant_json() const override;
  // Launches on args.stream; returns without waiting for the GPU.
  void run(const RunArgs& args) const override;

  const std::vector<char>& cubin() const { return cubin_; }

 private:
  OpDesc desc_;
  CudaVariant variant_;
  std::string name_;
  std::vector<char> cubin_;
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
  LaunchGeometry geometry_;  // from the family's generator
};

}  // namespace lowbit::cuda
