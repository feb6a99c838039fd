// compute=int8 on AVX2 (avx2_int8_generator.h), both flavours: avx2_vnni (AVX-VNNI) and
// avx2_int8 (vpmaddubsw/vpmaddwd, any AVX2 CPU). Every candidate and format against the exact
// twin reference_int8 and the float reference, with poisoned, guarded outputs at odd shapes;
// the flavours against each other (the same int32 sums and epilogue: the same bits); the
// largest codes (no saturation in the vpmaddubsw route); the AVX2 activation quantizer against
// the scalar twin, bit for bit; the registry rule for isa=avx2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/avx2_activation_quantizer.h"
#include "codegen/x86/avx2_int8_generator.h"
#include "codegen/x86/registry.h"
#include "codegen/x86/x86_kernel.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tests/support/test_support.h"

namespace lowbit::x86 {
namespace {

constexpr int every_bits[] = {2, 3, 4, 8};

bool cpu_runs_avx2() { return cpu_info().has("avx2") && cpu_info().has("fma") && cpu_info().has("f16c"); }

#define LOWBIT_SKIP_WITHOUT_AVX2() \
  if (!cpu_runs_avx2()) GTEST_SKIP() << "this CPU lacks AVX2, FMA or F16C: the AVX2 int8 kernels cannot run here"

// The flavours this CPU runs (avx2_int8 on every AVX2 CPU; avx2_vnni with AVX-VNNI); prints the
// one it lacks.
std::vector<X86Isa> runnable_flavours() {
  std::vector<X86Isa> flavours{X86Isa::avx2_int8};
  if (cpu_info().has("avx_vnni"))
    flavours.push_back(X86Isa::avx2_vnni);
  else
    std::printf("skipping isa=avx2_vnni: this CPU lacks avx_vnni\n");
  return flavours;
}

// This CPU as the generator sees it, with or without AVX-VNNI (the candidates' flavour).
CpuInfo cpu_for(X86Isa isa) {
  CpuInfo cpu = cpu_info();
  if (isa == X86Isa::avx2_int8) std::erase(cpu.isa, std::string("avx_vnni"));
  return cpu;
}

struct Checked {
  std::string failure;         // "" when every check passes
  std::vector<uint8_t> bytes;  // y as the kernel wrote it
};

// Runs an m=0 kernel of (desc, variant) at m rows on a random problem (seed from the case name:
// the descriptor, the block shape without the flavour, so both flavours meet the same problem)
// with poisoned, guarded outputs; checks reference_int8 (int8_kernel_tolerance) and the float
// reference (tolerance(desc)).
Checked run_checked(const OpDesc& desc, const X86Variant& variant, int64_t m) {
  OpDesc run_desc = desc;
  run_desc.m = 0;
  X86Kernel kernel(run_desc, variant, 2);
  X86Variant named = variant;
  named.isa = X86Isa::avx2_int8;
  const testing::GuardedRun guarded =
      testing::run_guarded(kernel, m, to_string(desc) + " " + variant_name(desc, named) + " m=" + std::to_string(m));
  Checked run;
  run.bytes.assign(guarded.output(), guarded.output() + guarded.out_bytes);
  const std::string where = guarded.where + " (" + variant_name(desc, variant) + ")";
  if (!guarded.guards_intact) {
    run.failure = where + ": guard bytes overwritten";
    return run;
  }
  const Problem& problem = guarded.problem;
  const void* bias = guarded.bias();
  const float* eq_scale = guarded.eq_scale();
  const void* y = guarded.output();
  const double twin =
      relative_error(y, desc.out, reference_int8(desc, m, problem.x.data(), problem.weights, bias, eq_scale));
  const double floating =
      relative_error(y, desc.out, reference_matmul(desc, m, problem.x.data(), problem.weights, bias, eq_scale));
  if (!(twin <= int8_kernel_tolerance(desc)))
    run.failure = where + ": error against reference_int8 " + std::to_string(twin) + " > " +
                  std::to_string(int8_kernel_tolerance(desc));
  else if (!(floating <= tolerance(desc)))
    run.failure = where + ": error against the float reference " + std::to_string(floating) + " > " +
                  std::to_string(tolerance(desc));
  return run;
}

// Every candidate of each flavour (register blocks, unrolls, splits) for every width and group
// at odd shapes: N=37 (two panels and a 5-column tail: both halves of the tail panel, one
// partial), K three groups and an odd K for group=-1 (141: a partial last step of every width),
// M in {1, 2, rows-1, rows, rows+1}.
TEST(X86Avx2Int8Kernels, EveryCandidateWidthAndGroupAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  int checked = 0;
  for (X86Isa isa : runnable_flavours())
    for (int bits : every_bits)
      for (const char* shape : {"group=32,k=96", "group=64,k=192", "group=128,k=384", "group=256,k=768",
                                "group=-1,k=141", "group=-1,k=1031"}) {
        OpDesc desc = parse_descriptor(std::string("n=37,zero=int,act=bf16,out=fp32,bias=1,compute=int8,") + shape +
                                       ",bits=" + std::to_string(bits));
        const std::vector<X86Variant> variants = Avx2Int8Generator().candidates(desc, cpu_for(isa), 2);
        ASSERT_GE(variants.size(), 3u) << to_string(desc);
        for (const X86Variant& variant : variants) {
          ASSERT_EQ(variant.isa, isa) << variant_name(desc, variant);
          const int rows = variant.m_rows;
          for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{rows - 1}, int64_t{rows}, int64_t{rows + 1}}) {
            if (m < 1) continue;
            const Checked run = run_checked(desc, variant, m);
            ASSERT_TRUE(run.failure.empty()) << run.failure;
            ++checked;
          }
        }
      }
  EXPECT_GT(checked, 400);
}

