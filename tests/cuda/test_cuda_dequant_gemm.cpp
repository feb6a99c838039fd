// The dequantize-then-cuBLASLt fallback (CudaFamily::dequant_gemm) and the workspace API.
// Everywhere: the workspace check of check_run_args, the family's refusals, and (with NVRTC)
// every dequantization variant and format compiling for sm_80, sm_89 and sm_90a. On a GPU with
// cuBLASLt: the fallback against the reference at odd shapes and every format, outputs
// poisoned and guarded, workspace poisoned too (the kernel must not depend on its contents).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codegen/cuda/cublaslt_api.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/dequant_gemm_kernel.h"
#include "tests/cuda/compile_cases.h"
#include "tests/cuda/device_check.h"
#include "codegen/cuda/device_buffer.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"

namespace lowbit::cuda {
namespace {

#define SKIP_WITHOUT_NVRTC() \
  if (!nvrtc().available) GTEST_SKIP() << "NVRTC is not installed: " << nvrtc().reason
#define SKIP_WITHOUT_GPU_AND_CUBLASLT()                                                  \
  if (!driver().available) GTEST_SKIP() << "no usable CUDA device: " << driver().reason; \
  if (!cublaslt().available) GTEST_SKIP() << "cuBLASLt is not usable: " << cublaslt().reason


CudaVariant make_variant(int warps, int unroll, int stages) {
  CudaVariant variant{CudaFamily::dequant_gemm, warps, unroll};
  variant.stages = stages;
  return variant;
}

const CudaVariant heuristic_variant = make_variant(4, 4, 3);

bool looks_like_cubin(const std::vector<char>& cubin) {
  return cubin.size() > 64 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F';
}

// Host pointers are enough: check_run_args only looks at presence and sizes.
RunArgs complete_args(int64_t m) {
  static const char placeholder[16] = {};
  RunArgs args;
  args.x = placeholder;
  args.y = const_cast<char*>(placeholder);
  args.weights = {placeholder, placeholder, placeholder};
  args.m = m;
  return args;
}

TEST(DequantGemmWorkspace, MissingOrSmallWorkspaceIsRefusedWithBothSizes) {
  const OpDesc desc = parse_descriptor("m=4,n=64,k=128,group=64,zero=int");
  RunArgs args = complete_args(4);
  EXPECT_NO_THROW(check_run_args(desc, args));  // a kernel that needs no workspace
  try {
    check_run_args(desc, args, 4096);
    FAIL() << "a null workspace was accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("null"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("4096"), std::string::npos) << error.what();
  }
  std::vector<char> scratch(4095);
  args.workspace = scratch.data();
  args.workspace_size = scratch.size();
  try {
    check_run_args(desc, args, 4096);
    FAIL() << "a workspace one byte short was accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("4095"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("4096"), std::string::npos) << error.what();
  }
  args.workspace_size = 4096;  // the size is the caller's word; exactly enough passes
  EXPECT_NO_THROW(check_run_args(desc, args, 4096));
}

TEST(DequantGemmValidity, RefusalsNameTheField) {
  DequantGemmGenerator generator;
  auto reason = [&](const char* text, int arch_major = 9) {
    return generator.is_valid(parse_descriptor(text), heuristic_variant, arch_major).reason;
  };
  EXPECT_EQ(reason("m=256,n=64,k=128,act=bf16,device=cuda:0"), "");
  EXPECT_NE(reason("m=0,n=64,k=128,act=bf16,device=cuda:0").find("exact m"), std::string::npos);
  EXPECT_NE(reason("m=256,n=64,k=128,act=fp32,device=cuda:0").find("act=bf16 or fp16"), std::string::npos);
  EXPECT_NE(reason("m=256,n=64,k=128,act=bf16,out=fp16,device=cuda:0").find("out=fp16"), std::string::npos);
  EXPECT_NE(reason("m=256,n=64,k=128,act=bf16,out=fp32,bias=1,device=cuda:0").find("bias=1"), std::string::npos);
  EXPECT_NE(reason("m=256,n=64,k=128,act=bf16,device=cuda:0", 7).find("8.0"), std::string::npos);
  EXPECT_NE(reason("m=256,n=64,k=128,act=bf16").find("device=cuda"), std::string::npos);
  const OpDesc desc = parse_descriptor("m=256,n=64,k=128,act=bf16,device=cuda:0");
  EXPECT_FALSE(generator.is_valid(desc, CudaVariant{CudaFamily::gemv, 8, 2}, 9));
  EXPECT_NE(generator.is_valid(desc, make_variant(8, 2, 0), 9).reason.find("stages"), std::string::npos);
  EXPECT_NE(generator.is_valid(desc, make_variant(8, 2, 5), 9).reason.find("stages"), std::string::npos);
  // 8-bit, 8 warps x 8 chunks: 16 KiB a tile, four stages would be 64 KiB.
  const OpDesc eight = parse_descriptor("m=256,n=64,k=128,bits=8,act=bf16,device=cuda:0");
  EXPECT_EQ(DequantGemmGenerator::tile_bytes(eight, make_variant(8, 8, 4)), 16 * 1024);
  EXPECT_NE(generator.is_valid(eight, make_variant(8, 8, 4), 9).reason.find("shared memory"), std::string::npos);
  EXPECT_TRUE(generator.is_valid(eight, make_variant(8, 8, 3), 9));
  EXPECT_EQ(generator.candidates(eight).size(), 17u);
  EXPECT_NE(generator.is_valid(desc, make_variant(8, 3, 2), 9).reason.find("unroll"), std::string::npos);
  CudaVariant with_tile = heuristic_variant;
  with_tile.block_n = 64;
  EXPECT_NE(generator.is_valid(desc, with_tile, 9).reason.find("block_n"), std::string::npos);
  EXPECT_EQ(generator.candidates(desc).size(), 18u);
  EXPECT_EQ(generator.heuristic(desc), heuristic_variant);
  EXPECT_EQ(variant_name(parse_descriptor("m=1024,n=64,k=128,group=128,act=bf16,device=cuda:0"), heuristic_variant,
                         "sm_90a"),
            "cuda_sm90a_dequantgemm_w4g128_m1024_w4u4s3");
}

TEST(DequantGemmTiles, CountCoversEveryPanelAndChunk) {
  // N=1000: 63 panels. K=4160 (LD 4160): 520 chunks of 8 k at 4 bits, 260 chunks of 16 k at 3 bits.
  const OpDesc four = parse_descriptor("m=256,n=1000,k=4160,bits=4,group=64,act=bf16,device=cuda:0");
  EXPECT_EQ(DequantGemmGenerator::tiles(four, make_variant(8, 2, 2)), 63 * 17);  // 32 chunks a tile: 16.25 -> 17
  EXPECT_EQ(DequantGemmGenerator::tiles(four, make_variant(4, 1, 2)), 63 * 65);  // 8 chunks a tile
  const OpDesc three = parse_descriptor("m=256,n=1000,k=4160,bits=3,group=64,act=bf16,device=cuda:0");
  EXPECT_EQ(DequantGemmGenerator::tiles(three, make_variant(8, 4, 3)), 63 * 5);  // 64 chunks a tile: 4.06 -> 5
}

TEST(DequantGemmCompile, EveryVariantAndFormatCompilesForEveryArch) {
  SKIP_WITHOUT_NVRTC();
  DequantGemmGenerator generator;
  int compiled = 0;
  const OpDesc base = parse_descriptor("m=256,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,device=cuda:0");
  for (const CudaVariant& variant : generator.candidates(base))
    for (const char* arch : {"sm_80", "sm_89", "sm_90a"}) {
      EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(base, variant), "dequantize", arch)));
      ++compiled;
    }
  for (const char* bits : {"2", "3", "4", "8"})
    for (const char* format : {"act=bf16,zero=int,group=128,k=4096", "act=fp16,zero=none,group=32,k=4096",
                               "act=bf16,zero=float,group=-1,k=4099,eqscale=1"}) {
      const OpDesc desc = parse_descriptor(std::string("m=256,n=1000,device=cuda:0,bits=") + bits + "," + format);
      ASSERT_TRUE(generator.is_valid(desc, heuristic_variant, 9)) << to_string(desc);
      EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(desc, heuristic_variant), "dequantize", "sm_90a")))
          << to_string(desc);
      ++compiled;
    }
  EXPECT_EQ(compiled, 18 * 3 + 12);
}

