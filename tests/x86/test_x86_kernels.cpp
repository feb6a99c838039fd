// Every x86 variant against the reference: random inputs from seeds named by the case,
// poisoned outputs with guard bytes, odd shapes (N and K tails, M around the block height).
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "codegen/x86/avx2_float_generator.h"
#include "codegen/x86/avx512_float_generator.h"
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
  if (desc.act == DType::bf16 && !desc.eqscale && cpu_info().has("avx512_bf16")) flavours.push_back(X86Isa::avx512_bf16);
  return flavours;
}

constexpr int every_bits[] = {2, 3, 4, 8};

// Sweeps every register block and unroll of each width at one odd shape.
// N=37: two whole panels and a 5-column tail; K=160: five groups of 32 (3-bit: ten 16-k steps).
TEST(X86Kernels, EveryRegisterBlockAndUnrollAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  int checked = 0;
  for (int bits : every_bits) {
    OpDesc desc = parse_descriptor("n=37,k=160,group=32,zero=int,act=bf16,bias=1,bits=" + std::to_string(bits));
    for (X86Isa isa : flavours_for(desc))
      for (int panels = 1; panels <= 4; ++panels)
        for (int rows = 1; panels * rows <= max_block_cells(bits); ++rows)
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
  }
  EXPECT_GT(checked, 400);
}

// Every dtype, zero point, group size and K tail of each width. The group=-1 K values leave
// every remainder a width's step can have: 131/130/129/3 (4-bit: 3, 2, 1, 3), 143 and 141
// (3-bit: 15 and 13; 2-bit: 7 and 5), and odd K for 8-bit.
TEST(X86Kernels, EveryFormatDtypeAndKTail) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  int checked = 0;
  for (int bits : every_bits)
    for (const char* act : {"fp32", "bf16", "fp16"})
      for (const char* out : {"fp32", "bf16", "fp16"})
        for (const char* zero : {"none", "int", "float"})
          for (const char* shape : {"group=32,k=96", "group=64,k=192", "group=128,k=256", "group=256,k=512",
                                    "group=-1,k=131", "group=-1,k=130", "group=-1,k=129", "group=-1,k=3",
                                    "group=-1,k=143", "group=-1,k=141"})
            for (const char* bias : {"0", "1"}) {
              OpDesc desc = parse_descriptor("n=21,bits=" + std::to_string(bits) + "," + shape + ",zero=" + zero +
                                             ",act=" + act + ",out=" + out + ",bias=" + bias);
              for (X86Isa isa : flavours_for(desc))
                for (int64_t m : {1, 3}) {
                  X86Variant variant{isa, 2, 2, 2, 2};
                  std::string failure = check_against_reference(desc, variant, m);
                  ASSERT_TRUE(failure.empty()) << failure;
                  ++checked;
                }
            }
  EXPECT_GT(checked, 4000);
}

// eqscale=1: the launcher's one pass over x multiplies by the scale; every width, dtype and
// zero point, a K tail, and the K=8256/N=1000 shape.
TEST(X86Kernels, EqualizationScaleIsFused) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  int checked = 0;
  for (int bits : every_bits)
    for (const char* act : {"fp32", "bf16", "fp16"})
      for (const char* out : {"fp32", "bf16"})
        for (const char* shape : {"group=64,k=192,zero=int", "group=-1,k=141,zero=none", "group=32,k=96,zero=float"}) {
          OpDesc desc = parse_descriptor("n=37,eqscale=1,bias=1,bits=" + std::to_string(bits) + "," + shape +
                                         ",act=" + act + ",out=" + out);
          for (X86Isa isa : flavours_for(desc))
            for (int64_t m : {1, 4}) {
              std::string failure = check_against_reference(desc, X86Variant{isa, 2, 3, 2, 2}, m);
              ASSERT_TRUE(failure.empty()) << failure;
              ++checked;
            }
        }
  EXPECT_EQ(checked, 4 * 3 * 2 * 3 * 2);
  OpDesc large = parse_descriptor("n=1000,k=8256,bits=4,group=64,zero=int,act=bf16,eqscale=1");
  for (int64_t m : {1, 5}) {
    OpDesc shaped = large;
    shaped.m = m;
    std::string failure = check_against_reference(large, heuristic(shaped, 2), m);
    ASSERT_TRUE(failure.empty()) << failure;
  }
  // The bf16 flavour would round x * scale back to bf16; it refuses, and nothing offers it.
  OpDesc bf16 = parse_descriptor("n=64,k=128,act=bf16,eqscale=1");
  EXPECT_FALSE(is_valid(bf16, X86Variant{X86Isa::avx512_bf16, 1, 1, 1, 1}).ok);
  for (const X86Variant& variant : candidates(bf16, 2)) EXPECT_EQ(variant.isa, X86Isa::avx512_fma);
  EXPECT_EQ(heuristic(bf16, 2).isa, X86Isa::avx512_fma);
}

