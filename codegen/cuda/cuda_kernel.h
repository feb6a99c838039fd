// A CUDA kernel of one (descriptor, variant): NVRTC-compiled cubin, loaded module, launch.
#pragma once

#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_variant.h"
#include "lowbit/kernel.h"

namespace lowbit::cuda {

// A CUDA kernel built from one NVRTC program of (desc, variant): what the cubin cache stores and
// the tuner verifies, whatever runs around the program (CudaKernel: nothing; the dequant_gemm
// fallback: a cuBLASLt GEMM).
class ProgramKernel : public Kernel {
 public:
  virtual const std::vector<char>& cubin() const = 0;
  virtual const CudaVariant& variant() const = 0;
};

class CudaKernel final : public ProgramKernel {
 public:
  // Compiles (NVRTC, for the device's exact arch) and loads. Throws Unsupported without a
  // usable device, Error with the NVRTC log when compilation fails.
  CudaKernel(const OpDesc& desc, const CudaVariant& variant);
  // Loads a cubin compiled earlier from this (desc, variant) (the cache's, or the registry's
  // build): no NVRTC call. The caller has checked the variant's validity.
  CudaKernel(const OpDesc& desc, const CudaVariant& variant, std::vector<char> cubin);
  ~CudaKernel() override;
  CudaKernel(const CudaKernel&) = delete;
  CudaKernel& operator=(const CudaKernel&) = delete;

  const OpDesc& desc() const override { return desc_; }
  const std::string& name() const override { return name_; }
  nlohmann::json variant_json() const override;
  // Launches on args.stream; returns without waiting for the GPU. A split (wgmma or gemv_mma) variant
  // launches its second pass after it on the same stream and needs args.workspace; so does a
  // stream-K wgmma variant (its flags and partial tiles). A wgmma cluster split (cluster_split)
  // is one cluster launch (cuLaunchKernelEx) and needs no workspace.
  void run(const RunArgs& args) const override;
  std::size_t workspace_bytes(int64_t m) const override;

  const std::vector<char>& cubin() const override { return cubin_; }
  const CudaVariant& variant() const override { return variant_; }

 private:
  void load();
  // The launch of an m=0 kernel (any M) at `rows` rows: the grid covers them.
  LaunchGeometry geometry_for_rows(int64_t rows) const;
  // The split's second kernel's grid for a call of `rows` rows (an any-M split's follows the call).
  LaunchGeometry reduce_geometry_for_rows(int64_t rows) const;

  OpDesc desc_;
  CudaVariant variant_;
  std::string name_;
  std::vector<char> cubin_;
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
  CUfunction reduce_function_ = nullptr;  // a split's second pass (wgmma or gemv_mma with split_k > 1), else null
  LaunchGeometry geometry_;               // from the family's generator
  LaunchGeometry reduce_geometry_;
  // Whether RunArgs::overlap_previous takes effect: settled once at load (family, device, driver),
  // not per launch.
  bool can_overlap_ = false;
};

}  // namespace lowbit::cuda
