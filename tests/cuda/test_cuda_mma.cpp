// The mma family (codegen/cuda/mma_generator.*, templates/mma_gemm.cuh). Without a GPU: every
// candidate compiles through NVRTC for sm_80, sm_89 and sm_90a, names and JSON round-trip,
// refusals carry reasons. On a GPU: every candidate at M around its tiles and every format
// against the reference, on random inputs at odd shapes, outputs poisoned and guarded.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/cuda_kernel.h"
#include "codegen/cuda/device_buffer.h"
#include "codegen/cuda/mma_generator.h"
#include "codegen/cuda/registry.h"
#include "tests/cuda/compile_cases.h"
#include "tests/cuda/device_check.h"
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
#define SKIP_WITHOUT_GPU() \
  if (!driver().available) GTEST_SKIP() << "no usable CUDA device: " << driver().reason


bool looks_like_cubin(const std::vector<char>& cubin) {
  return cubin.size() > 64 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F';
}

OpDesc descriptor(const std::string& text) { return parse_descriptor(text + ",device=cuda:0"); }

TEST(CudaMmaCompile, EveryCandidateCompilesForEveryArch) {
  SKIP_WITHOUT_NVRTC();
  MmaGenerator generator;
  OpDesc desc = descriptor("m=256,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1");
  const std::vector<CudaVariant> variants = generator.candidates(desc);
  ASSERT_EQ(variants.size(), 12u);  // every searched shape fits M=256
  for (const CudaVariant& variant : variants)
    for (auto [arch, major] : {std::pair{"sm_80", 8}, std::pair{"sm_89", 8}, std::pair{"sm_90a", 9}}) {
      ASSERT_TRUE(generator.is_valid(desc, variant, major)) << variant_name(desc, variant, arch);
      std::vector<char> cubin = compile_to_cubin(generator.emit(desc, variant), variant_name(desc, variant, arch), arch);
      EXPECT_TRUE(looks_like_cubin(cubin)) << variant_name(desc, variant, arch);
    }
}

TEST(CudaMmaCompile, EveryFormatCompilesForHopper) {
  SKIP_WITHOUT_NVRTC();
  MmaGenerator generator;
  for (const char* format : {"act=bf16,out=bf16,zero=int,group=128,k=4096", "act=fp16,out=fp16,zero=none,group=32,k=4096",
                             "act=bf16,out=fp32,zero=float,group=64,k=4096", "act=fp16,out=bf16,zero=int,group=256,k=4096",
                             "act=bf16,out=fp16,zero=float,group=-1,k=4098", "act=fp16,out=fp32,zero=int,group=-1,k=4099"}) {
    OpDesc desc = descriptor(std::string("m=40,n=1000,bits=4,bias=1,") + format);
    CudaVariant variant = generator.heuristic(desc);
    ASSERT_TRUE(generator.is_valid(desc, variant, 9)) << format;
    EXPECT_TRUE(looks_like_cubin(compile_to_cubin(generator.emit(desc, variant), "format", "sm_90a"))) << format;
  }
}

