// compute=int8 on x86 (the AVX512-VNNI generator): every variant against its exact twin
// reference_int8 (same quantized x, exact integer sums; only the fp32 epilogue differs) and
// against the float reference with the int8 tolerance; the vectorised activation quantizer
// against the scalar one; the rule that compute modes never cross.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/avx512_vnni_int8_generator.h"
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

bool cpu_serves_vnni() { return testing::cpu_serves_avx512() && cpu_info().has("avx512_vnni"); }

#define LOWBIT_SKIP_WITHOUT_VNNI() \
  if (!cpu_serves_vnni()) GTEST_SKIP() << "this CPU lacks AVX-512 F/BW/VL or AVX512-VNNI: int8 kernels cannot run here"

constexpr int every_bits[] = {2, 3, 4, 8};

struct Errors {
  std::string failure;      // "" when both checks pass
  double against_twin = 0;  // vs reference_int8
  double against_float = 0; // vs reference_matmul
};

// Runs an m=0 kernel of (desc, variant) at m rows on a fresh random problem (seed from the case
// name) with poisoned, guarded outputs; checks the twin (int8_kernel_tolerance) and the float
// reference (tolerance(desc)).
Errors check_int8(const OpDesc& desc, const X86Variant& variant, int64_t m) {
  OpDesc run_desc = desc;
  run_desc.m = 0;
  X86Kernel kernel(run_desc, variant);
  const testing::GuardedRun run =
      testing::run_guarded(kernel, m, to_string(desc) + " " + variant_name(desc, variant) + " m=" + std::to_string(m));
  Errors errors;
  const std::string& where = run.where;
  if (!run.guards_intact) {
    errors.failure = where + ": guard bytes overwritten";
    return errors;
  }
  const Problem& problem = run.problem;
  errors.against_twin = relative_error(
      run.output(), desc.out, reference_int8(desc, m, problem.x.data(), problem.weights, run.bias(), run.eq_scale()));
  errors.against_float = relative_error(
      run.output(), desc.out, reference_matmul(desc, m, problem.x.data(), problem.weights, run.bias(), run.eq_scale()));
  if (!(errors.against_twin <= int8_kernel_tolerance(desc)))
    errors.failure = where + ": error against reference_int8 " + std::to_string(errors.against_twin) + " > " +
                     std::to_string(int8_kernel_tolerance(desc));
  else if (!(errors.against_float <= tolerance(desc)))
    errors.failure = where + ": error against the float reference " + std::to_string(errors.against_float) + " > " +
                     std::to_string(tolerance(desc));
  return errors;
}

// Every register block and unroll of each width at one odd shape: N=37 (two panels and a
// 5-column tail), K=160 (five groups of 32), M around the block height.
TEST(X86Int8Kernels, EveryRegisterBlockAndUnrollAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  int checked = 0;
  for (int bits : every_bits) {
    OpDesc desc = parse_descriptor("n=37,k=160,group=32,zero=int,act=bf16,bias=1,compute=int8,bits=" +
                                   std::to_string(bits));
    for (int panels = 1; panels <= 4; ++panels)
      for (int rows = 1; panels * rows <= int8_max_block_cells; ++rows)
        for (int unroll : {1, 2, 3, 4, 8}) {
          X86Variant variant{X86Isa::avx512_vnni, panels, rows, unroll, 2};
          ASSERT_TRUE(is_valid(desc, variant)) << is_valid(desc, variant).reason;
          for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{rows - 1}, int64_t{rows}, int64_t{rows + 1}}) {
            if (m < 1) continue;
            const Errors errors = check_int8(desc, variant, m);
            ASSERT_TRUE(errors.failure.empty()) << errors.failure;
            ++checked;
          }
        }
  }
  EXPECT_GT(checked, 1500);
}

