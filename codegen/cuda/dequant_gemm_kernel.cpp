#include "codegen/cuda/dequant_gemm_kernel.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "codegen/cuda/embedded_templates.h"
#include "codegen/cuda/operand_alignment.h"
#include "codegen/cuda/template_constants.h"
#include "lowbit/errors.h"
#include "lowbit/native_layout.h"

namespace lowbit::cuda {
namespace {

constexpr std::size_t workspace_alignment = 256;  // RunArgs.workspace; cuBLASLt's own default
constexpr std::size_t operand_alignment = 16;     // x, y, bias: what the algorithm is chosen for
constexpr std::size_t copy_alignment = 16;
constexpr int64_t max_static_shared = 48 * 1024;  // a block's static __shared__ limit (the tile buffers)        // qweight: the dequantization kernel's cp.async copies
// cuBLASLt's workspace cap; NVIDIA suggests 32 MiB on Hopper for its best kernels.
constexpr uint64_t max_gemm_workspace = uint64_t{32} << 20;

std::size_t round_up(std::size_t value, std::size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

cudaDataType_t cublas_type(DType dtype) {
  switch (dtype) {
    case DType::fp32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::fp16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}


// k per lane chunk in templates/dequantize.cuh: 8, or the whole 16-k step of 3-bit weights.
int64_t chunk_k(const OpDesc& desc) { return desc.bits == 3 ? 16 : 8; }

template <class Value>
void set_attribute(cublasLtMatmulDesc_t matmul, cublasLtMatmulDescAttributes_t attribute, const Value& value,
                   const char* what) {
  check(cublaslt().cublasLtMatmulDescSetAttribute(matmul, attribute, &value, sizeof(value)), what);
}

constexpr const char* family_needs = "the dequant_gemm family";
constexpr const char* algorithm_alignment = "its cuBLASLt algorithm was chosen for that alignment";

}  // namespace

// ---- generator -------------------------------------------------------------------------

int64_t DequantGemmGenerator::row_pitch(const OpDesc& desc) { return (desc.k + 15) / 16 * 16; }

int64_t DequantGemmGenerator::tile_bytes(const OpDesc& desc, const CudaVariant& variant) {
  // A chunk of chunk_k k of 16 columns is chunk_k * 16 codes of `bits` bits.
  return int64_t{variant.warps} * 2 * variant.unroll * chunk_k(desc) * 16 * desc.bits / 8;
}

int64_t DequantGemmGenerator::tiles(const OpDesc& desc, const CudaVariant& variant) {
  const int64_t chunks = row_pitch(desc) / chunk_k(desc);
  const int64_t tile_chunks = int64_t{variant.warps} * 2 * variant.unroll;
  return native_geometry(desc).panels * ((chunks + tile_chunks - 1) / tile_chunks);
}

Validity DequantGemmGenerator::is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (variant.family != CudaFamily::dequant_gemm) return refuse("the variant's family is not dequant_gemm");
  if (desc.device.kind != DeviceKind::cuda) return refuse("the CUDA generators serve device=cuda:N only");
  if (arch_major < 8) return refuse("the dequant_gemm family needs compute capability 8.0 or newer (bf16 GEMM)");
  if (desc.compute != Compute::floating) return refuse("compute=int8 is not served by the dequant_gemm family");
  if (desc.layout != Layout::native) return refuse("only layout=native is read by CUDA kernels");
  if (desc.act != DType::bf16 && desc.act != DType::fp16)
    return refuse("the dequant_gemm family needs act=bf16 or fp16 (the weights are expanded to the activation "
                  "type for a tensor-core GEMM)");
  if (desc.out != desc.act && desc.out != DType::fp32)
    return refuse(fmt::format("out={} with act={}: cuBLASLt writes the activation type or fp32", to_string(desc.out),
                              to_string(desc.act)));
  if (desc.bias && desc.out != desc.act)
    return refuse("bias=1 needs out=act in the dequant_gemm family (cuBLASLt's bias epilogue reads the bias in the "
                  "output type)");
  if (desc.m < 1)
    return refuse("m=0: the dequant_gemm family needs an exact m (cuBLASLt's algorithm is chosen for that M)");
  if (desc.n >= (int64_t{1} << 31) || desc.k >= (int64_t{1} << 31) || desc.m >= (int64_t{1} << 31))
    return refuse("m, n and k must be below 2^31 (cuBLASLt's 32-bit dimensions)");
  if (variant.warps != 2 && variant.warps != 4 && variant.warps != 8) return refuse("warps must be 2, 4 or 8");
  if (variant.unroll != 1 && variant.unroll != 2 && variant.unroll != 4 && variant.unroll != 8)
    return refuse("unroll must be 1, 2, 4 or 8");
  if (variant.stages < 2 || variant.stages > 4)
    return refuse("stages must be 2, 3 or 4 (tile buffers per block of the dequantization kernel)");
  if (const int64_t bytes = variant.stages * tile_bytes(desc, variant); bytes > max_static_shared)
    return refuse(fmt::format("stages x tile bytes = {} exceeds the {} bytes of static shared memory a block may "
                              "use; take fewer stages, warps or unroll",
                              bytes, max_static_shared));
  if (variant.block_n != 0 || variant.block_m != 0 || variant.block_k != 0 || variant.warps_n != 0 ||
      variant.warps_m != 0 || variant.warps_k != 0)
    return refuse("the mma tile fields (block_n/m/k, warps_n/m/k) must stay 0 in the dequant_gemm family");
  return {};
}

std::vector<CudaVariant> DequantGemmGenerator::candidates(const OpDesc& desc) const {
  std::vector<CudaVariant> variants;
  // Measured on the H100 (docs/benchmarks.md): more chunks a lane and fewer warps a block are
  // faster at K=4096 (the per-tile barrier is paid by fewer threads), unroll 1 never won.
  for (int warps : {2, 4, 8})
    for (int unroll : {2, 4, 8})
      for (int stages : {3, 4}) {
        CudaVariant variant{CudaFamily::dequant_gemm, warps, unroll};
        variant.stages = stages;
        if (is_valid(desc, variant, 9)) variants.push_back(variant);
      }
  return variants;
}

// Four warps, four chunks a lane, three stages: 4-bit, 2 KiB tiles (128 threads x 16 bytes),
// two in flight per block while one is converted; the fastest or within 3 % of it on the
// four Llama shapes in the first measurement. Replaced by measurements once the tuner times it.
CudaVariant DequantGemmGenerator::heuristic(const OpDesc&) const {
  CudaVariant variant{CudaFamily::dequant_gemm, 4, 4};
  variant.stages = 3;
  return variant;
}

std::string DequantGemmGenerator::emit(const OpDesc& desc, const CudaVariant& variant) const {
  const int zero = template_zero(desc.zero);
  const NativeGeometry geometry = native_geometry(desc);
  return fmt::format(
      "{body}\n"
      "// Instantiation for {descriptor}\n"
      "struct LowbitConfig {{\n"
      "  static constexpr int BITS = {bits};\n"
      "  static constexpr long long N = {n};\n"
      "  static constexpr long long K = {k};\n"
      "  static constexpr long long LD = {ld};\n"
      "  static constexpr long long GROUP = {group};\n"
      "  static constexpr long long GROUPS = {groups};\n"
      "  static constexpr int ZERO = {zero};\n"
      "  static constexpr int OUT = {out};\n"
      "  static constexpr bool HAS_EQ = {eq};\n"
      "  static constexpr int WARPS = {warps};\n"
      "  static constexpr int UNROLL = {unroll};\n"
      "  static constexpr int STAGES = {stages};\n"
      "}};\n"
      "extern \"C\" __global__ void __launch_bounds__({threads}) {entry}(const unsigned char* qweight,\n"
      "    const unsigned short* scales, const unsigned short* zeros, const float* eq_scale, unsigned short* weights) {{\n"
      "  lowbit_dequant::dequantize<LowbitConfig>(qweight, scales, zeros, eq_scale, weights);\n"
      "}}\n",
      fmt::arg("body", embedded_templates().at("dequantize.cuh")), fmt::arg("descriptor", to_string(desc)),
      fmt::arg("bits", desc.bits), fmt::arg("n", desc.n), fmt::arg("k", desc.k), fmt::arg("ld", row_pitch(desc)),
      fmt::arg("group", desc.group_size()), fmt::arg("groups", geometry.groups), fmt::arg("zero", zero),
      fmt::arg("out", template_dtype(desc.act)), fmt::arg("eq", desc.eqscale ? "true" : "false"),
      fmt::arg("warps", variant.warps), fmt::arg("unroll", variant.unroll), fmt::arg("stages", variant.stages), fmt::arg("threads", variant.warps * 32),
      fmt::arg("entry", entry_point));
}

// ---- kernel ----------------------------------------------------------------------------

DequantGemmKernel::DequantGemmKernel(const OpDesc& desc, const CudaVariant& variant)
    : DequantGemmKernel(desc, variant, std::vector<char>{}) {}

DequantGemmKernel::DequantGemmKernel(const OpDesc& desc, const CudaVariant& variant, std::vector<char> cubin)
    : desc_(desc), variant_(variant), cubin_(std::move(cubin)) {
  const DeviceInfo& device = device_info(desc.device.index);
  DequantGemmGenerator generator;
  name_ = variant_name(desc, variant, device.arch());
  if (Validity validity = generator.is_valid(desc, variant, device.major); !validity)
    throw Unsupported(fmt::format("cannot build {}: {}", name_, validity.reason));
  const CublasLt& api = cublaslt();
  if (!api.available) throw Unsupported(fmt::format("cannot build {}: {}", name_, api.reason));

  if (cubin_.empty()) cubin_ = compile_to_cubin(generator.emit(desc, variant), name_, device.arch());
  make_current(desc.device.index);
  check(driver().cuModuleLoadData(&module_, cubin_.data()), "cuModuleLoadData");
  check(driver().cuModuleGetFunction(&function_, module_, DequantGemmGenerator::entry_point), "cuModuleGetFunction");
  // A persistent grid: as many blocks as fit on the device at once (each walks tiles with a
  // grid stride), never more than there are tiles.
  int blocks_per_sm = 0;
  check(driver().cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, function_, variant.warps * 32, 0),
        "cuOccupancyMaxActiveBlocksPerMultiprocessor");
  const int64_t resident = int64_t{device.sm_count} * std::max(blocks_per_sm, 1);
  grid_ = static_cast<unsigned>(std::min(DequantGemmGenerator::tiles(desc, variant), resident));
  const int64_t pitch = DequantGemmGenerator::row_pitch(desc);
  weight_bytes_ = round_up(static_cast<std::size_t>(desc.n * pitch * 2), workspace_alignment);

