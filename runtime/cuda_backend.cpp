#include "runtime/cuda_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <unordered_map>
#include <nlohmann/json.hpp>

#include "cache/content_hash.h"
#include "lowbit/errors.h"

#if LOWBIT_WITH_CUDA
#include "codegen/cuda/cublaslt_api.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/mma_generator.h"
#include "codegen/cuda/wgmma_generator.h"
#include "codegen/cuda/registry.h"
#endif

namespace lowbit::runtime {

#if LOWBIT_WITH_CUDA

std::string cuda_refusal(const OpDesc& desc) {
  // NVRTC is not asked for: a kernel whose cubin is stored runs without it (a deployment that
  // ships its cache needs only the driver). Compiling without it is refused where it happens.
  try {
    const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
    cuda::Validity validity = cuda::supports(desc, device.major, device.sm_count);
    return validity ? std::string() : validity.reason;
  } catch (const Error& error) {
    return error.what();
  }
}

std::string cuda_compiler_refusal() { return cuda::nvrtc().available ? std::string() : cuda::nvrtc().reason; }

bool cuda_compiler_loaded() { return cuda::nvrtc_loaded(); }

std::string cuda_fingerprint(const OpDesc& desc) {
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  return fmt::format("{};name={}", device.fingerprint(), device.name);
}

std::string cuda_generator_version() { return cuda::generator_version(); }

nlohmann::json cuda_provenance(const OpDesc& desc) {
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  int driver_version = 0;
  cuda::driver().cuDriverGetVersion(&driver_version);
  return {{"device", device.name}, {"driver", driver_version}, {"nvrtc", cuda::nvrtc_version()},
          {"l2_bytes", device.l2_bytes}};
}

std::string cubin_key(const std::string& source, const std::string& arch) {
  cache::ContentHash hash;
  hash.add("cubin").add(source).add("nvrtc " + cuda::nvrtc_version()).add(arch);
  for (const std::string& option : cuda::compile_options(arch)) hash.add(option);
  return hash.hex();
}

namespace {

// The cubin key of (desc, variant) on arch, kept for the process: generating a variant's source
// to hash it costs up to half a millisecond (wgmma's stream-K plan), and an m=0 resolution asks
// for the same twenty keys twice (precompile_cuda, then each part's build). The templates are
// embedded, so a key never changes within a process.
std::string memoized_cubin_key(const OpDesc& desc, const cuda::CudaVariant& variant, const std::string& arch) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::string> keys;  // descriptor, variant JSON (every field), arch -> key
  const std::string name = to_string(desc) + "|" + cuda::to_json(variant).dump() + "|" + arch;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto found = keys.find(name); found != keys.end()) return found->second;
  }
  std::string key = cubin_key(cuda::emit(desc, variant), arch);
  std::lock_guard<std::mutex> lock(mutex);
  return keys.emplace(name, std::move(key)).first->second;
}

// The cubin of (desc, variant) for arch: the one stored under decided_key (a decision's, which
// needs neither the source nor NVRTC), else the one stored under its content key, else NVRTC's,
// stored for next time.
std::vector<char> obtain_cubin(const OpDesc& desc, const cuda::CudaVariant& variant, const std::string& arch,
                               const cache::DecisionCache* reader, const std::string& cache_path,
                               const std::string& decided_key) {
  if (reader != nullptr && !decided_key.empty())
    if (std::optional<cache::Artifact> stored = reader->lookup_artifact(decided_key)) return std::move(stored->bytes);
  const std::string name = cuda::variant_name(desc, variant, arch);
  if (!cuda::nvrtc().available)
    throw Unsupported(fmt::format("cannot build {}: its cubin is not in the cache{} and NVRTC, which would compile it, "
                                  "is unavailable ({})",
                                  name, reader != nullptr ? " '" + reader->path() + "'" : "", cuda::nvrtc().reason));
  const std::string key = memoized_cubin_key(desc, variant, arch);
  if (reader != nullptr && key != decided_key)
    if (std::optional<cache::Artifact> stored = reader->lookup_artifact(key)) return std::move(stored->bytes);
  std::vector<char> cubin = cuda::compile_to_cubin(cuda::emit(desc, variant), name, arch);
  if (!cache_path.empty()) {
    cache::DecisionCache writer = cache::DecisionCache::open(cache_path, cache::OpenMode::read_write);
    writer.store_artifact({key, name, "nvrtc " + cuda::nvrtc_version(), arch, cubin, ""});
  }
  return cubin;
}

}  // namespace

