// The AMX-INT8 kernels (compute=int8) against their exact twin reference_int8 and the float
// reference (on a CPU with AMX; skipped with the reason elsewhere), and what runs anywhere:
// emission of every block and width, is_valid's reasons, no candidates without AMX, a forced
// LOWBIT_ISA=amx refused for compute=int8 with the missing feature named.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "codegen/x86/amx_int8_generator.h"
#include "codegen/x86/registry.h"
#include "codegen/x86/x86_kernel.h"
#include "core/amx_permission.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/problem.h"
#include "lowbit/reference.h"
#include "lowbit/tolerance.h"
#include "tests/support/test_support.h"

namespace lowbit::x86 {
namespace {

bool cpu_has_amx_int8() {
  for (const char* feature : {"amx_tile", "amx_int8", "avx512f", "avx512bw", "avx512vl"})
    if (!cpu_info().has(feature)) return false;
  return true;
}

#define LOWBIT_SKIP_WITHOUT_AMX_INT8()                                                                        \
  if (!cpu_has_amx_int8()) GTEST_SKIP() << "this CPU lacks AMX-INT8 (or AVX-512 F/BW/VL): AMX kernels cannot run here"; \
  if (!request_amx_permission().granted) GTEST_SKIP() << request_amx_permission().reason

// A CPU that has every feature the generator asks for, for the reasons checked before the
// permission (which is asked of the real kernel).
CpuInfo amx_cpu() {
  CpuInfo cpu = cpu_info();
  cpu.isa = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"};
  return cpu;
}
CpuInfo cpu_without_amx() {
  CpuInfo cpu = cpu_info();
  cpu.isa = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"};
  return cpu;
}

constexpr int every_bits[] = {2, 3, 4, 8};

// Every tile block the generator accepts: one 16-row tile by 1..3 panels, two by 1..2.
std::vector<X86Variant> every_block() {
  std::vector<X86Variant> variants;
  for (int rows : {amx_tile_rows, amx_max_rows})
    for (int panels = 1; amx_block_fits(rows / amx_tile_rows, panels); ++panels)
      variants.push_back(X86Variant{X86Isa::amx_int8, panels, rows, 1, 2});
  return variants;
}

// Runs `kernel` (built for m=0: one kernel serves every m) at m rows on a fresh random problem
// (seed from the case name) with poisoned, guarded outputs; checks the twin reference_int8
// (int8_kernel_tolerance: only the fp32 epilogue differs) and the float reference
// (tolerance(desc)). Returns "" or the failure with its reproducer.
std::string check_int8(const OpDesc& desc, const X86Variant& variant, const X86Kernel& kernel, int64_t m) {
  const testing::GuardedRun run =
      testing::run_guarded(kernel, m, to_string(desc) + " " + variant_name(desc, variant) + " m=" + std::to_string(m));
  const std::string& where = run.where;
  if (!run.guards_intact) return where + ": guard bytes overwritten";
  const Problem& problem = run.problem;
  const void* bias = run.bias();
  const float* eq_scale = run.eq_scale();
  const void* y = run.output();
  const double twin =
      relative_error(y, desc.out, reference_int8(desc, m, problem.x.data(), problem.weights, bias, eq_scale));
  if (!(twin <= int8_kernel_tolerance(desc)))
    return where + ": error against reference_int8 " + std::to_string(twin) + " > " +
           std::to_string(int8_kernel_tolerance(desc));
  const double against_float =
      relative_error(y, desc.out, reference_matmul(desc, m, problem.x.data(), problem.weights, bias, eq_scale));
  if (!(against_float <= tolerance(desc)))
    return where + ": error against the float reference " + std::to_string(against_float) + " > " +
           std::to_string(tolerance(desc));
  return {};
}

// Every block x bits x group (group=32: chunks of 32 k; group=-1 is quantized in blocks of 128
// k: K=131, 143, 129 leave K tails inside a partial chunk, 8-bit an odd last step, 3 a tail
// without a whole chunk, 300 two whole blocks and a tail past a whole chunk, 64 and 256 no
// tail) x zero point x output dtype, N=37 (two panels and a 5-column tail), M around the tile
// heights.
TEST(X86AmxInt8, EveryBlockFormatAndDtypeAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AMX_INT8();
  int checked = 0;
  for (int bits : every_bits)
    for (const char* shape : {"group=32,k=96", "group=64,k=192", "group=128,k=256", "group=256,k=512",
                              "group=-1,k=131", "group=-1,k=143", "group=-1,k=129", "group=-1,k=3", "group=-1,k=64",
                              "group=-1,k=300", "group=-1,k=256"})
      for (const char* zero : {"none", "int", "float"})
        for (const char* out : {"fp32", "bf16", "fp16"}) {
          const std::string bias = std::string(zero) == "int" ? "1" : "0";
          const OpDesc desc = parse_descriptor("m=0,n=37,act=bf16,compute=int8,bits=" + std::to_string(bits) + "," +
                                               shape + ",zero=" + zero + ",out=" + out + ",bias=" + bias);
          for (const X86Variant& variant : every_block()) {
            ASSERT_TRUE(is_valid(desc, variant)) << is_valid(desc, variant).reason;
            const X86Kernel kernel(desc, variant);
            for (int64_t m : {1, 2, 15, 16, 17, 33}) {
              const std::string failure = check_int8(desc, variant, kernel, m);
              ASSERT_TRUE(failure.empty()) << failure;
              ++checked;
            }
          }
        }
  EXPECT_EQ(checked, 4 * 11 * 3 * 3 * 5 * 6);
}

// Every activation dtype, with and without the equalization scale (folded into the shared
// quantization pass) and bias, at two blocks.
TEST(X86AmxInt8, EveryActivationDtypeAndEqualizationScale) {
  LOWBIT_SKIP_WITHOUT_AMX_INT8();
  for (int bits : every_bits)
    for (const char* act : {"fp32", "bf16", "fp16"})
      for (const char* eqscale : {"0", "1"})
        for (const char* shape : {"group=64,k=192,zero=int,bias=1", "group=-1,k=141,zero=none,bias=0",
                                  "group=32,k=96,zero=float,bias=1"}) {
          const OpDesc desc = parse_descriptor("m=0,n=37,out=fp32,compute=int8,bits=" + std::to_string(bits) + "," +
                                               shape + ",act=" + act + ",eqscale=" + eqscale);
          for (const X86Variant& variant : {X86Variant{X86Isa::amx_int8, 3, 16, 1, 2},
                                            X86Variant{X86Isa::amx_int8, 2, 32, 1, 2}}) {
            const X86Kernel kernel(desc, variant);
            for (int64_t m : {1, 17, 40}) {
              const std::string failure = check_int8(desc, variant, kernel, m);
              ASSERT_TRUE(failure.empty()) << failure;
            }
          }
        }
}

// Larger shapes through several threads: K=8256 (not a multiple of 128), N=1000 (an 8-column
// tail), at the tuner's AMX candidates and the heuristic, M from 16 to 70.
TEST(X86AmxInt8, LargerShapesEveryCandidate) {
  LOWBIT_SKIP_WITHOUT_AMX_INT8();
  testing::ScopedEnvironment environment("LOWBIT_ISA", std::nullopt);
  for (const char* format : {"bits=4,group=64,zero=int", "bits=4,group=-1,zero=none", "bits=3,group=64,zero=float",
                             "bits=8,group=32,zero=int", "bits=2,group=-1,zero=int"}) {
    const OpDesc desc =
        parse_descriptor(std::string("m=0,n=1000,k=8256,act=bf16,out=bf16,bias=1,compute=int8,") + format);
    for (int64_t m : {16, 31, 70}) {
      OpDesc shaped = desc;
      shaped.m = m;
      std::vector<X86Variant> variants;
      for (const X86Variant& variant : candidates(shaped, 4))
        if (variant.isa == X86Isa::amx_int8) variants.push_back(variant);
      ASSERT_FALSE(variants.empty()) << to_string(shaped);
      EXPECT_EQ(heuristic(shaped, 4).isa, X86Isa::amx_int8) << to_string(shaped);
      for (const X86Variant& variant : variants) {
        const X86Kernel kernel(desc, variant);
        const std::string failure = check_int8(desc, variant, kernel, m);
        ASSERT_TRUE(failure.empty()) << failure;
      }
    }
  }
}

// The integer sums are exact: the largest codes against the largest |xq| (x of one sign, so
// every block quantizes to +-127: the most negative s8 products tdpbsud sees) in the widest
// block (group=256) give the twin's result to fp32 rounding, on every row of two tiles.
TEST(X86AmxInt8, ExtremeCodesAreExact) {
  LOWBIT_SKIP_WITHOUT_AMX_INT8();
  for (int bits : every_bits) {
    const OpDesc desc = parse_descriptor("n=32,k=512,group=256,zero=int,act=fp32,out=fp32,compute=int8,bits=" +
                                         std::to_string(bits));
    const int64_t m = 20;
    const X86Kernel kernel(desc, X86Variant{X86Isa::amx_int8, 2, 32, 1, 1});
    Problem problem = make_random_problem(desc, m, seed_for("amx int8 extreme codes"));
    const uint8_t top = static_cast<uint8_t>((1 << bits) - 1);
    for (int64_t i = 0; i < desc.n * desc.k; ++i) problem.weights.q[i] = top;
    problem.packed = pack_native(desc, problem.weights);
    std::vector<float> x(static_cast<std::size_t>(m * desc.k), -0.75f);
    std::vector<float> y(static_cast<std::size_t>(m * desc.n));
    kernel.run(RunArgs{x.data(), view(problem.packed), nullptr, nullptr, y.data(), m});
    const std::vector<double> twin = reference_int8(desc, m, x.data(), problem.weights, nullptr, nullptr);
    EXPECT_LE(relative_error(y.data(), DType::fp32, twin), 1e-6) << "bits=" << bits;
  }
}

// On an AMX machine the family is timed beside VNNI from one tile of rows on, is the no-tune
// choice there, and is named in the key; compute modes still never cross.
TEST(X86AmxInt8, RegistryOffersAmxInt8BesideVnni) {
  LOWBIT_SKIP_WITHOUT_AMX_INT8();
  testing::ScopedEnvironment environment("LOWBIT_ISA", std::nullopt);
  EXPECT_NE(generator_version().find("x86_amx_int8@1+x86_avx512_vnni_int8@2"), std::string::npos)
      << generator_version();
  const OpDesc large = parse_descriptor("m=64,n=4096,k=4096,group=128,act=bf16,compute=int8");
  int amx = 0;
  int vnni = 0;
  for (const X86Variant& variant : candidates(large, 4)) {
    EXPECT_TRUE(computes_int8(variant.isa)) << variant_name(large, variant);
    EXPECT_TRUE(is_valid(large, variant)) << variant_name(large, variant);
    amx += variant.isa == X86Isa::amx_int8;
    vnni += variant.isa == X86Isa::avx512_vnni;
  }
  EXPECT_EQ(amx, 5);
  EXPECT_GT(vnni, 0);
  EXPECT_EQ(heuristic(large, 4).isa, X86Isa::amx_int8);
  OpDesc floating = large;
  floating.compute = Compute::floating;
  for (const X86Variant& variant : candidates(floating, 4)) EXPECT_NE(variant.isa, X86Isa::amx_int8);
  const OpDesc single = parse_descriptor("m=1,n=4096,k=4096,group=128,act=bf16,compute=int8");
  for (const X86Variant& variant : candidates(single, 4)) EXPECT_EQ(variant.isa, X86Isa::avx512_vnni);
  EXPECT_EQ(heuristic(single, 4).isa, X86Isa::avx512_vnni);
  // Forced, AMX answers at any M with the mode's own family.
  EXPECT_EQ(heuristic(single, 4, "amx").isa, X86Isa::amx_int8);
  EXPECT_EQ(heuristic(floating, 4, "amx").isa, X86Isa::amx_bf16);
}

// Emission needs no AMX (only running does): every block of every width, with group=32 (chunks
// of 32 k), whole blocks, and K tails (8-bit: an odd last step), assembles (Xbyak throws on an
// operand it cannot encode) and fits the code buffer.
TEST(X86AmxInt8, EmitsEveryBlockAndWidthAnywhere) {
  for (int bits : every_bits)
    for (const char* shape : {"group=128,k=256,zero=int,out=bf16,bias=1,act=fp16",
                              "group=32,k=96,zero=float,out=fp32,act=fp32",
                              "group=-1,k=131,zero=none,out=fp16,act=bf16",
                              "group=-1,k=3,zero=int,out=bf16,act=bf16,bias=1"}) {
      const OpDesc desc = parse_descriptor("m=0,n=37,compute=int8,bits=" + std::to_string(bits) + "," + shape);
      for (const X86Variant& variant : every_block()) {
        const AmxInt8Program program(desc, variant);
        for (int panels = 1; panels <= variant.n_panels; ++panels)
          for (int rows = 1; rows <= variant.m_rows; ++rows)
            EXPECT_NE(reinterpret_cast<const void*>(program.block(panels, rows)), nullptr);
        EXPECT_LT(program.getSize(), std::size_t{1} << 20) << variant_name(desc, variant);
      }
    }
}

TEST(X86AmxInt8, VariantNameAndJson) {
  const OpDesc desc = parse_descriptor("m=64,n=4096,k=4096,group=128,compute=int8");
  const X86Variant variant{X86Isa::amx_int8, 3, 16, 1, 2};
  EXPECT_EQ(variant_name(desc, variant), "x86_amxint8_w4g128_n3m16k1_t2");
  EXPECT_EQ(variant_from_json(to_json(variant)), variant);
  EXPECT_EQ(to_json(variant)["isa"], "amx_int8");
  EXPECT_TRUE(computes_int8(X86Isa::amx_int8));
  EXPECT_FALSE(is_avx512(X86Isa::amx_int8));
  EXPECT_FALSE(reads_bf16_x(X86Isa::amx_int8));
}

TEST(X86AmxInt8, IsValidNamesWhatIsWrong) {
  const AmxInt8Generator generator;
  const CpuInfo cpu = amx_cpu();
  const OpDesc desc = parse_descriptor("m=64,n=64,k=128,group=64,act=bf16,compute=int8");
  const X86Variant good{X86Isa::amx_int8, 2, 16, 1, 1};
  auto reason = [&](const OpDesc& tested, const X86Variant& variant, const CpuInfo& with = amx_cpu()) {
    const Validity validity = generator.is_valid(tested, variant, with);
    EXPECT_FALSE(validity.ok) << to_string(tested) << " " << variant_name(tested, variant);
    return validity.reason;
  };
  EXPECT_NE(reason(parse_descriptor("m=64,n=64,k=128,act=bf16"), good).find("compute=int8 only"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_int8, 1, 8, 1, 1}).find("m_rows must be 16 or 32"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_int8, 3, 32, 1, 1}).find("8 tile registers"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_int8, 4, 16, 1, 1}).find("8 tile registers"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_int8, 1, 16, 2, 1}).find("k_unroll must be 1"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::amx_int8, 1, 16, 1, 0}).find("threads must be >= 1"), std::string::npos);
  EXPECT_NE(reason(desc, X86Variant{X86Isa::avx512_vnni, 1, 16, 1, 1}).find("amx_int8 flavour only"),
            std::string::npos);
  CpuInfo no_tiles = cpu;
  no_tiles.isa = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"};
  EXPECT_NE(reason(desc, good, no_tiles).find("lacks amx_tile"), std::string::npos);
  CpuInfo no_int8_tiles = cpu;
  no_int8_tiles.isa = {"avx512f", "avx512bw", "avx512vl", "amx_tile", "amx_bf16"};
  EXPECT_NE(reason(desc, good, no_int8_tiles).find("lacks amx_int8"), std::string::npos);
  // The other AMX family refuses int8 descriptors, and this one the other's flavour.
  EXPECT_FALSE(AmxBf16Generator().is_valid(desc, X86Variant{X86Isa::amx_bf16, 2, 16, 1, 1}, cpu).ok);
  // Everything else right: valid where the kernel grants tile state, else the kernel's answer.
  const Validity validity = generator.is_valid(desc, good, cpu);
  if (request_amx_permission().granted) {
    EXPECT_TRUE(validity.ok) << validity.reason;
  } else {
    EXPECT_FALSE(validity.ok);
    EXPECT_NE(validity.reason.find("may not use AMX tiles"), std::string::npos) << validity.reason;
  }
}