  // Column-major view (cuBLAS's): y^T [N x M] = W [N x K] . x^T [K x M]. W is stored [N][pitch]
  // row-major = a K x N column-major matrix read transposed ("TN", both operands K-major).
  check(api.cublasLtCreate(&handle_), "cublasLtCreate");
  check(api.cublasLtMatmulDescCreate(&matmul_, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  set_attribute(matmul_, CUBLASLT_MATMUL_DESC_TRANSA, cublasOperation_t{CUBLAS_OP_T}, "TRANSA");
  set_attribute(matmul_, CUBLASLT_MATMUL_DESC_TRANSB, cublasOperation_t{CUBLAS_OP_N}, "TRANSB");
  if (desc.bias) set_attribute(matmul_, CUBLASLT_MATMUL_DESC_EPILOGUE, cublasLtEpilogue_t{CUBLASLT_EPILOGUE_BIAS}, "EPILOGUE");
  const auto n = static_cast<uint64_t>(desc.n);
  const auto k = static_cast<uint64_t>(desc.k);
  const auto m = static_cast<uint64_t>(desc.m);
  check(api.cublasLtMatrixLayoutCreate(&weights_layout_, cublas_type(desc.act), k, n, pitch), "layout W");
  check(api.cublasLtMatrixLayoutCreate(&x_layout_, cublas_type(desc.act), k, m, static_cast<int64_t>(k)), "layout x");
  check(api.cublasLtMatrixLayoutCreate(&y_layout_, cublas_type(desc.out), n, m, static_cast<int64_t>(n)), "layout y");

  cublasLtMatmulPreference_t preference = nullptr;
  check(api.cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
  const uint32_t caller_alignment = operand_alignment;
  const uint32_t weights_alignment = workspace_alignment;
  api.cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_gemm_workspace,
                                           sizeof(max_gemm_workspace));
  api.cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &weights_alignment,
                                           sizeof(weights_alignment));
  for (auto attribute : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                         CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    api.cublasLtMatmulPreferenceSetAttribute(preference, attribute, &caller_alignment, sizeof(caller_alignment));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t status =
      api.cublasLtMatmulAlgoGetHeuristic(handle_, matmul_, weights_layout_, x_layout_, y_layout_, y_layout_, preference,
                                         1, &result, &returned);
  api.cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || returned == 0)
    throw Unsupported(fmt::format("cannot build {}: cuBLASLt has no algorithm for {} ({})", name_, to_string(desc),
                                  api.cublasLtGetStatusString(status)));
  algorithm_ = result.algo;
  gemm_workspace_bytes_ = round_up(result.workspaceSize, workspace_alignment);
}

DequantGemmKernel::~DequantGemmKernel() {
  // At exit the context may be gone: errors are ignored.
  const CublasLt& api = cublaslt();
  if (y_layout_ != nullptr) api.cublasLtMatrixLayoutDestroy(y_layout_);
  if (x_layout_ != nullptr) api.cublasLtMatrixLayoutDestroy(x_layout_);
  if (weights_layout_ != nullptr) api.cublasLtMatrixLayoutDestroy(weights_layout_);
  if (matmul_ != nullptr) api.cublasLtMatmulDescDestroy(matmul_);
  if (handle_ != nullptr) api.cublasLtDestroy(handle_);
  if (module_ != nullptr) driver().cuModuleUnload(module_);
}

nlohmann::json DequantGemmKernel::variant_json() const { return to_json(variant_); }

std::size_t DequantGemmKernel::workspace_bytes(int64_t) const { return weight_bytes_ + gemm_workspace_bytes_; }

void DequantGemmKernel::dequantize(const RunArgs& args, void* weights) const {
  const void* qweight = args.weights.qweight;
  const void* scales = args.weights.scales;
  const void* zeros = args.weights.zeros;
  const void* eq_scale = args.eq_scale;
  void* parameters[] = {&qweight, &scales, &zeros, &eq_scale, &weights};
  check(driver().cuLaunchKernel(function_, grid_, 1, 1, static_cast<unsigned>(variant_.warps * 32), 1, 1, 0,
                                static_cast<CUstream>(args.stream), parameters, nullptr),
        "cuLaunchKernel");
}

void DequantGemmKernel::run(const RunArgs& args) const {
  check_run_args(desc_, args, workspace_bytes(args.m));
  require_aligned(args.workspace, workspace_alignment, "workspace", family_needs, algorithm_alignment);
  require_aligned(args.weights.qweight, copy_alignment, "weights.qweight", family_needs,
                  "the dequantization kernel copies it 16 bytes at a time; pack_native aligns it to 64");
  require_aligned(args.x, operand_alignment, "x", family_needs, algorithm_alignment);
  require_aligned(args.y, operand_alignment, "y", family_needs, algorithm_alignment);
  if (desc_.bias) require_aligned(args.bias, operand_alignment, "bias", family_needs, algorithm_alignment);
  make_current(desc_.device.index);
  void* weights = args.workspace;
  void* gemm_workspace = static_cast<uint8_t*>(args.workspace) + weight_bytes_;
  dequantize(args, weights);
  const float alpha = 1.0f;
  const float beta = 0.0f;
  const CublasLt& api = cublaslt();
  std::lock_guard<std::mutex> lock(bias_mutex_);
  if (desc_.bias) set_attribute(matmul_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, args.bias, "BIAS_POINTER");
  check(api.cublasLtMatmul(handle_, matmul_, &alpha, weights, weights_layout_, args.x, x_layout_, &beta, args.y,
                           y_layout_, args.y, y_layout_, &algorithm_, gemm_workspace, gemm_workspace_bytes_,
                           static_cast<cudaStream_t>(args.stream)),
        "cublasLtMatmul");
}

}  // namespace lowbit::cuda
