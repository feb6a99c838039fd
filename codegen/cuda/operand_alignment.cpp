#include "codegen/cuda/operand_alignment.h"

#include <cstdint>

#include <fmt/format.h>

#include "lowbit/errors.h"
#include "lowbit/half.h"

namespace lowbit::cuda {
namespace {

void require_aligned(const void* pointer, std::size_t alignment, const char* name, const char* why) {
  if (pointer != nullptr && reinterpret_cast<std::uintptr_t>(pointer) % alignment != 0)
    throw InvalidArgument(name, fmt::format("RunArgs.{} is not {}-byte aligned; the CUDA kernels need it ({})", name,
                                            alignment, why));
}

}  // namespace

void check_operand_alignment(const OpDesc& desc, CudaFamily family, const RunArgs& args) {
  const char* packed = "read 16 bytes at a time; pack_native's sections are 64-byte aligned";
  require_aligned(args.weights.qweight, 16, "weights.qweight", packed);
  require_aligned(args.weights.scales, 16, "weights.scales", packed);
  require_aligned(args.weights.zeros, 16, "weights.zeros", packed);
  if ((family == CudaFamily::mma || family == CudaFamily::wgmma) && desc.k % 8 == 0)
    require_aligned(args.x, 16, "x", "with k % 8 == 0 the mma and wgmma families copy rows of x 16 bytes at a time");
  if (desc.n % 2 == 0)
    require_aligned(args.y, 2 * static_cast<std::size_t>(dtype_bytes(desc.out)), "y", "with n even, two adjacent output columns are stored together");
  else
    require_aligned(args.y, static_cast<std::size_t>(dtype_bytes(desc.out)), "y", "outputs are stored as whole elements");
}

}  // namespace lowbit::cuda
