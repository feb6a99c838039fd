// The call path of issue 4's first promise: a run launches on the caller's stream with no hidden
// synchronization and no allocation. For one kernel of every family and form (the CUDA-core and
// tensor-core GEMVs, a GEMV split over K with its workspace, a GEMV launched to overlap the call
// before it, mma, wgmma tiled, split over K by a second kernel, split in a cluster, stream-K and
// its hybrid, dequantize + cuBLASLt, and an m=0 kernel at two row counts):
//   - behind a kernel that keeps the stream busy for ~200 ms, run() returns while the stream is
//     still busy (cuStreamQuery: not ready), and the result then matches the reference;
//   - the run captures into a graph in global capture mode, where the driver refuses any
//     allocation or synchronization (the capture would fail), and two replays of that graph,
//     outputs poisoned before each, both match the reference.
// Needs a GPU of compute capability 9.0 (the wgmma forms); skipped with the reason elsewhere.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/registry.h"
#include "lowbit/kernel.h"
#include "runtime/row_buckets.h"
#include "tests/cuda/device_check.h"

namespace lowbit::cuda {
namespace {

// Why this machine cannot run these tests, or empty.
std::string missing_device() {
  if (!driver().available) return driver().reason;
  if (!nvrtc().available) return nvrtc().reason;
  if (driver().cuStreamQuery == nullptr || driver().cuStreamBeginCapture == nullptr ||
      driver().cuGraphInstantiate == nullptr || driver().cuGraphLaunch == nullptr)
    return "the driver lacks stream capture";
  if (device_info(0).major != 9) return "the wgmma forms need a compute capability 9.0 GPU, not " + device_info(0).arch();
  return {};
}

// A kernel that spins on the GPU's clock: it keeps a stream busy for a known time.
class Spinner {
 public:
  Spinner() {
    make_current(0);
    const std::vector<char> cubin = compile_to_cubin(
        "extern \"C\" __global__ void lowbit_test_spin(long long cycles) {\n"
        "  const long long start = clock64();\n"
        "  while (clock64() - start < cycles) {\n"
        "  }\n"
        "}\n",
        "spin.cu", device_info(0).arch());
    check(driver().cuModuleLoadData(&module_, cubin.data()), "cuModuleLoadData");
    check(driver().cuModuleGetFunction(&function_, module_, "lowbit_test_spin"), "cuModuleGetFunction");
    CUdevice device = 0;
    check(driver().cuDeviceGet(&device, 0), "cuDeviceGet");
    check(driver().cuDeviceGetAttribute(&clock_khz_, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, device), "cuDeviceGetAttribute");
  }
  ~Spinner() { driver().cuModuleUnload(module_); }
  Spinner(const Spinner&) = delete;
  Spinner& operator=(const Spinner&) = delete;

  // One block of one thread spinning for at least `milliseconds` (the clock runs at most at its
  // reported peak rate), enqueued on stream.
  void enqueue(CUstream stream, int milliseconds) const {
    long long cycles = static_cast<long long>(clock_khz_) * milliseconds;
    void* parameters[] = {&cycles};
    check(driver().cuLaunchKernel(function_, 1, 1, 1, 1, 1, 1, 0, stream, parameters, nullptr), "cuLaunchKernel");
  }

