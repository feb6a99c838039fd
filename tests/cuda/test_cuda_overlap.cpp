// On an sm_90 GPU: RunArgs::overlap_previous (programmatic dependent launch). A gemv_mma call
// launched to overlap the stream's previous kernel must still see every write that kernel makes
// to x, and must not write y before it has finished. The previous kernel here lets its dependents
// start at once (griddepcontrol.launch_dependents), then waits 200 us before it writes x and
// clears y, so a call that touched x or y early would read poison or have its results wiped. A
// control kernel without the wait, launched the same way, shows the overlap is real (the test
// could fail). Those skip with the reason where no sm_90 device is usable (CI); the entry points'
// launch contract is checked everywhere.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/gemv_generator.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tests/cuda/device_check.h"

namespace lowbit::cuda {
namespace {

#define SKIP_WITHOUT_HOPPER()                                                                                  \
  if (!nvrtc().available) GTEST_SKIP() << "NVRTC is not installed: " << nvrtc().reason;                      \
  if (!driver().available) GTEST_SKIP() << "no usable CUDA device: " << driver().reason;                     \
  if (device_info(0).major < 9)                                                                             \
    GTEST_SKIP() << "programmatic dependent launch needs sm_90; this GPU is " << device_info(0).arch();      \
  if (driver().cuLaunchKernelEx == nullptr) GTEST_SKIP() << "this CUDA driver has no cuLaunchKernelEx"

// late_writer: lets the next kernel launch at once, spins `wait_ns`, then copies `words` 32-bit
// words from `from` into `to` and zeroes `clear_words` words at `clear` (one block).
// early_reader: copies `words` words of `from` into `to` with no wait for the previous grid.
constexpr const char* helper_source = R"(
extern "C" __global__ void late_writer(const unsigned* from, unsigned* to, unsigned long long words,
                                       unsigned* clear, unsigned long long clear_words, unsigned long long wait_ns) {
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(start));
  do { asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(now)); } while (now - start < wait_ns);
  for (unsigned long long i = threadIdx.x; i < words; i += blockDim.x) to[i] = from[i];
  for (unsigned long long i = threadIdx.x; i < clear_words; i += blockDim.x) clear[i] = 0u;
}
extern "C" __global__ void early_reader(const unsigned* from, unsigned* to, unsigned long long words) {
  for (unsigned long long i = threadIdx.x; i < words; i += blockDim.x) to[i] = from[i];
}
)";

class HelperKernels {
 public:
  HelperKernels() {
    make_current(0);  // each test runs in its own process: nothing made the context current yet
    const std::vector<char> cubin = compile_to_cubin(helper_source, "overlap_helpers", device_info(0).arch());
    check(driver().cuModuleLoadData(&module_, cubin.data()), "cuModuleLoadData");
    check(driver().cuModuleGetFunction(&late_writer_, module_, "late_writer"), "cuModuleGetFunction");
    check(driver().cuModuleGetFunction(&early_reader_, module_, "early_reader"), "cuModuleGetFunction");
  }
  ~HelperKernels() { driver().cuModuleUnload(module_); }
  HelperKernels(const HelperKernels&) = delete;
  HelperKernels& operator=(const HelperKernels&) = delete;

  void late_write(CUstream stream, const DeviceBuffer& from, DeviceBuffer& to, DeviceBuffer& clear) const {
    const void* source = from.data();
    void* target = to.data();
    unsigned long long words = from.size() / 4;
    void* cleared = clear.data();
    unsigned long long clear_words = clear.size() / 4;
    unsigned long long wait_ns = 200000;
    void* parameters[] = {&source, &target, &words, &cleared, &clear_words, &wait_ns};
    check(driver().cuLaunchKernel(late_writer_, 1, 1, 1, 256, 1, 1, 0, stream, parameters, nullptr), "late_writer");
  }
  // Launched as CudaKernel launches an overlapping call, but without griddepcontrol.wait.
  void early_read(CUstream stream, const DeviceBuffer& from, DeviceBuffer& to) const {
    const void* source = from.data();
    void* target = to.data();
    unsigned long long words = from.size() / 4;
    void* parameters[] = {&source, &target, &words};
    CUlaunchAttribute attribute{};
    attribute.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attribute.value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig config{};
    config.gridDimX = config.gridDimY = config.gridDimZ = 1;
    config.blockDimX = 256;
    config.blockDimY = config.blockDimZ = 1;
    config.hStream = stream;
    config.attrs = &attribute;
    config.numAttrs = 1;
    check(driver().cuLaunchKernelEx(&config, early_reader_, parameters, nullptr), "early_reader");
  }