// Prefetching changes no arithmetic: every distance at odd shapes (an N tail, five groups, the
// group=-1 K tail past one activation block, 3-bit's 96-byte steps, a split K) passes both
// references and gives the same bits as the variant without prefetch.
TEST(X86Int8Kernels, PrefetchChangesNoBits) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  int checked = 0;
  for (int bits : every_bits)
    for (const char* shape : {"group=32,k=160", "group=-1,k=141"}) {
      const OpDesc desc = parse_descriptor(
          fmt::format("n=37,{},zero=int,act=bf16,bias=1,compute=int8,bits={}", shape, bits));
      OpDesc run_desc = desc;
      run_desc.m = 0;
      for (int panels : {1, 4})
        for (int unroll : {1, 2, 3})
          for (int split_k : {1, 2})
            for (int prefetch : {64, 1024, max_prefetch_bytes}) {
              const X86Variant plain{X86Isa::avx512_vnni, panels, 1, unroll, 2, split_k};
              if (!is_valid(desc, plain)) continue;  // group=-1, k=141 is one activation block and a tail
              X86Variant prefetched = plain;
              prefetched.prefetch = prefetch;
              ASSERT_TRUE(is_valid(desc, prefetched)) << is_valid(desc, prefetched).reason;
              const X86Kernel with(run_desc, prefetched);
              const X86Kernel without(run_desc, plain);
              for (int64_t m : {1, 2}) {
                const Errors errors = check_int8(desc, prefetched, m);
                ASSERT_TRUE(errors.failure.empty()) << errors.failure;
                const std::string name = to_string(desc) + " " + variant_name(desc, prefetched) + " m=" + std::to_string(m);
                const testing::GuardedRun a = testing::run_guarded(with, m, name);
                const testing::GuardedRun b = testing::run_guarded(without, m, name);
                ASSERT_EQ(std::memcmp(a.output(), b.output(), a.out_bytes), 0) << a.where << ": bits differ";
                ++checked;
              }
            }
    }
  EXPECT_GT(checked, 150);
  // avx2_int8 runs on every AVX2 CPU, so the refusal is the prefetch's, not this CPU's (avx2_vnni
  // is refused first for lacking AVX-VNNI where the CPU has none).
  X86Variant avx2{X86Isa::avx2_int8, 1, 1, 1, 1};
  avx2.prefetch = 1024;
  const OpDesc desc = parse_descriptor("m=1,n=64,k=128,compute=int8");
  const Validity refused = is_valid(desc, avx2);
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.reason.find("prefetch must be 0"), std::string::npos) << refused.reason;
}

// Every dtype, zero point, bias, group size and K tail of each width. group=-1 is quantized in
// blocks of 128 k: K=131/130/129/143/141/3 leave every remainder a width's step can have, and
// K=300 and K=256 two whole blocks with and without a partial third.
TEST(X86Int8Kernels, EveryFormatDtypeAndKTail) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  int checked = 0;
  for (int bits : every_bits)
    for (const char* act : {"fp32", "bf16", "fp16"})
      for (const char* out : {"fp32", "bf16", "fp16"})
        for (const char* zero : {"none", "int", "float"})
          for (const char* shape : {"group=32,k=96", "group=64,k=192", "group=128,k=256", "group=256,k=512",
                                    "group=-1,k=131", "group=-1,k=130", "group=-1,k=129", "group=-1,k=3",
                                    "group=-1,k=143", "group=-1,k=141", "group=-1,k=300", "group=-1,k=256"})
            for (const char* bias : {"0", "1"}) {
              OpDesc desc = parse_descriptor("n=21,compute=int8,bits=" + std::to_string(bits) + "," + shape +
                                             ",zero=" + zero + ",act=" + act + ",out=" + out + ",bias=" + bias);
              for (int64_t m : {1, 3}) {
                const Errors errors = check_int8(desc, X86Variant{X86Isa::avx512_vnni, 2, 2, 2, 2}, m);
                ASSERT_TRUE(errors.failure.empty()) << errors.failure;
                ++checked;
              }
            }
  EXPECT_EQ(checked, 4 * 3 * 3 * 3 * 12 * 2 * 2);
}

// eqscale=1 is folded into the quantization pass: every width and dtype, a K tail, and the
// K=8256/N=1000 shape (not a multiple of 128, an 8-column tail).
TEST(X86Int8Kernels, EqualizationScaleIsFoldedIntoTheQuantization) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  for (int bits : every_bits)
    for (const char* act : {"fp32", "bf16", "fp16"})
      for (const char* shape : {"group=64,k=192,zero=int", "group=-1,k=141,zero=none", "group=32,k=96,zero=float"}) {
        OpDesc desc = parse_descriptor("n=37,compute=int8,eqscale=1,bias=1,out=fp32,bits=" + std::to_string(bits) +
                                       "," + shape + ",act=" + act);
        for (int64_t m : {1, 4}) {
          const Errors errors = check_int8(desc, X86Variant{X86Isa::avx512_vnni, 2, 3, 2, 2}, m);
          ASSERT_TRUE(errors.failure.empty()) << errors.failure;
        }
      }
  for (const char* format : {"bits=4,group=64", "bits=4,group=-1", "bits=3,group=32", "bits=8,group=-1",
                             "bits=2,group=64"}) {
    OpDesc desc = parse_descriptor(std::string("n=1000,k=8256,zero=int,act=bf16,eqscale=1,compute=int8,") + format);
    for (int64_t m : {1, 5}) {
      OpDesc shaped = desc;
      shaped.m = m;
      for (X86Variant variant : {heuristic(shaped, 2), candidates(shaped, 2).back()}) {
        const Errors errors = check_int8(desc, variant, m);
        ASSERT_TRUE(errors.failure.empty()) << errors.failure;
      }
    }
  }
}