TEST(CudaMmaCompile, NamesJsonAndDeterminism) {
  MmaGenerator generator;
  OpDesc desc = descriptor("m=64,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  CudaVariant variant = generator.candidates(desc).back();
  EXPECT_EQ(variant_name(desc, variant, "sm_90a"), "cuda_sm90a_mma_w4g128_m64_n64m64k128_s3_w2x2x2");
  EXPECT_EQ(generator.emit(desc, variant), generator.emit(desc, variant));
  CudaVariant other = variant;
  other.stages = variant.stages == 3 ? 4 : 3;
  EXPECT_NE(generator.emit(desc, variant), generator.emit(desc, other));
  EXPECT_NE(generator.emit(desc, variant).find(to_string(desc)), std::string::npos);
  EXPECT_EQ(variant_from_json(to_json(variant)), variant);
  // A gemv variant stored before the tile fields existed still reads, as the same variant.
  CudaVariant gemv{CudaFamily::gemv_mma, 8, 4};
  EXPECT_EQ(variant_from_json(nlohmann::json{{"family", "gemv_mma"}, {"warps", 8}, {"unroll", 4}}), gemv);
  EXPECT_EQ(variant_name(desc, gemv, "sm_90a"), "cuda_sm90a_gemvmma_w4g128_m64_w8u4");
  const LaunchGeometry geometry = generator.launch_geometry(desc, variant);
  EXPECT_EQ(geometry.grid_x, 1u);   // 64 rows / 64
  EXPECT_EQ(geometry.grid_y, 64u);  // 4096 columns / 64
  EXPECT_EQ(geometry.threads, 256u);
  EXPECT_EQ(geometry.shared_bytes, static_cast<unsigned>(MmaGenerator::shared_bytes(desc, variant)));
}

// m=0 (any M): the rows come per launch. The same tiles as an exact M of 16 rows (the tuner times
// m=0 at 16), M = 0 in the Config, every candidate compiling for every arch, the launch grid
// sized by the rows of the call.
TEST(CudaMmaCompile, AnyMKernelsCompileForEveryArch) {
  SKIP_WITHOUT_NVRTC();
  MmaGenerator generator;
  const OpDesc any = descriptor("m=0,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1");
  const OpDesc sixteen = descriptor("m=16,n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,bias=1");
  const std::vector<CudaVariant> variants = generator.candidates(any);
  ASSERT_EQ(variants, generator.candidates(sixteen));
  ASSERT_FALSE(variants.empty());
  EXPECT_EQ(generator.heuristic(any), generator.heuristic(sixteen));
  for (const CudaVariant& variant : variants) {
    const std::string source = generator.emit(any, variant);
    EXPECT_NE(source.find("static constexpr int M = 0;"), std::string::npos) << variant_name(any, variant, "sm_90a");
    for (auto [arch, major] : {std::pair{"sm_80", 8}, std::pair{"sm_89", 8}, std::pair{"sm_90a", 9}}) {
      ASSERT_TRUE(generator.is_valid(any, variant, major)) << variant_name(any, variant, arch);
      EXPECT_TRUE(looks_like_cubin(compile_to_cubin(source, variant_name(any, variant, arch), arch)))
          << variant_name(any, variant, arch);
    }
  }
  // The grid of an m=0 kernel at r rows is an exact-M kernel's at r (CudaKernel::run sizes it).
  const CudaVariant& first = variants.front();
  for (int64_t rows : {1, 16, 17, 300, 5000}) {
    OpDesc sized = any;
    sized.m = rows;
    EXPECT_EQ(generator.launch_geometry(sized, first).grid_x,
              static_cast<unsigned>((rows + first.block_m - 1) / first.block_m));
  }
  EXPECT_EQ(generator.launch_geometry(any, first).grid_x, 1u);
  // In the registry m=0 is the mma family's alone: every arch gets its heuristic, for every
  // width and with eqscale. (wgmma's any-M grid is no candidate: only an m=0 descriptor's row
  // ranges build it, runtime/row_buckets.h.)
  for (int major : {8, 9}) EXPECT_EQ(cuda::heuristic(any, major), generator.heuristic(any)) << major;
}

// The registry's routing without a GPU: above gemv_mma's 16 rows and up to 128 rows bits 2, 3
// and 8 go to mma, not dequant_gemm (which stays a tuning candidate), except where wgmma serves
// them on sm_90 (bits 2 and 8 without eqscale over its rows, as int4: test_cuda_wgmma.cpp); above
// 128 rows to dequant_gemm (measured, MmaGenerator::preferred); m=0 and eqscale=1 are served for
// every width.
TEST(CudaMmaCompile, RoutingPicksMmaForEveryWidth) {
  for (const char* text : {"m=64,n=4096,k=4096,bits=8,group=128,zero=int,act=bf16",
                           "m=32,n=28672,k=4096,bits=2,group=128,zero=int,act=bf16",
                           "m=128,n=4096,k=4096,bits=3,group=128,zero=int,act=fp16",
                           "m=17,n=1000,k=4160,bits=8,group=64,zero=float,act=fp16,eqscale=1",
                           "m=0,n=1000,k=4160,bits=3,group=64,zero=int,act=bf16",
                           "m=0,n=1000,k=4099,bits=8,group=-1,zero=none,act=fp16,eqscale=1",
                           "m=0,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,eqscale=1"}) {
    const OpDesc desc = descriptor(text);
    const bool wgmma_serves = !desc.eqscale && desc.m >= 17;
    for (int major : {8, 9}) {
      const CudaVariant chosen = cuda::heuristic(desc, major);
      EXPECT_EQ(chosen.family, major == 9 && wgmma_serves ? CudaFamily::wgmma : CudaFamily::mma)
          << text << " sm_" << major << "x: " << variant_name(desc, chosen, "sm_90a");
    }
    bool dequant_candidate = false;
    for (const CudaVariant& variant : cuda::candidates(desc, 9, 132))
      dequant_candidate = dequant_candidate || variant.family == CudaFamily::dequant_gemm;
    EXPECT_EQ(dequant_candidate, desc.m != 0) << text;  // dequant_gemm needs an exact m
  }
  for (const char* text : {"m=129,n=4096,k=4096,bits=8,group=128,zero=int,act=bf16",
                           "m=256,n=28672,k=4096,bits=2,group=128,zero=int,act=bf16,eqscale=1"}) {
    const OpDesc desc = descriptor(text);
    EXPECT_EQ(cuda::heuristic(desc, 8).family, CudaFamily::dequant_gemm) << text;
    EXPECT_EQ(cuda::heuristic(desc, 9).family, desc.eqscale ? CudaFamily::dequant_gemm : CudaFamily::wgmma) << text;
    EXPECT_FALSE(MmaGenerator::preferred(desc)) << text;
  }
  EXPECT_TRUE(MmaGenerator::preferred(descriptor("m=256,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16")));
}

// The no-tune shape at M=64 on 4096 columns: the measured winner of bits 2, 3 and 8 (64 x 16
// tiles over 256 k, 3 stages, 4 warps along K), int4's own rule otherwise.
TEST(CudaMmaCompile, HeuristicAtSixtyFourRowsFollowsTheWidth) {
  MmaGenerator generator;
  for (int bits : {2, 3, 8}) {
    const OpDesc desc = descriptor(fmt::format("m=64,n=4096,k=4096,bits={},group=128,zero=int,act=bf16", bits));
    EXPECT_EQ(variant_name(desc, generator.heuristic(desc), "sm_90a"),
              fmt::format("cuda_sm90a_mma_w{}g128_m64_n64m16k256_s3_w2x1x4", bits));
  }
  const OpDesc int4 = descriptor("m=64,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  EXPECT_EQ(variant_name(int4, generator.heuristic(int4), "sm_90a"), "cuda_sm90a_mma_w4g128_m64_n64m16k128_s4_w2x1x2");
}

TEST(CudaMmaCompile, GeneratorRefusesWhatItDoesNotServe) {
  MmaGenerator generator;
  OpDesc good = descriptor("m=64,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");
  const CudaVariant variant = generator.heuristic(good);
  ASSERT_TRUE(generator.is_valid(good, variant, 9));
  for (const char* text : {"m=513,n=64,k=128", "m=16,n=64,k=128,act=fp32", "m=16,n=64,k=128,compute=int8",
                           "m=16,n=64,k=128,bits=8,act=fp32", "m=600,n=64,k=128,bits=3"}) {
    Validity validity = generator.is_valid(descriptor(text), variant, 9);
    EXPECT_FALSE(validity.ok) << text;
    EXPECT_FALSE(validity.reason.empty()) << text;
  }
  EXPECT_FALSE(generator.is_valid(parse_descriptor("m=16,n=64,k=128,device=cpu"), variant, 9).ok);
  EXPECT_FALSE(generator.is_valid(good, variant, 7).ok);
  auto refused = [&](auto change) {
    CudaVariant changed = variant;
    change(changed);
    Validity validity = generator.is_valid(good, changed, 9);
    return !validity.ok && !validity.reason.empty();
  };
  EXPECT_TRUE(refused([](CudaVariant& v) { v.family = CudaFamily::gemv; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.block_n = 48; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.block_m = 8; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.block_k = 16; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.stages = 1; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.warps = v.warps * 2; }));
  EXPECT_TRUE(refused([](CudaVariant& v) { v.unroll = 4; }));
  EXPECT_TRUE(refused([](CudaVariant& v) {  // everything fits but shared memory: 8 stages of 84 KiB
    v = CudaVariant{CudaFamily::mma, 16, 2, 128, 128, 256, 8, 4, 4, 1};
  }));
  EXPECT_THROW(generator.emit(good, CudaVariant{}), Unsupported);
  // The stage's weights grow with the width (8-bit: 256 bytes per panel and 16 k, twice int4's)
  // and eqscale adds [block_k] fp32: a tile that fits sm_80's 99 KiB at int4 does not at 8 bits.
  const CudaVariant wide{CudaFamily::mma, 16, 2, 256, 64, 64, 4, 8, 2, 1};
  EXPECT_TRUE(generator.is_valid(good, wide, 8)) << generator.is_valid(good, wide, 8).reason;
  for (const char* text : {"m=64,n=4096,k=4096,bits=8,group=128,zero=int,act=bf16",
                           "m=64,n=4096,k=4096,bits=8,group=128,zero=int,act=bf16,eqscale=1"}) {
    const Validity validity = generator.is_valid(descriptor(text), wide, 8);
    EXPECT_FALSE(validity.ok) << text;
    EXPECT_NE(validity.reason.find("shared memory"), std::string::npos) << validity.reason;
    EXPECT_TRUE(generator.is_valid(descriptor(text), wide, 9)) << text;  // 227 KiB on sm_90
  }
  EXPECT_EQ(MmaGenerator::shared_bytes(descriptor("m=64,n=4096,k=4096,bits=8,group=128,zero=int,act=bf16"), wide),
            4 * (16 * 4 * 256 + 64 * 72 * 2 + 2 * 16 * 32));
  EXPECT_EQ(MmaGenerator::shared_bytes(descriptor("m=64,n=4096,k=4096,bits=3,group=128,zero=int,act=bf16,eqscale=1"), wide),
            4 * (16 * 4 * 96 + 64 * 80 * 2 + 2 * 16 * 32 + 64 * 4));
}

// Runs the kernel once on a random problem with poisoned, guarded outputs; compares with the
// reference (device_check.h). Empty when it passes, else the reproducer and what failed.
std::string check_on_device(const OpDesc& desc, const CudaVariant& variant) {
  return testing::check_on_device(CudaKernel(desc, variant), tolerance(desc));
}

using testing::Case;

// The kernel of cases[i], loaded from the cubin CompiledCases made for it (waiting for it when
// its compile is still under way); refused with the reason when it did not compile.
CudaKernel load_case(const std::vector<Case>& cases, testing::CompiledCases& compiled, std::size_t i) {
  CompiledCandidate candidate = compiled.get(i);
  if (!candidate.error.empty()) throw Error(candidate.error);
  return CudaKernel(cases[i].desc, cases[i].variant, std::move(candidate.cubin));
}

// Each case once, in order, against the reference at its descriptor's bound; every case compiled
// ahead of the checks (CompiledCases). Empty when all pass, else the first failure's reproducer.
std::string check_on_device(const std::vector<Case>& cases) {
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::string failure = testing::check_on_device(load_case(cases, compiled, i), tolerance(cases[i].desc));
    if (!failure.empty()) return failure;
  }
  return {};
}

// Every candidate at each M: N=1000 (a 104-column tail after 7 blocks of 128, an 8-column
// tail in the last panel), K=4160 (65 groups of 64; 32.5 stages of 128, 65 of 64).
void check_every_candidate(std::initializer_list<int> rows) {
  MmaGenerator generator;
  std::vector<Case> cases;
  for (int m : rows) {
    OpDesc desc = descriptor("n=1000,k=4160,bits=4,group=64,zero=int,act=bf16,out=bf16,bias=1,m=" + std::to_string(m));
    const std::vector<CudaVariant> variants = generator.candidates(desc);
    ASSERT_FALSE(variants.empty()) << m;
    for (const CudaVariant& variant : variants) cases.push_back({desc, variant});
  }
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaMma, EveryCandidateAtSmallM) {
  SKIP_WITHOUT_GPU();
  check_every_candidate({1, 7, 8, 9, 15, 16, 17});
}

TEST(CudaMma, EveryCandidateAtMediumM) {
  SKIP_WITHOUT_GPU();
  check_every_candidate({31, 32, 33, 63, 64, 65});
}

TEST(CudaMma, EveryCandidateAtLargeM) {
  SKIP_WITHOUT_GPU();
  check_every_candidate({127, 129, 200, 256});
}

// Every format (zero point x output dtype x group incl. whole-K groups with K tails) for one
// activation dtype, each with a different candidate in turn, at a few M.
void check_every_format(const char* act) {
  MmaGenerator generator;
  std::vector<Case> cases;
  int turn = 0;
  for (const char* out : {"fp32", "bf16", "fp16"})
    for (const char* zero : {"none", "int", "float"})
      for (const char* shape : {"group=32,k=96", "group=128,k=384", "group=256,k=512", "group=-1,k=131",
                                "group=-1,k=130", "group=-1,k=4104", "group=-1,k=4097"}) {
        const char* rows = turn % 3 == 0 ? "5" : turn % 3 == 1 ? "33" : "80";
        OpDesc desc = descriptor(std::string("n=37,bits=4,bias=1,") + shape + ",zero=" + zero + ",act=" + act +
                                 ",out=" + out + ",m=" + rows);
        const std::vector<CudaVariant> variants = generator.candidates(desc);
        cases.push_back({desc, variants[turn % variants.size()]});
        ++turn;
      }
  EXPECT_EQ(cases.size(), 63u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaMma, EveryFormatBf16) {
  SKIP_WITHOUT_GPU();
  check_every_format("bf16");
}

TEST(CudaMma, EveryFormatFp16) {
  SKIP_WITHOUT_GPU();
  check_every_format("fp16");
}

// An m=0 kernel (any M) run at many row counts, each against the reference: the tile's edges
// (block_m - 1, block_m, block_m + 1), one row, and past the exact-M family's 512 rows. Every
// candidate at two counts, then the heuristic at every count, in two formats.
TEST(CudaMma, AnyMKernelServesEveryRowCount) {
  SKIP_WITHOUT_GPU();
  MmaGenerator generator;
  // Per format: every candidate, then the heuristic (at every row count).
  std::vector<Case> cases;
  std::vector<bool> is_heuristic;
  for (const char* format : {"act=bf16,out=bf16,zero=int,group=64,k=4160,bias=1",
                             "act=fp16,out=fp32,zero=float,group=-1,k=4099,bias=0"}) {
    const OpDesc any = descriptor(std::string("m=0,n=1000,bits=4,") + format);
    for (const CudaVariant& variant : generator.candidates(any)) {
      cases.push_back({any, variant});
      is_heuristic.push_back(false);
    }
    cases.push_back({any, generator.heuristic(any)});
    is_heuristic.push_back(true);
  }
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const CudaKernel kernel = load_case(cases, compiled, i);
    const std::vector<int64_t> every_rows = is_heuristic[i] ? std::vector<int64_t>{1, 2, 7, 15, 16, 17, 31, 64, 100, 257, 513, 1030}
                                                      : std::vector<int64_t>{1, 33};
    for (int64_t rows : every_rows) {
      std::string failure = testing::check_on_device(kernel, tolerance(cases[i].desc), 0, rows);
      ASSERT_TRUE(failure.empty()) << failure;
    }
  }
}

TEST(CudaMma, NoBiasAndOddN) {
  SKIP_WITHOUT_GPU();
  MmaGenerator generator;
  for (const char* text : {"m=17,n=4095,k=256,group=128,zero=none,act=fp16,out=fp16",
                           "m=64,n=129,k=1024,group=64,zero=float,act=bf16,out=bf16,bias=1"}) {
    OpDesc desc = descriptor(std::string("bits=4,") + text);
    std::string failure = check_on_device(desc, generator.heuristic(desc));
    ASSERT_TRUE(failure.empty()) << failure;
  }
}

// Bits 2, 3 and 8, each zero point, with and without eqscale, for one activation dtype: an
// exact-M kernel per format, the M, the shape (group sizes, whole-K groups with K tails, N not
// a multiple of 16), the output dtype and the candidate taking turns.
void check_every_width(const char* act) {
  MmaGenerator generator;
  std::vector<Case> cases;
  int turn = 0;
  const char* shapes[] = {"group=32,k=96", "group=128,k=384", "group=256,k=512", "group=-1,k=131",
                          "group=-1,k=130", "group=64,k=4160", "group=-1,k=4097"};
  const char* outs[] = {"fp32", "bf16", "fp16"};
  const int rows[] = {1, 15, 16, 17, 33, 63, 64, 65, 129, 300};
  for (int bits : {2, 3, 8})
    for (const char* zero : {"none", "int", "float"})
      for (int eqscale : {0, 1}) {
        const OpDesc desc = descriptor(fmt::format("n=37,bits={},bias={},{},zero={},act={},out={},eqscale={},m={}", bits,
                                                   turn % 2, shapes[turn % 7], zero, act, outs[turn % 3], eqscale,
                                                   rows[turn % 10]));
        const std::vector<CudaVariant> variants = generator.candidates(desc);
        ASSERT_FALSE(variants.empty()) << to_string(desc);
        cases.push_back({desc, variants[turn % variants.size()]});
        ++turn;
      }
  EXPECT_EQ(cases.size(), 18u);
  const std::string failure = check_on_device(cases);
  ASSERT_TRUE(failure.empty()) << failure;
}

TEST(CudaMma, EveryWidthBf16) {
  SKIP_WITHOUT_GPU();
  check_every_width("bf16");
}

TEST(CudaMma, EveryWidthFp16) {
  SKIP_WITHOUT_GPU();
  check_every_width("fp16");
}

// Every candidate for bits 2, 3 and 8 (eqscale on for one in two), as an m=0 kernel run at the
// tile's edges (block_m - 1, block_m, block_m + 1), one row and a few hundred rows: N=1000 (tails
// in the last block and panel), K=4160 (65 groups of 64, half a stage of 128 at the end).
TEST(CudaMma, EveryWidthEveryCandidate) {
  SKIP_WITHOUT_GPU();
  MmaGenerator generator;
  std::vector<Case> cases;
  int turn = 0;
  for (const char* format : {"bits=2,act=bf16,zero=int", "bits=3,act=fp16,zero=float", "bits=8,act=bf16,zero=none",
                             "bits=8,act=fp16,zero=int"}) {
    const OpDesc any = descriptor(std::string("m=0,n=1000,k=4160,group=64,out=bf16,bias=1,") + format);
    for (const CudaVariant& variant : generator.candidates(any)) {
      OpDesc desc = any;
      desc.eqscale = turn++ % 2 == 1;
      cases.push_back({desc, variant});
    }
  }
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const CudaKernel kernel = load_case(cases, compiled, i);
    const int64_t block_m = cases[i].variant.block_m;
    for (int64_t rows : {int64_t{1}, block_m - 1, block_m, block_m + 1, int64_t{300}}) {
      std::string failure = testing::check_on_device(kernel, tolerance(cases[i].desc), 0, rows);
      ASSERT_TRUE(failure.empty()) << failure;
    }
  }
}