// Codes at the ends of their range, where an inexact conversion shows first: 8-bit codes 255
// (256+q would round in bf16), every width's largest code against the largest zero point.
TEST(X86Kernels, ExtremeCodesAreExact) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  for (int bits : every_bits) {
    OpDesc desc = parse_descriptor("n=32,k=64,group=32,zero=int,act=bf16,out=fp32,bits=" + std::to_string(bits));
    for (X86Isa isa : flavours_for(desc)) {
      X86Kernel kernel(desc, X86Variant{isa, 1, 1, 1, 1});
      Problem problem = make_random_problem(desc, 1, seed_for("extreme codes"));
      const uint8_t top = static_cast<uint8_t>((1 << bits) - 1);
      for (int64_t i = 0; i < desc.n * desc.k; ++i) problem.weights.q[i] = i % 3 == 0 ? 0 : top;
      for (uint16_t& zero : problem.weights.zeros) zero = float_to_fp16(0.0f);
      problem.packed = pack_native(desc, problem.weights);
      std::vector<float> y(static_cast<std::size_t>(desc.n));
      RunArgs args{problem.x.data(), view(problem.packed), nullptr, nullptr, y.data(), 1};
      kernel.run(args);
      const std::vector<double> reference =
          reference_matmul(desc, 1, problem.x.data(), problem.weights, nullptr, nullptr);
      EXPECT_LE(relative_error(y.data(), DType::fp32, reference), 1e-6) << "bits=" << bits << " " << to_string(isa);
    }
  }
}

// The K=8256 (not a multiple of 128), N=1000 (a 8-column tail) shape of a reported issue, once per
// width and flavour, at the heuristic and the widest candidate.
TEST(X86Kernels, IssueShapesK8256N1000) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  struct Case {
    const char* format;
    std::vector<int64_t> rows;
  };
  const Case cases[] = {{"bits=4,group=32,act=fp32", {1, 3, 17}}, {"bits=4,group=64,act=bf16", {1, 3, 17}},
                        {"bits=4,group=-1,act=bf16", {1, 3, 17}}, {"bits=2,group=64,act=bf16", {1, 5}},
                        {"bits=3,group=32,act=fp16", {1, 5}},     {"bits=8,group=-1,act=bf16", {1, 5}}};
  for (const Case& test : cases) {
    OpDesc desc = parse_descriptor(std::string("n=1000,k=8256,zero=int,") + test.format);
    for (int64_t m : test.rows) {
      OpDesc shaped = desc;
      shaped.m = m;
      for (X86Variant variant : {heuristic(shaped, 2), candidates(shaped, 2).back()}) {
        std::string failure = check_against_reference(desc, variant, m);
        ASSERT_TRUE(failure.empty()) << failure;
      }
    }
  }
}

bool cpu_serves_avx2() { return cpu_info().has("avx2") && cpu_info().has("fma") && cpu_info().has("f16c"); }

#define LOWBIT_SKIP_WITHOUT_AVX2() \
  if (!cpu_serves_avx2()) GTEST_SKIP() << "this CPU lacks AVX2/FMA/F16C: the AVX2 fallback cannot run here"

