// The bench tools' --compile-only mode, which ctest runs on every machine (tests/cuda/CMakeLists.txt,
// BenchCompile.*): the tools' own CUDA kernels (diagnostics for docs/benchmarks.md, not lowbit's)
// then break in CI, not on the lent GPU. Without NVRTC a tool says why and exits with
// kMissingNvrtcExit, which ctest counts as skipped (SKIP_RETURN_CODE), as the gtest compile tests skip.
#pragma once

#include <cstdio>

#include "codegen/cuda/cuda_api.h"

namespace lowbit::bench {

inline constexpr int kMissingNvrtcExit = 77;

// True when NVRTC can compile; else prints the reason (the skip's message) and returns false.
inline bool nvrtc_usable() {
  const lowbit::cuda::Nvrtc& compiler = lowbit::cuda::nvrtc();
  if (!compiler.available) std::printf("skipped: %s\n", compiler.reason.c_str());
  return compiler.available;
}

}  // namespace lowbit::bench