// The integer sums are exact: the largest codes against the largest |xq| (x of one sign, so
// every block quantizes to +-127) in the widest block (group=256: 255 * 127 * 256 < 2^24)
// give the twin's result to fp32 rounding.
TEST(X86Int8Kernels, ExtremeCodesAreExact) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  for (int bits : every_bits) {
    OpDesc desc = parse_descriptor("n=32,k=512,group=256,zero=int,act=fp32,out=fp32,compute=int8,bits=" +
                                   std::to_string(bits));
    X86Kernel kernel(desc, X86Variant{X86Isa::avx512_vnni, 1, 1, 1, 1});
    Problem problem = make_random_problem(desc, 1, seed_for("int8 extreme codes"));
    const uint8_t top = static_cast<uint8_t>((1 << bits) - 1);
    for (int64_t i = 0; i < desc.n * desc.k; ++i) problem.weights.q[i] = top;
    problem.packed = pack_native(desc, problem.weights);
    std::vector<float> x(static_cast<std::size_t>(desc.k), -0.75f);
    std::vector<float> y(static_cast<std::size_t>(desc.n));
    kernel.run(RunArgs{x.data(), view(problem.packed), nullptr, nullptr, y.data(), 1});
    const std::vector<double> twin = reference_int8(desc, 1, x.data(), problem.weights, nullptr, nullptr);
    EXPECT_LE(relative_error(y.data(), DType::fp32, twin), 1e-6) << "bits=" << bits;
  }
}

// The vectorised quantizer gives the scalar twin's bits: every dtype, with and without the
// equalization scale, odd K, an all-zero block (sx = 1), and zeroed padding past K.
TEST(X86Int8Activations, QuantizerMatchesTheScalarTwin) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  for (const char* act : {"fp32", "bf16", "fp16"})
    for (const char* format : {"bits=4,group=32,k=160", "bits=8,group=-1,k=301", "bits=3,group=-1,k=13",
                               "bits=2,group=256,k=512"})
      for (const char* eqscale : {"0", "1"}) {
        const OpDesc desc = parse_descriptor(std::string("n=16,compute=int8,") + format + ",act=" + act +
                                             ",eqscale=" + eqscale);
        const int64_t m = 3;
        Problem problem = make_random_problem(desc, m, seed_for(to_string(desc)));
        // Row 1's first block all zero.
        for (int64_t k = 0; k < std::min<int64_t>(int8_block_size(desc), desc.k); ++k)
          store_from_float(problem.x.data(), desc.act, desc.k + k, 0.0f);
        const float* eq_scale = desc.eqscale ? problem.eq_scale.data() : nullptr;
        const Int8ActivationLayout layout = int8_activation_layout(desc);
        std::vector<int8_t> codes(static_cast<std::size_t>(m * layout.row_bytes), 99);
        std::vector<Int8BlockFactors> factors(static_cast<std::size_t>(m * layout.blocks));
        quantize_activation_rows(desc, problem.x.data(), eq_scale, 0, m, codes.data(), factors.data());
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
            for (int64_t k = block * int8_block_size(desc); k < std::min(desc.k, (block + 1) * int8_block_size(desc)); ++k)
              sum += twin.q[row * desc.k + k];
            ASSERT_EQ(factors[row * layout.blocks + block].scaled_sum, scale * static_cast<float>(sum));
          }
        }
        EXPECT_EQ(twin.scale[layout.blocks], 1.0f) << "an all-zero block has sx = 1";
      }
}

// int8 is lossy by design: the kernel's error against the float reference is that of the s8
// rounding of x (tolerance.h), far above the float kernels' but within tolerance(desc). A
// kernel that silently computed in float would fail the lower bound.
TEST(X86Int8Kernels, ErrorAgainstFloatIsTheQuantizationError) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  for (int bits : every_bits)
    for (const char* group : {"32", "128", "-1"}) {
      OpDesc desc = parse_descriptor("n=256,k=1024,zero=float,act=fp32,out=fp32,compute=int8,group=" +
                                     std::string(group) + ",bits=" + std::to_string(bits));
      const Errors errors = check_int8(desc, X86Variant{X86Isa::avx512_vnni, 4, 1, 2, 2}, 4);
      ASSERT_TRUE(errors.failure.empty()) << errors.failure;
      EXPECT_GT(errors.against_float, 1e-3) << to_string(desc);
      EXPECT_LT(errors.against_twin, 2e-6) << to_string(desc);
    }
}

