#include "tuner/measure.h"

#include <algorithm>
#include <cstring>

#include "lowbit/cpu_info.h"
#include "lowbit/half.h"

namespace lowbit::tuner {
namespace {
constexpr int warmup_runs = 2;
constexpr int minimum_repeats = 10;
constexpr double minimum_seconds = 0.05;
constexpr int maximum_repeats = 200;
constexpr int maximum_copies = 64;
}  // namespace

RotatedInputs::RotatedInputs(const Problem& problem) : problem_(&problem) {
  const int64_t weight_bytes = problem.packed.total_bytes();
  const int64_t rotate_bytes = 4 * std::max<int64_t>(cpu_info().l3_bytes, int64_t{32} << 20);
  const int64_t copies = std::clamp<int64_t>((rotate_bytes + weight_bytes - 1) / weight_bytes, 2, maximum_copies);
  const std::size_t out_bytes = static_cast<std::size_t>(problem.m * problem.desc.n * dtype_bytes(problem.desc.out));
  for (int64_t copy = 0; copy < copies; ++copy) {
    AlignedBuffer weights(static_cast<std::size_t>(weight_bytes));
    std::memcpy(weights.data(), problem.packed.storage.data(), static_cast<std::size_t>(weight_bytes));
    weights_.push_back(std::move(weights));
    outputs_.emplace_back(out_bytes);
  }
}

RunArgs RotatedInputs::args(int copy) const {
  const Problem& problem = *problem_;
  RunArgs args;
  args.x = problem.x.data();
  args.weights = view_at(problem.packed, weights_[copy].data());
  args.bias = problem.desc.bias ? problem.bias.data() : nullptr;
  args.eq_scale = problem.desc.eqscale ? problem.eq_scale.data() : nullptr;
  args.y = outputs_[copy].data();
  args.m = problem.m;
  return args;
}

Timing time_kernel(const Kernel& kernel, const RotatedInputs& inputs) {
  return time_callable([&](int run) { kernel.run(inputs.args(run % inputs.copies())); }, warmup_runs,
                       minimum_repeats, minimum_seconds, maximum_repeats);
}

}  // namespace lowbit::tuner