std::shared_ptr<const Kernel> build_cuda(const OpDesc& desc, const nlohmann::json* variant_json,
                                         const cache::DecisionCache* reader, const std::string& cache_path,
                                         const std::string& decided_key) {
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  const cuda::CudaVariant variant =
      variant_json != nullptr ? cuda::variant_from_json(*variant_json) : cuda::heuristic(desc, device.major, device.sm_count);
  cuda::Validity validity = cuda::is_valid(desc, variant, device.major);
  if (!validity)
    throw Unsupported(fmt::format("cannot build {}: {}", cuda::variant_name(desc, variant, device.arch()),
                                  validity.reason));
  return cuda::load(desc, variant, obtain_cubin(desc, variant, device.arch(), reader, cache_path, decided_key));
}

bool precompile_cuda(const std::vector<PlannedCudaBuild>& builds, const cache::DecisionCache* reader,
                     const std::string& cache_path) {
  if (cache_path.empty() || builds.empty() || !cuda::nvrtc().available) return false;
  const cuda::DeviceInfo& device = cuda::device_info(builds.front().desc.device.index);
  std::vector<cuda::CompileJob> jobs;
  std::vector<std::string> keys;
  for (const PlannedCudaBuild& build : builds) {
    try {
      const cuda::CudaVariant variant = build.variant ? cuda::variant_from_json(*build.variant)
                                                      : cuda::heuristic(build.desc, device.major, device.sm_count);
      if (!cuda::is_valid(build.desc, variant, device.major)) continue;
      const std::string key = memoized_cubin_key(build.desc, variant, device.arch());
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      if (reader != nullptr && reader->has_artifact(key)) continue;
      jobs.push_back({build.desc, variant});
      keys.push_back(key);
    } catch (const std::exception&) {
      // No family serves this build, or its stored variant does not parse: its own build says so.
    }
  }
  if (jobs.empty()) return false;
  cuda::CompileQueue compiles(jobs, device.arch());
  cache::DecisionCache writer = cache::DecisionCache::open(cache_path, cache::OpenMode::read_write);
  bool stored = false;
  while (auto compiled = compiles.next()) {
    if (compiled->second.cubin.empty()) continue;
    const cuda::CompileJob& job = jobs[compiled->first];
    stored |= writer.store_artifact({keys[compiled->first], cuda::variant_name(job.desc, job.variant, device.arch()),
                                     "nvrtc " + cuda::nvrtc_version(), device.arch(),
                                     std::move(compiled->second.cubin), ""});
  }
  return stored;
}

nlohmann::json cuda_any_rows_variant(const OpDesc& desc, int64_t rows, bool at_most_rows) {
  const cuda::DeviceInfo& device = cuda::device_info(desc.device.index);
  const cuda::CudaVariant tile = cuda::WgmmaGenerator(device.sm_count).any_rows_tile(desc, rows, at_most_rows);
  if (cuda::is_valid(desc, tile, device.major)) return cuda::to_json(tile);
  OpDesc sized = desc;
  sized.m = rows;
  return cuda::to_json(cuda::MmaGenerator().heuristic(sized));
}

std::string store_cuda_cubin(cache::DecisionCache& cache, const Kernel& kernel) {
  const auto* cuda_kernel = dynamic_cast<const cuda::ProgramKernel*>(&kernel);
  if (cuda_kernel == nullptr) return {};
  const std::string arch = cuda::device_info(kernel.desc().device.index).arch();
  const std::string key = cubin_key(cuda::emit(kernel.desc(), cuda_kernel->variant()), arch);
  if (!cache.store_artifact({key, kernel.name(), "nvrtc " + cuda::nvrtc_version(), arch, cuda_kernel->cubin(), ""}))
    return {};
  return key;
}

std::string cuda_artifact_key(const Kernel& kernel) {
  const auto* cuda_kernel = dynamic_cast<const cuda::ProgramKernel*>(&kernel);
  if (cuda_kernel == nullptr) return {};
  return memoized_cubin_key(kernel.desc(), cuda_kernel->variant(), cuda::device_info(kernel.desc().device.index).arch());
}

void prepare_cuda_context(const OpDesc& desc) { cuda::make_current(desc.device.index); }

