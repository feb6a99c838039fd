#include "tuner/cuda_measure.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/registry.h"
#include "lowbit/half.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"

namespace lowbit::tuner {
namespace {

constexpr int warmup_runs = 3;
constexpr int minimum_repeats = 20;
constexpr double minimum_milliseconds = 10;
constexpr int maximum_repeats = 200;
constexpr int maximum_copies = 64;
constexpr std::size_t guard_bytes = 256;
constexpr uint8_t poison = 0xff;  // NaN in fp32, bf16 and fp16
constexpr uint8_t guard = 0xa5;

using cuda::check;
using cuda::driver;

// Owns two events; destroyed even when a launch throws.
class EventPair {
 public:
  EventPair() {
    check(driver().cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
    check(driver().cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  }
  ~EventPair() {
    driver().cuEventDestroy(start);
    driver().cuEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  CUevent start = nullptr;
  CUevent stop = nullptr;
};

int weight_copies(int64_t weight_bytes, int device) {
  const int64_t rotate_bytes = 4 * static_cast<int64_t>(cuda::device_info(device).l2_bytes);
  return static_cast<int>(std::clamp<int64_t>((rotate_bytes + weight_bytes - 1) / weight_bytes, 2, maximum_copies));
}

std::size_t output_bytes(const Problem& problem) {
  return static_cast<std::size_t>(problem.m * problem.desc.n * dtype_bytes(problem.desc.out));
}

// Allocations below land on the device of the calling thread's current context.
const Problem& with_current_device(const Problem& problem) {
  cuda::make_current(problem.desc.device.index);
  return problem;
}

}  // namespace

DeviceInputs::DeviceInputs(const Problem& problem)
    : problem_(&with_current_device(problem)),
      x_(cuda::copy_to_device(problem.x.data(), problem.x.size())),
      bias_(cuda::copy_to_device(problem.bias.data(), problem.desc.bias ? problem.bias.size() : 0)),
      eq_scale_(cuda::copy_to_device(problem.eq_scale.data(),
                                     problem.desc.eqscale ? problem.eq_scale.size() * sizeof(float) : 0)),
      output_(output_bytes(problem) + 2 * guard_bytes),
      output_bytes_(output_bytes(problem)) {
  const std::size_t weight_bytes = problem.packed.storage.size();
  const int copies = weight_copies(static_cast<int64_t>(weight_bytes), problem.desc.device.index);
  for (int copy = 0; copy < copies; ++copy)
    weights_.push_back(cuda::copy_to_device(problem.packed.storage.data(), weight_bytes));
}

RunArgs DeviceInputs::args(int copy) const {
  const Problem& problem = *problem_;
  RunArgs args;
  args.x = x_.data();
  args.weights = view_at(problem.packed, weights_[static_cast<std::size_t>(copy)].data());
  args.bias = problem.desc.bias ? bias_.data() : nullptr;
  args.eq_scale = problem.desc.eqscale ? static_cast<const float*>(eq_scale_.data()) : nullptr;
  args.y = static_cast<uint8_t*>(output_.data()) + guard_bytes;
  args.m = problem.m;
  args.workspace = workspace_ ? workspace_->data() : nullptr;
  args.workspace_size = workspace_ ? workspace_->size() : 0;
  return args;
}

void DeviceInputs::reserve_workspace(std::size_t bytes) {
  if (bytes > 0 && (!workspace_ || workspace_->size() < bytes)) {
    workspace_.reset();  // frees the smaller one first
    workspace_.emplace(bytes);
  }
}

void DeviceInputs::poison_output() {
  const auto base = reinterpret_cast<CUdeviceptr>(output_.data());
  check(driver().cuMemsetD8(base, guard, guard_bytes), "cuMemsetD8");
  check(driver().cuMemsetD8(base + guard_bytes, poison, output_bytes_), "cuMemsetD8");
  check(driver().cuMemsetD8(base + guard_bytes + output_bytes_, guard, guard_bytes), "cuMemsetD8");
}

std::vector<uint8_t> DeviceInputs::download_output(bool& guards_intact) const {
  const std::vector<uint8_t> all = output_.download();
  const auto is_guard = [](uint8_t byte) { return byte == guard; };
  guards_intact = std::all_of(all.begin(), all.begin() + guard_bytes, is_guard) &&
                  std::all_of(all.end() - guard_bytes, all.end(), is_guard);
  return std::vector<uint8_t>(all.begin() + guard_bytes, all.end() - guard_bytes);
}

CandidateResult verify_cuda(const Kernel& kernel, DeviceInputs& inputs, const std::vector<double>& reference) {
  const OpDesc& desc = kernel.desc();
  CandidateResult result;
  result.name = kernel.name();
  // The bound of the variant that runs these rows (an m=0 kernel hands them to one by row count).
  const Kernel& running = kernel.kernel_for_rows(inputs.args(0).m);
  const double bound = cuda::verification_tolerance(running.desc(), cuda::variant_from_json(running.variant_json()));
  inputs.reserve_workspace(kernel.workspace_bytes(inputs.args(0).m));
  inputs.poison_output();
  kernel.run(inputs.args(0));
  check(driver().cuCtxSynchronize(), "cuCtxSynchronize");  // the tuner may wait; get_kernel's callers never do
  bool guards_intact = false;
  const std::vector<uint8_t> out = inputs.download_output(guards_intact);
  result.rel_err = relative_error(out.data(), desc.out, reference);
  result.verified = guards_intact && result.rel_err <= bound;
  if (!guards_intact)
    result.failure = "wrote outside its output (guard bytes changed)";
  else if (!result.verified)
    result.failure =
        fmt::format("relative error {:.3g} exceeds the tolerance {:.3g}", result.rel_err, bound);
  return result;
}

Timing time_cuda_kernel(const Kernel& kernel, const DeviceInputs& inputs) {
  EventPair events;
  // CUDA events around each launch on the default stream; warm-ups are timed and discarded.
  auto timed_run = [&](int run) {
    const RunArgs args = inputs.args(run % inputs.copies());
    check(driver().cuEventRecord(events.start, nullptr), "cuEventRecord");
    kernel.run(args);
    check(driver().cuEventRecord(events.stop, nullptr), "cuEventRecord");
    check(driver().cuEventSynchronize(events.stop), "cuEventSynchronize");
    float milliseconds = 0;
    check(driver().cuEventElapsedTime(&milliseconds, events.start, events.stop), "cuEventElapsedTime");
    return milliseconds * 1e3;
  };
  return time_runs(timed_run, warmup_runs, minimum_repeats, minimum_milliseconds * 1e-3, maximum_repeats);
}

}  // namespace lowbit::tuner