// The AVX2 fallback runs on this machine whatever it has beyond AVX2: every register block and
// unroll of each width at the odd shape.
TEST(X86Avx2Kernels, EveryRegisterBlockAndUnrollAtOddShapes) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  int checked = 0;
  for (int bits : every_bits) {
    OpDesc desc = parse_descriptor("n=37,k=160,group=32,zero=int,act=bf16,bias=1,bits=" + std::to_string(bits));
    for (int panels = 1; panels <= 2; ++panels)
      for (int rows = 1; panels * rows <= avx2_max_block_cells(bits); ++rows)
        for (int unroll : {1, 2, 3, 4}) {
          X86Variant variant{X86Isa::avx2_fma, panels, rows, unroll, 2};
          ASSERT_TRUE(is_valid(desc, variant)) << is_valid(desc, variant).reason;
          for (int64_t m : {1, 2, 3}) {
            std::string failure = check_against_reference(desc, variant, m);
            ASSERT_TRUE(failure.empty()) << failure;
            ++checked;
          }
        }
  }
  EXPECT_EQ(checked, (3 + 3 + 3 + 1) * 4 * 3);
}

// Every dtype, zero point, bias and N/K tail of each width through the fallback. N=21 leaves a
// 5-column tail (in the first half); N=29 a 13-column one (a whole half and 5 columns).
TEST(X86Avx2Kernels, EveryFormatDtypeAndTail) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  int checked = 0;
  for (int bits : every_bits)
    for (const char* act : {"fp32", "bf16", "fp16"})
      for (const char* out : {"fp32", "bf16", "fp16"})
        for (const char* zero : {"none", "int", "float"})
          for (const char* shape : {"n=21,group=64,k=192", "n=29,group=-1,k=141", "n=32,group=-1,k=3"}) {
            OpDesc desc = parse_descriptor("bits=" + std::to_string(bits) + "," + shape + ",zero=" + zero +
                                           ",act=" + act + ",out=" + out + ",bias=1,eqscale=" +
                                           (bits == 2 ? "1" : "0"));
            X86Variant variant{X86Isa::avx2_fma, 1, bits == 3 ? 1 : 2, 2, 2};
            std::string failure = check_against_reference(desc, variant, 3);
            ASSERT_TRUE(failure.empty()) << failure;
            ++checked;
          }
  EXPECT_EQ(checked, 4 * 3 * 3 * 3 * 3);
}

TEST(X86Avx2Kernels, IssueShapeK8256N1000) {
  LOWBIT_SKIP_WITHOUT_AVX2();
  OpDesc desc = parse_descriptor("n=1000,k=8256,bits=4,group=64,zero=int,act=bf16");
  for (int64_t m : {1, 5})
    for (X86Variant variant : {X86Variant{X86Isa::avx2_fma, 2, 1, 2, 2}, X86Variant{X86Isa::avx2_fma, 1, 2, 4, 2}}) {
      std::string failure = check_against_reference(desc, variant, m);
      ASSERT_TRUE(failure.empty()) << failure;
    }
}

// LOWBIT_ISA (or the isa argument, which GetOptions.isa and --isa fill) restricts the registry
// to one family; unset, the AVX2 fallback only competes where AVX-512 does not serve.
TEST(X86Registry, IsaForcesAFamily) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const OpDesc desc = parse_descriptor("m=1,n=4096,k=4096,group=128,act=bf16");
  {
    testing::ScopedEnvironment environment("LOWBIT_ISA", std::nullopt);
    // The AMX family is keyed only where the CPU has it (test_x86_amx.cpp checks that case).
    if (!cpu_info().has("amx_bf16")) {
      EXPECT_EQ(generator_version(), "x86_avx512_float@4+x86_avx512_vnni_int8@2+x86_avx2_float@1+x86_avx2_int8@1");
    }
    for (const X86Variant& variant : candidates(desc, 2)) EXPECT_TRUE(is_avx512(variant.isa));
    EXPECT_TRUE(is_avx512(heuristic(desc, 2).isa));
  }
  {
    testing::ScopedEnvironment environment("LOWBIT_ISA", "avx2");
    EXPECT_EQ(generator_version(), "x86_avx2_float@1+x86_avx2_int8@1");
    EXPECT_TRUE(supports(desc)) << supports(desc).reason;
    const std::vector<X86Variant> variants = candidates(desc, 2);
    EXPECT_EQ(variants.size(), 6u);  // n1m1 and n2m1 (M=1), unroll 1, 2, 4
    for (const X86Variant& variant : variants) {
      EXPECT_EQ(variant.isa, X86Isa::avx2_fma);
      EXPECT_TRUE(is_valid(desc, variant)) << variant_name(desc, variant);
      EXPECT_EQ(variant_from_json(to_json(variant)), variant);
    }
    EXPECT_EQ(variant_name(desc, heuristic(desc, 2)), "x86_avx2fma_w4g128_n2m1k2_t2");
    // The argument wins over the environment.
    EXPECT_TRUE(is_avx512(heuristic(desc, 2, "avx512").isa));
    EXPECT_EQ(generator_version("avx512"), "x86_avx512_float@4+x86_avx512_vnni_int8@2");
  }
  {
    testing::ScopedEnvironment environment("LOWBIT_ISA", "sse4");
    try {
      supports(desc);
      FAIL() << "LOWBIT_ISA=sse4 was accepted";
    } catch (const InvalidArgument& error) {
      EXPECT_EQ(error.field(), "LOWBIT_ISA");
      EXPECT_NE(std::string(error.what()).find("allowed: avx2, avx512"), std::string::npos) << error.what();
    }
  }
  try {
    candidates(desc, 2, "neon");
    FAIL() << "isa=neon was accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.field(), "isa") << error.what();
  }
}

