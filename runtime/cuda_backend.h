// The CUDA backend as get_kernel, the tuner's callers and the CLI see it. Builds without the
// CUDA toolkit too: then every CUDA request is Unsupported with that reason.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/decision_cache.h"
#include "lowbit/kernel.h"

namespace lowbit::runtime {

// Empty when a CUDA kernel can serve desc here; else why not (no toolkit at build time, no
// driver, no device, or the generators' own reasons). NVRTC is not needed to serve: a kernel
// whose cubin is cached loads without it; a build that must compile refuses where it would.
std::string cuda_refusal(const OpDesc& desc);

// Empty when NVRTC can compile here; else why not.
std::string cuda_compiler_refusal();
// Whether this process has loaded (or tried to load) NVRTC so far.
bool cuda_compiler_loaded();

// The key parts of a CUDA decision. The fingerprint holds the hard facts a tuned variant
// depends on: arch, SM count and the device's name (an H100 and an H200 share arch and SM
// count but not memory bandwidth), e.g. "cuda;sm_90;sms=132;name=NVIDIA H100 80GB HBM3".
// The generator version names the registered generators, e.g. "cuda_gemv@4+cuda_mma@3+...".
// NVRTC's version is not in it: a decision names the cubin it timed (Decision::artifact_key),
// so a hit runs the very code that won whichever NVRTC is installed, or none; it is kept in
// the provenance with the driver's, and neither update discards decisions.
std::string cuda_fingerprint(const OpDesc& desc);
std::string cuda_generator_version();
// {"device", "driver", "nvrtc", "l2_bytes"}: the facts kept beside a CUDA decision.
nlohmann::json cuda_provenance(const OpDesc& desc);

// Builds (desc, variant) on desc's device; a null variant means the heuristic one. The cubin
// comes from `reader`'s artifacts when stored there: under decided_key (a decision's
// artifact_key: neither the source nor NVRTC is touched), else under its content key (the
// source is generated and hashed, NVRTC's version read); else it is compiled and, when
// cache_path is not empty, stored there for the next process. reader may be null. Throws
// Unsupported naming the variant when it must compile and NVRTC is unavailable.
std::shared_ptr<const Kernel> build_cuda(const OpDesc& desc, const nlohmann::json* variant,
                                         const cache::DecisionCache* reader, const std::string& cache_path,
                                         const std::string& decided_key = {});

// A kernel about to be built: desc and its variant (as JSON; none: the heuristic one).
struct PlannedCudaBuild {
  OpDesc desc;
  std::optional<nlohmann::json> variant;
};
// Compiles at once (codegen/cuda/compile_queue.h, a thread per core) the cubins of `builds` that
// reader (may be null) does not hold, and stores them in cache_path, so that the build_cuda calls
// that follow load them instead of compiling one after another: m=0's row buckets build up to 25
// kernels. A build that is invalid or does not compile is skipped here; its build_cuda reports
// it. Does nothing when cache_path is empty or NVRTC is unavailable. Returns whether it stored a
// cubin.
bool precompile_cuda(const std::vector<PlannedCudaBuild>& builds, const cache::DecisionCache* reader,
                     const std::string& cache_path);

// The variant (as JSON, for build_cuda) of an any-M (m=0) kernel for row counts near `rows`
// (runtime/row_buckets.h): wgmma's any-M grid (WgmmaGenerator::any_rows_tile: tiled, a split, a
// cluster split, or with at_most_rows, for a range whose calls never exceed `rows`, the
// heuristic's stream-K grid laid out for `rows`) where this device runs it (sm_90a; not with
// eqscale), else the mma family's heuristic there.
nlohmann::json cuda_any_rows_variant(const OpDesc& desc, int64_t rows, bool at_most_rows);

// Stores a CUDA kernel's cubin (a tuning winner) under its content key and returns the key (the
// decision's artifact_key); empty when the cache refused it (with a warning) or kernel is not a
// CUDA kernel.
std::string store_cuda_cubin(cache::DecisionCache& cache, const Kernel& kernel);

// The key a CUDA kernel's cubin is stored under when it was built by its content (a heuristic
// kernel, an m=0 part): cubin_key of its generated source, kept for the process. Empty for a
// kernel of another backend. Reads NVRTC's version, so it loads NVRTC.
std::string cuda_artifact_key(const Kernel& kernel);

// The content key of a cubin: SHA-256 over the generated source (it embeds the templates), the
// NVRTC version, the arch and the NVRTC options.
std::string cubin_key(const std::string& source, const std::string& arch);

// Makes desc's device context current on the calling thread (creating the primary context the
// first time, which takes a good part of a second). An engine has its context before it asks
// for kernels; the CLI calls this so that get_kernel's time is lowbit's own.
void prepare_cuda_context(const OpDesc& desc);

struct CompiledCuda {
  std::string variant_name;
  std::vector<char> cubin;
};
// Compiles desc's heuristic CUDA variant for arch ("sm_80", "sm_89", "sm_90a", ...) with NVRTC;
// needs no GPU. With `variant` (a full name, as `lowbit tune` and the benches print them), that
// candidate of desc on arch instead (the candidates of every family the arch has, counted for the
// H100's 132 SMs where a family's grid depends on them). Throws InvalidArgument for a malformed
// arch or a name that is no candidate (naming how many there are and a few of them), Unsupported
// when NVRTC is missing or no CUDA family serves desc on that arch.
CompiledCuda compile_cuda(const OpDesc& desc, const std::string& arch, const std::string& variant = "");

// {"available", "reason", "device", "arch", "nvrtc"} for `lowbit info`.
nlohmann::json cuda_status();

}  // namespace lowbit::runtime
