// CI (no GPU): every CUDA variant of the search space compiles through NVRTC to a cubin for
// sm_80, sm_89 and sm_90a, and source generation is deterministic.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <cstdlib>
#include <string>
#include <tuple>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_variant.h"
#include "codegen/cuda/gemv_generator.h"
#include "codegen/cuda/mma_generator.h"
#include "codegen/cuda/registry.h"
#include "codegen/cuda/wgmma_generator.h"
#include "tests/cuda/compile_cases.h"
#include "lowbit/native_layout.h"
#include "lowbit/errors.h"

namespace lowbit::cuda {
namespace {

#define SKIP_WITHOUT_NVRTC() \
  if (!nvrtc().available) GTEST_SKIP() << "NVRTC is not installed: " << nvrtc().reason

constexpr const char* arches[] = {"sm_80", "sm_89", "sm_90a"};

// The split kinds the default search leaves out from 128 rows whatever the grid
// (WgmmaGenerator::in_default_search): split-K by 2 through a second kernel, by 8, and cluster
// splits of 4 or 8 blocks.
bool split_never_searched_from_128_rows(const CudaVariant& variant) {
  return variant.split_k >= 8 || (variant.cluster_split != 0 && variant.split_k >= 4) ||
         (variant.split_k == 2 && variant.cluster_split == 0);
}

// ELF magic at the start of a cubin.
bool looks_like_cubin(const std::vector<char>& cubin) {
  return cubin.size() > 64 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F';
}

// What the library's compile_candidates (registry.h) gives, each variant of desc emitted and
// compiled for arch, but through the tests' compile slots (compile_cases.h): the library's
// thread per core in each of several test processes at once would oversubscribe the cores.
std::vector<CompiledCandidate> compile_variants(const OpDesc& desc, const std::vector<CudaVariant>& variants,
                                                const std::string& arch) {
  std::vector<testing::Program> programs;
  for (const CudaVariant& variant : variants) programs.push_back({emit(desc, variant), variant_name(desc, variant, arch), arch});
  return testing::compile_programs(programs);
}

TEST(CudaCompile, EveryGemvCandidateCompilesForEveryArch) {
  SKIP_WITHOUT_NVRTC();
  GemvGenerator generator;
  OpDesc desc = parse_descriptor("m=3,n=1000,k=4096,bits=4,group=128,zero=int,act=bf16,bias=1,device=cuda:0");
  std::vector<CudaVariant> variants = generator.candidates(desc);
  // gemv: 3 warp counts x 3 unrolls; gemv_mma: the same 9, wide chunks at 2 and 4 stages (6),
  // and on these 63 panels split 2 at 8 warps and 2 stages, both widths (2). Panel walks
  // (panels > 1) and the L2 prefetch are not candidates: CudaCompileBits compiles them for
  // every arch.
  ASSERT_EQ(variants.size(), 9u + 9u + 6u + 2u);
  std::vector<testing::Program> programs;
  for (const CudaVariant& variant : variants)
    for (const char* arch : arches) programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, arch), arch});
  EXPECT_EQ(testing::compile_failures(programs), "");
}

TEST(CudaCompile, EveryFormatCompilesForHopper) {
  SKIP_WITHOUT_NVRTC();
  GemvGenerator generator;
  int compiled = 0;
  for (const char* format : {"act=bf16,out=bf16,zero=int,group=128", "act=fp16,out=fp16,zero=none,group=32",
                             "act=bf16,out=fp32,zero=float,group=64", "act=fp16,out=bf16,zero=int,group=256",
                             "act=fp32,out=fp32,zero=int,group=-1,k=4099", "act=bf16,out=fp16,zero=float,group=-1,k=4098"})
    for (const char* rows : {"1", "8"}) {
      std::string text = std::string("n=1000,k=4096,bits=4,device=cuda:0,bias=1,m=") + rows + "," + format;
      // k given twice in two formats: the later wins in this test's text, so drop the first.
      if (std::string(format).find("k=") != std::string::npos) text.replace(text.find("k=4096,"), 7, "");
      OpDesc desc = parse_descriptor(text);
      CudaVariant variant = generator.heuristic(desc);
      ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << text;
      EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(desc, variant), "format", "sm_90a"))) << text;
      ++compiled;
    }
  EXPECT_EQ(compiled, 12);
}

// Every weight width x family x equalization scale, at the M extremes (1: fewest registers,
// 8: most), for every arch; and for each width the variant extremes (fewest and most warps and
// loads in flight) at M=8, where register pressure and shared memory peak. The full
// 18-candidate sweep per arch is EveryGemvCandidateCompilesForEveryArch (int4); the other
// widths share its loop structure and differ only in their decode step and chunk sizes, so a
// representative set keeps this test at seconds on CI's 2 cores.
class CudaCompileBits : public ::testing::TestWithParam<int> {};

