// Small helpers of the CUDA bench tools (lowbit_read_pattern_bench and lowbit_deposit_bench,
// which compile their own kernels with NVRTC, and the L2 flush protocols): a loaded module, a
// launch, event timing, a median.
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

#include "codegen/cuda/cuda_api.h"

namespace lowbit::bench {

// The median of values (the upper one of an even count), as every table of docs/benchmarks.md reports.
inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// A cubin loaded with cuModuleLoadData, unloaded on destruction.
class Module {
 public:
  explicit Module(const std::vector<char>& cubin) {
    cuda::check(cuda::driver().cuModuleLoadData(&module_, cubin.data()), "cuModuleLoadData");
  }
  ~Module() { cuda::driver().cuModuleUnload(module_); }
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  CUfunction function(const char* name) const {
    CUfunction function = nullptr;
    cuda::check(cuda::driver().cuModuleGetFunction(&function, module_, name), name);
    return function;
  }

 private:
  CUmodule module_ = nullptr;
};

// A 1-D launch on the default stream; opts into more than 48 KiB of dynamic shared memory.
inline void launch(CUfunction function, unsigned grid, unsigned threads, unsigned shared, std::vector<void*> args) {
  if (shared > 48 * 1024)
    cuda::check(cuda::driver().cuFuncSetAttribute(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                  static_cast<int>(shared)),
                "cuFuncSetAttribute");
  cuda::check(cuda::driver().cuLaunchKernel(function, grid, 1, 1, threads, 1, 1, shared, nullptr, args.data(), nullptr),
              "cuLaunchKernel");
}

// The same launch in thread-block clusters of cluster_x blocks (cuLaunchKernelEx; grid a multiple of it).
inline void launch_clusters(CUfunction function, unsigned grid, unsigned cluster_x, unsigned threads, unsigned shared,
                            std::vector<void*> args) {
  if (shared > 48 * 1024)
    cuda::check(cuda::driver().cuFuncSetAttribute(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                  static_cast<int>(shared)),
                "cuFuncSetAttribute");
  CUlaunchAttribute cluster{};
  cluster.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  cluster.value.clusterDim.x = cluster_x;
  cluster.value.clusterDim.y = 1;
  cluster.value.clusterDim.z = 1;
  CUlaunchConfig config{};
  config.gridDimX = grid;
  config.gridDimY = 1;
  config.gridDimZ = 1;
  config.blockDimX = threads;
  config.blockDimY = 1;
  config.blockDimZ = 1;
  config.sharedMemBytes = shared;
  config.attrs = &cluster;
  config.numAttrs = 1;
  cuda::check(cuda::driver().cuLaunchKernelEx(&config, function, args.data(), nullptr), "cuLaunchKernelEx (clusters)");
}

// Two events on the default stream.
class Events {
 public:
  Events() {
    cuda::check(cuda::driver().cuEventCreate(&start_, CU_EVENT_DEFAULT), "cuEventCreate");
    cuda::check(cuda::driver().cuEventCreate(&stop_, CU_EVENT_DEFAULT), "cuEventCreate");
  }
  ~Events() {
    cuda::driver().cuEventDestroy(start_);
    cuda::driver().cuEventDestroy(stop_);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  // Microseconds of body() between two events on the default stream.
  double time(const std::function<void()>& body) {
    cuda::check(cuda::driver().cuEventRecord(start_, nullptr), "cuEventRecord");
    body();
    cuda::check(cuda::driver().cuEventRecord(stop_, nullptr), "cuEventRecord");
    cuda::check(cuda::driver().cuEventSynchronize(stop_), "cuEventSynchronize");
    float milliseconds = 0;
    cuda::check(cuda::driver().cuEventElapsedTime(&milliseconds, start_, stop_), "cuEventElapsedTime");
    return milliseconds * 1e3;
  }

 private:
  CUevent start_ = nullptr;
  CUevent stop_ = nullptr;
};

}  // namespace lowbit::bench