TEST(X86AmxInt8, NoCandidatesWithoutAmxOrRows) {
  const AmxInt8Generator generator;
  for (const char* m : {"0", "16", "64"}) {
    const OpDesc desc = parse_descriptor(std::string("m=") + m + ",n=4096,k=4096,group=128,compute=int8");
    EXPECT_TRUE(generator.candidates(desc, cpu_without_amx(), 4).empty()) << m;
  }
  // Below one tile of rows nothing is offered even with AMX (the rows are checked first, so
  // this holds on any machine).
  EXPECT_TRUE(generator.candidates(parse_descriptor("m=15,n=64,k=128,compute=int8"), amx_cpu(), 4).empty());
  if (!cpu_has_amx_int8()) {
    testing::ScopedEnvironment environment("LOWBIT_ISA", std::nullopt);
    for (const X86Variant& variant : candidates(parse_descriptor("m=64,n=4096,k=4096,compute=int8"), 2))
      EXPECT_NE(variant.isa, X86Isa::amx_int8);
  }
}

// LOWBIT_ISA=amx (or isa=amx) with compute=int8 selects this family: on a CPU without AMX it is
// refused naming the missing feature (no longer "no int8 kernels"); avx2 selects the AVX2 int8
// generator.
TEST(X86AmxInt8, ForcedAmxSelectsItAndIsRefusedWithoutAmx) {
  const OpDesc desc = parse_descriptor("m=64,n=64,k=128,group=64,compute=int8");
  const Validity forced = supports(desc, "amx", cpu_without_amx());
  EXPECT_FALSE(forced.ok);
  EXPECT_NE(forced.reason.find("amx kernels were asked for (isa=amx), but this CPU lacks amx_tile"), std::string::npos)
      << forced.reason;
  EXPECT_EQ(generator_version("amx"), "x86_amx_bf16@4+x86_amx_int8@1");
  const Validity avx2 = supports(desc, "avx2", cpu_without_amx());
  EXPECT_TRUE(avx2.ok) << avx2.reason;
  if (!cpu_has_amx_int8()) {
    testing::ScopedEnvironment environment("LOWBIT_ISA", "amx");
    const Validity refused = supports(desc);
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.reason.find("isa=$LOWBIT_ISA"), std::string::npos) << refused.reason;
    EXPECT_NE(refused.reason.find("lacks amx"), std::string::npos) << refused.reason;
    EXPECT_TRUE(candidates(desc, 2).empty());
    EXPECT_THROW(heuristic(desc, 2), Unsupported);
    EXPECT_THROW(X86Kernel(desc, X86Variant{X86Isa::amx_int8, 1, 16, 1, 1}), Unsupported);
  }
}

}  // namespace
}  // namespace lowbit::x86