// m=0 for every width and eqscale: the heuristic kernel at many row counts (past the exact-M
// family's 512 too), against the reference.
TEST(CudaMma, AnyMServesEveryWidthAndEqscale) {
  SKIP_WITHOUT_GPU();
  std::vector<Case> cases;
  for (const char* format : {"bits=2,act=fp16,zero=none,group=128,k=384,eqscale=1", "bits=3,act=bf16,zero=int,group=-1,k=4097",
                             "bits=8,act=bf16,zero=float,group=32,k=4096,eqscale=1",
                             "bits=8,act=fp16,zero=none,group=-1,k=131", "bits=4,act=bf16,zero=int,group=64,k=4160,eqscale=1",
                             "bits=3,act=fp16,zero=float,group=256,k=512,eqscale=1"}) {
    const OpDesc any = descriptor(std::string("m=0,n=1000,out=fp32,bias=1,") + format);
    cases.push_back({any, cuda::heuristic(any, device_info(0).major)});
  }
  testing::CompiledCases compiled(cases);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const CudaKernel kernel = load_case(cases, compiled, i);
    for (int64_t rows : {1, 2, 15, 16, 17, 31, 64, 65, 129, 300, 513, 1030}) {
      std::string failure = testing::check_on_device(kernel, tolerance(cases[i].desc), 0, rows);
      ASSERT_TRUE(failure.empty()) << failure;
    }
  }
}

}  // namespace
}  // namespace lowbit::cuda
