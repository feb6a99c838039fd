#include "codegen/cuda/cuda_kernel.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "codegen/cuda/gemv_generator.h"
#include "codegen/cuda/mma_generator.h"
#include "lowbit/errors.h"
#include "lowbit/native_layout.h"

namespace lowbit::cuda {

CudaKernel::CudaKernel(const OpDesc& desc, const CudaVariant& variant) : desc_(desc), variant_(variant) {
  const DeviceInfo& device = device_info(desc.device.index);
  name_ = variant_name(desc, variant, device.arch());
  std::string source;
  if (variant.family == CudaFamily::mma) {
    MmaGenerator generator;
    Validity validity = generator.is_valid(desc, variant, device.major);
    if (!validity) throw Unsupported(fmt::format("cannot build {}: {}", name_, validity.reason));
    geometry_ = generator.launch_geometry(desc, variant);
    if (geometry_.shared_bytes > static_cast<unsigned>(device.max_shared_per_block_optin))
      throw Unsupported(fmt::format("cannot build {}: {} bytes of shared memory, the device allows {}", name_,
                                    geometry_.shared_bytes, device.max_shared_per_block_optin));
    source = generator.emit(desc, variant);
  } else {
    GemvGenerator generator;
    Validity validity = generator.is_valid(desc, variant, device.major);
    if (!validity) throw Unsupported(fmt::format("cannot build {}: {}", name_, validity.reason));
    geometry_ = {static_cast<unsigned>(native_geometry(desc).panels), 1, static_cast<unsigned>(variant.warps * 32), 0};
    source = generator.emit(desc, variant);
  }
  cubin_ = compile_to_cubin(source, name_, device.arch());
  make_current(desc.device.index);
  check(driver().cuModuleLoadData(&module_, cubin_.data()), "cuModuleLoadData");
  check(driver().cuModuleGetFunction(&function_, module_, GemvGenerator::entry_point), "cuModuleGetFunction");
  // Above 48 KiB, dynamic shared memory must be opted into per function.
  if (geometry_.shared_bytes > 48 * 1024)
    check(driver().cuFuncSetAttribute(function_, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                      static_cast<int>(geometry_.shared_bytes)),
          "cuFuncSetAttribute");
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
  void* y = args.y;
  void* parameters[] = {&x, &qweight, &scales, &zeros, &bias, &y};
  check(driver().cuLaunchKernel(function_, geometry_.grid_x, geometry_.grid_y, 1, geometry_.threads, 1, 1,
                                geometry_.shared_bytes, static_cast<CUstream>(args.stream), parameters, nullptr),
        "cuLaunchKernel");
}

}  // namespace lowbit::cuda