 private:
  CUmodule module_ = nullptr;
  CUfunction late_writer_ = nullptr;
  CUfunction early_reader_ = nullptr;
};

// The previous kernel writes x late and clears y late; the overlapping call must still compute
// y from the new x, after the clear. Empty when it does, else what went wrong.
std::string check_overlapping_call(const HelperKernels& helpers, const Kernel& kernel) {
  const OpDesc& desc = kernel.desc();
  const std::string case_name = to_string(desc) + " " + kernel.name() + " overlapping";
  const uint64_t seed = seed_for(case_name);
  const Problem problem = make_random_problem(desc, desc.m, seed);
  DeviceBuffer staged_x = testing::upload(problem.x.data(), problem.x.size());
  DeviceBuffer x(problem.x.size());
  x.fill(testing::poison);
  DeviceBuffer weights = testing::upload(problem.packed.storage.data(), problem.packed.storage.size());
  DeviceBuffer bias = testing::upload(problem.bias.data(), problem.bias.size());
  const std::size_t out_bytes = static_cast<std::size_t>(desc.m * desc.n * dtype_bytes(desc.out));
  DeviceBuffer y(out_bytes);
  y.fill(testing::poison);
  DeviceBuffer workspace(std::max<std::size_t>(kernel.workspace_bytes(desc.m), 256));
  workspace.fill(testing::poison);
  testing::Stream stream;
  RunArgs args;
  args.x = x.data();
  args.weights = testing::device_weights(weights, problem);
  args.bias = desc.bias ? bias.data() : nullptr;
  args.y = y.data();
  args.m = desc.m;
  args.workspace = workspace.data();
  args.workspace_size = workspace.size();
  args.stream = stream.get();
  args.overlap_previous = true;
  helpers.late_write(stream.get(), staged_x, x, y);
  kernel.run(args);
  check(driver().cuStreamSynchronize(stream.get()), "cuStreamSynchronize");
  const std::vector<uint8_t> result = y.download();
  const std::vector<double> reference = reference_matmul(desc, desc.m, problem.x.data(), problem.weights,
                                                         desc.bias ? problem.bias.data() : nullptr, nullptr);
  const double error = relative_error(result.data(), desc.out, reference);
  if (!(error <= tolerance(desc)))
    return fmt::format("case: {} seed={}: relative error {} > {} (x read, or y written, before the previous kernel ended)",
                       case_name, seed, error, tolerance(desc));
  return {};
}

