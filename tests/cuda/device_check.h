// The GPU check every CUDA kernel test shares: one run of a kernel on a random problem of its
// descriptor (seed from the case name, so a failure prints a reproducer), outputs poisoned and
// guarded, the workspace poisoned too (a kernel must not depend on its contents), compared with
// the reference under a given bound. Its three steps (prepare_device_run, the run,
// verify_device_run) serve tests that run the kernel their own way (test_cuda_call_path.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/device_buffer.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "tuner/device_reference.h"

namespace lowbit::cuda::testing {

constexpr std::size_t guard_bytes = 256;
constexpr uint8_t poison = 0xff;  // NaN in every output dtype

inline DeviceBuffer upload(const void* data, std::size_t bytes) {
  DeviceBuffer buffer(bytes);
  if (bytes > 0) buffer.upload(data, bytes);
  return buffer;
}

// The weights of a problem whose packed storage was uploaded as one buffer (pack_native's
// codes, then scales, then zero points where the format has them).
inline WeightsView device_weights(const DeviceBuffer& weights, const Problem& problem) {
  return view_at(problem.packed, weights.data());
}

// A non-blocking stream (as torch's are) on device 0's primary context, destroyed with its owner.
class Stream {
 public:
  Stream() {
    make_current(0);
    check(driver().cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  }
  ~Stream() { driver().cuStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  CUstream get() const { return stream_; }

 private:
  CUstream stream_ = nullptr;
};

// One run's operands on the device: a random problem of the kernel's descriptor (seed from the
// case name), x at x_offset_bytes past an aligned allocation, y and the workspace poisoned, y
// between guard bytes; args point at them (the stream left null).
struct DeviceRun {
  std::string case_name;
  uint64_t seed = 0;
  int64_t m = 0;
  Problem problem;
  DeviceBuffer x, weights, bias, eq_scale, y;
  std::unique_ptr<DeviceBuffer> workspace;  // only for kernels that ask for one
  std::size_t out_bytes = 0;
  RunArgs args;
};

// rows: the M of the run, for an m=0 kernel (any M); 0 takes the descriptor's.
inline DeviceRun prepare_device_run(const Kernel& kernel, std::size_t x_offset_bytes = 0, int64_t rows = 0) {
  const OpDesc& desc = kernel.desc();
  const int64_t m = rows > 0 ? rows : desc.m;
  const std::string case_name = to_string(desc) + " " + kernel.name() + (rows > 0 ? " rows=" + std::to_string(rows) : "");
  const uint64_t seed = seed_for(case_name);
  Problem problem = make_random_problem(desc, m, seed);
  DeviceBuffer x(problem.x.size() + x_offset_bytes);
  x.fill(poison);
  x.upload(problem.x.data(), problem.x.size(), x_offset_bytes);
  DeviceBuffer weights = upload(problem.packed.storage.data(), problem.packed.storage.size());
  DeviceBuffer bias = upload(problem.bias.data(), problem.bias.size());
  DeviceBuffer eq_scale = upload(problem.eq_scale.data(), problem.eq_scale.size() * sizeof(float));
  const std::size_t out_bytes = static_cast<std::size_t>(m * desc.n * dtype_bytes(desc.out));
  DeviceBuffer y(out_bytes + 2 * guard_bytes);
  y.fill(poison);
  // Only kernels that ask for a workspace get one (no zero-byte allocation or memset).
  std::unique_ptr<DeviceBuffer> workspace;
  if (kernel.workspace_bytes(m) > 0) {
    workspace = std::make_unique<DeviceBuffer>(kernel.workspace_bytes(m));
    workspace->fill(poison);
  }
  RunArgs args;
  args.x = static_cast<uint8_t*>(x.data()) + x_offset_bytes;
  args.weights = device_weights(weights, problem);
  args.bias = desc.bias ? bias.data() : nullptr;
  args.eq_scale = desc.eqscale ? static_cast<const float*>(eq_scale.data()) : nullptr;
  args.y = static_cast<uint8_t*>(y.data()) + guard_bytes;
  args.m = m;
  if (workspace) {
    args.workspace = workspace->data();
    args.workspace_size = workspace->size();
  }
  // The fills are memsets on the legacy default stream, asynchronous to the host: finish them, so
  // that a run on a non-blocking stream (which does not wait for that stream) finds the poison.
  check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  // The device pointers in args stay valid as the buffers move into the result.
  return DeviceRun{case_name,         seed,         m, std::move(problem), std::move(x), std::move(weights),
                   std::move(bias),   std::move(eq_scale), std::move(y), std::move(workspace), out_bytes, args};
}

// Poisons y (guards included) and the workspace again, for another run of the same operands;
// returns once the memsets are done (as prepare_device_run).
inline void poison_outputs(DeviceRun& run) {
  run.y.fill(poison);
  if (run.workspace) run.workspace->fill(poison);
  check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
}

// Whether a problem's reference is worth computing on the GPU (tuner/device_reference.h: the
// host's arithmetic in double, term by term in the same order, checked against it on every format
// by tests/tuner): from 2^30 multiply-adds, a tenth of a second or more of the host's threaded
// reference on the lent machine (700 rows on 28680x2056, 4e10 of them, took seconds a check).
inline bool large_for_the_host(const OpDesc& desc, int64_t m) {
  return static_cast<double>(m) * static_cast<double>(desc.n) * static_cast<double>(desc.k) >= double{1 << 30};
}

// "case: <descriptor> <kernel> [rows=R] seed=S", how every failure of a run names it.
inline std::string case_label(const DeviceRun& run) {
  return "case: " + run.case_name + " seed=" + std::to_string(run.seed);
}

// Empty when y (read back after the caller's synchronization) holds the reference within bound
// and the guards are intact; else the case, the seed and what failed.
inline std::string verify_device_run(const Kernel& kernel, const DeviceRun& run, double bound) {
  const OpDesc& desc = kernel.desc();
  const std::vector<uint8_t> result = run.y.download();
  const std::string where = case_label(run);
  for (std::size_t i = 0; i < guard_bytes; ++i)
    if (result[i] != poison || result[guard_bytes + run.out_bytes + i] != poison) return where + ": guard bytes overwritten";
  const std::vector<double> reference =
      large_for_the_host(desc, run.m)
          ? tuner::device_reference_matmul(run.problem)
          : reference_matmul(desc, run.m, run.problem.x.data(), run.problem.weights,
                             desc.bias ? run.problem.bias.data() : nullptr,
                             desc.eqscale ? run.problem.eq_scale.data() : nullptr);
  const double error = relative_error(result.data() + guard_bytes, desc.out, reference);
  if (!(error <= bound)) return where + ": relative error " + std::to_string(error) + " > " + std::to_string(bound);
  return {};
}

// Empty when the kernel passes; else the case, the seed and what failed. x_offset_bytes starts x
// that many bytes past an aligned allocation (a kernel's unaligned-x path). rows: the M of the
// run, for an m=0 kernel (any M); 0 takes the descriptor's.
// A launch that fails (a fault the synchronization reports included) is a failure naming the case.
inline std::string check_on_device(const Kernel& kernel, double bound, std::size_t x_offset_bytes = 0,
                                   int64_t rows = 0) {
  const DeviceRun run = prepare_device_run(kernel, x_offset_bytes, rows);
  try {
    kernel.run(run.args);
    check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  } catch (const std::exception& error) {
    return case_label(run) + ": " + error.what();
  }
  return verify_device_run(kernel, run, bound);
}

}  // namespace lowbit::cuda::testing
