// The dequantize-then-GEMM fallback (CudaFamily::dequant_gemm) for large M: a generated kernel
// (templates/dequantize.cuh) expands the packed weights into a bf16/fp16 [N][LD] matrix in the
// caller's workspace, then cuBLASLt (dlopen'ed, cublaslt_api.h) computes y = x . W^T (+ bias
// through its epilogue) with fp32 accumulation. Both run on args.stream; run() neither
// allocates nor synchronizes. It costs one extra pass over the weights (read packed, write
// 16-bit) plus the GEMM reading 16-bit weights: worth it only where the GEMM is compute-bound.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "codegen/cuda/cublaslt_api.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/gemv_generator.h"
#include "lowbit/kernel.h"

namespace lowbit::cuda {

// The dequantization kernel's generator. The variant's warps, unroll and stages are the
// dequantization kernel's (warps per block; chunks of 8 or 16 k a lane converts per tile; tiles
// in flight per block through cp.async); the GEMM algorithm is cuBLASLt's first heuristic choice.
class DequantGemmGenerator {
 public:
  static constexpr std::string_view family = "cuda_dequant_gemm";
  static constexpr int version = 2;  // 2: persistent tiled grid, cp.async loads, stages
  static constexpr const char* entry_point = "lowbit_dequantize";

  std::vector<CudaVariant> candidates(const OpDesc& desc) const;
  Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const;
  std::string emit(const OpDesc& desc, const CudaVariant& variant) const;
  CudaVariant heuristic(const OpDesc& desc) const;

  // Row pitch (elements) of the dequantized matrix: K rounded up to 16, so every row starts
  // 32-byte aligned and each lane's chunk is whole.
  static int64_t row_pitch(const OpDesc& desc);
  // Tiles (one panel x warps * 2 * unroll chunks of k) the dequantization kernel walks; its
  // grid is min(tiles, SMs x blocks per SM), the same count templates/dequantize.cuh derives.
  static int64_t tiles(const OpDesc& desc, const CudaVariant& variant);
  // Packed bytes of one tile (one shared-memory stage).
  static int64_t tile_bytes(const OpDesc& desc, const CudaVariant& variant);
};

class DequantGemmKernel final : public ProgramKernel {
 public:
  // Compiles and loads the dequantization kernel, creates the cuBLASLt descriptors for this
  // descriptor's exact M and asks cuBLASLt for its algorithm. Throws Unsupported without a
  // usable device or cuBLASLt, or when cuBLASLt has no algorithm for the shape.
  DequantGemmKernel(const OpDesc& desc, const CudaVariant& variant);
  // The same with the dequantization kernel's cubin compiled earlier (the cache's): no NVRTC call.
  DequantGemmKernel(const OpDesc& desc, const CudaVariant& variant, std::vector<char> cubin);
  ~DequantGemmKernel() override;
  DequantGemmKernel(const DequantGemmKernel&) = delete;
  DequantGemmKernel& operator=(const DequantGemmKernel&) = delete;

  const OpDesc& desc() const override { return desc_; }
  const std::string& name() const override { return name_; }
  nlohmann::json variant_json() const override;
  // Dequantizes into args.workspace, then cublasLtMatmul, both on args.stream; returns
  // without waiting. Throws InvalidArgument for a missing/small/misaligned workspace or a
  // misaligned x, y or bias (cuBLASLt's algorithm was chosen for 16-byte alignment).
  void run(const RunArgs& args) const override;
  // The dequantized weights (N x row_pitch 16-bit, rounded up to 256 bytes) plus the
  // workspace of cuBLASLt's chosen algorithm.
  std::size_t workspace_bytes(int64_t m) const override;

  // Launches only the dequantization into `weights` (N x row_pitch): for its bandwidth figure.
  void dequantize(const RunArgs& args, void* weights) const;
  // Blocks the dequantization kernel is launched with (each walks tiles with a grid stride).
  unsigned grid() const { return grid_; }

  const std::vector<char>& cubin() const override { return cubin_; }
  const CudaVariant& variant() const override { return variant_; }

 private:
  OpDesc desc_;
  CudaVariant variant_;
  std::string name_;
  std::vector<char> cubin_;
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
  unsigned grid_ = 0;  // blocks of the dequantization kernel: persistent, sized from the SM count
  std::size_t weight_bytes_ = 0;  // dequantized weights, rounded up to 256
  std::size_t gemm_workspace_bytes_ = 0;
  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatmulDesc_t matmul_ = nullptr;
  cublasLtMatrixLayout_t weights_layout_ = nullptr;
  cublasLtMatrixLayout_t x_layout_ = nullptr;
  cublasLtMatrixLayout_t y_layout_ = nullptr;
  cublasLtMatmulAlgo_t algorithm_{};
  // The bias pointer is an attribute of the matmul descriptor: set per call under this lock.
  mutable std::mutex bias_mutex_;
};

}  // namespace lowbit::cuda
