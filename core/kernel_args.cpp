#include <fmt/format.h>

#include "lowbit/errors.h"
#include "lowbit/kernel.h"

namespace lowbit {

void check_run_args(const OpDesc& desc, const RunArgs& args, std::size_t workspace_bytes) {
  if (args.m < 1) throw InvalidArgument("m", fmt::format("RunArgs.m is {}; it must be >= 1", args.m));
  if (desc.m != 0 && args.m != desc.m)
    throw InvalidArgument("m", fmt::format("RunArgs.m is {} but the kernel was built for m={} "
                                           "(build with m=0 for any M)",
                                           args.m, desc.m));
  auto require = [](const void* pointer, const char* name, const char* why) {
    if (pointer == nullptr) throw InvalidArgument(name, fmt::format("RunArgs.{} is null; {}", name, why));
  };
  require(args.x, "x", "activations are required");
  require(args.y, "y", "the output buffer is required");
  require(args.weights.qweight, "weights.qweight", "packed codes are required");
  require(args.weights.scales, "weights.scales", "scales are required");
  if (desc.zero != ZeroPoint::none) require(args.weights.zeros, "weights.zeros", "the descriptor has zero=int/float");
  if (desc.bias) require(args.bias, "bias", "the descriptor has bias=1");
  if (desc.eqscale) require(args.eq_scale, "eq_scale", "the descriptor has eqscale=1");
  if (workspace_bytes == 0) return;
  if (args.workspace == nullptr)
    throw InvalidArgument("workspace", fmt::format("RunArgs.workspace is null but this kernel needs {} bytes of "
                                                   "workspace at m={} (Kernel::workspace_bytes(m))",
                                                   workspace_bytes, args.m));
  if (args.workspace_size < workspace_bytes)
    throw InvalidArgument("workspace", fmt::format("RunArgs.workspace_size is {} bytes but this kernel needs {} "
                                                   "bytes at m={} (Kernel::workspace_bytes(m))",
                                                   args.workspace_size, workspace_bytes, args.m));
}

std::string_view to_string(KernelSource source) {
  switch (source) {
    case KernelSource::cache: return "cache";
    case KernelSource::tuned: return "tuned";
    case KernelSource::heuristic: return "heuristic";
  }
  return "unknown";
}

}  // namespace lowbit