// A forced family the CPU lacks is refused with the missing feature; unforced, a CPU with only
// AVX2 is served by the fallback.
TEST(X86Registry, ForcedIsaTheCpuLacksIsRefusedWithTheReason) {
  const OpDesc desc = parse_descriptor("m=1,n=64,k=128,group=64");
  CpuInfo avx2_only = cpu_info();
  avx2_only.isa = {"avx2", "fma", "f16c"};
  const Validity forced = supports(desc, "avx512", avx2_only);
  EXPECT_FALSE(forced.ok);
  EXPECT_NE(forced.reason.find("lacks avx512f"), std::string::npos) << forced.reason;
  EXPECT_TRUE(supports(desc, "", avx2_only).ok) << supports(desc, "", avx2_only).reason;
  CpuInfo avx_only = cpu_info();
  avx_only.isa = {"f16c"};
  const Validity neither = supports(desc, "", avx_only);
  EXPECT_FALSE(neither.ok);
  EXPECT_NE(neither.reason.find("avx512f"), std::string::npos) << neither.reason;
  EXPECT_NE(neither.reason.find("avx2"), std::string::npos) << neither.reason;
}

// Prefetching changes no arithmetic: every distance, at odd shapes (an N tail, five groups,
// the group=-1 K tail, 3-bit's 96-byte steps, unrolls that leave steps over, a split K), passes
// the reference and gives the same bits as the variant without prefetch.
TEST(X86Kernels, PrefetchChangesNoBits) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  int checked = 0;
  for (int bits : every_bits)
    for (const char* shape : {"group=32,k=160", "group=-1,k=141"}) {
      const OpDesc desc = parse_descriptor(fmt::format("n=37,{},zero=int,act=bf16,bias=1,bits={}", shape, bits));
      OpDesc run_desc = desc;
      run_desc.m = 0;
      for (X86Isa isa : flavours_for(desc))
        for (int panels : {1, 4})
          for (int unroll : {1, 2, 3})
            for (int split_k : {1, 2})
              for (int prefetch : {64, 1024, max_prefetch_bytes}) {
                const X86Variant plain{isa, panels, 1, unroll, 2, split_k};
                if (!is_valid(desc, plain)) continue;  // group=-1, k=141 has too few split units
                X86Variant prefetched = plain;
                prefetched.prefetch = prefetch;
                ASSERT_TRUE(is_valid(desc, prefetched)) << is_valid(desc, prefetched).reason;
                const X86Kernel with(run_desc, prefetched);
                const X86Kernel without(run_desc, plain);
                for (int64_t m : {1, 2}) {
                  const std::string name = to_string(desc) + " " + variant_name(desc, prefetched) + " m=" + std::to_string(m);
                  const std::string failure = testing::check_against_reference(with, m, name);
                  ASSERT_TRUE(failure.empty()) << failure;
                  const testing::GuardedRun a = testing::run_guarded(with, m, name);
                  const testing::GuardedRun b = testing::run_guarded(without, m, name);
                  ASSERT_EQ(std::memcmp(a.output(), b.output(), a.out_bytes), 0) << a.where << ": bits differ";
                  ++checked;
                }
              }
    }
  EXPECT_GT(checked, 300);
}

