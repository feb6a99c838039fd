#include "codegen/cuda/cuda_api.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <fstream>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>

#include "lowbit/errors.h"

namespace lowbit::cuda {
namespace {

void* open_first(const std::vector<std::string>& names, std::string& opened, std::string& failures) {
  for (const std::string& name : names) {
    if (void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      opened = name;
      return handle;
    }
    const char* error = dlerror();
    failures += fmt::format("{}{}", failures.empty() ? "" : "; ", error ? error : name);
  }
  return nullptr;
}

// Points slot at the library's symbol; on failure says which symbol the library lacks.
template <class Function>
bool resolve(void* handle, Function& slot, const char* symbol, const std::string& library, std::string& reason) {
  slot = reinterpret_cast<Function>(dlsym(handle, symbol));
  if (slot == nullptr) reason = fmt::format("{} lacks {}", library, symbol);
  return slot != nullptr;
}

Driver load_driver() {
  Driver loaded;
  std::string opened;
  std::string failures;
  void* handle = open_first({"libcuda.so.1", "libcuda.so"}, opened, failures);
  if (handle == nullptr) {
    loaded.reason = "the CUDA driver (libcuda.so.1) is not installed: " + failures;
    return loaded;
  }
  bool complete = true;
#define LOWBIT_RESOLVE(name) complete &= resolve(handle, loaded.name, LOWBIT_CUDA_SYMBOL(name), opened, loaded.reason);
  LOWBIT_DRIVER_FUNCTIONS(LOWBIT_RESOLVE)
#undef LOWBIT_RESOLVE
  if (!complete) return loaded;
  std::string optional_reason;
  resolve(handle, loaded.cuLaunchKernelEx, LOWBIT_CUDA_SYMBOL(cuLaunchKernelEx), opened, optional_reason);
  resolve(handle, loaded.cuTensorMapEncodeTiled, LOWBIT_CUDA_SYMBOL(cuTensorMapEncodeTiled), opened, optional_reason);
#define LOWBIT_RESOLVE_OPTIONAL(name) resolve(handle, loaded.name, LOWBIT_CUDA_SYMBOL(name), opened, optional_reason);
  LOWBIT_RESOLVE_OPTIONAL(cuStreamQuery)
  LOWBIT_RESOLVE_OPTIONAL(cuStreamBeginCapture)
  LOWBIT_RESOLVE_OPTIONAL(cuStreamEndCapture)
  LOWBIT_RESOLVE_OPTIONAL(cuGraphInstantiate)
  LOWBIT_RESOLVE_OPTIONAL(cuGraphLaunch)
  LOWBIT_RESOLVE_OPTIONAL(cuGraphExecDestroy)
  LOWBIT_RESOLVE_OPTIONAL(cuGraphDestroy)
#undef LOWBIT_RESOLVE_OPTIONAL
  CUresult result = loaded.cuInit(0);
  if (result != CUDA_SUCCESS) {
    const char* message = nullptr;
    loaded.cuGetErrorString(result, &message);
    loaded.reason = fmt::format("cuInit failed: {} (no GPU or driver not usable)", message ? message : "unknown");
    return loaded;
  }
  int count = 0;
  if (loaded.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) {
    loaded.reason = "the CUDA driver sees no device";
    return loaded;
  }
  loaded.available = true;
  return loaded;
}

std::atomic<bool> nvrtc_was_loaded{false};

Nvrtc load_nvrtc() {
  nvrtc_was_loaded = true;
  Nvrtc loaded;
  std::string failures;
  // The toolkit's soname first, then older majors, then the unversioned development link.
  void* handle = open_first({"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so"},
                            loaded.library, failures);
  if (handle == nullptr) {
    loaded.reason = "NVRTC (libnvrtc.so) is not installed: " + failures;
    return loaded;
  }
  bool complete = true;
#define LOWBIT_RESOLVE(name) \
  complete &= resolve(handle, loaded.name, LOWBIT_CUDA_SYMBOL(name), loaded.library, loaded.reason);
  LOWBIT_NVRTC_FUNCTIONS(LOWBIT_RESOLVE)
#undef LOWBIT_RESOLVE
  loaded.available = complete;
  return loaded;
}

}  // namespace

const Driver& driver() {
  static const Driver loaded = load_driver();
  return loaded;
}

const Nvrtc& nvrtc() {
  static const Nvrtc loaded = load_nvrtc();
  return loaded;
}

bool nvrtc_loaded() { return nvrtc_was_loaded; }

void check(CUresult result, const char* what) {
  if (result == CUDA_SUCCESS) return;
  const char* message = nullptr;
  if (driver().cuGetErrorString) driver().cuGetErrorString(result, &message);
  throw Error(fmt::format("CUDA error in {}: {} ({})", what, message ? message : "unknown", static_cast<int>(result)));
}

std::string nvrtc_version() {
  const Nvrtc& api = nvrtc();
  if (!api.available) return "none";
  int major = 0;
  int minor = 0;
  api.nvrtcVersion(&major, &minor);
  return fmt::format("{}.{}", major, minor);
}

std::vector<std::string> compile_options(const std::string& arch) {
  return {"--gpu-architecture=" + arch, "--std=c++17", "-default-device", "--extra-device-vectorization"};
}

namespace {

// LOWBIT_DUMP_CUDA=dir: each compile's source (dir/<stem>.cu, what NVRTC read) and cubin
// (dir/<stem>.cubin, for cuobjdump -sass). The directory must exist; a failed write is a warning.
void dump_compiled(const std::string& stem, const std::string& source, const std::vector<char>& cubin) {
  const char* directory = std::getenv("LOWBIT_DUMP_CUDA");
  if (directory == nullptr || directory[0] == '\0') return;
  const std::string path = std::string(directory) + "/" + stem;
  std::ofstream(path + ".cu", std::ios::binary).write(source.data(), static_cast<std::streamsize>(source.size()));
  std::ofstream file(path + ".cubin", std::ios::binary);
  file.write(cubin.data(), static_cast<std::streamsize>(cubin.size()));
  if (!file) warn("LOWBIT_DUMP_CUDA: could not write " + path + ".cu / .cubin");
}

}  // namespace

std::vector<char> compile_to_cubin(const std::string& source, const std::string& name, const std::string& arch) {
  const Nvrtc& api = nvrtc();
  if (!api.available) throw Unsupported("cannot compile CUDA: " + api.reason);
  nvrtcProgram program = nullptr;
  nvrtcResult created = api.nvrtcCreateProgram(&program, source.c_str(), (name + ".cu").c_str(), 0, nullptr, nullptr);
  if (created != NVRTC_SUCCESS) throw Error(fmt::format("nvrtcCreateProgram: {}", api.nvrtcGetErrorString(created)));
  const std::vector<std::string> option_texts = compile_options(arch);
  std::vector<const char*> options;
  for (const std::string& option : option_texts) options.push_back(option.c_str());
  nvrtcResult compiled = api.nvrtcCompileProgram(program, static_cast<int>(options.size()), options.data());
  size_t log_size = 0;
  api.nvrtcGetProgramLogSize(program, &log_size);
  std::string log(log_size, '\0');
  if (log_size > 1) api.nvrtcGetProgramLog(program, log.data());
  if (compiled != NVRTC_SUCCESS) {
    api.nvrtcDestroyProgram(&program);
    throw Error(fmt::format("NVRTC could not compile {} for {}: {}\n{}", name, arch, api.nvrtcGetErrorString(compiled),
                            log));
  }
  // A successful compile's log holds ptxas's performance notes too (e.g. C7513, wgmma
  // serialized), otherwise invisible: LOWBIT_CUDA_LOG=1 prints every non-empty one.
  if (const char* show = std::getenv("LOWBIT_CUDA_LOG"); show != nullptr && std::string_view(show) == "1" && log_size > 1)
    warn(fmt::format("NVRTC log of {} for {}:\n{}", name, arch, log.c_str()));
  size_t cubin_size = 0;
  api.nvrtcGetCUBINSize(program, &cubin_size);
  std::vector<char> cubin(cubin_size);
  api.nvrtcGetCUBIN(program, cubin.data());
  api.nvrtcDestroyProgram(&program);
  dump_compiled(name, source, cubin);
  return cubin;
}

std::string DeviceInfo::arch() const {
  // sm_90a enables wgmma and setmaxnreg; its cubins run on sm_90 devices only, as intended.
  return major == 9 && minor == 0 ? std::string("sm_90a") : fmt::format("sm_{}{}", major, minor);
}

std::string DeviceInfo::fingerprint() const { return fmt::format("cuda;sm_{}{};sms={}", major, minor, sm_count); }

const DeviceInfo& device_info(int ordinal) {
  static std::mutex mutex;
  static std::map<int, DeviceInfo> known;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = known.find(ordinal);
  if (found != known.end()) return found->second;
  const Driver& api = driver();
  if (!api.available) throw Unsupported("the CUDA backend is unavailable: " + api.reason);
  int count = 0;
  check(api.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (ordinal >= count)
    throw Unsupported(fmt::format("device=cuda:{} does not exist: this machine has {} CUDA device(s)", ordinal, count));
  CUdevice device = 0;
  check(api.cuDeviceGet(&device, ordinal), "cuDeviceGet");
  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  check(api.cuDeviceGetName(name, sizeof(name), device), "cuDeviceGetName");
  info.name = name;
  check(api.cuDeviceGetAttribute(&info.major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device), "attribute");
  check(api.cuDeviceGetAttribute(&info.minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device), "attribute");
  check(api.cuDeviceGetAttribute(&info.sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device), "attribute");
  check(api.cuDeviceGetAttribute(&info.max_shared_per_block_optin,
                                 CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device),
        "attribute");
  check(api.cuDeviceGetAttribute(&info.l2_bytes, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, device), "attribute");
  return known.emplace(ordinal, info).first->second;
}

namespace {

// The primary context of `ordinal`, retained on first use. Each retain adds a reference the
// driver keeps until a matching release, so retaining per launch would grow without bound.
CUcontext retained_primary_context(int ordinal) {
  static std::mutex mutex;
  static std::map<int, CUcontext> contexts;
  std::lock_guard lock(mutex);
  auto found = contexts.find(ordinal);
  if (found != contexts.end()) return found->second;
  const Driver& api = driver();
  CUdevice device = 0;
  check(api.cuDeviceGet(&device, ordinal), "cuDeviceGet");
  CUcontext context = nullptr;
  check(api.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  contexts.emplace(ordinal, context);
  return context;
}

}  // namespace

void make_current(int ordinal) {
  const Driver& api = driver();
  if (!api.available) throw Unsupported("the CUDA backend is unavailable: " + api.reason);
  const CUcontext context = retained_primary_context(ordinal);
  CUcontext current = nullptr;
  check(api.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
  if (current != context) check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent");
}

}  // namespace lowbit::cuda
