#include "codegen/cuda/cuda_kernel.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "codegen/cuda/gemv_generator.h"
#include "codegen/cuda/mma_generator.h"
#include "codegen/cuda/operand_alignment.h"
#include "codegen/cuda/registry.h"
#include "codegen/cuda/wgmma_generator.h"
#include "lowbit/errors.h"
#include "lowbit/native_layout.h"

namespace lowbit::cuda {
namespace {

// The launch of the families CudaKernel runs (the registry owns validity and source; the
// geometry is the one thing it does not hold).
LaunchGeometry family_geometry(const OpDesc& desc, const CudaVariant& variant) {
  if (variant.family == CudaFamily::mma) return MmaGenerator().launch_geometry(desc, variant);
  if (variant.family == CudaFamily::wgmma) return WgmmaGenerator().launch_geometry(desc, variant);
  return GemvGenerator().launch_geometry(desc, variant);
}

// Whether the variant writes fp32 partials to the workspace and sums them in a second kernel (a
// wgmma cluster split sums them in its cluster's shared memory).
bool splits(const CudaVariant& variant) {
  return variant.split_k > 1 && variant.cluster_split == 0 &&
         (variant.family == CudaFamily::wgmma || variant.family == CudaFamily::gemv_mma);
}

// A stream-K launch's token (templates/wgmma_gemm.cuh: its flags hold it once a partial is
// stored): new for every launch of every kernel of this process, never 0, and with a high half no
// small integer or ordinary float pair has, so a workspace another kernel wrote is not mistaken
// for this launch's flags.
unsigned long long next_launch_token() {
  static std::atomic<unsigned long long> launches{0};
  return 0x5354524d00000000ull | (launches.fetch_add(1, std::memory_order_relaxed) % 0xffffffffull + 1);
}

// Whether a kernel's launches may overlap the stream's previous kernel when asked to: a family
// whose program waits for the previous grid before it touches anything but the weights
// (templates/gemv_mma.cuh, wait_for_previous_grid), a device with programmatic dependent launch
// (sm_90 on) and a driver with cuLaunchKernelEx.
bool can_overlap_previous(const CudaVariant& variant, int device_major) {
  return variant.family == CudaFamily::gemv_mma && device_major >= 9 && driver().cuLaunchKernelEx != nullptr;
}

// cuLaunchKernel, or with `overlap` its programmatic-dependent-launch form: the grid may start
// once the previous kernel in the stream has begun to finish (its blocks exiting), and its
// griddepcontrol.wait returns when that kernel has completed.
// A geometry with cluster_z > 1 launches through cuLaunchKernelEx with the cluster dimension
// (1, 1, cluster_z) as a launch attribute (the program declares none at compile time).
void launch(CUfunction function, const LaunchGeometry& geometry, CUstream stream, void** parameters, bool overlap,
            const char* what = "cuLaunchKernel") {
  if (!overlap && geometry.cluster_z == 1) {
    check(driver().cuLaunchKernel(function, geometry.grid_x, geometry.grid_y, geometry.grid_z, geometry.threads, 1, 1,
                                  geometry.shared_bytes, stream, parameters, nullptr),
          what);
    return;
  }
  // Each asked-for attribute, so a cluster launch may also overlap the previous kernel.
  CUlaunchAttribute attributes[2]{};
  unsigned count = 0;
  if (overlap) {
    attributes[count].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attributes[count++].value.programmaticStreamSerializationAllowed = 1;
  }
  if (geometry.cluster_z > 1) {
    attributes[count].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attributes[count].value.clusterDim.x = 1;
    attributes[count].value.clusterDim.y = 1;
    attributes[count++].value.clusterDim.z = geometry.cluster_z;
  }
  CUlaunchConfig config{};
  config.gridDimX = geometry.grid_x;
  config.gridDimY = geometry.grid_y;
  config.gridDimZ = geometry.grid_z;
  config.blockDimX = geometry.threads;
  config.blockDimY = 1;
  config.blockDimZ = 1;
  config.sharedMemBytes = geometry.shared_bytes;
  config.hStream = stream;
  config.attrs = attributes;
  config.numAttrs = count;
  check(driver().cuLaunchKernelEx(&config, function, parameters, nullptr),
        overlap ? "cuLaunchKernelEx (overlapping the previous kernel)" : "cuLaunchKernelEx (a cluster launch)");
}

}  // namespace

CudaKernel::CudaKernel(const OpDesc& desc, const CudaVariant& variant) : desc_(desc), variant_(variant) {
  const DeviceInfo& device = device_info(desc.device.index);
  name_ = variant_name(desc, variant, device.arch());
  if (variant.family == CudaFamily::dequant_gemm)
    throw Unsupported(fmt::format("cannot build {}: the dequant_gemm family runs as a DequantGemmKernel", name_));
  const Validity validity = is_valid(desc, variant, device.major);
  if (!validity) throw Unsupported(fmt::format("cannot build {}: {}", name_, validity.reason));
  cubin_ = compile_to_cubin(emit(desc, variant), name_, device.arch());
  load();
}

CudaKernel::CudaKernel(const OpDesc& desc, const CudaVariant& variant, std::vector<char> cubin)
    : desc_(desc), variant_(variant), cubin_(std::move(cubin)) {
  name_ = variant_name(desc, variant, device_info(desc.device.index).arch());
  load();
}

void CudaKernel::load() {
  const DeviceInfo& device = device_info(desc_.device.index);
  geometry_ = family_geometry(desc_, variant_);
  can_overlap_ = can_overlap_previous(variant_, device.major);
  if (geometry_.cluster_z > 1 && driver().cuLaunchKernelEx == nullptr)
    throw Unsupported(fmt::format("cannot load {}: a cluster launch needs cuLaunchKernelEx, which this driver lacks",
                                  name_));
  if (geometry_.shared_bytes > static_cast<unsigned>(device.max_shared_per_block_optin))
    throw Unsupported(fmt::format("cannot load {}: {} bytes of shared memory, the device allows {}", name_,
                                  geometry_.shared_bytes, device.max_shared_per_block_optin));
  make_current(desc_.device.index);
  check(driver().cuModuleLoadData(&module_, cubin_.data()), "cuModuleLoadData");
  check(driver().cuModuleGetFunction(&function_, module_, GemvGenerator::entry_point), "cuModuleGetFunction");
  if (splits(variant_)) {
    const bool wgmma = variant_.family == CudaFamily::wgmma;
    check(driver().cuModuleGetFunction(&reduce_function_, module_,
                                       wgmma ? WgmmaGenerator::reduce_entry_point : GemvGenerator::split_sum_entry_point),
          "cuModuleGetFunction");
    reduce_geometry_ = reduce_geometry_for_rows(desc_.m);
  }
  // Without an opt-in per function, dynamic shared memory is allowed 48 KiB less the kernel's
  // static shared memory (gemv_mma has both), so every kernel with dynamic shared memory opts in.
  if (geometry_.shared_bytes > 0)
    check(driver().cuFuncSetAttribute(function_, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                      static_cast<int>(geometry_.shared_bytes)),
          "cuFuncSetAttribute");
}

CudaKernel::~CudaKernel() {
  if (module_ != nullptr) driver().cuModuleUnload(module_);  // at exit the context may be gone: ignore errors
}

nlohmann::json CudaKernel::variant_json() const { return to_json(variant_); }

LaunchGeometry CudaKernel::geometry_for_rows(int64_t rows) const {
  OpDesc sized = desc_;
  sized.m = rows;
  return family_geometry(sized, variant_);
}

LaunchGeometry CudaKernel::reduce_geometry_for_rows(int64_t rows) const {
  OpDesc sized = desc_;
  sized.m = rows;
  return variant_.family == CudaFamily::wgmma ? WgmmaGenerator::reduce_geometry(sized)
                                              : GemvGenerator::split_sum_geometry(sized);
}

std::size_t CudaKernel::workspace_bytes(int64_t m) const {
  // wgmma sizes its split partials (an any-M kernel's by the call's rows) and its stream-K flags
  // and tiles (0 for neither).
  if (variant_.family == CudaFamily::wgmma) {
    OpDesc sized = desc_;
    if (desc_.m == 0 && variant_.stream_k == 0) sized.m = std::max<int64_t>(m, 0);  // (stream-K: its schedule's)
    return WgmmaGenerator::workspace_bytes(sized, variant_);
  }
  return splits(variant_) ? GemvGenerator::workspace_bytes(desc_, variant_) : 0;
}

void CudaKernel::run(const RunArgs& args) const {
  check_run_args(desc_, args, workspace_bytes(args.m));
  if (variant_.schedule_rows != 0 && args.m > variant_.schedule_rows)
    throw InvalidArgument("m", fmt::format("{}: m={} exceeds the {} rows its stream-K schedule is laid out for (an "
                                           "any-M kernel of a row range; a call of more rows needs another kernel)",
                                           name_, args.m, variant_.schedule_rows));
  check_operand_alignment(desc_, variant_, args);
  make_current(desc_.device.index);
  const void* x = args.x;
  const void* qweight = args.weights.qweight;
  const void* scales = args.weights.scales;
  const void* zeros = args.weights.zeros;
  const void* bias = args.bias;
  const float* eq_scale = desc_.eqscale ? args.eq_scale : nullptr;
  void* y = args.y;
  // A split writes its fp32 partials into the workspace; the second pass reads them into y.
  void* first_output = reduce_function_ != nullptr ? args.workspace : y;
  // The eighth parameter: the rows of an any-M kernel (every mma kernel declares it; an m=0
  // wgmma one), or the gemv families' `overlapping` (1 when this launch may overlap the previous
  // kernel); an exact-M wgmma kernel declares seven, and the driver reads only as many as the
  // kernel's image declares.
  const bool overlap = args.overlap_previous && can_overlap_;
  const bool takes_rows = variant_.family == CudaFamily::mma || (variant_.family == CudaFamily::wgmma && desc_.m == 0);
  int rows = static_cast<int>(args.m);
  int eighth = takes_rows ? rows : overlap ? 1 : 0;
  void* parameters[] = {&x, &qweight, &scales, &zeros, &bias, &eq_scale, &first_output, &eighth};
  const LaunchGeometry geometry = desc_.m == 0 ? geometry_for_rows(args.m) : geometry_;
  // A stream-K wgmma variant takes the workspace (its flags and partial tiles) and a launch token.
  void* workspace = args.workspace;
  unsigned long long token = variant_.stream_k != 0 ? next_launch_token() : 0;
  // (An any-M stream-K kernel's tenth parameter: the call's rows; the others declare nine.)
  void* stream_k_parameters[] = {&x, &qweight, &scales, &zeros, &bias, &eq_scale, &y, &workspace, &token, &rows};
  launch(function_, geometry, static_cast<CUstream>(args.stream),
         variant_.stream_k != 0 ? stream_k_parameters : parameters, overlap);
  if (reduce_function_ == nullptr) return;
  const void* partials = args.workspace;
  // An any-M wgmma split's second kernel takes the call's rows (the fourth parameter; the others
  // declare three) and a grid over them.
  void* reduce_parameters[] = {&partials, &bias, &y, &rows};
  const LaunchGeometry reduce_geometry = desc_.m == 0 ? reduce_geometry_for_rows(args.m) : reduce_geometry_;
  launch(reduce_function_, reduce_geometry, static_cast<CUstream>(args.stream), reduce_parameters, false,
         "cuLaunchKernel (split-K sum)");
}

}  // namespace lowbit::cuda
