// The tuner's GPU oracle (tuner/device_reference.h) against the host's reference_matmul on every
// format: bits, zero kinds, groups (a whole-K group too), activation dtypes, bias, eqscale, odd N
// and K (K = 1001: the codes' scalar path), row counts inside and across the 4-row groups. Both sum the same double terms in the same order; the host compiler
// may fuse a multiply and an add (GCC contracts by default), so the last bits may differ: the bound
// is 1e-12 of the row's largest output, thousands of double ulps and nine orders of magnitude
// below any kernel's tolerance. Needs a GPU (skips with the reason otherwise); the program itself
// compiles in CI (ProgramCompilesForEveryArch, NVRTC only).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "tuner/device_reference.h"

namespace lowbit::tuner {
namespace {

TEST(DeviceReference, ProgramCompilesForEveryArch) {
  if (!cuda::nvrtc().available) GTEST_SKIP() << "NVRTC is not installed: " << cuda::nvrtc().reason;
  for (const char* arch : {"sm_80", "sm_89", "sm_90a"}) {
    const std::vector<char> cubin = cuda::compile_to_cubin(reference_program_source(), "reference", arch);
    EXPECT_TRUE(cubin.size() > 64 && cubin[0] == 0x7f && cubin[1] == 'E') << arch << ": not an ELF cubin";
  }
}

TEST(DeviceReference, MatchesTheHostReferenceOnEveryFormat) {
  if (!cuda::nvrtc().available || !cuda::driver().available)
    GTEST_SKIP() << "no usable CUDA device here: " << cuda::driver().reason << cuda::nvrtc().reason;
  int compared = 0;
  for (const char* text : {"n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0",
                           "n=4099,k=1024,bits=4,group=128,zero=none,act=fp16,out=fp32,device=cuda:0",
                           "n=520,k=2112,bits=3,group=-1,zero=float,act=bf16,eqscale=1,device=cuda:0",
                           "n=96,k=544,bits=2,group=32,zero=none,act=fp32,bias=1,eqscale=1,device=cuda:0",
                           "n=777,k=1280,bits=8,group=256,zero=int,act=fp16,device=cuda:0",
                           "n=130,k=1001,bits=4,group=-1,zero=float,act=fp16,bias=1,device=cuda:0"}) {
    for (int64_t rows : {1, 3, 5, 70}) {
      OpDesc desc = parse_descriptor(text);
      desc.m = rows;
      const Problem problem = make_random_problem(desc, rows, seed_for(std::string(text) + std::to_string(rows)));
      const std::vector<double> host =
          reference_matmul(desc, rows, problem.x.data(), problem.weights, desc.bias ? problem.bias.data() : nullptr,
                           desc.eqscale ? problem.eq_scale.data() : nullptr);
      const std::vector<double> device = device_reference_matmul(problem);
      ASSERT_EQ(device.size(), host.size()) << text;
      for (int64_t row = 0; row < rows; ++row) {
        double largest = 0;
        for (int64_t n = 0; n < desc.n; ++n) largest = std::max(largest, std::fabs(host[row * desc.n + n]));
        ASSERT_GT(largest, 0.0) << text << " row " << row;
        for (int64_t n = 0; n < desc.n; ++n)
          ASSERT_LE(std::fabs(device[row * desc.n + n] - host[row * desc.n + n]), 1e-12 * largest)
              << text << " rows=" << rows << " at (" << row << ", " << n << "): device " << device[row * desc.n + n]
              << ", host " << host[row * desc.n + n];
      }
      ++compared;
    }
  }
  EXPECT_EQ(compared, 24);
}

}  // namespace
}  // namespace lowbit::tuner
