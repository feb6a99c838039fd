// The CUDA driver and NVRTC, opened at run time with dlopen: the library, CLI and tests work
// on machines without them, and say why the CUDA backend is unavailable. Only the types come
// from the toolkit's headers (cuda.h, nvrtc.h); no CUDA library is linked.
#pragma once

#include <cuda.h>
#include <nvrtc.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::cuda {

#define LOWBIT_CUDA_STRINGIFY_EXPANDED(name) #name
#define LOWBIT_CUDA_SYMBOL(name) LOWBIT_CUDA_STRINGIFY_EXPANDED(name)

// Driver entry points, resolved by their versioned symbol names (cuda.h maps e.g. cuMemAlloc
// to cuMemAlloc_v2; the macro expansion gives dlsym the real name).
struct Driver {
  bool available = false;
  std::string reason;  // why not available
#define LOWBIT_DRIVER_FUNCTIONS(X)                                                                        \
  X(cuInit) X(cuDriverGetVersion) X(cuDeviceGet) X(cuDeviceGetCount) X(cuDeviceGetAttribute) X(cuDeviceGetName) \
  X(cuDevicePrimaryCtxRetain) X(cuCtxSetCurrent) X(cuCtxGetCurrent) X(cuCtxSynchronize) X(cuGetErrorString) X(cuModuleLoadData)    \
  X(cuModuleUnload) X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuLaunchKernel) X(cuMemAlloc) X(cuMemFree)   \
  X(cuMemcpyHtoD) X(cuMemcpyDtoH) X(cuMemsetD8) X(cuStreamSynchronize) X(cuEventCreate) X(cuEventRecord)        \
  X(cuEventSynchronize) X(cuEventElapsedTime) X(cuEventDestroy) X(cuOccupancyMaxActiveBlocksPerMultiprocessor)   \
  X(cuStreamCreate) X(cuStreamDestroy)
#define LOWBIT_DECLARE(name) decltype(&::name) name = nullptr;
  LOWBIT_DRIVER_FUNCTIONS(LOWBIT_DECLARE)
  // Optional (CUDA 11.8 drivers on): launches with attributes, here programmatic dependent
  // launch (RunArgs::overlap_previous). Null on an older driver: such calls launch plainly.
  LOWBIT_DECLARE(cuLaunchKernelEx)
  // Optional (CUDA 12 drivers on): tensor maps for the TMA engine's tiled copies (only
  // lowbit_operand_stream_bench's tensor cases use one so far). Null on an older driver.
  LOWBIT_DECLARE(cuTensorMapEncodeTiled)
  // Optional: stream capture into a graph and its replay, and a stream's state. lowbit itself never
  // captures (an engine captures its own calls); the call-path tests use them to show that a run
  // neither synchronizes nor allocates (tests/cuda/test_cuda_call_path.cpp). Null where missing.
  LOWBIT_DECLARE(cuStreamQuery)
  LOWBIT_DECLARE(cuStreamBeginCapture)
  LOWBIT_DECLARE(cuStreamEndCapture)
  LOWBIT_DECLARE(cuGraphInstantiate)
  LOWBIT_DECLARE(cuGraphLaunch)
  LOWBIT_DECLARE(cuGraphExecDestroy)
  LOWBIT_DECLARE(cuGraphDestroy)
#undef LOWBIT_DECLARE
};

struct Nvrtc {
  bool available = false;
  std::string reason;
  std::string library;  // the file that was opened
#define LOWBIT_NVRTC_FUNCTIONS(X)                                                                               \
  X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram)   \
  X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)
#define LOWBIT_DECLARE(name) decltype(&::name) name = nullptr;
  LOWBIT_NVRTC_FUNCTIONS(LOWBIT_DECLARE)
#undef LOWBIT_DECLARE
};

// Opened once per process; never throw. cuInit is called by driver() itself.
const Driver& driver();
const Nvrtc& nvrtc();
// Whether this process has asked for NVRTC yet (and so tried to dlopen it): a cache hit never does.
bool nvrtc_loaded();

// Throws lowbit::Error with the driver's message when result is not CUDA_SUCCESS.
void check(CUresult result, const char* what);

// "13.0" style NVRTC version, part of every compiled-artifact key.
std::string nvrtc_version();

// The NVRTC options compile_to_cubin passes for arch; part of every compiled-artifact key.
std::vector<std::string> compile_options(const std::string& arch);

// Compiles CUDA source with NVRTC to a cubin for arch (e.g. "sm_90a"). Throws lowbit::Error
// carrying the NVRTC log when compilation fails. Needs no GPU.
std::vector<char> compile_to_cubin(const std::string& source, const std::string& name, const std::string& arch);

// The first device's facts, for variants and fingerprints.
struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0;
  int minor = 0;
  int sm_count = 0;
  int max_shared_per_block_optin = 0;
  int l2_bytes = 0;
  std::string arch() const;         // "sm_90a" on Hopper (wgmma needs the a), "sm_89", ...
  std::string fingerprint() const;  // hard fields: "cuda;sm_90;sms=132"
};
// Throws Unsupported when the driver or the device is missing.
const DeviceInfo& device_info(int ordinal);

// Makes the device's primary context current on the calling thread. The context is retained
// once per device and process (never released: kernels may run until exit), so calling this
// on every launch costs a cuCtxGetCurrent, not another reference.
void make_current(int ordinal);

}  // namespace lowbit::cuda