// Every zero point, act and out dtype, bias, group and K tail of each width and flavour. K for
// group=-1 (blocks of 128 k): 131/130/129/143/141/3 leave every remainder a width's step can
// have, 300 two whole blocks and a partial third.
TEST(X86Avx2Int8Kernels, EveryFormatDtypeAndKTail) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  int checked = 0;
  const std::vector<X86Isa> flavours = runnable_flavours();
  for (X86Isa isa : flavours)
    for (int bits : every_bits)
      for (const char* act : {"fp32", "bf16", "fp16"})
        for (const char* out : {"fp32", "bf16", "fp16"})
          for (const char* zero : {"none", "int", "float"})
            for (const char* shape : {"group=32,k=96", "group=64,k=192", "group=128,k=256", "group=256,k=512",
                                      "group=-1,k=131", "group=-1,k=130", "group=-1,k=129", "group=-1,k=3",
                                      "group=-1,k=143", "group=-1,k=141", "group=-1,k=300"}) {
              const char* bias = checked % 2 ? "1" : "0";
              OpDesc desc = parse_descriptor("n=21,compute=int8,bits=" + std::to_string(bits) + "," + shape +
                                             ",zero=" + zero + ",act=" + act + ",out=" + out + ",bias=" + bias);
              for (const X86Variant& variant : {X86Variant{isa, 1, 2, 2, 2}, X86Variant{isa, 2, 1, 1, 2}})
                for (int64_t m : {1, 3}) {
                  const Checked run = run_checked(desc, variant, m);
                  ASSERT_TRUE(run.failure.empty()) << run.failure;
                  ++checked;
                }
            }
  EXPECT_EQ(checked, static_cast<int>(flavours.size()) * 4 * 3 * 3 * 3 * 11 * 2 * 2);
}

