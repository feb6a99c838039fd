// A runnable kernel for one descriptor, and get_kernel(): the one call an engine makes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/descriptor.h"
#include "lowbit/native_layout.h"

namespace lowbit {

// Caller-owned buffers of one call. Nothing is allocated per call beyond small scratch
// (per-group activation sums) that each calling thread keeps for reuse.
struct RunArgs {
  const void* x = nullptr;          // [m][k], desc.act, rows contiguous
  WeightsView weights;              // desc.layout (native: pack_native)
  const void* bias = nullptr;       // [n], desc.act; required iff desc.bias
  const float* eq_scale = nullptr;  // [k]; required iff desc.eqscale
  void* y = nullptr;                // [m][n], desc.out, rows contiguous
  int64_t m = 0;                    // rows this call; must equal desc.m unless desc.m == 0
  // device=cuda:N: pointers above are device pointers, and the kernel is launched on this
  // CUstream / cudaStream_t (null: the legacy default stream) without synchronizing.
  void* stream = nullptr;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual const OpDesc& desc() const = 0;
  // The variant's complete name, e.g. "x86_avx512bf16_w4g128_n4m1k2_t2".
  virtual const std::string& name() const = 0;
  virtual nlohmann::json variant_json() const = 0;
  // Computes y. Throws InvalidArgument when an argument is missing or m is wrong.
  virtual void run(const RunArgs& args) const = 0;
};

// Checks args against desc; shared by every backend.
void check_run_args(const OpDesc& desc, const RunArgs& args);

enum class KernelSource { cache, tuned, heuristic };
std::string_view to_string(KernelSource source);

enum class OnMiss { tune, heuristic };

struct GetOptions {
  OnMiss on_miss = OnMiss::tune;
  std::string cache_path;  // empty: $LOWBIT_CACHE, else the user cache directory
  bool use_cache = true;   // false: no cache read or write (tests, one-off runs)
  int max_threads = 0;     // 0: every usable core
  bool progress = false;   // print tuning progress to stderr
  // x86 ISA family the kernels may use: "avx512", "avx512_vnni" (compute=int8), "amx" or "avx2"
  // (e.g. to run the AVX2 fallback on an AVX-512 machine); codegen/x86/registry.h gives the rule
  // per compute mode. Empty: $LOWBIT_ISA, else the best this CPU has. An unknown value is
  // an InvalidArgument; a family the CPU lacks, Unsupported.
  std::string isa;
};

struct ResolvedKernel {
  std::shared_ptr<const Kernel> kernel;
  KernelSource source = KernelSource::heuristic;
  double median_us = 0;  // tuned time (cache or tuned); 0 for heuristic
};

// Resolves desc to a kernel: a cache hit builds the stored variant without timing anything;
// a miss tunes (on_miss=tune) and stores the winner, or takes the heuristic variant.
// Throws InvalidArgument for an invalid descriptor, Unsupported when no backend serves it.
ResolvedKernel get_kernel(const OpDesc& desc, const GetOptions& options = {});

}  // namespace lowbit