// One call on a random problem against the reference (device_check.h: outputs and workspace
// poisoned); an empty string when it passes.
using testing::Case;

// The kernel of cases[i], loaded from the cubin CompiledCases made for it (waiting for it when
// its compile is still under way); refused with the reason when it did not compile.
DequantGemmKernel load_case(const std::vector<Case>& cases, testing::CompiledCases& compiled, std::size_t i) {
  CompiledCandidate candidate = compiled.get(i);
  if (!candidate.error.empty()) throw Error(candidate.error);
  return DequantGemmKernel(cases[i].desc, cases[i].variant, std::move(candidate.cubin));
}

// Each case once, in order (compiled ahead, several at once); empty when all pass, else the first
// failure's reproducer.
std::string check_on_device(const std::vector<Case>& cases) {
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::string failure =
        testing::check_on_device(load_case(cases, compiled, i), dequantized_weights_tolerance(cases[i].desc));
    if (!failure.empty()) return failure;
  }
  return {};
}

TEST(CudaDequantGemm, OddShapesAgainstTheReference) {
  SKIP_WITHOUT_GPU_AND_CUBLASLT();
  DequantGemmGenerator generator;
  std::vector<Case> cases;
  // N=1000: 62 panels and an 8-column tail; K=4160: 65 groups of 64, not a multiple of 128.
  // Every candidate at M=17; the heuristic at the other M (the reference at M=1000 costs seconds).
  for (const char* rows : {"1", "17", "256", "1000"}) {
    const OpDesc desc =
        parse_descriptor(std::string("n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0,m=") + rows);
    std::vector<CudaVariant> variants{heuristic_variant};
    if (desc.m == 17) variants = generator.candidates(desc);
    for (const CudaVariant& variant : variants) cases.push_back({desc, variant});
  }
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaDequantGemm, EveryFormatAndKTail) {
  SKIP_WITHOUT_GPU_AND_CUBLASLT();
  std::vector<Case> cases;
  for (const char* bits : {"2", "3", "4", "8"})
    for (const char* types : {"act=bf16,out=bf16,bias=1", "act=fp16,out=fp16,bias=1", "act=bf16,out=fp32",
                              "act=fp16,out=fp32,eqscale=1"})
      for (const char* zero : {"none", "int", "float"})
        for (const char* shape : {"group=32,k=96,m=1", "group=128,k=384,m=17", "group=-1,k=131,m=17",
                                  "group=-1,k=4098,m=3"}) {
          const OpDesc desc = parse_descriptor(std::string("n=37,device=cuda:0,bits=") + bits + "," + types +
                                               ",zero=" + zero + "," + shape);
          cases.push_back({desc, heuristic_variant});
        }
  EXPECT_EQ(cases.size(), std::size_t{4 * 4 * 3 * 4});
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaDequantGemm, RunRefusesSmallWorkspaceAndMisalignment) {
  SKIP_WITHOUT_GPU_AND_CUBLASLT();
  const OpDesc desc = parse_descriptor("m=17,n=64,k=128,group=64,act=bf16,device=cuda:0");
  DequantGemmKernel kernel(desc, heuristic_variant);
  ASSERT_GE(kernel.workspace_bytes(17), std::size_t{64 * 128 * 2});
  DeviceBuffer buffer(kernel.workspace_bytes(17) + 512);
  RunArgs args;
  args.x = args.weights.qweight = args.weights.scales = args.weights.zeros = buffer.data();
  args.y = buffer.data();
  args.m = 17;
  args.workspace = buffer.data();
  args.workspace_size = kernel.workspace_bytes(17) - 1;
  EXPECT_THROW(kernel.run(args), InvalidArgument);
  args.workspace_size = kernel.workspace_bytes(17);
  args.workspace = static_cast<uint8_t*>(buffer.data()) + 16;  // not 256-byte aligned
  EXPECT_THROW(kernel.run(args), InvalidArgument);
  args.workspace = buffer.data();
  args.y = static_cast<uint8_t*>(buffer.data()) + 2;
  EXPECT_THROW(kernel.run(args), InvalidArgument);
  args.y = buffer.data();
  args.weights.qweight = static_cast<uint8_t*>(buffer.data()) + 8;  // the 16-byte copies need 16
  EXPECT_THROW(kernel.run(args), InvalidArgument);
}