TEST_P(CudaCompileBits, EveryFamilyAndEqScaleCompilesForEveryArch) {
  SKIP_WITHOUT_NVRTC();
  GemvGenerator generator;
  const int bits = GetParam();
  // Every program listed first, then compiled several at once (compile_failures).
  std::vector<testing::Program> programs;
  int compiled = 0;
  for (const char* eqscale : {"0", "1"})
    for (const char* rows : {"1", "8"}) {
      const std::string text = fmt::format(
          "m={},n=1000,k=4100,bits={},group=-1,zero=int,act=bf16,out=fp16,bias=1,eqscale={},device=cuda:0", rows,
          bits, eqscale);
      OpDesc desc = parse_descriptor(text);
      for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma}) {
        CudaVariant variant = generator.heuristic(desc);
        variant.family = family;
        if (family == CudaFamily::gemv) variant = CudaVariant{family, std::min(variant.warps, 8), variant.unroll};  // its most warps, no gemv_mma fields
        ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << text;
        for (const char* arch : arches) {
          programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, arch), arch});
          ++compiled;
        }
      }
    }
  // M=16: the tensor-core family's two B operands (the most registers and shared memory).
  for (const char* eqscale : {"0", "1"}) {
    const std::string text = fmt::format(
        "m=16,n=1000,k=4100,bits={},group=-1,zero=int,act=bf16,out=fp16,bias=1,eqscale={},device=cuda:0", bits, eqscale);
    OpDesc desc = parse_descriptor(text);
    CudaVariant variant = generator.heuristic(desc);
    ASSERT_EQ(variant.family, CudaFamily::gemv_mma) << text;
    ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << text;
    for (const char* arch : arches) {
      programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, arch), arch});
      ++compiled;
    }
  }
  for (const char* act : {"bf16", "fp16"}) {
    OpDesc desc = parse_descriptor(
        fmt::format("m=8,n=4096,k=4096,bits={},group=128,zero=float,act={},device=cuda:0", bits, act));
    for (CudaFamily family : {CudaFamily::gemv, CudaFamily::gemv_mma})
      for (CudaVariant variant : {CudaVariant{family, 2, 2}, CudaVariant{family, 8, 8}}) {
        ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << to_string(desc);
        programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, "sm_90a"), "sm_90a"});
        ++compiled;
      }
  }
  // gemv_mma's wide ring chunks (two 16-byte copies a lane) with split-K and its second kernel,
  // at M=16 with eqscale (the most registers and shared memory), for every arch.
  {
    const std::string text = fmt::format(
        "m=16,n=1000,k=4100,bits={},group=-1,zero=int,act=fp16,out=bf16,bias=1,eqscale=1,device=cuda:0", bits);
    OpDesc desc = parse_descriptor(text);
    const int format_k = (bits == 2 ? 8 : bits == 8 ? 2 : 4) * 16;
    for (auto [warps, unroll, split] : {std::tuple{4, 2, 4}, std::tuple{2, 4, 2}}) {  // fit sm_80's 99 KiB
      CudaVariant variant{CudaFamily::gemv_mma, warps, unroll};
      variant.block_k = 2 * format_k;
      variant.split_k = split;
      ASSERT_TRUE(generator.is_valid(desc, variant, 8)) << text << " " << variant_name(desc, variant, "sm_80");
      for (const char* arch : arches) {
        programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, arch), arch});
        ++compiled;
      }
    }
  }
  // Panel walks (panels > 1, not candidates) at M=1 and at M=16 with eqscale, for every arch.
  for (const char* rows : {"1", "16"}) {
    OpDesc desc = parse_descriptor(fmt::format(
        "m={},n=1000,k=4100,bits={},group=-1,zero=int,act=bf16,out=fp16,bias=1,eqscale={},device=cuda:0", rows, bits,
        rows[1] == '6' ? 1 : 0));
    CudaVariant variant{CudaFamily::gemv_mma, 4, 2};
    variant.block_k = 2 * (bits == 2 ? 8 : bits == 8 ? 2 : 4) * 16;
    variant.panels = 8;
    ASSERT_TRUE(generator.is_valid(desc, variant, 8)) << variant_name(desc, variant, "sm_80");
    for (const char* arch : arches) {
      programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, arch), arch});
      ++compiled;
    }
  }
  // The L2 prefetch (prefetch=1, not a candidate; every arch) at M=1 and at M=16 with eqscale,
  // split in two at M=16.
  for (const char* rows : {"1", "16"}) {
    OpDesc desc = parse_descriptor(fmt::format(
        "m={},n=1000,k=4100,bits={},group=-1,zero=float,act=fp16,out=bf16,bias=1,eqscale={},device=cuda:0", rows, bits,
        rows[1] == '6' ? 1 : 0));
    CudaVariant variant{CudaFamily::gemv_mma, 8, 2};
    variant.prefetch = 1;
    variant.split_k = rows[1] == '6' ? 2 : 1;
    ASSERT_TRUE(generator.is_valid(desc, variant, 8)) << variant_name(desc, variant, "sm_80");
    for (const char* arch : arches) {
      programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, arch), arch});
      ++compiled;
    }
  }
  // Warps covering 4 panels (block_n 64), and 2 panels in a walk of 4 sets, at M=16 with
  // eqscale (the most accumulators a thread holds), for every arch.
  {
    OpDesc desc = parse_descriptor(fmt::format(
        "m=16,n=1000,k=4100,bits={},group=-1,zero=int,act=bf16,out=fp16,bias=1,eqscale=1,device=cuda:0", bits));
    for (auto [warps, block_n, panels] : {std::tuple{4, 64, 1}, std::tuple{8, 32, 4}}) {  // fit sm_80 at 2 bits
      CudaVariant variant{CudaFamily::gemv_mma, warps, 2};
      variant.block_n = block_n;
      variant.panels = panels;
      ASSERT_TRUE(generator.is_valid(desc, variant, 8)) << variant_name(desc, variant, "sm_80");
      for (const char* arch : arches) {
        programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, arch), arch});
        ++compiled;
      }
    }
  }
  // Bulk copies (sm_90a only), wide, at the same M=16 with eqscale and fp16.
  {
    OpDesc desc = parse_descriptor(fmt::format(
        "m=16,n=1000,k=4096,bits={},group=128,zero=float,act=fp16,out=fp32,bias=1,eqscale=1,device=cuda:0", bits));
    CudaVariant variant{CudaFamily::gemv_mma, 4, 2};
    variant.block_k = 2 * (bits == 2 ? 8 : bits == 8 ? 2 : 4) * 16;
    variant.bulk_copy = 1;
    ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << variant_name(desc, variant, "sm_90a");
    EXPECT_FALSE(generator.is_valid(desc, variant, 8).ok);
    programs.push_back({generator.emit(desc, variant), variant_name(desc, variant, "sm_90a"), "sm_90a"});
    ++compiled;
  }
  EXPECT_EQ(testing::compile_failures(programs), "");
  EXPECT_EQ(compiled, 2 * 2 * 2 * 3 + 2 * 3 + 2 * 2 * 2 + 2 * 3 + 2 * 3 + 2 * 3 + 2 * 3 + 1);
}

INSTANTIATE_TEST_SUITE_P(Bits, CudaCompileBits, ::testing::Values(2, 3, 4, 8),
                         [](const ::testing::TestParamInfo<int>& info) { return fmt::format("w{}", info.param); });

// The wgmma family exists on sm_90a only (is_valid refuses other arches): every candidate
// compiles for it. Its formats and refusals are in test_cuda_wgmma.cpp.
TEST(CudaCompile, EveryWgmmaCandidateCompilesForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  OpDesc desc = parse_descriptor("m=256,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1,device=cuda:0");
  const std::vector<CudaVariant> variants = generator.candidates(desc);
  // Every searched shape fits M=256 (11 all-thread, 5 warp-specialized); 31 split K too (grids
  // under two waves), each also as a cluster split (every tile's accumulator fits its ring); the 5
  // all-thread shapes of 128 rows or more run stream-K too (their 16 or 32 tiles leave most of a
  // wave idle), and so do the 5 warp-specialized ones, each of those also with planned runs. The
  // one shape of at most 64 rows with stages inside a group of 64 (64-k stages), each of its 3
  // splits and 2 cluster splits, also keeps group sums: 5 more.
  ASSERT_EQ(variants.size(), 98u);
  EXPECT_EQ(std::count_if(variants.begin(), variants.end(), [](const CudaVariant& variant) { return variant.group_sums != 0; }),
            5);
  EXPECT_EQ(std::count_if(variants.begin(), variants.end(), [](const CudaVariant& variant) { return variant.stream_k != 0; }),
            15);
  EXPECT_EQ(std::count_if(variants.begin(), variants.end(),
                          [](const CudaVariant& variant) { return variant.stream_k_plan != 0; }),
            5);
  EXPECT_EQ(std::count_if(variants.begin(), variants.end(),
                          [](const CudaVariant& variant) { return variant.cluster_split != 0; }),
            31 + 2);  // (2 of them with group sums)
  for (const CudaVariant& variant : variants) {
    ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << variant_name(desc, variant, "sm_90a");
    EXPECT_FALSE(generator.is_valid(desc, variant, 8)) << variant_name(desc, variant, "sm_90a");
  }
  // Several at once (compile_variants): one at a time this was the device call's longest test
  // (312 s of NVRTC on a 16-core host, session 8).
  const std::vector<CompiledCandidate> compiled = compile_variants(desc, variants, "sm_90a");
  ASSERT_EQ(compiled.size(), variants.size());
  for (std::size_t i = 0; i < variants.size(); ++i)
    EXPECT_TRUE(compiled[i].error.empty() && looks_like_cubin(compiled[i].cubin))
        << variant_name(desc, variants[i], "sm_90a") << ": " << compiled[i].error;
}

// The wgmma family's widths beyond int4: every candidate of bits 8, 3 and 2 for sm_90a (the same
// 93 scaled ones as int4: every shape fits the shared memory at 8 bits too, every accumulator its
// ring; and its 5 group-sum ones where the format allows them: not zero=float, not 8-bit bf16). Activation dtype and zero point
// take turns: 8-bit bf16 dequantizes in fp32, 8-bit fp16, 3-bit and 2-bit through the exponent
// trick (3-bit zero=float in fp32 too).
TEST(CudaCompile, EveryWgmmaWidthCandidateCompilesForHopper) {
  SKIP_WITHOUT_NVRTC();
  WgmmaGenerator generator;
  for (const char* format : {"bits=8,act=bf16,zero=int", "bits=8,act=fp16,zero=none", "bits=2,act=bf16,zero=float",
                             "bits=2,act=fp16,zero=int", "bits=3,act=bf16,zero=int", "bits=3,act=fp16,zero=float"}) {
    const OpDesc desc =
        parse_descriptor(std::string("m=256,n=1000,k=4160,group=64,bias=1,device=cuda:0,") + format);
    const std::vector<CudaVariant> variants = generator.candidates(desc);
    const bool group_sums = std::string(format).find("zero=float") == std::string::npos &&
                            std::string(format) != "bits=8,act=bf16,zero=int";
    ASSERT_EQ(variants.size(), group_sums ? 98u : 93u) << format;
    // Split between the formats of one width: every candidate of each width, each format half.
    const bool first_half = std::string(format).find("zero=int") != std::string::npos;
    std::vector<CudaVariant> half;
    for (std::size_t i = 0; i < variants.size(); ++i)
      if ((i % 2 == 0) == first_half) half.push_back(variants[i]);
    const std::vector<CompiledCandidate> compiled = compile_variants(desc, half, "sm_90a");
    for (std::size_t i = 0; i < half.size(); ++i)
      EXPECT_TRUE(compiled[i].error.empty() && looks_like_cubin(compiled[i].cubin))
          << variant_name(desc, half[i], "sm_90a") << ": " << compiled[i].error;
  }
}

