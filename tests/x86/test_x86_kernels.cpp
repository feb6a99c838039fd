// Every x86 variant against the reference: random inputs from seeds named by the case,
// poisoned outputs with guard bytes, odd shapes (N and K tails, M around the block height).
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "codegen/x86/registry.h"
#include "codegen/x86/x86_kernel.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tests/support/test_support.h"

namespace lowbit::x86 {
namespace {

// Builds an m=0 kernel (one kernel serves every m of a sweep) and checks it at m rows.
std::string check_against_reference(const OpDesc& desc, const X86Variant& variant, int64_t m) {
  OpDesc run_desc = desc;
  run_desc.m = 0;
  X86Kernel kernel(run_desc, variant);
  return testing::check_against_reference(
      kernel, m, to_string(desc) + " " + variant_name(desc, variant) + " m=" + std::to_string(m));
}

std::vector<X86Isa> flavours_for(const OpDesc& desc) {
  std::vector<X86Isa> flavours{X86Isa::avx512_fma};
  if (desc.act == DType::bf16 && cpu_info().has("avx512_bf16")) flavours.push_back(X86Isa::avx512_bf16);
  return flavours;
}

TEST(X86Kernels, EveryRegisterBlockAndUnrollAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  // N=37: two whole panels and a 5-column tail; K=160: five groups of 32.
  OpDesc desc = parse_descriptor("n=37,k=160,bits=4,group=32,zero=int,act=bf16,bias=1");
  int checked = 0;
  for (X86Isa isa : flavours_for(desc))
    for (int panels = 1; panels <= 4; ++panels)
      for (int rows = 1; panels * rows <= max_block_cells; ++rows)
        for (int unroll : {1, 2, 3, 4, 8}) {
          X86Variant variant{isa, panels, rows, unroll, 2};
          ASSERT_TRUE(is_valid(desc, variant)) << is_valid(desc, variant).reason;
          for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{rows - 1}, int64_t{rows}, int64_t{rows + 1}}) {
            if (m < 1) continue;
            std::string failure = check_against_reference(desc, variant, m);
            ASSERT_TRUE(failure.empty()) << failure;
            ++checked;
          }
        }
  EXPECT_GT(checked, 100);
}

TEST(X86Kernels, EveryFormatDtypeAndKTail) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  int checked = 0;
  for (const char* act : {"fp32", "bf16", "fp16"})
    for (const char* out : {"fp32", "bf16", "fp16"})
      for (const char* zero : {"none", "int", "float"})
        for (const char* shape : {"group=32,k=96", "group=64,k=192", "group=128,k=256", "group=256,k=512",
                                  "group=-1,k=131", "group=-1,k=130", "group=-1,k=129", "group=-1,k=3"})
          for (const char* bias : {"0", "1"}) {
            OpDesc desc = parse_descriptor(std::string("n=21,bits=4,") + shape + ",zero=" + zero + ",act=" + act +
                                           ",out=" + out + ",bias=" + bias);
            for (X86Isa isa : flavours_for(desc))
              for (int64_t m : {1, 3}) {
                X86Variant variant{isa, 2, 2, 2, 2};
                std::string failure = check_against_reference(desc, variant, m);
                ASSERT_TRUE(failure.empty()) << failure;
                ++checked;
              }
          }
  EXPECT_GT(checked, 800);
}

TEST(X86Kernels, IssueShapesK8256N1000) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  for (const char* act : {"fp32", "bf16"})
    for (const char* group : {"32", "64", "-1"}) {
      OpDesc desc = parse_descriptor(std::string("n=1000,k=8256,bits=4,zero=int,group=") + group + ",act=" + act);
      for (int64_t m : {1, 3, 17}) {
        OpDesc shaped = desc;
        shaped.m = m;
        for (X86Variant variant : {heuristic(shaped, 2), candidates(shaped, 2).back()}) {
          std::string failure = check_against_reference(desc, variant, m);
          ASSERT_TRUE(failure.empty()) << failure;
        }
      }
    }
}

TEST(X86Kernels, EveryTunerCandidateIsValidAndNamed) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  for (const char* m : {"1", "16", "0"}) {
    OpDesc desc = parse_descriptor(std::string("m=") + m + ",n=4096,k=4096,group=128,act=bf16");
    std::vector<X86Variant> variants = candidates(desc, 2);
    EXPECT_GE(variants.size(), 4u);
    for (const X86Variant& variant : variants) {
      EXPECT_TRUE(is_valid(desc, variant)) << variant_name(desc, variant);
      EXPECT_EQ(variant_from_json(to_json(variant)), variant);
    }
    EXPECT_TRUE(is_valid(desc, heuristic(desc, 2)));
  }
}

TEST(X86Kernels, RefusesWhatItDoesNotGenerate) {
  for (const char* text : {"n=64,k=128,bits=8", "n=64,k=128,compute=int8", "n=64,k=128,eqscale=1",
                           "n=64,k=128,device=cuda:0"}) {
    OpDesc desc = parse_descriptor(text);
    Validity validity = supports(desc);
    EXPECT_FALSE(validity.ok) << text;
    EXPECT_FALSE(validity.reason.empty());
    EXPECT_THROW(X86Kernel(desc, X86Variant{}), Unsupported) << text;
  }
  OpDesc desc = parse_descriptor("n=64,k=128");
  EXPECT_FALSE(is_valid(desc, X86Variant{X86Isa::avx512_fma, 4, 4, 1, 1}).ok);  // 16 cells > 9
}

TEST(X86Kernels, RunRefusesBadArguments) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  OpDesc desc = parse_descriptor("m=2,n=32,k=64,group=32,bias=1");
  Problem problem = make_random_problem(desc, 2, 5);
  X86Kernel kernel(desc, heuristic(desc, 1));
  std::vector<uint16_t> y(64);
  RunArgs args{problem.x.data(), view(problem.packed), problem.bias.data(), nullptr, y.data(), 2};
  EXPECT_NO_THROW(kernel.run(args));
  RunArgs wrong_m = args;
  wrong_m.m = 3;
  EXPECT_THROW(kernel.run(wrong_m), InvalidArgument);
  RunArgs no_bias = args;
  no_bias.bias = nullptr;
  EXPECT_THROW(kernel.run(no_bias), InvalidArgument);
  RunArgs no_zeros = args;
  no_zeros.weights.zeros = nullptr;
  EXPECT_THROW(kernel.run(no_zeros), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::x86