// More tiles than blocks x stages, so that every block walks several tiles and its stage ring
// wraps: every candidate (warps, unroll, stages) at 4 bits, the heuristic at 3 and 8 bits
// (bigger steps), with an N tail (24008 = 1500 panels + 8 columns) and K not a multiple of 128.
// M=1: the pass does not depend on M, and the weights are what must be many.
TEST(CudaDequantGemm, ManyTilesPerBlock) {
  SKIP_WITHOUT_GPU_AND_CUBLASLT();
  DequantGemmGenerator generator;
  std::vector<Case> cases;
  for (const char* bits : {"4", "3", "8"}) {
    const OpDesc desc = parse_descriptor(std::string("m=1,n=24008,k=4160,group=64,zero=int,act=bf16,device=cuda:0,bits=") +
                                         bits);
    std::vector<CudaVariant> variants{heuristic_variant};
    if (desc.bits == 4) variants = generator.candidates(desc);
    for (const CudaVariant& variant : variants) cases.push_back({desc, variant});
  }
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const DequantGemmKernel kernel = load_case(cases, compiled, i);
    const CudaVariant& variant = cases[i].variant;
    ASSERT_GT(DequantGemmGenerator::tiles(cases[i].desc, variant), int64_t{variant.stages} * kernel.grid()) << kernel.name();
    std::string failure = testing::check_on_device(kernel, dequantized_weights_tolerance(cases[i].desc));
    ASSERT_TRUE(failure.empty()) << failure;
  }
}

}  // namespace
}  // namespace lowbit::cuda