// eqscale=1 is folded into the AVX2 quantization pass; a larger shape (K=8256, not a multiple
// of 128; N=1000, an 8-column tail) through the registry's heuristic and its last candidate.
TEST(X86Avx2Int8Kernels, EqualizationScaleAndALargerShape) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  for (X86Isa isa : runnable_flavours()) {
    for (int bits : every_bits)
      for (const char* act : {"fp32", "bf16", "fp16"})
        for (const char* shape : {"group=64,k=192,zero=int", "group=-1,k=141,zero=none", "group=32,k=96,zero=float"}) {
          OpDesc desc = parse_descriptor("n=37,compute=int8,eqscale=1,bias=1,out=fp32,bits=" + std::to_string(bits) +
                                         "," + shape + ",act=" + act);
          for (int64_t m : {1, 3}) {
            const Checked run = run_checked(desc, X86Variant{isa, 1, 2, 2, 2}, m);
            ASSERT_TRUE(run.failure.empty()) << run.failure;
          }
        }
    for (const char* format : {"bits=4,group=64", "bits=3,group=-1", "bits=8,group=-1", "bits=2,group=32"}) {
      OpDesc desc = parse_descriptor(std::string("n=1000,k=8256,zero=int,act=bf16,eqscale=1,compute=int8,") + format);
      for (int64_t m : {1, 5}) {
        OpDesc shaped = desc;
        shaped.m = m;
        const Avx2Int8Generator generator;
        for (X86Variant variant :
             {generator.heuristic(shaped, cpu_for(isa), 2), generator.candidates(shaped, cpu_for(isa), 2).back()}) {
          const Checked run = run_checked(desc, variant, m);
          ASSERT_TRUE(run.failure.empty()) << run.failure;
        }
      }
    }
  }
}

// Both flavours sum the same int32 products exactly and share the epilogue, so they write the
// same bits; so does the AVX512-VNNI generator (the same fp32 operations per column) where the
// CPU runs it.
TEST(X86Avx2Int8Kernels, FlavoursWriteTheSameBits) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  const std::vector<X86Isa> flavours = runnable_flavours();
  const bool vnni512 = testing::cpu_serves_avx512() && cpu_info().has("avx512_vnni");
  if (flavours.size() < 2 && !vnni512) GTEST_SKIP() << "this CPU runs only one int8 flavour: nothing to compare";
  for (int bits : every_bits)
    for (const char* shape : {"group=32,k=160,zero=float,out=bf16", "group=-1,k=301,zero=none,out=fp32",
                              "group=128,k=512,zero=int,out=fp16"}) {
      const OpDesc desc = parse_descriptor(std::string("n=45,act=fp16,bias=1,compute=int8,bits=") +
                                           std::to_string(bits) + "," + shape);
      const Checked first = run_checked(desc, X86Variant{flavours[0], 1, 2, 2, 1}, 5);
      ASSERT_TRUE(first.failure.empty()) << first.failure;
      if (flavours.size() > 1) {
        const Checked second = run_checked(desc, X86Variant{flavours[1], 1, 2, 2, 1}, 5);
        ASSERT_TRUE(second.failure.empty()) << second.failure;
        EXPECT_EQ(first.bytes, second.bytes) << to_string(desc) << ": avx2_vnni and avx2_int8 differ";
      }
      if (vnni512) {
        const Checked wide = run_checked(desc, X86Variant{X86Isa::avx512_vnni, 1, 2, 2, 1}, 5);
        ASSERT_TRUE(wide.failure.empty()) << wide.failure;
        EXPECT_EQ(first.bytes, wide.bytes) << to_string(desc) << ": avx2 int8 and avx512_vnni differ";
      }
    }
}

// The integer sums are exact: the largest codes against xq = -127 everywhere (x of one sign) in
// the widest block (group=256) give the twin's result to fp32 rounding. In the avx2_int8 route
// a vpmaddubsw pair of 4-bit codes is 2 * 15 * 127 = 3810 (no saturation), and 8-bit codes go
// through vpmaddwd, where 2 * 255 * 127 would have saturated int16.
TEST(X86Avx2Int8Kernels, ExtremeCodesAreExact) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  for (X86Isa isa : runnable_flavours())
    for (int bits : every_bits) {
      OpDesc desc = parse_descriptor("n=32,k=512,group=256,zero=int,act=fp32,out=fp32,compute=int8,bits=" +
                                     std::to_string(bits));
      X86Kernel kernel(desc, X86Variant{isa, 1, 1, 1, 1});
      Problem problem = make_random_problem(desc, 1, seed_for("avx2 int8 extreme codes"));
      const uint8_t top = static_cast<uint8_t>((1 << bits) - 1);
      for (int64_t i = 0; i < desc.n * desc.k; ++i) problem.weights.q[i] = top;
      problem.packed = pack_native(desc, problem.weights);
      std::vector<float> x(static_cast<std::size_t>(desc.k), -0.75f);
      std::vector<float> y(static_cast<std::size_t>(desc.n));
      kernel.run(RunArgs{x.data(), view(problem.packed), nullptr, nullptr, y.data(), 1});
      const std::vector<double> twin = reference_int8(desc, 1, x.data(), problem.weights, nullptr, nullptr);
      EXPECT_LE(relative_error(y.data(), DType::fp32, twin), 1e-6) << "bits=" << bits << " " << to_string(isa);
    }
}

