#include "tuner/device_reference.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/embedded_templates.h"
#include "lowbit/half.h"
#include "lowbit/reference.h"

namespace lowbit::tuner {
namespace {

using cuda::check;
using cuda::driver;

constexpr unsigned threads_per_block = 128;
constexpr int64_t rows_per_thread = 4;                        // the template's REFERENCE_ROWS
constexpr int64_t max_launch_rows = 65535 * rows_per_thread;  // gridDim.y's limit

// The reference program loaded in a device's primary context, kept for the process.
class ReferenceModule {
 public:
  explicit ReferenceModule(const std::string& arch) {
    const std::vector<char> cubin = cuda::compile_to_cubin(reference_program_source(), "lowbit_reference_" + arch, arch);
    check(driver().cuModuleLoadData(&module_, cubin.data()), "cuModuleLoadData");
    check(driver().cuModuleGetFunction(&function_, module_, "lowbit_reference"), "cuModuleGetFunction");
  }
  ReferenceModule(const ReferenceModule&) = delete;
  ReferenceModule& operator=(const ReferenceModule&) = delete;
  // Never unloaded: the module lives as long as the primary context it is loaded in.
  CUfunction function() const { return function_; }

 private:
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
};

CUfunction reference_function(int ordinal) {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<ReferenceModule>> modules;
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<ReferenceModule>& module = modules[ordinal];
  if (!module) module = std::make_unique<ReferenceModule>(cuda::device_info(ordinal).arch());
  return module->function();
}

}  // namespace

std::string reference_program_source() {
  return fmt::format("#define REFERENCE_ROWS {}\n", rows_per_thread) + cuda::embedded_templates().at("reference_gemm.cuh");
}

std::vector<double> device_reference_matmul(const Problem& problem) {
  const OpDesc& desc = problem.desc;
  const QuantizedWeights& weights = problem.weights;
  cuda::make_current(desc.device.index);
  const CUfunction function = reference_function(desc.device.index);

  // The format's rules on the host, as reference_matmul applies them: the activations times
  // eq_scale, and each group's zero point and scale, all in double.
  const std::vector<double> activations =
      reference_activations(desc, problem.m, problem.x.data(), desc.eqscale ? problem.eq_scale.data() : nullptr);
  const int64_t groups = weights.group_count();
  std::vector<double> zero(static_cast<std::size_t>(desc.n * groups));
  std::vector<double> scale(zero.size());
  for (int64_t n = 0; n < desc.n; ++n)
    for (int64_t group = 0; group < groups; ++group) {
      zero[n * groups + group] = weights.zero_point(n, group);
      scale[n * groups + group] = weights.scale(n, group);
    }
  std::vector<double> bias;
  if (desc.bias)
    for (int64_t n = 0; n < desc.n; ++n) bias.push_back(load_as_float(problem.bias.data(), desc.act, n));

  const cuda::DeviceBuffer a = cuda::copy_to_device(activations.data(), activations.size() * sizeof(double));
  const cuda::DeviceBuffer q = cuda::copy_to_device(weights.q.data(), weights.q.size());
  const cuda::DeviceBuffer zero_buffer = cuda::copy_to_device(zero.data(), zero.size() * sizeof(double));
  const cuda::DeviceBuffer scale_buffer = cuda::copy_to_device(scale.data(), scale.size() * sizeof(double));
  const cuda::DeviceBuffer bias_buffer = cuda::copy_to_device(bias.data(), bias.size() * sizeof(double));
  const cuda::DeviceBuffer y(static_cast<std::size_t>(problem.m * desc.n) * sizeof(double));

  long long n_size = desc.n;
  int k_size = static_cast<int>(desc.k);
  int group_size = static_cast<int>(weights.group_size());
  const void* q_pointer = q.data();
  const void* zero_pointer = zero_buffer.data();
  const void* scale_pointer = scale_buffer.data();
  const void* bias_pointer = desc.bias ? bias_buffer.data() : nullptr;
  const unsigned column_blocks = static_cast<unsigned>((desc.n + threads_per_block - 1) / threads_per_block);
  for (int64_t first_row = 0; first_row < problem.m; first_row += max_launch_rows) {
    int rows = static_cast<int>(std::min(max_launch_rows, problem.m - first_row));
    const unsigned row_blocks = static_cast<unsigned>((rows + rows_per_thread - 1) / rows_per_thread);
    const void* a_pointer = static_cast<const double*>(a.data()) + first_row * desc.k;
    void* y_pointer = static_cast<double*>(y.data()) + first_row * desc.n;
    void* args[] = {&a_pointer, &q_pointer, &zero_pointer, &scale_pointer, &bias_pointer,
                    &y_pointer, &n_size,    &k_size,       &group_size,    &rows};
    check(driver().cuLaunchKernel(function, column_blocks, row_blocks, 1, threads_per_block, 1, 1, 0, nullptr, args,
                                  nullptr),
          "cuLaunchKernel");
  }
  const std::vector<uint8_t> bytes = y.download();  // synchronous: waits for the launches
  std::vector<double> result(static_cast<std::size_t>(problem.m * desc.n));
  std::copy_n(reinterpret_cast<const double*>(bytes.data()), result.size(), result.data());
  return result;
}

}  // namespace lowbit::tuner