namespace {

// "sm_90a" -> 9; throws InvalidArgument naming --arch otherwise.
int arch_major(const std::string& arch) {
  int major = 0;
  int minor = 0;
  char suffix = 0;
  const int fields = std::sscanf(arch.c_str(), "sm_%1d%1d%c", &major, &minor, &suffix);
  if (fields < 2 || (fields == 3 && suffix != 'a') || major < 5)
    throw InvalidArgument("arch", "arch '" + arch + "' is not a CUDA architecture; expected sm_XY or sm_XYa, e.g. sm_80, sm_89, sm_90a");
  return major;
}

}  // namespace

CompiledCuda compile_cuda(const OpDesc& desc, const std::string& arch, const std::string& wanted) {
  const int major = arch_major(arch);
  if (!cuda::nvrtc().available) throw Unsupported("cannot compile CUDA: " + cuda::nvrtc().reason);
  const cuda::CudaVariant variant =
      wanted.empty() ? cuda::heuristic(desc, major) : cuda::candidate_named(desc, wanted, arch, major);
  CompiledCuda compiled;
  compiled.variant_name = cuda::variant_name(desc, variant, arch);
  compiled.cubin = cuda::compile_to_cubin(cuda::emit(desc, variant), compiled.variant_name, arch);
  return compiled;
}

nlohmann::json cuda_status() {
  nlohmann::json status = {{"available", false}, {"nvrtc", cuda::nvrtc_version()}};
  // cuBLASLt serves only the dequant_gemm fallback: its absence is reported, not fatal.
  status["cublaslt"] = cuda::cublaslt().available
                           ? cuda::cublaslt_version() + " (" + cuda::cublaslt().library + ")"
                           : "unavailable: " + cuda::cublaslt().reason;
  // NVRTC compiles (a tune, a cache miss); a cubin stored in the cache loads without it.
  status["compiler"] = cuda::nvrtc().available
                           ? "nvrtc " + cuda::nvrtc_version() + " (" + cuda::nvrtc().library + ")"
                           : "unavailable: " + cuda::nvrtc().reason + "; cubins stored in the cache still load";
  try {
    const cuda::DeviceInfo& device = cuda::device_info(0);
    status["available"] = true;
    status["device"] = device.name;
    status["arch"] = device.arch();
    status["fingerprint"] = device.fingerprint();
    status["generator_version"] = cuda_generator_version();
  } catch (const Error& error) {
    status["reason"] = error.what();
  }
  return status;
}

#else

std::string cuda_refusal(const OpDesc&) { return "this build of lowbit has no CUDA backend (no CUDA toolkit at build time)"; }

std::string cuda_compiler_refusal() { return cuda_refusal(OpDesc{}); }

bool cuda_compiler_loaded() { return false; }

std::string cuda_fingerprint(const OpDesc& desc) { throw Unsupported(cuda_refusal(desc)); }
std::string cuda_generator_version() { throw Unsupported(cuda_refusal(OpDesc{})); }
nlohmann::json cuda_provenance(const OpDesc& desc) { throw Unsupported(cuda_refusal(desc)); }

std::shared_ptr<const Kernel> build_cuda(const OpDesc& desc, const nlohmann::json*, const cache::DecisionCache*,
                                         const std::string&, const std::string&) {
  throw Unsupported(cuda_refusal(desc));
}

bool precompile_cuda(const std::vector<PlannedCudaBuild>&, const cache::DecisionCache*, const std::string&) {
  return false;
}

nlohmann::json cuda_any_rows_variant(const OpDesc& desc, int64_t, bool) { throw Unsupported(cuda_refusal(desc)); }

std::string store_cuda_cubin(cache::DecisionCache&, const Kernel&) { return {}; }

std::string cuda_artifact_key(const Kernel&) { return {}; }

std::string cubin_key(const std::string&, const std::string&) { throw Unsupported(cuda_refusal(OpDesc{})); }

void prepare_cuda_context(const OpDesc& desc) { throw Unsupported(cuda_refusal(desc)); }

CompiledCuda compile_cuda(const OpDesc& desc, const std::string&, const std::string&) {
  throw Unsupported(cuda_refusal(desc));
}

nlohmann::json cuda_status() { return {{"available", false}, {"reason", cuda_refusal(OpDesc{})}}; }

#endif

}  // namespace lowbit::runtime