// The AVX2 quantizer gives the scalar twin's bits (and so the AVX-512 quantizer's): every
// dtype, with and without the equalization scale, odd K (partial last vectors), an all-zero
// block (sx = 1), and zeroed padding past K.
TEST(X86Avx2Int8Activations, QuantizerMatchesTheScalarTwin) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  for (const char* act : {"fp32", "bf16", "fp16"})
    for (const char* format : {"bits=4,group=32,k=160", "bits=8,group=-1,k=301", "bits=3,group=-1,k=13",
                               "bits=2,group=-1,k=517", "bits=2,group=256,k=512", "bits=4,group=-1,k=7"})
      for (const char* eqscale : {"0", "1"}) {
        const OpDesc desc = parse_descriptor(std::string("n=16,compute=int8,") + format + ",act=" + act +
                                             ",eqscale=" + eqscale);
        const int64_t m = 3;
        Problem problem = make_random_problem(desc, m, seed_for(to_string(desc) + " avx2"));
        // Row 1's first block all zero.
        for (int64_t k = 0; k < std::min<int64_t>(int8_block_size(desc), desc.k); ++k)
          store_from_float(problem.x.data(), desc.act, desc.k + k, 0.0f);
        const float* eq_scale = desc.eqscale ? problem.eq_scale.data() : nullptr;
        const Int8ActivationLayout layout = int8_activation_layout(desc);
        std::vector<int8_t> codes(static_cast<std::size_t>(m * layout.row_bytes), 99);
        std::vector<Int8BlockFactors> factors(static_cast<std::size_t>(m * layout.blocks));
        quantize_activation_rows_avx2(desc, problem.x.data(), eq_scale, 0, m, codes.data(), factors.data());
        const Int8Activations twin = quantize_activations_int8(desc, m, problem.x.data(), eq_scale);
        for (int64_t row = 0; row < m; ++row) {
          for (int64_t k = 0; k < layout.row_bytes; ++k) {
            const int expected = k < desc.k ? twin.q[row * desc.k + k] : 0;
            ASSERT_EQ(codes[row * layout.row_bytes + k], expected) << to_string(desc) << " row " << row << " k " << k;
          }
          for (int64_t block = 0; block < layout.blocks; ++block) {
            const float scale = twin.scale[row * layout.blocks + block];
            ASSERT_EQ(factors[row * layout.blocks + block].scale, scale) << to_string(desc) << " block " << block;
            int sum = 0;
            const int64_t block_end = std::min(desc.k, (block + 1) * int8_block_size(desc));
            for (int64_t k = block * int8_block_size(desc); k < block_end; ++k) sum += twin.q[row * desc.k + k];
            ASSERT_EQ(factors[row * layout.blocks + block].scaled_sum, scale * static_cast<float>(sum));
          }
        }
        EXPECT_EQ(twin.scale[layout.blocks], 1.0f) << "an all-zero block has sx = 1";
      }
}

