#include "codegen/cuda/cuda_kernel.h"

#include <fmt/format.h>

#include <cstdint>

#include <nlohmann/json.hpp>

#include "codegen/cuda/gemv_generator.h"
#include "lowbit/errors.h"
#include "lowbit/native_layout.h"

namespace lowbit::cuda {

CudaKernel::CudaKernel(const OpDesc& desc, const CudaVariant& variant) : desc_(desc), variant_(variant) {
  const DeviceInfo& device = device_info(desc.device.index);
  GemvGenerator generator;
  Validity validity = generator.is_valid(desc, variant, device.major);
  name_ = variant_name(desc, variant, device.arch());
  if (!validity) throw Unsupported(fmt::format("cannot build {}: {}", name_, validity.reason));
  cubin_ = compile_to_cubin(generator.emit(desc, variant), name_, device.arch());
  load();
}

CudaKernel::CudaKernel(const OpDesc& desc, const CudaVariant& variant, std::vector<char> cubin)
    : desc_(desc), variant_(variant), cubin_(std::move(cubin)) {
  name_ = variant_name(desc, variant, device_info(desc.device.index).arch());
  load();
}

void CudaKernel::load() {
  make_current(desc_.device.index);
  check(driver().cuModuleLoadData(&module_, cubin_.data()), "cuModuleLoadData");
  check(driver().cuModuleGetFunction(&function_, module_, GemvGenerator::entry_point), "cuModuleGetFunction");
}

CudaKernel::~CudaKernel() {
  if (module_ != nullptr) driver().cuModuleUnload(module_);  // at exit the context may be gone: ignore errors
}

nlohmann::json CudaKernel::variant_json() const { return to_json(variant_); }

void CudaKernel::run(const RunArgs& args) const {
  check_run_args(desc_, args);
  make_current(desc_.device.index);
  const void* x = args.x;
  const void* qweight = args.weights.qweight;
  const void* scales = args.weights.scales;
  const void* zeros = args.weights.zeros;
  const void* bias = args.bias;
  const float* eq_scale = desc_.eqscale ? args.eq_scale : nullptr;
  // The kernels read eq_scale 16 bytes at a time (when k % 4 == 0), as cudaMalloc aligns.
  if (eq_scale != nullptr && reinterpret_cast<uintptr_t>(eq_scale) % 16 != 0)
    throw InvalidArgument("eq_scale", "the CUDA kernels need eq_scale 16-byte aligned");
  void* y = args.y;
  void* parameters[] = {&x, &qweight, &scales, &zeros, &bias, &eq_scale, &y};
  const unsigned panels = static_cast<unsigned>(native_geometry(desc_).panels);
  check(driver().cuLaunchKernel(function_, panels, 1, 1, static_cast<unsigned>(variant_.warps * 32), 1, 1, 0,
                                static_cast<CUstream>(args.stream), parameters, nullptr),
        "cuLaunchKernel");
}

}  // namespace lowbit::cuda