// The mma family's widths beyond int4 (its int4 candidates: test_cuda_mma.cpp): every candidate
// of bits 2, 3 and 8, with and without eqscale, and int4 with eqscale, through NVRTC for sm_80,
// sm_89 and sm_90a. Activation dtype and zero point take turns (8-bit bf16 and fp16 decode
// differently, both are here).
TEST(CudaCompile, EveryMmaWidthCandidateCompilesForEveryArch) {
  SKIP_WITHOUT_NVRTC();
  MmaGenerator generator;
  for (const char* format : {"bits=2,eqscale=0,act=bf16,zero=int", "bits=2,eqscale=1,act=fp16,zero=float",
                             "bits=3,eqscale=0,act=fp16,zero=none", "bits=3,eqscale=1,act=bf16,zero=int",
                             "bits=8,eqscale=0,act=bf16,zero=float", "bits=8,eqscale=1,act=fp16,zero=int",
                             "bits=8,eqscale=1,act=bf16,zero=none", "bits=4,eqscale=1,act=bf16,zero=int"}) {
    const OpDesc desc =
        parse_descriptor(std::string("m=256,n=1000,k=4160,group=64,bias=1,device=cuda:0,") + format);
    const std::vector<CudaVariant> variants = generator.candidates(desc);
    ASSERT_EQ(variants.size(), 12u) << format;  // every searched shape fits M=256 on sm_90
    for (auto [arch, major] : {std::pair{"sm_80", 8}, std::pair{"sm_89", 8}, std::pair{"sm_90a", 9}}) {
      std::vector<CudaVariant> valid;  // sm_80/sm_89 have 99 KiB of shared memory a block
      for (const CudaVariant& variant : variants)
        if (generator.is_valid(desc, variant, major)) valid.push_back(variant);
      ASSERT_FALSE(valid.empty()) << format << " " << arch;
      const std::vector<CompiledCandidate> compiled = compile_variants(desc, valid, arch);
      for (std::size_t i = 0; i < valid.size(); ++i)
        EXPECT_TRUE(compiled[i].error.empty() && looks_like_cubin(compiled[i].cubin))
            << variant_name(desc, valid[i], arch) << ": " << compiled[i].error;
    }
  }
}

TEST(CudaCompile, EveryFormatIsServed) {
  GemvGenerator generator;
  for (int bits : {2, 3, 4, 8})
    for (const char* eqscale : {"0", "1"}) {
      OpDesc desc = parse_descriptor(
          fmt::format("m=3,n=100,k=4096,bits={},group=64,zero=int,act=bf16,eqscale={},device=cuda:0", bits, eqscale));
      EXPECT_EQ(generator.candidates(desc).size(), 26u) << to_string(desc);  // as the sweep above
    }
  // From M = 4 on, warps covering 2 or 4 panels too (block_n): 4 and 8 warps at block_n 32
  // and 64, 16 warps at 32, both chunk widths (10), and on few panels a split in two at 8 warps
  // with 512-byte chunks (2). Below 4 rows only on many panels: 4 and 8 warps of 2 panels, both
  // chunk widths (4). At 16 rows of 2-bit weights 16 warps of 1 KB chunks take 353 KB of shared
  // memory, past sm_90's 227 KiB: 9 there.
  auto wide_candidates = [&](const OpDesc& desc) {
    const std::vector<CudaVariant> variants = generator.candidates(desc);
    return std::count_if(variants.begin(), variants.end(), [](const CudaVariant& v) { return v.block_n != 0; });
  };
  for (int bits : {2, 3, 4, 8}) {
    const OpDesc few = parse_descriptor(
        fmt::format("m=8,n=100,k=4096,bits={},group=64,zero=int,act=bf16,device=cuda:0", bits));
    EXPECT_EQ(wide_candidates(few), 10 + 2) << to_string(few);
    const OpDesc many = parse_descriptor(
        fmt::format("m=16,n=28672,k=4096,bits={},group=128,zero=int,act=bf16,device=cuda:0", bits));
    EXPECT_EQ(wide_candidates(many), bits == 2 ? 9 : 10) << to_string(many);
    const OpDesc three = parse_descriptor(
        fmt::format("m=3,n=28672,k=4096,bits={},group=128,zero=int,act=bf16,device=cuda:0", bits));
    EXPECT_EQ(wide_candidates(three), 4) << to_string(three);
    const OpDesc one_on_fewer = parse_descriptor(
        fmt::format("m=1,n=16368,k=4096,bits={},group=128,zero=int,act=bf16,device=cuda:0", bits));  // 1023 panels
    EXPECT_EQ(wide_candidates(one_on_fewer), 0) << to_string(one_on_fewer);
  }
  // fp32 activations: the CUDA-core family only.
  EXPECT_EQ(generator.candidates(parse_descriptor("m=1,n=100,k=96,bits=3,group=32,act=fp32,device=cuda:0")).size(), 9u);
}