TEST(X86Kernels, PrefetchIsRefusedWhereNotEmittedOrNotALineMultiple) {
  const OpDesc desc = parse_descriptor("m=1,n=64,k=128");
  for (int prefetch : {-64, 32, 100, max_prefetch_bytes + 64}) {
    X86Variant variant{X86Isa::avx512_fma, 1, 1, 1, 1};
    variant.prefetch = prefetch;
    const Validity validity = Avx512FloatGenerator().is_valid(desc, variant, cpu_info());
    EXPECT_FALSE(validity.ok) << prefetch;
    EXPECT_NE(validity.reason.find("multiple of 64"), std::string::npos) << validity.reason;
  }
  X86Variant avx2{X86Isa::avx2_fma, 1, 1, 1, 1};
  avx2.prefetch = 1024;
  const Validity validity = Avx2FloatGenerator().is_valid(desc, avx2, cpu_info());
  EXPECT_FALSE(validity.ok);
  EXPECT_NE(validity.reason.find("prefetch must be 0"), std::string::npos) << validity.reason;
  X86Variant named{X86Isa::avx512_bf16, 1, 1, 2, 2};
  named.prefetch = 1024;
  EXPECT_EQ(variant_name(desc, named), "x86_avx512bf16_w4g128_n1m1k2_t2_p1024");
  EXPECT_EQ(variant_from_json(to_json(named)), named);
  // Variants stored before the field existed meant no prefetch.
  EXPECT_EQ(variant_from_json(nlohmann::json::parse(
                R"({"isa":"avx512_bf16","n_panels":1,"m_rows":1,"k_unroll":2,"threads":2,"split_k":1})"))
                .prefetch,
            0);
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
  // compute=float has no avx512_vnni path (an int8 family); device=cuda has no x86 one.
  for (auto [text, isa] : {std::pair{"n=64,k=128", "avx512_vnni"}, std::pair{"n=64,k=128,device=cuda:0", "avx2"}}) {
    Validity validity = supports(parse_descriptor(text), isa);
    EXPECT_FALSE(validity.ok) << text;
    EXPECT_FALSE(validity.reason.empty());
  }
  for (const char* text : {"n=64,k=128,compute=int8", "n=64,k=128,device=cuda:0"})
    EXPECT_THROW(X86Kernel(parse_descriptor(text), X86Variant{}), Unsupported) << text;  // a float variant
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
  OpDesc scaled = desc;
  scaled.eqscale = true;
  X86Kernel scaled_kernel(scaled, heuristic(scaled, 1));
  EXPECT_THROW(scaled_kernel.run(args), InvalidArgument);  // eq_scale is required iff eqscale=1
  RunArgs with_scale = args;
  std::vector<float> eq_scale(64, 1.5f);
  with_scale.eq_scale = eq_scale.data();
  EXPECT_NO_THROW(scaled_kernel.run(with_scale));
}

}  // namespace
}  // namespace lowbit::x86

namespace lowbit::x86 {
namespace {

// LOWBIT_DUMP_X86 writes one file per program; two shapes served by the same variant name must
// not overwrite each other, and the file must hold the program's code.
TEST(X86Dump, OneFilePerProgramEvenUnderTheSameVariantName) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const std::filesystem::path directory =
      std::filesystem::temp_directory_path() / fmt::format("lowbit_dump_test_{}", ::getpid());
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  testing::ScopedEnvironment environment("LOWBIT_DUMP_X86", directory.string());
  const X86Variant variant{X86Isa::avx512_fma, 1, 1, 1, 1};
  const X86Kernel narrow(parse_descriptor("m=1,n=64,k=256,bits=4,group=128"), variant);
  const X86Kernel wide(parse_descriptor("m=1,n=128,k=512,bits=4,group=128"), variant);
  ASSERT_EQ(narrow.name(), wide.name());
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 2u);
  for (const auto& file : files) {
    EXPECT_EQ(file.filename().string().rfind(narrow.name() + "__m-1_n-", 0), 0u) << file;
    EXPECT_GT(std::filesystem::file_size(file), 64u) << file;
  }
  std::filesystem::remove_all(directory);
}

}  // namespace
}  // namespace lowbit::x86
