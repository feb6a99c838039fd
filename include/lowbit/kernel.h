// A runnable kernel for one descriptor, and get_kernel(): the one call an engine makes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/descriptor.h"
#include "lowbit/native_layout.h"

namespace lowbit {

// Caller-owned buffers of one call. Nothing is allocated per call beyond small scratch
// (per-group activation sums) that each calling thread keeps for reuse; a kernel that needs
// more (Kernel::workspace_bytes(m) > 0) takes it from `workspace`.
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
  // Scratch memory the caller owns, at least Kernel::workspace_bytes(m) bytes (same memory
  // space as y: device memory for device=cuda:N), 256-byte aligned. Ignored by kernels that
  // need none. The kernel may overwrite all of it; calls in flight at once need their own.
  void* workspace = nullptr;
  std::size_t workspace_size = 0;  // bytes at `workspace`
  // device=cuda:N, sm_90 and later, the gemv_mma family (M <= 16; others ignore it): the call may
  // start while the kernel before it in `stream` is still finishing (programmatic dependent
  // launch), prefetching its first weights into L2 meanwhile; it touches x, eq_scale, bias, y and
  // the workspace only after that kernel has completed and its writes are visible. Set it only
  // when no work still running before this call in the stream writes the weights (qweight,
  // scales, zeros): in a decode loop they are constant. docs/integration.md.
  bool overlap_previous = false;
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
  // Bytes of RunArgs.workspace a call with m rows needs (0: none). Constant for a kernel and
  // m, so an engine sizes its scratch once per layer.
  virtual std::size_t workspace_bytes(int64_t m) const {
    (void)m;
    return 0;
  }
  // The kernel a call of m rows runs on: this one, or for a kernel that hands each call to another
  // by its row count (m=0 on CUDA) that one. What looks at the variant that runs (its name, its
  // verification bound) asks this.
  virtual const Kernel& kernel_for_rows(int64_t m) const {
    (void)m;
    return *this;
  }
};

// Checks args against desc; shared by every backend. workspace_bytes: what the kernel needs
// for args.m; a null or smaller RunArgs.workspace is an InvalidArgument naming both sizes.
void check_run_args(const OpDesc& desc, const RunArgs& args, std::size_t workspace_bytes = 0);

enum class KernelSource { cache, tuned, heuristic };
std::string_view to_string(KernelSource source);

enum class OnMiss { tune, heuristic };

struct GetOptions {
  OnMiss on_miss = OnMiss::tune;
  std::string cache_path;  // empty: $LOWBIT_CACHE, else the user cache directory
  // Caches a deployment ships beside its model, read after cache_path (which is layered on top:
  // its decisions win, and every new result goes there), in order; opened immutable, so nothing
  // may write them while the process runs. Empty: $LOWBIT_SHIPPED_CACHE (paths joined by ':'),
  // else none. A shipped cache that is missing or unusable is a warning and a miss.
  std::vector<std::string> shipped_caches;
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