// isa=avx2 serves compute=int8 (avx2_vnni where the CPU has AVX-VNNI, else avx2_int8) and never
// crosses into compute=float; unforced, a CPU without AVX-512 gets the AVX2 int8 kernels.
TEST(X86Avx2Int8Registry, IsaAvx2ServesInt8) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  const OpDesc int8 = parse_descriptor("m=1,n=64,k=256,group=64,compute=int8");
  OpDesc floating = int8;
  floating.compute = Compute::floating;
  const X86Isa expected = cpu_info().has("avx_vnni") ? X86Isa::avx2_vnni : X86Isa::avx2_int8;
  {
    testing::ScopedEnvironment environment("LOWBIT_ISA", "avx2");
    EXPECT_TRUE(supports(int8)) << supports(int8).reason;
    EXPECT_EQ(heuristic(int8, 2).isa, expected);
    EXPECT_EQ(variant_name(int8, heuristic(int8, 2)).rfind(expected == X86Isa::avx2_vnni ? "x86_avx2vnni_w4g64_n2m1"
                                                                                          : "x86_avx2int8_w4g64_n2m1",
                                                          0),
              0u);
    const std::vector<X86Variant> variants = candidates(int8, 2);
    EXPECT_GE(variants.size(), 3u);
    for (const X86Variant& variant : variants) {
      EXPECT_EQ(variant.isa, expected) << variant_name(int8, variant);
      EXPECT_FALSE(is_valid(floating, variant).ok) << variant_name(floating, variant);
      EXPECT_EQ(variant_from_json(to_json(variant)), variant);
    }
    for (const X86Variant& variant : candidates(floating, 2)) EXPECT_EQ(variant.isa, X86Isa::avx2_fma);
  }
  EXPECT_EQ(generator_version("avx2"), "x86_avx2_float@1+x86_avx2_int8@1");
  CpuInfo avx2_only = cpu_info();
  avx2_only.isa = {"avx", "avx2", "fma", "f16c"};
  EXPECT_TRUE(supports(int8, "", avx2_only)) << supports(int8, "", avx2_only).reason;
  EXPECT_TRUE(supports(int8, "avx2", avx2_only)) << supports(int8, "avx2", avx2_only).reason;
  const std::vector<X86Variant> fallback = Avx2Int8Generator().candidates(int8, avx2_only, 2);
  ASSERT_FALSE(fallback.empty());
  for (const X86Variant& variant : fallback) EXPECT_EQ(variant.isa, X86Isa::avx2_int8) << variant_name(int8, variant);
}

// What the generator refuses, with the reason.
TEST(X86Avx2Int8Registry, RefusalsNameTheReason) {
  const OpDesc int8 = parse_descriptor("m=1,n=64,k=256,group=64,compute=int8");
  CpuInfo avx2_only = cpu_info();
  avx2_only.isa = {"avx", "avx2", "fma", "f16c"};
  const Avx2Int8Generator generator;
  auto reason = [&](const OpDesc& desc, const X86Variant& variant, const CpuInfo& cpu) {
    const Validity validity = generator.is_valid(desc, variant, cpu);
    EXPECT_FALSE(validity.ok) << variant_name(desc, variant);
    return validity.reason;
  };
  EXPECT_NE(reason(int8, X86Variant{X86Isa::avx2_vnni, 1, 1, 1, 1}, avx2_only).find("lacks avx_vnni"),
            std::string::npos);
  CpuInfo no_avx2 = avx2_only;
  no_avx2.isa = {"avx", "fma", "f16c"};
  EXPECT_NE(reason(int8, X86Variant{X86Isa::avx2_int8, 1, 1, 1, 1}, no_avx2).find("lacks avx2"), std::string::npos);
  EXPECT_NE(reason(int8, X86Variant{X86Isa::avx2_int8, 2, 2, 1, 1}, avx2_only).find("16 ymm"), std::string::npos);
  EXPECT_NE(reason(int8, X86Variant{X86Isa::avx512_vnni, 1, 1, 1, 1}, avx2_only).find("avx2_int8"),
            std::string::npos);
  OpDesc floating = int8;
  floating.compute = Compute::floating;
  EXPECT_NE(reason(floating, X86Variant{X86Isa::avx2_int8, 1, 1, 1, 1}, avx2_only).find("compute=int8 only"),
            std::string::npos);
  EXPECT_NE(reason(int8, X86Variant{X86Isa::avx2_int8, 1, 1, 0, 1}, avx2_only).find("k_unroll"), std::string::npos);
  EXPECT_TRUE(generator.is_valid(int8, X86Variant{X86Isa::avx2_int8, 2, 1, 1, 1}, avx2_only));
}

}  // namespace
}  // namespace lowbit::x86
