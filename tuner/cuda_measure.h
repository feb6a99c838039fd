// The CUDA measurement protocol and verification (built only with the CUDA backend).
//
// "cuda-rotate-median:1": the packed weights are copied on the device until the copies together
// exceed 4x the device's L2 (queried from the driver; at least 2 copies), and consecutive runs
// use consecutive copies, so every run streams its weights from HBM as a decode step does.
// 3 warm-up runs, then runs are timed one by one with CUDA events around the launch on the
// default stream until at least 20 runs and 10 ms of kernel time have passed, or 200 runs;
// the median is reported.
#pragma once

#include <optional>
#include <vector>

#include "codegen/cuda/device_buffer.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "tuner/measure.h"
#include "tuner/tuner.h"

namespace lowbit::tuner {

// One problem on desc's device: activations, bias, equalization scale, rotated weight copies and an output with
// guard bytes on both sides. Built once per descriptor; the calls below allocate nothing.
class DeviceInputs {
 public:
  explicit DeviceInputs(const Problem& problem);
  int copies() const { return static_cast<int>(weights_.size()); }
  // Arguments for a run reading weight copy `copy` (outputs land between the guards).
  RunArgs args(int copy) const;

  // Makes every later args() carry a workspace of at least `bytes` (Kernel::workspace_bytes):
  // allocated here, before any timing, never per run.
  void reserve_workspace(std::size_t bytes);

  // Poisons the output (NaN in every dtype) and paints the guards.
  void poison_output();
  // The output after a run, and whether the guards are as poison_output() left them.
  std::vector<uint8_t> download_output(bool& guards_intact) const;

 private:
  const Problem* problem_;
  cuda::DeviceBuffer x_;
  cuda::DeviceBuffer bias_;
  cuda::DeviceBuffer eq_scale_;  // fp32 [k]; one byte when desc.eqscale=0
  std::vector<cuda::DeviceBuffer> weights_;
  cuda::DeviceBuffer output_;  // [guard][m * n * out bytes][guard]
  std::optional<cuda::DeviceBuffer> workspace_;  // only for kernels that ask for one
  std::size_t output_bytes_ = 0;
};

// Reserves the kernel's workspace, runs it once on copy 0 with a poisoned output, waits for it,
// checks the guards and compares with the reference under the variant's verification
// tolerance (codegen/cuda/registry.h).
CandidateResult verify_cuda(const Kernel& kernel, DeviceInputs& inputs, const std::vector<double>& reference);

// Times kernel under cuda-rotate-median:1. The kernel must have passed verify_cuda.
Timing time_cuda_kernel(const Kernel& kernel, const DeviceInputs& inputs);

}  // namespace lowbit::tuner