// gemv_mma's no-tune warps and chunk (GemvGenerator::heuristic, as measured on the H100): half
// the warps a panel on more than heuristic_few_panels panels, 1 KB chunks at 5..8 rows only,
// 8 warps with 512-byte chunks above 8 rows; from 4 rows on at least heuristic_many_panels
// panels, 4 warps of 4 panels each (below 4 rows there: warps of 2 panels, named further down).
TEST(CudaCompile, GemvHeuristicWarpsByPanelsAndChunksByRows) {
  GemvGenerator generator;
  auto chosen = [&](const std::string& shape) {
    const OpDesc desc = parse_descriptor(shape + ",bits=4,group=128,zero=int,act=bf16,device=cuda:0");
    return variant_name(desc, generator.heuristic(desc), "sm_90a");
  };
  EXPECT_EQ(chosen("m=1,n=4096,k=4096"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2");     // 256 panels
  EXPECT_EQ(chosen("m=1,n=4096,k=14336"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2");    // long K too
  EXPECT_EQ(chosen("m=4,n=4112,k=4096"), "cuda_sm90a_gemvmma_w4g128_m4_w8u2");      // 257 panels
  EXPECT_EQ(chosen("m=1,n=6144,k=4096"), "cuda_sm90a_gemvmma_w4g128_m1_w8u2");
  EXPECT_EQ(chosen("m=3,n=16368,k=4096"), "cuda_sm90a_gemvmma_w4g128_m3_w8u2");  // 1023 panels
  EXPECT_EQ(chosen("m=4,n=28672,k=4096"), "cuda_sm90a_gemvmma_w4g128_m4_w4u2_n64");      // 1792 panels
  EXPECT_EQ(chosen("m=4,n=16384,k=4096"), "cuda_sm90a_gemvmma_w4g128_m4_w4u2_n64");      // 1024
  EXPECT_EQ(chosen("m=16,n=16368,k=4096"), "cuda_sm90a_gemvmma_w4g128_m16_w8u2");        // 1023
  EXPECT_EQ(chosen("m=5,n=4096,k=4096"), "cuda_sm90a_gemvmma_w4g128_m5_w8u2_k128");
  EXPECT_EQ(chosen("m=8,n=4096,k=14336"), "cuda_sm90a_gemvmma_w4g128_m8_w8u2_k128");
  EXPECT_EQ(chosen("m=8,n=6144,k=4096"), "cuda_sm90a_gemvmma_w4g128_m8_w4u2_k128");
  EXPECT_EQ(chosen("m=8,n=28672,k=4096"), "cuda_sm90a_gemvmma_w4g128_m8_w4u2_n64");
  EXPECT_EQ(chosen("m=9,n=28672,k=4096"), "cuda_sm90a_gemvmma_w4g128_m9_w4u2_n64");
  EXPECT_EQ(chosen("m=16,n=28672,k=4096"), "cuda_sm90a_gemvmma_w4g128_m16_w4u2_n64");
  EXPECT_EQ(chosen("m=16,n=6144,k=4096"), "cuda_sm90a_gemvmma_w4g128_m16_w8u2");
  EXPECT_EQ(chosen("m=16,n=4096,k=14336"), "cuda_sm90a_gemvmma_w4g128_m16_w8u2");  // arch unknown
  // Above 8 rows on many panels at 2 and 8 bits in bf16: 8 warps of 2 panels (64-k chunks at 8
  // bits); fp16 and 8 rows keep the rules above, and 3 bits take 4 warps of 2 panels from 4 rows.
  auto chosen_format = [&](const std::string& shape) {
    const OpDesc desc = parse_descriptor(shape + ",group=128,zero=int,device=cuda:0");
    return variant_name(desc, generator.heuristic(desc), "sm_90a");
  };
  EXPECT_EQ(chosen_format("m=16,n=28672,k=4096,bits=2,act=bf16"), "cuda_sm90a_gemvmma_w2g128_m16_w8u2_n32");
  EXPECT_EQ(chosen_format("m=9,n=28672,k=4096,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m9_w8u2_n32_k64");
  EXPECT_EQ(chosen_format("m=16,n=16384,k=4096,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m16_w8u2_n32_k64");
  EXPECT_EQ(chosen_format("m=16,n=28672,k=4096,bits=2,act=fp16"), "cuda_sm90a_gemvmma_w2g128_m16_w4u2_n64");
  EXPECT_EQ(chosen_format("m=16,n=28672,k=4096,bits=3,act=bf16"), "cuda_sm90a_gemvmma_w3g128_m16_w4u2_n32");
  EXPECT_EQ(chosen_format("m=4,n=28672,k=4096,bits=3,act=fp16"), "cuda_sm90a_gemvmma_w3g128_m4_w4u2_n32");
  EXPECT_EQ(chosen_format("m=3,n=28672,k=4096,bits=3,act=bf16"), "cuda_sm90a_gemvmma_w3g128_m3_w8u2_n32_k128");
  EXPECT_EQ(chosen_format("m=3,n=6144,k=4096,bits=3,act=bf16"), "cuda_sm90a_gemvmma_w3g128_m3_w8u2_k128");
  // At 1..3 rows on many panels: warps of 2 panels (4 warps at 1..2 rows of 2 or 4 bits, else 8;
  // wide chunks at 3 bits), 16 warps of 4 wide stages at 8 bits; not on fewer panels.
  EXPECT_EQ(chosen_format("m=1,n=28672,k=4096,bits=4,act=bf16"), "cuda_sm90a_gemvmma_w4g128_m1_w4u2_n32");
  EXPECT_EQ(chosen_format("m=2,n=16384,k=4096,bits=4,act=fp16"), "cuda_sm90a_gemvmma_w4g128_m2_w4u2_n32");
  EXPECT_EQ(chosen_format("m=1,n=28672,k=4096,bits=2,act=bf16"), "cuda_sm90a_gemvmma_w2g128_m1_w4u2_n32");
  EXPECT_EQ(chosen_format("m=3,n=28672,k=4096,bits=4,act=bf16"), "cuda_sm90a_gemvmma_w4g128_m3_w8u2_n32");
  EXPECT_EQ(chosen_format("m=3,n=28672,k=4096,bits=2,act=bf16"), "cuda_sm90a_gemvmma_w2g128_m3_w8u2_n32");
  EXPECT_EQ(chosen_format("m=2,n=28672,k=4096,bits=3,act=bf16"), "cuda_sm90a_gemvmma_w3g128_m2_w8u2_n32_k128");
  EXPECT_EQ(chosen_format("m=2,n=28672,k=4096,bits=8,act=fp16"), "cuda_sm90a_gemvmma_w8g128_m2_w16u4_k64");
  EXPECT_EQ(chosen_format("m=1,n=16368,k=4096,bits=4,act=bf16"), "cuda_sm90a_gemvmma_w4g128_m1_w8u2");
  // 4 stages at 8 bits and M = 1 on 257..1023 panels (16 warps of 4 wide stages from 1024, above).
  EXPECT_EQ(chosen_format("m=1,n=28672,k=4096,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m1_w16u4_k64");
  EXPECT_EQ(chosen_format("m=1,n=4096,k=14336,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m1_w16u2");
  EXPECT_EQ(chosen_format("m=2,n=6144,k=4096,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m2_w8u2");
  EXPECT_EQ(chosen_format("m=8,n=28672,k=4096,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m8_w4u2_n64");
  // Wide chunks at 3 bits at every row count and at 8 bits above 8 rows, where a warp takes one
  // panel; 8 warps of 2 panels at 2 bits above 8 rows below 1024 panels (where sm_90's 16 are not taken).
  EXPECT_EQ(chosen_format("m=16,n=6144,k=4096,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m16_w8u2_k64");
  EXPECT_EQ(chosen_format("m=1,n=6144,k=4096,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m1_w8u4");
  EXPECT_EQ(chosen_format("m=4,n=4096,k=14336,bits=8,act=bf16"), "cuda_sm90a_gemvmma_w8g128_m4_w16u2");
  EXPECT_EQ(chosen_format("m=1,n=28672,k=4096,bits=3,act=fp16"), "cuda_sm90a_gemvmma_w3g128_m1_w8u2_n32_k128");
  EXPECT_EQ(chosen_format("m=1,n=16368,k=4096,bits=3,act=fp16"), "cuda_sm90a_gemvmma_w3g128_m1_w8u2_k128");
  EXPECT_EQ(chosen_format("m=4,n=4096,k=14336,bits=3,act=bf16"), "cuda_sm90a_gemvmma_w3g128_m4_w16u2_k128");
  EXPECT_EQ(chosen_format("m=16,n=6144,k=4096,bits=3,act=bf16"), "cuda_sm90a_gemvmma_w3g128_m16_w8u2_k128");
  EXPECT_EQ(chosen_format("m=16,n=6144,k=4096,bits=2,act=bf16"), "cuda_sm90a_gemvmma_w2g128_m16_w8u2_n32");
  // (On 256 panels sm_90 takes 16 warps of 2 panels first; an unknown arch the 8 warps of 2.)
  EXPECT_EQ(chosen_format("m=16,n=4096,k=4096,bits=2,act=bf16"), "cuda_sm90a_gemvmma_w2g128_m16_w8u2_n32");
  const OpDesc few = parse_descriptor("m=16,n=4096,k=4096,bits=2,group=128,zero=int,act=bf16,device=cuda:0");
  EXPECT_EQ(variant_name(few, generator.heuristic(few, 9), "sm_90a"), "cuda_sm90a_gemvmma_w2g128_m16_w16u2_n32");
  // Every width's choice is a variant the generator serves, at each row count and panel count,
  // on the arch it was asked for, and with the arch unknown on every arch.
  for (int bits : {2, 3, 4, 8})
    for (int m : {1, 4, 5, 8, 9, 16})
      for (const char* size : {"n=4096,k=4096", "n=28672,k=4096", "n=100,k=96", "n=16400,k=96"})
        for (int arch_major : {8, 9})
          for (const char* act : {"fp16", "bf16"}) {
            const OpDesc desc = parse_descriptor(
                fmt::format("m={},{},bits={},group=32,zero=int,act={},device=cuda:0", m, size, bits, act));
            for (int asked : {0, arch_major}) {
              const Validity validity = generator.is_valid(desc, generator.heuristic(desc, asked), arch_major);
              EXPECT_TRUE(validity.ok) << to_string(desc) << " asked sm_" << asked << "x, on sm_" << arch_major
                                       << "x: " << validity.reason;
            }
          }
}

// Above 8 rows on few panels, sm_90's shared memory holds 16 warps of 2 panels (block_n 32),
// which won at M=16 on 256 panels; sm_8x's does not (114 KB at 4 bits), so it keeps 8 warps of
// one panel, as does an unknown arch. On many panels the arch changes nothing.
TEST(CudaCompile, GemvHeuristicTakesPanelPairsWhereTheArchHoldsThem) {
  GemvGenerator generator;
  auto chosen = [&](const std::string& shape, int arch_major) {
    const OpDesc desc = parse_descriptor(shape + ",bits=4,group=128,zero=int,act=bf16,device=cuda:0");
    return variant_name(desc, generator.heuristic(desc, arch_major), "sm_90a");
  };
  EXPECT_EQ(chosen("m=16,n=4096,k=14336", 9), "cuda_sm90a_gemvmma_w4g128_m16_w16u2_n32");
  EXPECT_EQ(chosen("m=9,n=4096,k=4096", 9), "cuda_sm90a_gemvmma_w4g128_m9_w16u2_n32");
  EXPECT_EQ(chosen("m=16,n=4096,k=14336", 8), "cuda_sm90a_gemvmma_w4g128_m16_w8u2");
  EXPECT_EQ(chosen("m=16,n=4096,k=14336", 0), "cuda_sm90a_gemvmma_w4g128_m16_w8u2");
  EXPECT_EQ(chosen("m=8,n=4096,k=14336", 9), "cuda_sm90a_gemvmma_w4g128_m8_w8u2_k128");  // 8 rows: as before
  EXPECT_EQ(chosen("m=16,n=6144,k=4096", 9), "cuda_sm90a_gemvmma_w4g128_m16_w8u2");      // 384 panels
  EXPECT_EQ(chosen("m=16,n=28672,k=4096", 9), "cuda_sm90a_gemvmma_w4g128_m16_w4u2_n64");
  // The registry asks with the device's arch (wgmma is not preferred at 16 rows on N = 4096).
  const OpDesc desc = parse_descriptor("m=16,n=4096,k=14336,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  EXPECT_EQ(lowbit::cuda::heuristic(desc, 9, 132), generator.heuristic(desc, 9));
  EXPECT_EQ(lowbit::cuda::heuristic(desc, 8, 132), generator.heuristic(desc, 8));
}

// The fast search (registry.h, tuning_candidates): every candidate of the heuristic's generator,
// its heuristic variant, and one valid sentinel (its heuristic) of each other generator.
// (No compile: enumeration only.)
TEST(CudaCompile, TuningCandidatesArePreferredFamilyAndOneSentinelEach) {
  struct Case {
    const char* text;
    int arch_major;
    std::vector<CudaFamily> preferred;  // the generator of the heuristic (gemv owns gemv and gemv_mma)
  };
  const std::vector<Case> cases{
      {"m=256,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0", 9, {CudaFamily::wgmma}},
      {"m=1,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0", 9, {CudaFamily::gemv, CudaFamily::gemv_mma}},
      {"m=100,n=1000,k=4160,bits=3,group=64,zero=float,act=fp16,eqscale=1,device=cuda:0", 9, {CudaFamily::mma}},
      {"m=256,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0", 8, {CudaFamily::mma}}};
  for (const Case& c : cases) {
    const OpDesc desc = parse_descriptor(c.text);
    const std::vector<CudaVariant> all = candidates(desc, c.arch_major, 132);
    const std::vector<CudaVariant> fast = tuning_candidates(desc, c.arch_major, 132, false);
    EXPECT_EQ(tuning_candidates(desc, c.arch_major, 132, true), all) << c.text;
    const CudaVariant chosen = heuristic(desc, c.arch_major, 132);
    EXPECT_NE(std::find(fast.begin(), fast.end(), chosen), fast.end()) << c.text << ": the no-tune choice is timed";
    const auto is_preferred = [&](const CudaVariant& variant) {
      return std::find(c.preferred.begin(), c.preferred.end(), variant.family) != c.preferred.end();
    };
    EXPECT_TRUE(is_preferred(chosen)) << c.text << ": " << to_string(chosen.family);
    std::map<CudaFamily, int> others;
    for (const CudaVariant& variant : fast) {
      EXPECT_TRUE(is_valid(desc, variant, c.arch_major)) << c.text << ": " << variant_name(desc, variant, "sm_90a");
      if (is_preferred(variant)) {
        EXPECT_TRUE(variant == chosen || std::find(all.begin(), all.end(), variant) != all.end())
            << c.text << ": " << variant_name(desc, variant, "sm_90a") << " is no candidate";
      } else {
        ++others[variant.family];
      }
    }
    for (const CudaVariant& variant : all) {
      if (!is_preferred(variant) || !WgmmaGenerator(132).in_default_search(desc, variant)) continue;
      EXPECT_NE(std::find(fast.begin(), fast.end(), variant), fast.end())
          << c.text << ": preferred candidate " << variant_name(desc, variant, "sm_90a") << " missing";
    }
    for (const auto& [family, count] : others) EXPECT_EQ(count, 1) << c.text << ": " << to_string(family);
    EXPECT_FALSE(others.empty()) << c.text << ": no sentinel of another family";
    EXPECT_LT(fast.size(), all.size()) << c.text;
  }
}

// From 128 rows the default search leaves out the wgmma grids that never came near the winner
// (WgmmaGenerator::in_default_search): split-K by 2 through a second kernel, by 8, cluster splits
// of 4 or 8 blocks, tiles under 64 rows (and of 64 rows from 256 rows on), and where the 128-column
// tiles of a variant's rows fill a wave, its 64-column tall tiles and its splits;
// --exhaustive keeps them, and below 128 rows nothing is left out.
TEST(CudaCompile, DefaultSearchLeavesOutTheWgmmaGridsThatNeverWonFrom128Rows) {
  const auto names = [](const OpDesc& desc, const std::vector<CudaVariant>& variants) {
    std::vector<std::string> listed;
    for (const CudaVariant& variant : variants) listed.push_back(variant_name(desc, variant, "sm_90a"));
    return listed;
  };
  for (const char* text : {"m=128,n=4096,k=4096", "m=256,n=6144,k=4096", "m=1024,n=4096,k=14336"}) {
    const OpDesc desc = parse_descriptor(std::string(text) + ",bits=4,group=128,zero=int,act=bf16,device=cuda:0");
    const std::vector<CudaVariant> fast = tuning_candidates(desc, 9, 132, false);
    const std::vector<CudaVariant> all = tuning_candidates(desc, 9, 132, true);
    int left_out = 0;
    for (const CudaVariant& variant : all) {
      if (variant.family != CudaFamily::wgmma) continue;
      const bool wide = split_never_searched_from_128_rows(variant);
      const bool short_tile = variant.block_m < 64 || (variant.block_m == 64 && desc.m >= 256);
      // 4096 columns at M = 1024: 256 tiles of 128 x 128 fill the 132 SMs, 128 of 128 x 256 do not.
      const bool filled = desc.m == 1024 && variant.block_m == 128;
      const bool crowded = filled && (variant.split_k > 1 || variant.block_n == 64);
      const bool kept = !wide && !short_tile && !crowded;
      EXPECT_EQ(WgmmaGenerator(132).in_default_search(desc, variant), kept)
          << text << ": " << variant_name(desc, variant, "sm_90a");
      const bool timed = std::find(fast.begin(), fast.end(), variant) != fast.end();
      if (!kept) {
        ++left_out;
        EXPECT_EQ(timed, variant == heuristic(desc, 9, 132)) << text << ": " << variant_name(desc, variant, "sm_90a");
      } else {
        EXPECT_TRUE(timed) << text << ": " << variant_name(desc, variant, "sm_90a") << " missing";
      }
    }
    EXPECT_GT(left_out, 0) << text << ": " << fmt::format("{}", fmt::join(names(desc, all), " "));
    // Every kind it keeps is there: stream-K, the 2-block cluster split, split-K by 4, 128- and 256-row tiles.
    const auto has = [&](auto&& predicate) { return std::any_of(fast.begin(), fast.end(), predicate); };
    EXPECT_TRUE(has([](const CudaVariant& v) { return v.stream_k != 0; })) << text;
    EXPECT_TRUE(has([](const CudaVariant& v) { return v.cluster_split != 0 && v.split_k == 2; })) << text;
    EXPECT_TRUE(has([](const CudaVariant& v) { return v.block_m >= 128; })) << text;
  }
  const OpDesc below = parse_descriptor("m=100,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  for (const CudaVariant& variant : tuning_candidates(below, 9, 132, true))
    EXPECT_TRUE(WgmmaGenerator(132).in_default_search(below, variant)) << variant_name(below, variant, "sm_90a");
}

// Where the unsplit 128-column tiles of a variant's rows fill a wave of the device's SMs, the
// default search leaves out its 64-column tiles of 128 rows or more and its splits (none came
// within 1.12x of a winner there, docs/benchmarks.md session 26), at every width and format, and
// keeps them where the wave is not full, on a device with more SMs too; the copy warpgroup's
// 128-column stream-K tiles, the kind that wins there, all stay.
TEST(CudaCompile, DefaultSearchLeavesOutNarrowTilesAndSplitsWhereWideTilesFillAWave) {
  for (const char* format : {"bits=4,group=128,zero=int,act=bf16", "bits=2,group=128,zero=int,act=bf16",
                             "bits=3,group=128,zero=int,act=bf16", "bits=8,group=128,zero=int,act=bf16",
                             "bits=4,group=128,zero=int,act=fp16", "bits=4,group=32,zero=float,act=bf16"}) {
    const OpDesc desc = parse_descriptor(fmt::format("m=1024,n=6144,k=4096,{},device=cuda:0", format));
    const std::vector<CudaVariant> all = tuning_candidates(desc, 9, 132, true);
    const std::vector<CudaVariant> fast = tuning_candidates(desc, 9, 132, false);
    int narrow = 0;
    int split = 0;
    int wide_stream_k = 0;
    for (const CudaVariant& variant : all) {
      if (variant.family != CudaFamily::wgmma || variant.block_m < 128 || split_never_searched_from_128_rows(variant))
        continue;
      const std::string name = variant_name(desc, variant, "sm_90a");
      const bool timed = std::find(fast.begin(), fast.end(), variant) != fast.end();
      // 6144 columns: 48 tiles of 128 columns a row tile; 192 of 256 rows, 384 of 128: both fill 132 SMs.
      if (variant.block_n == 64 || variant.split_k > 1) {
        narrow += variant.block_n == 64 ? 1 : 0;
        split += variant.split_k > 1 ? 1 : 0;
        EXPECT_FALSE(WgmmaGenerator(132).in_default_search(desc, variant)) << format << ": " << name;
        EXPECT_EQ(timed, variant == heuristic(desc, 9, 132)) << format << ": " << name;
        // 200 SMs: the 192 tiles of 256 rows no longer fill a wave; the 384 of 128 rows still do.
        EXPECT_EQ(WgmmaGenerator(200).in_default_search(desc, variant), variant.block_m == 256) << format << ": " << name;
      } else if (variant.producer == 1 && variant.stream_k != 0) {
        ++wide_stream_k;
        EXPECT_TRUE(timed) << format << ": " << name << " missing";
      }
    }
    EXPECT_GT(narrow, 0) << format;
    EXPECT_GT(split, 0) << format;
    EXPECT_GT(wide_stream_k, 0) << format;
  }
  // 4096 columns at M = 1024: 128 tiles of 256 rows, under a wave of 132: their kinds all stay.
  const OpDesc short_of_a_wave =
      parse_descriptor("m=1024,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  int kept = 0;
  for (const CudaVariant& variant : tuning_candidates(short_of_a_wave, 9, 132, true)) {
    if (variant.family != CudaFamily::wgmma || variant.block_m != 256 || split_never_searched_from_128_rows(variant))
      continue;
    EXPECT_TRUE(WgmmaGenerator(132).in_default_search(short_of_a_wave, variant))
        << variant_name(short_of_a_wave, variant, "sm_90a");
    kept += variant.block_n == 64 || variant.split_k > 1 ? 1 : 0;
  }
  EXPECT_GT(kept, 0);
}

// At 32..64 rows the default search leaves out the cluster splits of 8 blocks and the 16-row tiles
// with scaled weights where their group-sum twin is valid (WgmmaGenerator::in_default_search):
// the twins, the other tiles and the 4-block cluster splits stay; below 32 rows, at 8-bit bf16
// (no twin) and with 64-k stages inside groups of 32 (no twin) the 16-row tiles stay too.
TEST(CudaCompile, DefaultSearchLeavesOutTheShortRowKindsThatNeverWon) {
  auto check = [](const char* text, bool twins) {
    const OpDesc desc = parse_descriptor(std::string(text) + ",device=cuda:0");
    const std::vector<CudaVariant> fast = tuning_candidates(desc, 9, 132, false);
    const std::vector<CudaVariant> all = tuning_candidates(desc, 9, 132, true);
    int left_out = 0;
    for (const CudaVariant& variant : all) {
      if (variant.family != CudaFamily::wgmma) continue;
      const bool eight = variant.cluster_split != 0 && variant.split_k == 8;
      const bool scaled_short = variant.block_m == 16 && variant.group_sums == 0 && twins;
      const bool kept = !(desc.m >= 32 && desc.m <= 64 && (eight || scaled_short));
      EXPECT_EQ(WgmmaGenerator(132).in_default_search(desc, variant), kept) << text << ": " << variant_name(desc, variant, "sm_90a");
      const bool timed = std::find(fast.begin(), fast.end(), variant) != fast.end();
      EXPECT_EQ(timed, kept || variant == heuristic(desc, 9, 132)) << text << ": " << variant_name(desc, variant, "sm_90a");
      left_out += kept ? 0 : 1;
    }
    const auto has = [&](auto&& predicate) { return std::any_of(fast.begin(), fast.end(), predicate); };
    EXPECT_TRUE(has([](const CudaVariant& v) { return v.family == CudaFamily::wgmma && v.block_m == 16; })) << text;
    return left_out;
  };
  EXPECT_GT(check("m=32,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16", true), 10);
  EXPECT_GT(check("m=64,n=28672,k=4096,bits=4,group=128,zero=none,act=fp16", true), 0);
  EXPECT_GT(check("m=48,n=4096,k=14336,bits=8,group=128,zero=int,act=bf16", false), 0);  // its clusters of 8 only
  EXPECT_EQ(check("m=31,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16", true), 0);
  EXPECT_EQ(check("m=65,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16", true), 0);
}

TEST(CudaCompile, SourceIsDeterministicAndNamesItsInstance) {
  GemvGenerator generator;
  OpDesc desc = parse_descriptor("m=1,n=4096,k=4096,bits=4,group=128,act=bf16,device=cuda:0");
  CudaVariant variant = generator.heuristic(desc);
  EXPECT_EQ(generator.emit(desc, variant), generator.emit(desc, variant));
  CudaVariant other = variant;
  other.unroll = variant.unroll == 1 ? 2 : 1;
  EXPECT_NE(generator.emit(desc, variant), generator.emit(desc, other));
  EXPECT_NE(generator.emit(desc, variant).find(to_string(desc)), std::string::npos);
  EXPECT_EQ(variant_from_json(to_json(variant)), variant);
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2");
  // gemv_mma's ring width and split-K: in the source, the name and the JSON.
  CudaVariant split = variant;
  split.block_k = 128;
  split.split_k = 4;
  const std::string source = generator.emit(desc, split);
  EXPECT_NE(source.find("SPLIT_K = 4;"), std::string::npos);
  EXPECT_NE(source.find("CHUNK_TILES = 8;"), std::string::npos);
  EXPECT_NE(source.find(GemvGenerator::split_sum_entry_point), std::string::npos);
  EXPECT_EQ(generator.emit(desc, variant).find(GemvGenerator::split_sum_entry_point), std::string::npos);
  EXPECT_EQ(variant_from_json(to_json(split)), split);
  EXPECT_EQ(variant_name(desc, split, "sm_90a"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2_k128_split4");
  EXPECT_EQ(GemvGenerator::workspace_bytes(desc, split), 4u * 1 * 4096 * 4);
  EXPECT_EQ(GemvGenerator::workspace_bytes(desc, variant), 0u);
  // Every field of the launch, so a field added to LaunchGeometry cannot shift the others (a
  // positional initializer once put the thread count into grid_z).
  const LaunchGeometry geometry = generator.launch_geometry(desc, split);
  EXPECT_EQ(geometry.grid_x, static_cast<unsigned>(native_geometry(desc).panels));
  EXPECT_EQ(geometry.grid_y, 4u);
  EXPECT_EQ(geometry.grid_z, 1u);
  EXPECT_EQ(geometry.threads, 16u * 32);
  EXPECT_EQ(geometry.shared_bytes, static_cast<unsigned>(GemvGenerator::shared_bytes(desc, split)));
  const LaunchGeometry sum = GemvGenerator::split_sum_geometry(desc);
  EXPECT_GE(sum.grid_x * sum.threads, 4096u);  // one thread per output
  EXPECT_EQ(sum.grid_y, 1u);
  EXPECT_EQ(sum.grid_z, 1u);
  EXPECT_EQ(sum.threads, 256u);
  EXPECT_EQ(sum.shared_bytes, 0u);
  // A variant stored before these fields reads as unsplit with the format's chunk, one panel a block.
  nlohmann::json old = to_json(variant);
  old.erase("split_k");
  old.erase("panels");
  EXPECT_EQ(variant_from_json(old), variant);
  // A panel walk: in the source, the name, the JSON and the grid (ceil(256 panels / 8)).
  CudaVariant walk = variant;
  walk.panels = 8;
  EXPECT_NE(generator.emit(desc, walk).find("PANELS_PER_BLOCK = 8;"), std::string::npos);
  EXPECT_NE(generator.emit(desc, variant).find("PANELS_PER_BLOCK = 1;"), std::string::npos);
  EXPECT_EQ(variant_name(desc, walk, "sm_90a"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2_p8");
  EXPECT_EQ(variant_from_json(to_json(walk)), walk);
  EXPECT_EQ(generator.launch_geometry(desc, walk).grid_x, 32u);
  const OpDesc odd = parse_descriptor("m=1,n=1000,k=4096,bits=4,group=128,act=bf16,device=cuda:0");  // 63 panels
  EXPECT_EQ(generator.launch_geometry(odd, walk).grid_x, 8u);
  // The L2 prefetch: in the source, the name and the JSON; a variant stored before reads as off.
  CudaVariant prefetched = variant;
  prefetched.prefetch = 1;
  EXPECT_NE(generator.emit(desc, prefetched).find("PREFETCH = true;"), std::string::npos);
  EXPECT_NE(generator.emit(desc, variant).find("PREFETCH = false;"), std::string::npos);
  EXPECT_EQ(variant_name(desc, prefetched, "sm_90a"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2_pf");
  EXPECT_EQ(variant_from_json(to_json(prefetched)), prefetched);
  nlohmann::json before_prefetch = to_json(variant);
  before_prefetch.erase("prefetch");
  EXPECT_EQ(variant_from_json(before_prefetch), variant);
  EXPECT_EQ(generator.launch_geometry(desc, prefetched).grid_x, generator.launch_geometry(desc, variant).grid_x);
  // Several panels per warp (block_n): in the source, the name, the JSON (older JSON has 0:
  // one panel) and the grid, a block per set of 4 panels (63 panels: 16 sets, the last one
  // panel short; walked 8 sets a block: 2 blocks).
  CudaVariant wide = variant;
  wide.block_n = 64;
  EXPECT_NE(generator.emit(desc, wide).find("WARP_PANELS = 4;"), std::string::npos);
  EXPECT_NE(generator.emit(desc, variant).find("WARP_PANELS = 1;"), std::string::npos);
  EXPECT_EQ(variant_name(desc, wide, "sm_90a"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2_n64");
  EXPECT_EQ(variant_from_json(to_json(wide)), wide);
  EXPECT_EQ(generator.launch_geometry(desc, wide).grid_x, 64u);
  EXPECT_EQ(generator.launch_geometry(odd, wide).grid_x, 16u);
  wide.panels = 8;
  EXPECT_EQ(variant_name(desc, wide, "sm_90a"), "cuda_sm90a_gemvmma_w4g128_m1_w16u2_n64_p8");
  EXPECT_EQ(generator.launch_geometry(odd, wide).grid_x, 2u);
  // The stage holds every panel's weights: 4 x 512 bytes of int4 a stage in place of 512.
  EXPECT_EQ(GemvGenerator::shared_bytes(desc, wide) - GemvGenerator::shared_bytes(desc, variant),
            16 * 2 * 3 * 512);
}

TEST(CudaCompile, CompileErrorsCarryTheNvrtcLog) {
  SKIP_WITHOUT_NVRTC();
  try {
    compile_to_cubin("__global__ void broken() { this is not cuda; }", "broken", "sm_90a");
    FAIL() << "NVRTC accepted broken source";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("broken"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("error"), std::string::npos) << error.what();
  }
}

// A compile that succeeds with warnings prints its log under LOWBIT_CUDA_LOG=1 (ptxas's notes,
// such as wgmma serialization, live only there), and stays silent without it.
TEST(CudaCompile, SuccessfulCompileLogShownOnlyWhenAskedFor) {
  SKIP_WITHOUT_NVRTC();
  const char* source = "extern \"C\" __global__ void warned(int* out) { int never_used; out[0] = 1; }";
  ::unsetenv("LOWBIT_QUIET");
  ::unsetenv("LOWBIT_CUDA_LOG");
  ::testing::internal::CaptureStderr();
  EXPECT_TRUE(looks_like_cubin(compile_to_cubin(source, "warned", "sm_90a")));
  const std::string silent = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(silent.find("NVRTC log"), std::string::npos) << silent;
  ::setenv("LOWBIT_CUDA_LOG", "1", 1);
  ::testing::internal::CaptureStderr();
  EXPECT_TRUE(looks_like_cubin(compile_to_cubin(source, "warned", "sm_90a")));
  const std::string shown = ::testing::internal::GetCapturedStderr();
  ::unsetenv("LOWBIT_CUDA_LOG");
  EXPECT_NE(shown.find("NVRTC log of warned for sm_90a"), std::string::npos) << shown;
  EXPECT_NE(shown.find("never_used"), std::string::npos) << "the warning itself is missing: " << shown;
}

// gemv_mma keeps x resident (each warp's slice copied once) where the block's slices fit
// GemvGenerator::max_resident_x_bytes and bulk copies are off; the shared memory it asks for
// (checked against the template by the emitted static_assert) then has no x in the ring.
TEST(CudaCompile, ResidentXRuleAndItsSharedMemory) {
  SKIP_WITHOUT_NVRTC();
  GemvGenerator generator;
  const OpDesc m1 = parse_descriptor("m=1,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  const OpDesc m16 = parse_descriptor("m=16,n=28672,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  const CudaVariant w8u2{CudaFamily::gemv_mma, 8, 2};
  // M=1, 8 warps: 32 runs of 128 k, 4 a warp, 1024 bytes + 32 of padding a row.
  EXPECT_TRUE(GemvGenerator::x_resident(m1, w8u2));
  EXPECT_EQ(GemvGenerator::shared_bytes(m1, w8u2), (8 * (2 * 128 + 1056 / 4) + 32) * 4);
  // M=16: 16 rows of 1056 bytes for each of 8 warps is past the budget: x stays in the ring.
  EXPECT_FALSE(GemvGenerator::x_resident(m16, w8u2));
  EXPECT_EQ(GemvGenerator::shared_bytes(m16, w8u2), (8 * 2 * (128 + 16 * 160 / 4) + 32) * 4);
  CudaVariant bulk = w8u2;
  bulk.bulk_copy = 1;
  EXPECT_FALSE(GemvGenerator::x_resident(m1, bulk));
  EXPECT_FALSE(GemvGenerator::x_resident(m1, CudaVariant{CudaFamily::gemv, 8, 2}));
  for (const OpDesc& desc : {m1, m16}) {
    ASSERT_TRUE(generator.is_valid(desc, w8u2, 9));
    EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(desc, w8u2), "resident", "sm_90a")));
  }
}

TEST(CudaCompile, GeneratorRefusesWhatItDoesNotServe) {
  GemvGenerator generator;
  CudaVariant variant;
  for (const char* text : {"m=0,n=64,k=128,device=cuda:0", "m=9,n=64,k=128,device=cuda:0",
                           "m=1,n=64,k=128,compute=int8,device=cuda:0", "m=1,n=64,k=134217728,group=-1,device=cuda:0",
                           "m=1,n=64,k=67108864,bits=8,group=-1,device=cuda:0", "m=1,n=64,k=128,device=cpu"}) {
    Validity validity = generator.is_valid(parse_descriptor(text), variant, 9);
    EXPECT_FALSE(validity.ok) << text;
    EXPECT_FALSE(validity.reason.empty()) << text;
  }
  EXPECT_FALSE(generator.is_valid(parse_descriptor("m=1,n=64,k=128,device=cuda:0"), variant, 7).ok);
  CudaVariant mma{CudaFamily::gemv_mma, 4, 2};
  EXPECT_FALSE(generator.is_valid(parse_descriptor("m=1,n=64,k=128,act=fp32,device=cuda:0"), mma, 9).ok);
  // The tensor-core family serves M up to 32, the CUDA-core family up to 8.
  EXPECT_TRUE(generator.is_valid(parse_descriptor("m=32,n=64,k=128,device=cuda:0"), mma, 9).ok);
  EXPECT_FALSE(generator.is_valid(parse_descriptor("m=33,n=64,k=128,device=cuda:0"), mma, 9).ok);
  EXPECT_FALSE(generator.is_valid(parse_descriptor("m=9,n=64,k=128,device=cuda:0"), variant, 9).ok);
  // 16 warps only for the tensor-core family; a ring above the arch's shared memory is refused.
  EXPECT_FALSE(generator.is_valid(parse_descriptor("m=1,n=64,k=128,device=cuda:0"), CudaVariant{CudaFamily::gemv, 16, 2}, 9).ok);
  const Validity too_big = generator.is_valid(parse_descriptor("m=16,n=64,k=128,bits=2,device=cuda:0"),
                                              CudaVariant{CudaFamily::gemv_mma, 16, 8}, 9);
  EXPECT_FALSE(too_big.ok);
  EXPECT_NE(too_big.reason.find("shared memory"), std::string::npos) << too_big.reason;
  // block_k and split_k: gemv_mma only, its two widths, splits 1..8 no more than fold runs.
  const OpDesc small = parse_descriptor("m=1,n=64,k=512,group=128,device=cuda:0");  // 4 fold runs
  CudaVariant fma{CudaFamily::gemv, 4, 2};
  fma.split_k = 2;
  EXPECT_FALSE(generator.is_valid(small, fma, 9).ok);
  for (auto [block_k, split, ok] : {std::tuple{64, 4, true}, std::tuple{128, 2, true}, std::tuple{96, 1, false},
                                   std::tuple{256, 1, false}, std::tuple{0, 8, false}, std::tuple{0, 3, false}}) {
    CudaVariant candidate = mma;
    candidate.block_k = block_k;
    candidate.split_k = split;
    const Validity validity = generator.is_valid(small, candidate, 9);
    EXPECT_EQ(validity.ok, ok) << block_k << " " << split << ": " << validity.reason;
    if (!ok) {
      EXPECT_FALSE(validity.reason.empty());
    }
  }
  // panels: gemv_mma only, 1, 2, 4 or 8, not with split-K or bulk copies.
  CudaVariant walk = mma;
  walk.panels = 4;
  EXPECT_TRUE(generator.is_valid(small, walk, 9).ok);
  fma.split_k = 1;
  fma.panels = 2;
  EXPECT_NE(generator.is_valid(small, fma, 9).reason.find("panels=2"), std::string::npos);
  EXPECT_NE(family_field_misuse(fma).find("panels=2"), std::string::npos);
  for (auto [panels, split, bulk] : {std::tuple{3, 1, 0}, std::tuple{16, 1, 0}, std::tuple{2, 2, 0}, std::tuple{4, 1, 1}}) {
    CudaVariant candidate = mma;
    candidate.panels = panels;
    candidate.split_k = split;
    candidate.bulk_copy = bulk;
    const Validity validity = generator.is_valid(small, candidate, 9);
    EXPECT_FALSE(validity.ok) << panels << " " << split << " " << bulk;
    EXPECT_NE(validity.reason.find("panels="), std::string::npos) << validity.reason;
  }
  // prefetch: gemv_mma only, 0 or 1, not with a panel walk (split-K and bulk copies are fine).
  CudaVariant prefetched = mma;
  prefetched.prefetch = 1;
  EXPECT_TRUE(generator.is_valid(small, prefetched, 9).ok);
  prefetched.split_k = 2;
  prefetched.bulk_copy = 1;
  EXPECT_TRUE(generator.is_valid(small, prefetched, 9).ok) << generator.is_valid(small, prefetched, 9).reason;
  prefetched.split_k = 1;
  prefetched.bulk_copy = 0;
  prefetched.prefetch = 2;
  EXPECT_NE(generator.is_valid(small, prefetched, 9).reason.find("prefetch must be 0 or 1"), std::string::npos);
  prefetched.prefetch = 1;
  prefetched.panels = 2;
  EXPECT_NE(generator.is_valid(small, prefetched, 9).reason.find("prefetch=1 with panels=2"), std::string::npos);
  // block_n (panels per warp): gemv_mma only, 0, 32 or 64; not with bulk copies; 64 not with 16
  // warps above 8 rows (spills).
  const OpDesc sixteen = parse_descriptor("m=16,n=64,k=512,group=128,device=cuda:0");
  for (auto [block_n, warps, bulk, ok] : {std::tuple{32, 16, 0, true}, std::tuple{64, 8, 0, true},
                                          std::tuple{64, 16, 0, false}, std::tuple{16, 4, 0, false},
                                          std::tuple{48, 4, 0, false}, std::tuple{128, 4, 0, false},
                                          std::tuple{32, 4, 1, false}}) {
    CudaVariant candidate{CudaFamily::gemv_mma, warps, 2};
    candidate.block_n = block_n;
    candidate.bulk_copy = bulk;
    const Validity validity = generator.is_valid(sixteen, candidate, 9);
    EXPECT_EQ(validity.ok, ok) << block_n << " " << warps << " " << bulk << ": " << validity.reason;
    if (!ok) {
      EXPECT_NE(validity.reason.find("block_n="), std::string::npos) << validity.reason;
    }
  }
  CudaVariant sixteen_warps{CudaFamily::gemv_mma, 16, 2};
  sixteen_warps.block_n = 64;
  EXPECT_TRUE(generator.is_valid(parse_descriptor("m=8,n=64,k=512,group=128,device=cuda:0"), sixteen_warps, 9).ok);
  // 17..32 rows (four n8 B operands): the accumulators must leave a thread 64 registers, so
  // 4 panels fit up to 8 warps at 4 bits but not the 8-bit bf16 format's third accumulator set,
  // and 16 warps (128 registers) take one panel only; 33 rows are refused.
  for (auto [text, block_n, warps, ok] :
       {std::tuple{"m=32,bits=4", 64, 8, true}, std::tuple{"m=32,bits=4", 64, 16, false},
        std::tuple{"m=32,bits=4", 32, 16, false}, std::tuple{"m=32,bits=4", 0, 16, true},
        std::tuple{"m=25,bits=8,act=bf16", 64, 4, false}, std::tuple{"m=25,bits=8,act=fp16", 64, 4, true},
        std::tuple{"m=25,bits=8,act=bf16", 32, 8, true}}) {
    CudaVariant candidate{CudaFamily::gemv_mma, warps, 2};
    candidate.block_n = block_n;
    const Validity validity =
        generator.is_valid(parse_descriptor(fmt::format("{},n=64,k=512,group=128,device=cuda:0", text)), candidate, 9);
    EXPECT_EQ(validity.ok, ok) << text << " " << block_n << " " << warps << ": " << validity.reason;
    if (!ok) {
      EXPECT_NE(validity.reason.find("fp32 accumulators a thread"), std::string::npos) << validity.reason;
    }
  }
  const Validity too_many_rows = generator.is_valid(parse_descriptor("m=33,n=64,k=512,group=128,device=cuda:0"),
                                                    CudaVariant{CudaFamily::gemv_mma, 4, 2}, 9);
  EXPECT_NE(too_many_rows.reason.find("serves m=1..32"), std::string::npos) << too_many_rows.reason;
  fma.panels = 1;
  fma.block_n = 32;
  EXPECT_NE(generator.is_valid(small, fma, 9).reason.find("block_n=32"), std::string::npos);
  fma.block_n = 0;
  fma.prefetch = 1;
  EXPECT_NE(generator.is_valid(small, fma, 9).reason.find("prefetch=1"), std::string::npos);
  EXPECT_NE(family_field_misuse(fma).find("prefetch=1"), std::string::npos);
}

}  // namespace
}  // namespace lowbit::cuda