// The tuner never crosses modes: int8 descriptors get only int8 variants, float ones only
// float variants, and each generator refuses the other mode's variants.
TEST(X86Int8Registry, ComputeModesNeverCross) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  testing::ScopedEnvironment environment("LOWBIT_ISA", std::nullopt);
  for (const char* m : {"1", "16", "0"}) {
    const OpDesc int8 = parse_descriptor(std::string("m=") + m + ",n=4096,k=4096,group=128,act=bf16,compute=int8");
    OpDesc floating = int8;
    floating.compute = Compute::floating;
    const std::vector<X86Variant> int8_variants = candidates(int8, 2);
    EXPECT_GE(int8_variants.size(), 4u);
    for (const X86Variant& variant : int8_variants) {
      EXPECT_TRUE(computes_int8(variant.isa)) << variant_name(int8, variant);  // VNNI, and AMX-INT8 where present
      EXPECT_TRUE(is_valid(int8, variant)) << variant_name(int8, variant);
      EXPECT_FALSE(is_valid(floating, variant).ok) << variant_name(floating, variant);
      EXPECT_EQ(variant_from_json(to_json(variant)), variant);
    }
    EXPECT_TRUE(computes_int8(heuristic(int8, 2).isa));
    for (const X86Variant& variant : candidates(floating, 2)) {
      EXPECT_FALSE(computes_int8(variant.isa));
      EXPECT_FALSE(is_valid(int8, variant).ok) << variant_name(int8, variant);
    }
    EXPECT_FALSE(computes_int8(heuristic(floating, 2).isa));
  }
  const OpDesc int8 = parse_descriptor("m=1,n=4096,k=4096,group=128,compute=int8");
  // M=1 without tuning: one panel 8 KB ahead on two threads (the developer VM's tuned winner), four
  // panels 2 KB ahead each on more (the Xeon's, measured at 4, 8 and 16 threads):
  // block_program.h, heuristic_avx512_variant.
  EXPECT_EQ(variant_name(int8, heuristic(int8, 2)), "x86_avx512vnni_w4g128_n1m1k2_t2_p8192");
  EXPECT_EQ(variant_name(int8, heuristic(int8, 4)), "x86_avx512vnni_w4g128_n4m1k2_t4_p2048");
  EXPECT_EQ(variant_name(int8, heuristic(int8, 8)), "x86_avx512vnni_w4g128_n4m1k2_t8_p2048");
  EXPECT_EQ(variant_name(int8, heuristic(int8, 16)), "x86_avx512vnni_w4g128_n4m1k2_t16_p2048");
  const OpDesc bf16 = parse_descriptor("m=1,n=4096,k=4096,group=128,act=bf16");
  if (!cpu_info().has("amx_bf16")) {
    EXPECT_EQ(variant_name(bf16, heuristic(bf16, 2)), "x86_avx512bf16_w4g128_n1m1k2_t2_p8192");
    EXPECT_EQ(variant_name(bf16, heuristic(bf16, 4)), "x86_avx512bf16_w4g128_n4m1k2_t4_p2048");
    EXPECT_EQ(variant_name(bf16, heuristic(bf16, 8)), "x86_avx512bf16_w4g128_n4m1k2_t8_p2048");
    EXPECT_EQ(variant_name(bf16, heuristic(bf16, 16)), "x86_avx512bf16_w4g128_n4m1k2_t16_p2048");
  }
  // M=2..4 without tuning: compute=float takes four panels of two rows on two threads (the
  // developer VM's tuned block at M=4), two panels of M rows on more; compute=int8 two of M rows.
  const OpDesc int8_m4 = parse_descriptor("m=4,n=4096,k=4096,group=128,compute=int8");
  EXPECT_EQ(variant_name(int8_m4, heuristic(int8_m4, 2)), "x86_avx512vnni_w4g128_n2m4k2_t2");
  EXPECT_EQ(variant_name(int8_m4, heuristic(int8_m4, 16)), "x86_avx512vnni_w4g128_n2m4k2_t16");
  const OpDesc bf16_m2 = parse_descriptor("m=2,n=4096,k=4096,group=128,act=bf16");
  if (!cpu_info().has("amx_bf16")) {
    EXPECT_EQ(variant_name(bf16_m2, heuristic(bf16_m2, 2)), "x86_avx512bf16_w4g128_n4m2k2_t2");
    EXPECT_EQ(variant_name(bf16_m2, heuristic(bf16_m2, 16)), "x86_avx512bf16_w4g128_n2m2k2_t16");
  }
  // The AMX families are keyed only where the CPU has them (test_x86_amx*.cpp check that case).
  if (!cpu_info().has("amx_bf16") && !cpu_info().has("amx_int8")) {
    EXPECT_EQ(generator_version(), "x86_avx512_float@4+x86_avx512_vnni_int8@2+x86_avx2_float@1+x86_avx2_int8@1");
  }
}

