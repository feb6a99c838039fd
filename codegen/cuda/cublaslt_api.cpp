#include "codegen/cuda/cublaslt_api.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <vector>

#include "lowbit/errors.h"

namespace lowbit::cuda {
namespace {

CublasLt load_cublaslt() {
  CublasLt loaded;
  std::vector<std::string> names;
  if (const char* chosen = std::getenv("LOWBIT_CUBLASLT"); chosen != nullptr && *chosen != '\0') {
    names.push_back(chosen);
  } else {
    // The sonames first (found through the loader's path), then the toolkit's usual place.
    names = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so", "/usr/local/cuda/lib64/libcublasLt.so.13",
             "/usr/local/cuda/lib64/libcublasLt.so.12"};
  }
  std::string failures;
  void* handle = nullptr;
  for (const std::string& name : names) {
    handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      loaded.library = name;
      break;
    }
    const char* error = dlerror();
    failures += fmt::format("{}{}", failures.empty() ? "" : "; ", error ? error : name);
  }
  if (handle == nullptr) {
    loaded.reason = "cuBLASLt (libcublasLt.so.13 or .12) is not installed: " + failures;
    return loaded;
  }
  // cublasLt.h declares plain (unversioned) names, which are the exported symbols.
#define LOWBIT_RESOLVE(name)                                                          \
  loaded.name = reinterpret_cast<decltype(loaded.name)>(dlsym(handle, #name));         \
  if (loaded.name == nullptr) {                                                       \
    loaded.reason = fmt::format("{} lacks {}", loaded.library, #name);                \
    return loaded;                                                                    \
  }
  LOWBIT_CUBLASLT_FUNCTIONS(LOWBIT_RESOLVE)
#undef LOWBIT_RESOLVE
  loaded.available = true;
  return loaded;
}

}  // namespace

const CublasLt& cublaslt() {
  static const CublasLt loaded = load_cublaslt();
  return loaded;
}

std::string cublaslt_version() {
  const CublasLt& api = cublaslt();
  if (!api.available) return "none";
  // MAJOR * 10000 + MINOR * 100 + PATCH since CUDA 12 (cublas_api.h's CUBLAS_VERSION).
  const std::size_t version = api.cublasLtGetVersion();
  return fmt::format("{}.{}.{}", version / 10000, version / 100 % 100, version % 100);
}

void check(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const char* message = cublaslt().cublasLtGetStatusString ? cublaslt().cublasLtGetStatusString(status) : nullptr;
  throw Error(fmt::format("cuBLASLt error in {}: {} ({})", what, message ? message : "unknown",
                          static_cast<int>(status)));
}

}  // namespace lowbit::cuda
