// Pointer alignment of CUDA runs (codegen/cuda/operand_alignment.h). Without a GPU: the rules
// per family, on pointer values alone. On a GPU: an mma kernel given a misaligned x refuses the
// run with InvalidArgument, and the context still serves a correct run afterwards (a misaligned
// cp.async would have been a sticky launch error).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/mma_generator.h"
#include "codegen/cuda/operand_alignment.h"
#include "lowbit/errors.h"
#include "lowbit/tolerance.h"
#include "tests/cuda/device_check.h"

namespace lowbit::cuda {
namespace {

// A fake address with the given remainder modulo 256; never dereferenced.
void* address(std::uintptr_t remainder) { return reinterpret_cast<void*>(std::uintptr_t{0x10000} + remainder); }

RunArgs aligned_args() {
  RunArgs args;
  args.x = address(0);
  args.weights = {address(0), address(0), address(0)};
  args.y = address(0);
  args.m = 32;
  return args;
}

std::string refusal(const OpDesc& desc, CudaFamily family, const RunArgs& args) {
  try {
    CudaVariant variant;
    variant.family = family;
    check_operand_alignment(desc, variant, args);
  } catch (const InvalidArgument& error) {
    return error.what();
  }
  return {};
}

TEST(CudaOperandAlignment, AlignedPointersPass) {
  const OpDesc desc = parse_descriptor("m=32,n=64,k=256,device=cuda:0");
  for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma, CudaFamily::mma, CudaFamily::wgmma})
    EXPECT_EQ(refusal(desc, family, aligned_args()), "");
}

TEST(CudaOperandAlignment, PackedWeightsNeedSixteenBytesInEveryFamily) {
  const OpDesc desc = parse_descriptor("m=32,n=64,k=256,device=cuda:0");
  for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma, CudaFamily::mma, CudaFamily::wgmma}) {
    RunArgs args = aligned_args();
    args.weights.qweight = address(8);
    EXPECT_NE(refusal(desc, family, args).find("weights.qweight is not 16-byte aligned"), std::string::npos);
    args = aligned_args();
    args.weights.scales = address(4);
    EXPECT_NE(refusal(desc, family, args).find("weights.scales"), std::string::npos);
    args = aligned_args();
    args.weights.zeros = address(2);
    EXPECT_NE(refusal(desc, family, args).find("weights.zeros"), std::string::npos);
  }
}

TEST(CudaOperandAlignment, XNeedsSixteenBytesOnlyWhereRowsAreCopiedWhole) {
  RunArgs args = aligned_args();
  args.x = address(2);  // one bf16 element past an aligned start
  const OpDesc whole_rows = parse_descriptor("m=32,n=64,k=256,device=cuda:0");
  EXPECT_NE(refusal(whole_rows, CudaFamily::mma, args).find("RunArgs.x is not 16-byte aligned"), std::string::npos);
  EXPECT_NE(refusal(whole_rows, CudaFamily::wgmma, args).find("RunArgs.x"), std::string::npos);
  EXPECT_EQ(refusal(whole_rows, CudaFamily::gemv_mma, args), "");  // it falls back to plain loads
  EXPECT_EQ(refusal(whole_rows, CudaFamily::gemv, args), "");
  const OpDesc odd_k = parse_descriptor("m=32,n=64,k=131,group=-1,device=cuda:0");
  EXPECT_EQ(refusal(odd_k, CudaFamily::mma, args), "");  // rows copied element by element
}

TEST(CudaOperandAlignment, YNeedsAPairOfOutputsWhenNIsEven) {
  RunArgs args = aligned_args();
  args.y = address(2);
  const OpDesc even_n = parse_descriptor("m=32,n=64,k=256,out=bf16,device=cuda:0");
  EXPECT_NE(refusal(even_n, CudaFamily::mma, args).find("RunArgs.y is not 4-byte aligned"), std::string::npos);
  const OpDesc odd_n = parse_descriptor("m=32,n=63,k=256,out=bf16,device=cuda:0");
  EXPECT_EQ(refusal(odd_n, CudaFamily::mma, args), "");
  const OpDesc fp32_out = parse_descriptor("m=32,n=64,k=256,out=fp32,device=cuda:0");
  args.y = address(4);
  EXPECT_NE(refusal(fp32_out, CudaFamily::gemv, args).find("8-byte aligned"), std::string::npos);
}

TEST(CudaOperandAlignment, MisalignedXIsRefusedAndTheContextStaysUsable) {
  if (!driver().available) GTEST_SKIP() << "no usable CUDA device: " << driver().reason;
  const OpDesc desc = parse_descriptor("m=32,n=80,k=256,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  const CudaKernel kernel(desc, MmaGenerator().heuristic(desc));
  DeviceBuffer x(desc.m * desc.k * 2 + 16);
  DeviceBuffer weights(1 << 20);
  DeviceBuffer y(desc.m * desc.n * 2);
  RunArgs args;
  args.x = static_cast<uint8_t*>(x.data()) + 2;
  auto* base = static_cast<uint8_t*>(weights.data());
  args.weights = {base, base + 65536, base + 131072};
  args.y = y.data();
  args.m = desc.m;
  EXPECT_THROW(kernel.run(args), InvalidArgument);
  check(driver().cuCtxSynchronize(), "cuCtxSynchronize");
  const std::string failure = testing::check_on_device(kernel, tolerance(desc));
  EXPECT_TRUE(failure.empty()) << failure;
}

}  // namespace
}  // namespace lowbit::cuda