// get_kernel (tuned and heuristic) serves an int8 descriptor with an int8 kernel that passes.
TEST(X86Int8Registry, GetKernelServesInt8WithInt8) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  testing::ScopedEnvironment environment("LOWBIT_ISA", std::nullopt);
  const OpDesc desc = parse_descriptor("m=3,n=80,k=384,bits=4,group=128,zero=int,act=bf16,compute=int8");
  for (OnMiss on_miss : {OnMiss::tune, OnMiss::heuristic}) {
    GetOptions options;
    options.use_cache = false;
    options.on_miss = on_miss;
    options.max_threads = 2;
    const ResolvedKernel resolved = get_kernel(desc, options);
    EXPECT_NE(resolved.kernel->name().find("avx512vnni"), std::string::npos) << resolved.kernel->name();
    const std::string failure = testing::check_against_reference(*resolved.kernel, 3, "get_kernel int8");
    EXPECT_TRUE(failure.empty()) << failure;
  }
  OpDesc floating = desc;
  floating.compute = Compute::floating;
  GetOptions options;
  options.use_cache = false;
  options.max_threads = 2;
  EXPECT_EQ(get_kernel(floating, options).kernel->name().find("avx512vnni"), std::string::npos);
}

// LOWBIT_ISA: avx512 and avx512_vnni both select the int8 generator for compute=int8, avx2 the
// AVX2 int8 one; avx512_vnni has no float path: refused with the reason.
TEST(X86Int8Registry, IsaRuleForInt8) {
  LOWBIT_SKIP_WITHOUT_VNNI();
  const OpDesc int8 = parse_descriptor("m=1,n=64,k=256,group=64,compute=int8");
  const OpDesc floating = parse_descriptor("m=1,n=64,k=256,group=64");
  for (const char* isa : {"avx512", "avx512_vnni"}) {
    testing::ScopedEnvironment environment("LOWBIT_ISA", isa);
    EXPECT_TRUE(supports(int8)) << isa << ": " << supports(int8).reason;
    EXPECT_EQ(heuristic(int8, 2).isa, X86Isa::avx512_vnni) << isa;
  }
  EXPECT_EQ(generator_version("avx512_vnni"), "x86_avx512_vnni_int8@2");
  EXPECT_EQ(generator_version("avx512"), "x86_avx512_float@4+x86_avx512_vnni_int8@2");
  EXPECT_TRUE(supports(int8, "avx2")) << supports(int8, "avx2").reason;
  EXPECT_TRUE(is_avx2_int8(heuristic(int8, 2, "avx2").isa));
  const Validity vnni_float = supports(floating, "avx512_vnni");
  EXPECT_FALSE(vnni_float.ok);
  EXPECT_NE(vnni_float.reason.find("compute=float"), std::string::npos) << vnni_float.reason;
  EXPECT_TRUE(supports(floating, "avx512").ok);
}

// A CPU without AVX512-VNNI is served compute=int8 by the AVX2 int8 generator; one without
// AVX2 either is refused with both missing features named.
TEST(X86Int8Registry, CpuWithoutVnniFallsBackToAvx2) {
  const OpDesc desc = parse_descriptor("m=1,n=64,k=128,group=64,compute=int8");
  CpuInfo no_vnni = cpu_info();
  no_vnni.isa = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"};
  EXPECT_TRUE(supports(desc, "", no_vnni)) << supports(desc, "", no_vnni).reason;
  EXPECT_TRUE(supports(parse_descriptor("m=1,n=64,k=128,group=64"), "", no_vnni).ok);
  CpuInfo no_avx2 = no_vnni;
  no_avx2.isa = {"avx512f", "avx512bw", "avx512vl"};
  const Validity validity = supports(desc, "", no_avx2);
  EXPECT_FALSE(validity.ok);
  EXPECT_NE(validity.reason.find("lacks avx512_vnni"), std::string::npos) << validity.reason;
  EXPECT_NE(validity.reason.find("lacks avx2"), std::string::npos) << validity.reason;
}

}  // namespace
}  // namespace lowbit::x86
