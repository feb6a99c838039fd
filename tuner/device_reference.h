// reference_matmul (lowbit/reference.h) computed on the GPU, for the CUDA tuner: the same
// arithmetic in double, term by term and in the same order (templates/reference_gemm.cuh), so
// that a large shape's oracle takes milliseconds instead of the host's seconds (M = 1024 on
// 28672x4096: about 10 s on the lent machine's 16 cores). The GPU tests check it against the
// host's on every format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/problem.h"

namespace lowbit::tuner {

// y [m][n] in double for problem (its x, weights, bias and eq_scale), on problem.desc's device
// (made current on the calling thread). The program compiles with NVRTC once per process and arch.
std::vector<double> device_reference_matmul(const Problem& problem);

// The program NVRTC compiles for it: templates/reference_gemm.cuh with its rows per thread.
std::string reference_program_source();

}  // namespace lowbit::tuner