// The launch contract CudaKernel::run relies on (no GPU needed): the gemv families' entry points
// take `overlapping` as their eighth parameter, gemv_mma hands it to the template (its L2 lead
// runs only on overlapping launches), and the CUDA-core gemv, which never waits, ignores it.
TEST(CudaOverlapSource, GemvEntriesTakeTheOverlapFlagEighth) {
  const OpDesc desc = parse_descriptor("m=4,n=1000,k=4224,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  GemvGenerator generator;
  const std::string tensor_cores = generator.emit(desc, CudaVariant{CudaFamily::gemv_mma, 4, 2});
  EXPECT_NE(tensor_cores.find("void* y, int overlapping)"), std::string::npos);
  EXPECT_NE(tensor_cores.find("eq_scale, y, overlapping != 0);"), std::string::npos);
  EXPECT_NE(tensor_cores.find("griddepcontrol.wait"), std::string::npos);
  const std::string cuda_cores = generator.emit(desc, CudaVariant{CudaFamily::gemv, 4, 2});
  EXPECT_NE(cuda_cores.find("void* y, int overlapping)"), std::string::npos);
  EXPECT_NE(cuda_cores.find("eq_scale, y);"), std::string::npos);
  EXPECT_EQ(cuda_cores.find("griddepcontrol"), std::string::npos);
}

// The control: a kernel without griddepcontrol.wait, launched to overlap the late writer, reads
// x before the writer writes it. If it did not, the launch attribute gave no overlap here and
// check_overlapping_call could not tell a missing wait from a present one.
TEST(CudaOverlap, ControlReaderWithoutTheWaitSeesTheOldX) {
  SKIP_WITHOUT_HOPPER();
  const HelperKernels helpers;
  std::vector<uint32_t> fresh(1024, 0x3f803f80u);
  DeviceBuffer staged = testing::upload(fresh.data(), fresh.size() * 4);
  DeviceBuffer x(fresh.size() * 4);
  x.fill(testing::poison);
  DeviceBuffer seen(fresh.size() * 4);
  DeviceBuffer cleared(256);
  testing::Stream stream;
  helpers.late_write(stream.get(), staged, x, cleared);
  helpers.early_read(stream.get(), x, seen);
  check(driver().cuStreamSynchronize(stream.get()), "cuStreamSynchronize");
  const std::vector<uint8_t> bytes = seen.download();
  uint32_t first = 0;
  std::memcpy(&first, bytes.data(), 4);
  EXPECT_EQ(first, 0xffffffffu) << "the control read the writer's value: no overlap happened, so the "
                                   "overlapping-call tests below prove nothing on this device";
}

// gemv_mma at odd shapes (N not a multiple of 16; K not a multiple of 128, or with whole-K
// scaling a K tail inside the last 16-k tile), unsplit and split
// along K (its partials go to the workspace, summed by a second, plain launch), at M = 1, 5, 16.
TEST(CudaOverlap, GemvMmaSeesThePreviousKernelsWrites) {
  SKIP_WITHOUT_HOPPER();
  const HelperKernels helpers;
  GemvGenerator generator;
  int checked = 0;
  for (const char* text : {"m=1,n=1000,k=4224,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1",
                           "m=5,n=1000,k=4160,bits=8,group=64,zero=float,act=fp16,out=fp32,bias=1",
                           "m=16,n=1000,k=4100,bits=2,group=-1,zero=none,act=bf16,out=bf16,bias=0"}) {
    const OpDesc desc = parse_descriptor(std::string(text) + ",device=cuda:0");
    for (int split : {1, 2}) {
      CudaVariant variant{CudaFamily::gemv_mma, 4, 2};
      variant.split_k = split;
      ASSERT_TRUE(generator.is_valid(desc, variant, device_info(0).major)) << text << " split " << split;
      const CudaKernel kernel(desc, variant);
      const std::string failure = check_overlapping_call(helpers, kernel);
      EXPECT_TRUE(failure.empty()) << failure;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6);
}

// Families that do not wait for the previous grid ignore overlap_previous (a plain launch): the
// CUDA-core gemv here, still correct behind the late writer.
TEST(CudaOverlap, OtherFamiliesLaunchPlainly) {
  SKIP_WITHOUT_HOPPER();
  const HelperKernels helpers;
  const OpDesc desc = parse_descriptor("m=3,n=1000,k=4224,bits=4,group=128,zero=int,act=bf16,out=bf16,bias=1,device=cuda:0");
  const CudaKernel kernel(desc, CudaVariant{CudaFamily::gemv, 4, 2});
  const std::string failure = check_overlapping_call(helpers, kernel);
  EXPECT_TRUE(failure.empty()) << failure;
}

}  // namespace
}  // namespace lowbit::cuda