 private:
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
  int clock_khz_ = 0;
};

struct CallCase {
  std::string what;
  std::shared_ptr<const Kernel> kernel;
  double bound = 0;
  int64_t rows = 0;              // 0: the descriptor's M; an m=0 kernel's run takes these rows
  bool overlap_previous = false;  // RunArgs::overlap_previous (programmatic dependent launch)
};

// The first candidate of desc that `pick` accepts, built; fails the test when there is none.
CallCase candidate_case(const std::string& what, const std::string& text, const std::function<bool(const CudaVariant&)>& pick) {
  const OpDesc desc = parse_descriptor(text);
  for (const CudaVariant& variant : candidates(desc, 9, device_info(0).sm_count))
    if (pick(variant)) return {what, build(desc, variant), verification_tolerance(desc, variant)};
  ADD_FAILURE() << what << ": no candidate of " << text << " has that form";
  return {what, nullptr};
}

bool plain_wgmma(const CudaVariant& variant) {
  return variant.family == CudaFamily::wgmma && variant.split_k == 1 && variant.stream_k == 0;
}

std::vector<CallCase> every_form() {
  const std::string small = "m=1,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0";
  const std::string medium = "m=48,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0";
  const std::string large = "m=255,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,bias=1,device=cuda:0";
  // 144 tiles of 128 rows: more than a wave of 132 SMs, so the hybrid schedule is a candidate.
  const std::string past_a_wave = "m=300,n=6144,k=1024,bits=4,group=128,zero=int,act=bf16,bias=1,device=cuda:0";
  std::vector<CallCase> cases;
  cases.push_back(candidate_case("gemv", small, [](const CudaVariant& v) { return v.family == CudaFamily::gemv; }));
  cases.push_back(candidate_case("gemv_mma", small, [](const CudaVariant& v) {
    return v.family == CudaFamily::gemv_mma && v.split_k == 1;
  }));
  CallCase overlapping = cases.back();
  overlapping.what = "gemv_mma, overlap_previous";
  overlapping.overlap_previous = true;
  cases.push_back(overlapping);
  cases.push_back(candidate_case("gemv_mma split over K (workspace)", small, [](const CudaVariant& v) {
    return v.family == CudaFamily::gemv_mma && v.split_k > 1;
  }));
  cases.push_back(candidate_case("mma", medium, [](const CudaVariant& v) { return v.family == CudaFamily::mma; }));
  cases.push_back(candidate_case("wgmma tiled", large, plain_wgmma));
  cases.push_back(candidate_case("wgmma tiled, copy warpgroup", large, [](const CudaVariant& v) {
    return plain_wgmma(v) && v.producer == 1;
  }));
  cases.push_back(candidate_case("wgmma split over K, second kernel (workspace)", large, [](const CudaVariant& v) {
    return v.family == CudaFamily::wgmma && v.split_k > 1 && v.cluster_split == 0;
  }));
  cases.push_back(candidate_case("wgmma split over K in a cluster", large, [](const CudaVariant& v) {
    return v.family == CudaFamily::wgmma && v.split_k > 1 && v.cluster_split == 1;
  }));
  cases.push_back(candidate_case("wgmma stream-K (workspace, launch token)", past_a_wave, [](const CudaVariant& v) {
    return v.family == CudaFamily::wgmma && v.stream_k > 0 && v.remainder_split == 0;
  }));
  cases.push_back(candidate_case("wgmma hybrid stream-K", past_a_wave, [](const CudaVariant& v) {
    return v.family == CudaFamily::wgmma && v.stream_k > 0 && v.remainder_split > 0;
  }));
  cases.push_back(candidate_case("dequant_gemm (cuBLASLt)", large, [](const CudaVariant& v) {
    return v.family == CudaFamily::dequant_gemm;
  }));
  // m=0: the row-count dispatch in front of the parts.
  GetOptions options;
  options.on_miss = OnMiss::heuristic;
  options.use_cache = false;
  const OpDesc any_rows = parse_descriptor("m=0,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0");
  const std::shared_ptr<const Kernel> buckets = get_kernel(any_rows, options).kernel;
  for (int64_t rows : {5, 100}) {
    const auto* dispatch = dynamic_cast<const runtime::RowBucketKernel*>(buckets.get());
    if (dispatch == nullptr) {
      ADD_FAILURE() << "m=0 did not resolve to a row-bucket kernel: " << buckets->name();
      break;
    }
    const Kernel& part = dispatch->kernel_for_rows(rows);
    cases.push_back({fmt::format("m=0 at {} rows ({})", rows, part.name()), buckets,
                     verification_tolerance(part.desc(), variant_from_json(part.variant_json())), rows});
  }
  return cases;
}

// Waits for stream for at most `seconds`. A run that never ends (a stream-K owner waiting for a
// flag that never comes) would hold the test until ctest's timeout and the GPU with it: after
// the failure is reported the process exits at once (its context, and the kernel, go with it).
void finish_or_exit(CUstream stream, const std::string& what, double seconds = 20) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  CUresult state = CUDA_ERROR_NOT_READY;
  while ((state = driver().cuStreamQuery(stream)) == CUDA_ERROR_NOT_READY) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << what << ": still running after " << seconds << " s; exiting";
      std::fflush(stdout);
      std::_Exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  check(state, "cuStreamQuery");
}

std::string describe(CUresult result) {
  const char* message = nullptr;
  driver().cuGetErrorString(result, &message);
  return message != nullptr ? message : fmt::format("CUresult {}", static_cast<int>(result));
}

// The form's operands on the device, its run set to launch on stream.
testing::DeviceRun prepare_on(const testing::Stream& stream, const CallCase& form) {
  testing::DeviceRun run = testing::prepare_device_run(*form.kernel, 0, form.rows);
  run.args.stream = stream.get();
  run.args.overlap_previous = form.overlap_previous;
  return run;
}

TEST(CudaCallPath, RunReturnsWhileTheStreamIsStillBusy) {
  if (const std::string reason = missing_device(); !reason.empty()) GTEST_SKIP() << "no usable GPU here: " << reason;
  const Spinner spinner;
  const testing::Stream stream;
  for (const CallCase& form : every_form()) {
    if (form.kernel == nullptr) continue;
    testing::DeviceRun run = prepare_on(stream, form);
    spinner.enqueue(stream.get(), 200);
    const auto start = std::chrono::steady_clock::now();
    form.kernel->run(run.args);
    const double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const CUresult state = driver().cuStreamQuery(stream.get());
    EXPECT_EQ(state, CUDA_ERROR_NOT_READY) << form.what << ": the stream was no longer busy when run() returned after "
                                           << run_ms << " ms (" << describe(state) << "): run() waited for the GPU";
    finish_or_exit(stream.get(), form.what);
    const std::string failure = testing::verify_device_run(*form.kernel, run, form.bound);
    EXPECT_TRUE(failure.empty()) << form.what << ": " << failure;
  }
}

TEST(CudaCallPath, EveryFormCapturesIntoAGraphThatReplaysCorrectly) {
  if (const std::string reason = missing_device(); !reason.empty()) GTEST_SKIP() << "no usable GPU here: " << reason;
  const testing::Stream stream;
  for (const CallCase& form : every_form()) {
    if (form.kernel == nullptr) continue;
    testing::DeviceRun run = prepare_on(stream, form);
    // Global mode: any allocation or synchronization anywhere in the process while the capture is
    // open fails it.
    check(driver().cuStreamBeginCapture(stream.get(), CU_STREAM_CAPTURE_MODE_GLOBAL), "cuStreamBeginCapture");
    std::string thrown;
    try {
      form.kernel->run(run.args);
    } catch (const std::exception& error) {
      thrown = error.what();
    }
    CUgraph graph = nullptr;
    const CUresult ended = driver().cuStreamEndCapture(stream.get(), &graph);
    EXPECT_TRUE(thrown.empty()) << form.what << ": run() failed inside a stream capture: " << thrown;
    EXPECT_EQ(ended, CUDA_SUCCESS) << form.what << ": the capture broke (" << describe(ended)
                                   << "): the run allocated or synchronized";
    if (ended != CUDA_SUCCESS || graph == nullptr) continue;
    CUgraphExec replayable = nullptr;
    check(driver().cuGraphInstantiate(&replayable, graph, 0), "cuGraphInstantiate");
    // y and the workspace poisoned before each replay: what a replay leaves is its own result.
    for (int replay = 0; replay < 2; ++replay) {
      testing::poison_outputs(run);
      check(driver().cuGraphLaunch(replayable, stream.get()), "cuGraphLaunch");
      finish_or_exit(stream.get(), form.what + ", replay " + std::to_string(replay));
      const std::string failure = testing::verify_device_run(*form.kernel, run, form.bound);
      EXPECT_TRUE(failure.empty()) << form.what << ", replay " << replay << ": " << failure;
    }
    driver().cuGraphExecDestroy(replayable);
    driver().cuGraphDestroy(graph);
  }
}

}  // namespace
}  // namespace lowbit::cuda
