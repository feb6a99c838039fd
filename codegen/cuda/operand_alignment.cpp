#include "codegen/cuda/operand_alignment.h"

#include <cstdint>

#include <fmt/format.h>

#include "lowbit/errors.h"
#include "lowbit/half.h"

namespace lowbit::cuda {
namespace {

constexpr const char* kernels = "the CUDA kernels";

}  // namespace

void require_aligned(const void* pointer, std::size_t alignment, const char* name, const char* who, const char* why) {
  if (pointer != nullptr && reinterpret_cast<std::uintptr_t>(pointer) % alignment != 0)
    throw InvalidArgument(name, fmt::format("RunArgs.{} is not {}-byte aligned; {} needs it ({})", name, alignment,
                                            who, why));
}

void check_operand_alignment(const OpDesc& desc, const CudaVariant& variant, const RunArgs& args) {
  const CudaFamily family = variant.family;
  const char* packed = "read 16 bytes at a time; pack_native's sections are 64-byte aligned";
  require_aligned(args.weights.qweight, 16, "weights.qweight", kernels, packed);
  require_aligned(args.weights.scales, 16, "weights.scales", kernels, packed);
  require_aligned(args.weights.zeros, 16, "weights.zeros", kernels, packed);
  if ((family == CudaFamily::mma || family == CudaFamily::wgmma) && desc.k % 8 == 0)
    require_aligned(args.x, 16, "x", kernels, "with k % 8 == 0 the mma and wgmma families copy rows of x 16 bytes at a time");
  if (desc.n % 2 == 0)
    require_aligned(args.y, 2 * static_cast<std::size_t>(dtype_bytes(desc.out)), "y", kernels, "with n even, two adjacent output columns are stored together");
  else
    require_aligned(args.y, static_cast<std::size_t>(dtype_bytes(desc.out)), "y", kernels, "outputs are stored as whole elements");
  // The kernels read eq_scale 16 bytes at a time (when k % 4 == 0), as cudaMalloc aligns.
  if (desc.eqscale && args.eq_scale != nullptr && reinterpret_cast<std::uintptr_t>(args.eq_scale) % 16 != 0)
    throw InvalidArgument("eq_scale", "the CUDA kernels need eq_scale 16-byte aligned");
  // A split's partials are read as float4 and its slices are whole rows of floats.
  if (variant.split_k > 1 && reinterpret_cast<std::uintptr_t>(args.workspace) % 256 != 0)
    throw InvalidArgument("workspace", "the split wgmma kernels need RunArgs.workspace 256-byte aligned");
  // Stream-K's flags are 8-byte words and its partial tiles float4, after 256 bytes of flags.
  if (variant.stream_k != 0 && reinterpret_cast<std::uintptr_t>(args.workspace) % 256 != 0)
    throw InvalidArgument("workspace", "the stream-K wgmma kernels need RunArgs.workspace 256-byte aligned");
}

}  // namespace lowbit::cuda
